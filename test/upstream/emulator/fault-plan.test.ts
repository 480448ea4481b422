// Proves fault plans parse from their JSON form with errors that name the bad field, hit the
// right key for the right number of requests in order, leave non-streaming requests alone with
// mid-stream faults, last until cleared when unlimited, and stay within their bound.
import { describe, expect, it } from 'vitest';
import { emulatorFaultsMax } from '../../../src/core/limits.js';
import { type Fault, FaultPlan, parseFault, parseFaults } from '../../../src/upstream/emulator/fault-plan.js';

function fault(raw: unknown): Fault {
  const parsed = parseFault(raw, 'fault');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value;
}

describe('parseFault', () => {
  it('fills defaults: one request, every key, a one-second retry, a spent window', () => {
    expect(fault({ kind: 'rate-limit' })).toEqual({ key: undefined, count: 1, action: { kind: 'rate-limit', retryAfterSeconds: 1, remaining: 0 } });
    expect(fault({ kind: 'error-event' }).action).toEqual({ kind: 'error-event', afterEvents: 1, errorType: 'overloaded_error' });
    expect(fault({ kind: 'overloaded', key: 'k1', count: 'unlimited' })).toEqual({ key: 'k1', count: undefined, action: { kind: 'overloaded' } });
  });

  it('names the bad field', () => {
    const fieldOf = (raw: unknown): string | undefined => {
      const parsed = parseFault(raw, 'faults[2]');
      return parsed.ok ? undefined : parsed.error.kind === 'bad-fault' ? parsed.error.field : parsed.error.kind;
    };
    expect(fieldOf('x')).toBe('faults[2]');
    expect(fieldOf({ kind: 'explode' })).toBe('faults[2].kind');
    expect(fieldOf({ kind: 'overloaded', count: 0 })).toBe('faults[2].count');
    expect(fieldOf({ kind: 'rate-limit', retryAfterSeconds: -1 })).toBe('faults[2].retryAfterSeconds');
    expect(fieldOf({ kind: 'drop-mid-stream', afterEvents: 1.5 })).toBe('faults[2].afterEvents');
    expect(fieldOf({ kind: 'error-event', errorType: 'rate_limit_error' })).toBe('faults[2].errorType');
    expect(fieldOf({ kind: 'overloaded', colour: 'red' })).toBe('faults[2].colour');
    expect(fieldOf({ kind: 'overloaded', key: '' })).toBe('faults[2].key');
  });

  it("refuses a key on an account's own faults other than the account's", () => {
    expect(parseFault({ kind: 'overloaded' }, 'f', 'mine')).toMatchObject({ ok: true, value: { key: 'mine' } });
    expect(parseFault({ kind: 'overloaded', key: 'other' }, 'f', 'mine').ok).toBe(false);
  });

  it('reads a plan as {faults: [...]}, an array, or one fault', () => {
    expect(parseFaults({ faults: [{ kind: 'overloaded' }, { kind: 'server-error' }] })).toMatchObject({ ok: true, value: [{}, {}] });
    expect(parseFaults([{ kind: 'overloaded' }])).toMatchObject({ ok: true, value: [{}] });
    expect(parseFaults({ kind: 'forbidden' })).toMatchObject({ ok: true, value: [{ action: { kind: 'forbidden' } }] });
    expect(parseFaults({ faults: [{ kind: 'overloaded' }, { kind: 'nope' }] })).toMatchObject({ ok: false, error: { field: 'faults[1].kind' } });
  });
});

describe('FaultPlan', () => {
  it('answers matching requests in order, counting each fault down', () => {
    const plan = new FaultPlan();
    plan.add([fault({ kind: 'rate-limit', key: 'a', count: 2 }), fault({ kind: 'overloaded' })]);
    expect(plan.take('b', false)?.kind).toBe('overloaded');
    expect(plan.take('b', false)).toBeUndefined();
    expect(plan.take('a', false)?.kind).toBe('rate-limit');
    expect(plan.take('a', false)?.kind).toBe('rate-limit');
    expect(plan.take('a', false)).toBeUndefined();
    expect(plan.injected).toBe(3);
    expect(plan.list()).toEqual([]);
  });

  it('keeps mid-stream faults for streaming requests', () => {
    const plan = new FaultPlan();
    plan.add([fault({ kind: 'drop-mid-stream', afterEvents: 4 })]);
    expect(plan.take('a', false)).toBeUndefined();
    expect(plan.take('a', true)).toEqual({ kind: 'drop-mid-stream', afterEvents: 4 });
    expect(plan.take('a', true)).toBeUndefined();
  });

  it('keeps an unlimited fault until cleared', () => {
    const plan = new FaultPlan();
    plan.add([fault({ kind: 'unauthorized', key: 'revoked', count: 'unlimited' })]);
    for (let i = 0; i < 5; i++) expect(plan.take('revoked', false)?.kind).toBe('unauthorized');
    expect(plan.list()).toEqual([{ key: 'revoked', count: undefined, action: { kind: 'unauthorized' } }]);
    plan.clear();
    expect(plan.take('revoked', false)).toBeUndefined();
  });

  it('refuses a plan past its bound, all or nothing', () => {
    const plan = new FaultPlan(3);
    expect(plan.add([fault({ kind: 'overloaded' }), fault({ kind: 'overloaded' })])).toEqual({ ok: true, value: 2 });
    expect(plan.add([fault({ kind: 'overloaded' }), fault({ kind: 'overloaded' })])).toEqual({ ok: false, error: { kind: 'faults-full', faultsMax: 3 } });
    expect(plan.list()).toHaveLength(2);
    expect(parseFaults(Array.from({ length: emulatorFaultsMax + 1 }, () => ({ kind: 'overloaded' }))).ok).toBe(false);
  });
});
