// Proves the policy document's admin audit log validates, bounds, orders and replicates entries.
// Entries are validated when written and again when read (naming the bad field), the log keeps the
// newest auditEntriesMax entries, reads newest first, and replicates to another document like every
// other policy edit.
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import { auditEntriesMax } from '../../../src/core/limits.js';
import { type AuditEntry, validateAuditEntry } from '../../../src/mesh/policy/audit-schema.js';
import { PolicyDocument } from '../../../src/mesh/policy/policy-document.js';

const entry = (atMs: number, overrides: Partial<AuditEntry> = {}): AuditEntry => ({
  atMs,
  node: 'us-east-1',
  actor: 'admin',
  action: 'tenant.put',
  target: 'tenant/acme',
  ...overrides,
});

function fieldOf(value: unknown): string | undefined {
  const checked = validateAuditEntry(value, 'audit[0]');
  return checked.ok ? undefined : checked.error.field;
}

/** Delivers every pending update of `from` to `to`. */
function deliver(from: PolicyDocument, to: PolicyDocument): void {
  for (const message of from.takeUpdates()) expect(to.onSyncMessage(message).ok).toBe(true);
}

describe('audit entries', () => {
  it('are validated field by field', () => {
    expect(fieldOf(entry(1, { reason: 'refund', detail: { amount: 5, kind: 'credit', created: true } }))).toBeUndefined();
    expect(fieldOf([])).toBe('audit[0]');
    expect(fieldOf({ ...entry(1), atMs: -1 })).toBe('audit[0].atMs');
    expect(fieldOf({ ...entry(1), node: '' })).toBe('audit[0].node');
    expect(fieldOf({ ...entry(1), actor: 'a\nb' })).toBe('audit[0].actor');
    expect(fieldOf({ ...entry(1), action: 'Tenant Put' })).toBe('audit[0].action');
    expect(fieldOf({ ...entry(1), target: 'x'.repeat(513) })).toBe('audit[0].target');
    expect(fieldOf({ ...entry(1), reason: '   ' })).toBe('audit[0].reason');
    expect(fieldOf({ ...entry(1), detail: [] })).toBe('audit[0].detail');
    expect(fieldOf({ ...entry(1), detail: { amount: 1.5 } })).toBe('audit[0].detail.amount');
    expect(fieldOf({ ...entry(1), detail: { nested: { a: 1 } } })).toBe('audit[0].detail.nested');
    expect(fieldOf({ ...entry(1), detail: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, i])) })).toBe('audit[0].detail');
    // A newer peer's action of the same shape is kept.
    expect(fieldOf(entry(1, { action: 'tenant.archive' }))).toBeUndefined();
  });
});

describe('the audit log of the policy document', () => {
  it('keeps the newest auditEntriesMax entries and reads them newest first', () => {
    const doc = new PolicyDocument(1);
    for (let i = 0; i < auditEntriesMax + 5; i++) expect(doc.appendAudit(entry(1_000 + i)).ok).toBe(true);
    const { entries, invalid } = doc.auditEntries();
    expect(invalid).toEqual([]);
    expect(entries).toHaveLength(auditEntriesMax);
    expect(entries[0]?.atMs).toBe(1_000 + auditEntriesMax + 4);
    expect(entries.at(-1)?.atMs).toBe(1_005);
  });

  it('refuses an invalid entry when written', () => {
    const doc = new PolicyDocument(1);
    expect(doc.appendAudit({ ...entry(1), actor: '' })).toMatchObject({ ok: false, error: { field: 'audit[+].actor' } });
    expect(doc.auditEntries().entries).toEqual([]);
  });

  it('replicates to another document, where entries written at both interleave by time', () => {
    const east = new PolicyDocument(1);
    const west = new PolicyDocument(2);
    east.appendAudit(entry(10, { reason: 'first' }));
    deliver(east, west);
    west.appendAudit(entry(20, { node: 'eu-west-1', action: 'key.revoke', target: 'key/acme:0badf00d' }));
    east.appendAudit(entry(15));
    deliver(west, east);
    deliver(east, west);
    for (const doc of [east, west]) expect(doc.auditEntries().entries.map((e) => e.atMs)).toEqual([20, 15, 10]);
    expect(west.auditEntries().entries.at(-1)).toEqual(entry(10, { reason: 'first' }));
  });

  it('reports entries a peer wrote that fail validation, and reads the others', () => {
    // A peer of another version: the same root, an entry this schema refuses.
    const peer = new Y.Doc({ gc: true });
    peer.clientID = 99;
    peer.getArray('audit').push([entry(5), { atMs: 'yesterday', node: 'x', actor: 'y', action: 'tenant.put', target: 't' }]);
    const encoder = encoding.createEncoder();
    syncProtocol.writeUpdate(encoder, Y.encodeStateAsUpdate(peer));
    const doc = new PolicyDocument(1);
    expect(doc.onSyncMessage(encoding.toUint8Array(encoder)).ok).toBe(true);
    const { entries, invalid } = doc.auditEntries();
    expect(entries).toEqual([entry(5)]);
    expect(invalid).toEqual([{ kind: 'invalid-policy', field: 'audit[1].atMs', reason: 'must be a non-negative safe integer' }]);
  });
});
