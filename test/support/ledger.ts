// Shared pieces of the ledger and store tests: temporary store files, batches, and generators of
// ledger rows and state batches for the property tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { AnswerBook, StateBatch, StoredAnswer, StoredCounterEntry, StoredOpenRequest, StoredRightsRow } from '../../src/ledger/node-state.js';
import { SqliteStore, type StoreOptions } from '../../src/ledger/sqlite-store.js';

/** A folder under the system's temporary folder; `remove()` deletes it and everything in it. */
export function tempFolder(prefix = 'carpool-store-'): { readonly path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Checkpoints inline: a test opens hundreds of stores, and a checkpoint thread per store would
 * cost a thread start each and race the removal of the folder. The tests of the thread itself
 * (and the child processes) use the default, background checkpoints.
 */
export const storeOptions: StoreOptions = { sync: 'normal', maxBytes: 256 * 1024 * 1024, checkpoints: 'inline' };

/** Opens a store and fails the test with the store's own message if it cannot. */
export function openStore(path: string, options: StoreOptions = storeOptions): SqliteStore {
  const opened = SqliteStore.open(path, options);
  if (!opened.ok) throw new Error(`open failed: ${opened.error.kind}: ${opened.error.message}`);
  return opened.value;
}

export const emptyBatch: StateBatch = {
  meta: [],
  counterEntries: [],
  rightsRows: [],
  openRequestsPut: [],
  openRequestsDeleted: [],
  policyUpdates: [],
  answersPut: [],
  answersDeleted: [],
  ledgerRows: [],
};

export function batchOf(parts: Partial<StateBatch>): StateBatch {
  return { ...emptyBatch, ...parts };
}

/** 2026-12-01T00:00Z: the tests' reference day. */
export const day0Ms = Date.UTC(2026, 11, 1);
const dayMs = 86_400_000;

/** A plain ledger row for hand-written tests; `overrides` set what the test is about. */
export function ledgerRow(overrides: Partial<LedgerRow> = {}): LedgerRow {
  return {
    requestId: 'req-1',
    role: 'local',
    tenant: 'acme',
    user: 'ada',
    apiKeyId: 'acme.k1',
    account: 'acct-1',
    originRegion: 'eu',
    servedRegion: 'eu',
    node: 'eu/node-1',
    model: 'claude-sonnet-4-6',
    stream: false,
    inputTokens: 100,
    outputTokens: 20,
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    weightedTokens: 200,
    costMicros: 600,
    outcome: 'ok',
    status: 'ok',
    estimated: false,
    clientLeft: false,
    drained: false,
    chargedAtMs: day0Ms,
    settledAtMs: day0Ms + 40,
    durationMs: 40,
    ...overrides,
  };
}

const small = fc.integer({ min: 0, max: 100_000 });

/**
 * Ledger rows over a small vocabulary, so random filters match some rows and groups repeat, charged
 * within `spanDays` days either side of day 0 (times before 1970 are covered by the usage-sql tests).
 */
export function arbLedgerRowWithin(spanDays: number): fc.Arbitrary<LedgerRow> {
  return fc
    .record({
      requestId: fc.string({ minLength: 1, maxLength: 8 }),
      role: fc.constantFrom('local' as const, 'origin' as const, 'home' as const),
      tenant: fc.constantFrom('acme', 'globex', 'initech'),
      user: fc.option(fc.constantFrom('ada', 'bob'), { nil: null }),
      apiKeyId: fc.option(fc.constantFrom('acme.k1', 'globex.k2'), { nil: null }),
      account: fc.option(fc.constantFrom('acct-1', 'acct-2'), { nil: null }),
      model: fc.constantFrom('claude-sonnet-4-6', 'claude-haiku-4-5'),
      stream: fc.boolean(),
      inputTokens: small,
      outputTokens: small,
      cacheWriteTokens: small,
      cacheReadTokens: small,
      weightedTokens: small,
      costMicros: fc.option(small, { nil: null }),
      outcome: fc.constantFrom('ok' as const, 'failed' as const, 'interrupted' as const),
      estimated: fc.boolean(),
      clientLeft: fc.boolean(),
      drained: fc.boolean(),
      chargedAtMs: fc.integer({ min: day0Ms - spanDays * dayMs, max: day0Ms + spanDays * dayMs }),
      durationMs: fc.integer({ min: 0, max: 600_000 }),
    })
    .map((r) => ({
      ...r,
      originRegion: 'eu',
      servedRegion: r.role === 'home' ? 'us' : 'eu',
      node: 'eu/node-1',
      status: r.outcome === 'ok' ? 'ok' : 'UNAVAILABLE',
      settledAtMs: r.chargedAtMs + r.durationMs,
    }));
}

export const arbLedgerRow = arbLedgerRowWithin(100);

const arbKeyPart = fc.constantFrom('a', 'b', 'c');
const arbJson = fc.string({ maxLength: 12 }).map((s) => JSON.stringify({ s }));

const arbCounterEntry: fc.Arbitrary<StoredCounterEntry> = fc.record({
  replica: fc.constantFrom('eu-1~r1', 'us-1~r0'),
  scope: fc.constantFrom('tenant', 'account'),
  subject: arbKeyPart,
  metric: fc.constantFrom('weighted_tokens', 'requests'),
  unit: fc.constantFrom('minute', 'day'),
  index: fc.integer({ min: 0, max: 3 }),
  endMs: fc.integer({ min: 0, max: 10_000 }),
  p: fc.nat(),
  n: fc.nat(),
  version: fc.nat(),
});
const arbRightsRow: fc.Arbitrary<StoredRightsRow> = fc.record({ keyId: arbKeyPart, endMs: fc.integer({ min: 0, max: 10_000 }), json: arbJson });
const arbOpenRequest: fc.Arbitrary<StoredOpenRequest> = fc.record({ requestId: arbKeyPart, json: arbJson });
const arbBook = fc.constantFrom<AnswerBook>('answers', 'forward');
const arbAnswer: fc.Arbitrary<StoredAnswer> = fc.record({ book: arbBook, key: arbKeyPart, atMs: fc.nat(), json: arbJson });

/** Batches over a few keys per table, so later batches overwrite and delete what earlier ones put. */
export const arbBatch: fc.Arbitrary<StateBatch> = fc.record({
  meta: fc.array(fc.tuple(arbKeyPart, fc.string({ maxLength: 6 })), { maxLength: 3 }),
  counterEntries: fc.array(arbCounterEntry, { maxLength: 6 }),
  rightsRows: fc.array(arbRightsRow, { maxLength: 3 }),
  openRequestsPut: fc.array(arbOpenRequest, { maxLength: 3 }),
  openRequestsDeleted: fc.array(arbKeyPart, { maxLength: 2 }),
  policyUpdates: fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 2 }),
  answersPut: fc.array(arbAnswer, { maxLength: 3 }),
  answersDeleted: fc.array(fc.record({ book: arbBook, key: arbKeyPart }), { maxLength: 2 }),
  ledgerRows: fc.array(arbLedgerRow, { maxLength: 3 }),
});
