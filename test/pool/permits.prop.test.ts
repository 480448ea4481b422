// Proves the permit table matches a simple FIFO model under random sequences of operations.
// Under random acquire/cancel/release/tick/cap/remove sequences it never grants past a cap,
// releases every grant exactly once, and leaks nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { type PermitEvent, type PermitId, PermitTable, type WaiterId } from '../../src/pool/permits.js';
import { checkProperty } from '../support/property.js';

const accounts = ['a0', 'a1', 'a2'].map((id) => id as AccountId);

type Op =
  | { readonly kind: 'acquire'; readonly account: number; readonly waitMs: number }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'cancel'; readonly pick: number }
  | { readonly kind: 'tick'; readonly advanceMs: number }
  | { readonly kind: 'drain' }
  | { readonly kind: 'cap'; readonly account: number; readonly max: number }
  | { readonly kind: 'remove'; readonly account: number };

const arbAccount = fc.nat(accounts.length - 1);
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('acquire' as const), account: arbAccount, waitMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), advanceMs: fc.integer({ min: 0, max: 25 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'drain' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cap' as const), account: arbAccount, max: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), account: arbAccount }) },
);

const arbSetup = fc.record({
  caps: fc.array(fc.nat(3), { minLength: accounts.length, maxLength: accounts.length }),
  waitersPerAccountMax: fc.integer({ min: 1, max: 4 }),
  waitersMax: fc.integer({ min: 1, max: 8 }),
  heldMax: fc.integer({ min: 1, max: 8 }),
});

interface ModelAccount {
  max: number;
  inFlight: number;
  queue: { id: WaiterId; deadlineMs: number }[];
  retired: boolean;
}

/** The reference: the same rules written as plainly as possible, with arrays. */
class Model {
  readonly accounts = new Map<AccountId, ModelAccount>();
  readonly held = new Map<PermitId, AccountId>();
  /** Decided, undrained outcomes by waiter. */
  readonly outbox = new Map<WaiterId, PermitEvent<string>>();
  nextPermit = 1;
  nextWaiter = 1;

  constructor(readonly setup: { waitersPerAccountMax: number; waitersMax: number; heldMax: number }) {}

  waiting(): number {
    let n = 0;
    for (const account of this.accounts.values()) n += account.queue.length;
    return n;
  }

  grant(id: AccountId, account: ModelAccount): PermitId {
    // The property under test: a grant only ever happens below the cap.
    if (account.inFlight >= account.max) throw new Error('a grant at or past the cap');
    account.inFlight++;
    const permit = this.nextPermit++ as PermitId;
    this.held.set(permit, id);
    return permit;
  }

  handOver(id: AccountId, account: ModelAccount): void {
    while (!account.retired && account.inFlight < account.max && this.held.size < this.setup.heldMax && account.queue.length > 0) {
      const waiter = account.queue.shift()!;
      this.outbox.set(waiter.id, { kind: 'granted', waiterId: waiter.id, permit: { id: this.grant(id, account), accountId: id }, context: 'c' });
    }
  }

  dropIfIdle(id: AccountId, account: ModelAccount): void {
    if (account.retired && account.inFlight === 0 && account.queue.length === 0) this.accounts.delete(id);
  }

  giveBack(permit: PermitId): boolean {
    const id = this.held.get(permit);
    if (id === undefined) return false;
    this.held.delete(permit);
    const account = this.accounts.get(id)!;
    account.inFlight--;
    this.handOver(id, account);
    this.dropIfIdle(id, account);
    return true;
  }
}

/** Deep equality for the plain values compared here (same key order on both sides), cheaply. */
function eq(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: got ${a}, expected ${e}`);
}

function same(actual: readonly unknown[], expected: readonly unknown[], what: string): void {
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) throw new Error(`${what}: table ${JSON.stringify(actual)} but model ${JSON.stringify(expected)}`);
  }
}

describe('PermitTable (property)', () => {
  it('matches its FIFO model and leaks nothing', () => {
    checkProperty(
      fc.property(arbSetup, fc.array(arbOp, { maxLength: 40, size: 'max' }), (setup, ops) => {
        const table = new PermitTable<string>(setup);
        const model = new Model(setup);
        accounts.forEach((id, i) => {
          table.setAccount(id, setup.caps[i]!);
          model.accounts.set(id, { max: setup.caps[i]!, inFlight: 0, queue: [], retired: false });
        });
        let nowMs = 0;
        /** Permits the caller holds: granted at once or drained from the outbox. */
        const owned: PermitId[] = [];
        /** Every permit id ever issued, and how often it was successfully released. */
        const releases = new Map<PermitId, number>();
        const revoked = new Set<PermitId>();
        const tickets: WaiterId[] = [];

        const drain = (): void => {
          const events = table.takeEvents();
          const expected = [...model.outbox.values()];
          model.outbox.clear();
          // Expiries of equal deadlines leave the heap in no set order, so compare as sets...
          const byWaiter = (x: PermitEvent<string>, y: PermitEvent<string>): number => x.waiterId - y.waiterId;
          eq([...events].sort(byWaiter), expected.sort(byWaiter), 'events');
          // ...and check FIFO directly: per account, grants come out oldest ticket first.
          for (const id of accounts) {
            const order = events.filter((e) => e.kind === 'granted' && e.permit.accountId === id).map((e) => e.waiterId);
            eq(
              order,
              [...order].sort((x, y) => x - y),
              `grant order of ${id}`,
            );
          }
          for (const event of events) if (event.kind === 'granted') owned.push(event.permit.id);
        };

        for (const op of ops) {
          switch (op.kind) {
            case 'acquire': {
              const id = accounts[op.account]!;
              const result = table.acquire(id, nowMs + op.waitMs, 'c', nowMs);
              const account = model.accounts.get(id);
              if (account === undefined || account.retired) {
                eq(result, { ok: false, error: { kind: 'unknown-account', accountId: id } }, 'acquire');
              } else if (account.inFlight < account.max && account.queue.length === 0) {
                if (model.held.size >= setup.heldMax) {
                  eq(result.ok === false && result.error.kind, 'permits-full', 'acquire');
                } else {
                  const permit = model.grant(id, account);
                  eq(result, { ok: true, value: { kind: 'granted', permit: { id: permit, accountId: id } } }, 'acquire');
                  owned.push(permit);
                }
              } else if (op.waitMs === 0) {
                eq(result.ok === false && result.error.kind, 'busy', 'acquire');
              } else if (account.queue.length >= setup.waitersPerAccountMax) {
                eq(result.ok === false && [result.error.kind, 'scope' in result.error && result.error.scope], ['queue-full', 'account'], 'acquire');
              } else if (model.waiting() + model.outbox.size >= setup.waitersMax) {
                eq(result.ok === false && [result.error.kind, 'scope' in result.error && result.error.scope], ['queue-full', 'total'], 'acquire');
              } else {
                const waiterId = model.nextWaiter++ as WaiterId;
                account.queue.push({ id: waiterId, deadlineMs: nowMs + op.waitMs });
                eq(result, { ok: true, value: { kind: 'queued', waiterId } }, 'acquire');
                tickets.push(waiterId);
              }
              break;
            }
            case 'release': {
              // Mostly permits the caller owns; sometimes one already released, or a revoked one.
              const pool = [...owned, ...releases.keys()];
              if (pool.length === 0) break;
              const permit = pool[op.pick % pool.length]!;
              const result = table.release(permit);
              eq(result.ok, model.giveBack(permit), 'release');
              if (result.ok) {
                releases.set(permit, (releases.get(permit) ?? 0) + 1);
                owned.splice(owned.indexOf(permit), 1);
              }
              break;
            }
            case 'cancel': {
              if (tickets.length === 0) break;
              const waiterId = tickets[op.pick % tickets.length]!;
              let expected: string = 'not-waiting';
              for (const account of model.accounts.values()) {
                const at = account.queue.findIndex((w) => w.id === waiterId);
                if (at < 0) continue;
                account.queue.splice(at, 1);
                expected = 'cancelled';
              }
              if (expected === 'cancelled') {
                for (const [id, account] of model.accounts) model.dropIfIdle(id, account);
              } else {
                const decided = model.outbox.get(waiterId);
                if (decided !== undefined) {
                  model.outbox.delete(waiterId);
                  if (decided.kind === 'granted') {
                    expected = 'revoked';
                    revoked.add(decided.permit.id);
                    eq(model.giveBack(decided.permit.id), true, 'revoke');
                  }
                }
              }
              eq(table.cancel(waiterId), expected, 'cancel');
              break;
            }
            case 'tick': {
              nowMs += op.advanceMs;
              table.tick(nowMs);
              for (const [id, account] of [...model.accounts]) {
                for (const waiter of account.queue.filter((w) => w.deadlineMs <= nowMs)) {
                  model.outbox.set(waiter.id, { kind: 'expired', waiterId: waiter.id, accountId: id, context: 'c' });
                }
                account.queue = account.queue.filter((w) => w.deadlineMs > nowMs);
                model.dropIfIdle(id, account);
              }
              break;
            }
            case 'drain':
              drain();
              break;
            case 'cap': {
              const id = accounts[op.account]!;
              table.setAccount(id, op.max);
              const account = model.accounts.get(id);
              if (account === undefined) {
                model.accounts.set(id, { max: op.max, inFlight: 0, queue: [], retired: false });
              } else {
                account.max = op.max;
                account.retired = false;
                model.handOver(id, account);
              }
              break;
            }
            case 'remove': {
              const id = accounts[op.account]!;
              table.removeAccount(id);
              const account = model.accounts.get(id);
              if (account === undefined) break;
              for (const waiter of account.queue) {
                model.outbox.set(waiter.id, { kind: 'evicted', waiterId: waiter.id, accountId: id, reason: 'account-removed', context: 'c' });
              }
              account.queue = [];
              account.retired = true;
              model.dropIfIdle(id, account);
              break;
            }
          }

          // Plain comparisons on the hot path: `expect` per step would dominate a 10,000-run soak.
          for (const id of accounts) {
            const account = model.accounts.get(id);
            same(
              [table.inFlight(id), table.queued(id), table.has(id)],
              [account?.inFlight ?? 0, account?.queue.length ?? 0, account !== undefined && !account.retired],
              `account ${id}`,
            );
          }
          same(
            [table.heldCount, table.waitingCount, table.pendingEvents, table.accountCount],
            [model.held.size, model.waiting(), model.outbox.size, model.accounts.size],
            'totals',
          );
          if (table.waitingCount + table.pendingEvents > setup.waitersMax || table.heldCount > setup.heldMax) throw new Error('a bound was passed');
        }

        // Wind down: withdraw every ticket, take every outcome, release every permit held.
        drain();
        for (const waiterId of tickets) expect(table.cancel(waiterId)).not.toBe('revoked');
        expect(table.takeEvents()).toEqual([]);
        for (const permit of [...owned]) {
          expect(table.release(permit).ok).toBe(true);
          releases.set(permit, (releases.get(permit) ?? 0) + 1);
        }
        expect(table.takeEvents()).toEqual([]);
        expect([table.heldCount, table.waitingCount, table.pendingEvents]).toEqual([0, 0, 0]);
        for (const id of accounts) expect([table.inFlight(id), table.queued(id)]).toEqual([0, 0]);
        // Every permit issued was released exactly once, except revoked grants, never released.
        for (let permit = 1; permit < model.nextPermit; permit++) {
          const id = permit as PermitId;
          expect(releases.get(id) ?? 0).toBe(revoked.has(id) ? 0 : 1);
        }
      }),
      // 1,000 runs of up to 40 steps in `npm test`; `FC_RUNS=10000` soaks it (see ../support/property.ts).
      1_000,
    );
  });
});
