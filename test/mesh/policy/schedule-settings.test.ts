// Proves the policy's schedule and degrade settings: defaults until set; partial updates merge
// over what is stored (tier weights field by field, degrade tiers whole) and null drops them; a
// refused update names its bad field (unknown names, out-of-bound numbers, escapeEvery 1, tier
// weights rising downwards, a rule for vip, a rule with no action, bad model names) and changes
// nothing; an invalid entry a peer stored reads as the default and is reported.
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '../../../src/mesh/policy/policy-document.js';
import type { SettingsPatch } from '../../../src/mesh/policy/policy-schema.js';
import { defaultScheduleSettings } from '../../../src/mesh/policy/schedule-schema.js';
import { settingsView } from '../../../src/node/gateway/policy-view.js';

const loose = (value: unknown): SettingsPatch => value as SettingsPatch;

function refusedField(doc: PolicyDocument, patch: unknown): string | undefined {
  const before = JSON.stringify([doc.scheduleSettings(), doc.degradeSettings()]);
  doc.takeUpdates();
  const result = doc.updateSettings(loose(patch));
  expect(JSON.stringify([doc.scheduleSettings(), doc.degradeSettings()])).toBe(before);
  expect(doc.takeUpdates()).toEqual([]);
  return result.ok ? undefined : result.error.field;
}

describe('schedule and degrade settings', () => {
  it('read as the defaults until set, and show in the settings view', () => {
    const doc = new PolicyDocument(1);
    expect(doc.scheduleSettings()).toBe(defaultScheduleSettings);
    expect(doc.degradeSettings()).toBeUndefined();
    expect(settingsView(doc)).toMatchObject({ schedule: defaultScheduleSettings });
    expect(settingsView(doc)).not.toHaveProperty('degrade');
  });

  it('merge partial updates over what is stored, tier weights field by field, and drop on null', () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings(loose({ schedule: { mode: 'fifo', tierWeights: { vip: 8 } } })).ok).toBe(true);
    expect(doc.scheduleSettings()).toEqual({ ...defaultScheduleSettings, mode: 'fifo', tierWeights: { vip: 8, paid: 2, free: 1 } });
    expect(doc.updateSettings(loose({ schedule: { levels: 2 } })).ok).toBe(true);
    expect(doc.scheduleSettings()).toMatchObject({ mode: 'fifo', levels: 2 });
    const first = doc.scheduleSettings();
    expect(doc.scheduleSettings()).toBe(first);
    expect(doc.updateSettings(loose({ schedule: null })).ok).toBe(true);
    expect(doc.scheduleSettings()).toBe(defaultScheduleSettings);

    expect(doc.updateSettings(loose({ degrade: { tiers: { free: { maxTokens: 512 } } } })).ok).toBe(true);
    expect(doc.degradeSettings()).toEqual({ utilisationPercent: 85, pausedAccounts: 1, tiers: { free: { maxTokens: 512 } } });
    expect(doc.updateSettings(loose({ degrade: { utilisationPercent: 70, tiers: { paid: { waitMs: 30_000 } } } })).ok).toBe(true);
    expect(doc.degradeSettings()).toEqual({ utilisationPercent: 70, pausedAccounts: 1, tiers: { paid: { waitMs: 30_000 } } });
    expect(settingsView(doc)).toMatchObject({ degrade: { utilisationPercent: 70 } });
    expect(doc.updateSettings(loose({ degrade: null })).ok).toBe(true);
    expect(doc.degradeSettings()).toBeUndefined();
  });

  it('refuse a bad update naming its field, changing nothing', () => {
    const doc = new PolicyDocument(1);
    expect(refusedField(doc, { schedule: 'fast' })).toBe('settings.schedule');
    expect(refusedField(doc, { schedule: { turbo: true } })).toBe('settings.schedule.turbo');
    expect(refusedField(doc, { schedule: { mode: 'lottery' } })).toBe('settings.schedule.mode');
    expect(refusedField(doc, { schedule: { levels: 9 } })).toBe('settings.schedule.levels');
    expect(refusedField(doc, { schedule: { rateWindowMs: 15_000 } })).toBe('settings.schedule.rateWindowMs');
    expect(refusedField(doc, { schedule: { historyWindowMs: 90_000 } })).toBe('settings.schedule.historyWindowMs');
    expect(refusedField(doc, { schedule: { escapeEvery: 1 } })).toBe('settings.schedule.escapeEvery');
    expect(refusedField(doc, { schedule: { tierWeights: { free: 3 } } })).toBe('settings.schedule.tierWeights.free');
    expect(refusedField(doc, { schedule: { tierWeights: { gold: 3 } } })).toBe('settings.schedule.tierWeights.gold');
    expect(refusedField(doc, { degrade: { tiers: { vip: { maxTokens: 5 } } } })).toBe('settings.degrade.tiers.vip');
    expect(refusedField(doc, { degrade: { tiers: { free: {} } } })).toBe('settings.degrade.tiers.free');
    expect(refusedField(doc, { degrade: { tiers: { free: { maxTokens: 0 } } } })).toBe('settings.degrade.tiers.free.maxTokens');
    expect(refusedField(doc, { degrade: { tiers: { free: { models: { 'a b': 'c' } } } } })).toBe('settings.degrade.tiers.free.models');
    expect(refusedField(doc, { degrade: { tiers: { free: { shrink: true } } } })).toBe('settings.degrade.tiers.free.shrink');
    expect(refusedField(doc, { degrade: { utilisationPercent: 101 } })).toBe('settings.degrade.utilisationPercent');
    expect(refusedField(doc, { degrade: { sometimes: 1 } })).toBe('settings.degrade.sometimes');
  });

  it("read a peer's invalid entries as the defaults, and report them", () => {
    const doc = new PolicyDocument(1);
    const peer = new Y.Doc();
    peer.clientID = 9;
    const settings = peer.getMap<unknown>('settings');
    settings.set('schedule', { mode: 'fifo' });
    settings.set('degrade', { utilisationPercent: 50, pausedAccounts: 0, tiers: { vip: { maxTokens: 1 } } });
    const encoder = encoding.createEncoder();
    syncProtocol.writeUpdate(encoder, Y.encodeStateAsUpdate(peer));
    expect(doc.onSyncMessage(encoding.toUint8Array(encoder)).ok).toBe(true);
    expect(doc.scheduleSettings()).toBe(defaultScheduleSettings);
    expect(doc.degradeSettings()).toBeUndefined();
    expect(
      doc
        .invalidEntries()
        .map((error) => error.field)
        .sort(),
    ).toEqual(['settings.degrade.tiers.vip', 'settings.schedule.levels']);
  });
});
