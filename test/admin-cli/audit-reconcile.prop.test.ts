// Proves the audit finds no difference where there is none, and reports every single change.
// For any policy, any ledger rows split across nodes and sides and any usage adjustments, the audit
// finds no difference against counters and an upstream built from the same rows (the upstream short
// of the estimated rows by any amount within them); and a single changed number (a counter, an
// upstream count, a row lost from a node's ledger) is always reported, at the key it changed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuditPlan,
  type AuditScope,
  type AuditSubject,
  LedgerTally,
  planAudit,
  reconcile,
  upstreamMetrics,
  type UpstreamTotals,
} from '../../src/admin-cli/audit-reconcile.js';
import { windowAt } from '../../src/crdt/window.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { LimitWindowUnit } from '../../src/mesh/policy/policy-schema.js';
import { ledgerRow } from '../support/memory-usage-reader.js';
import { checkProperty } from '../support/property.js';

const nowMs = Date.UTC(2027, 0, 4, 12, 7, 31);
const tenants = ['t0', 't1', 't2'];
const accounts = ['a0', 'a1', 'a2'];
const nodes = ['n0', 'n1', 'n2'];

const limitArbitrary = fc.record({
  metric: fc.constantFrom('requests', 'input_tokens', 'output_tokens', 'weighted_tokens', 'cost'),
  window: fc.constantFrom<LimitWindowUnit>('minute', 'hour', 'day'),
  sliding: fc.boolean(),
});

const subjectsArbitrary = fc
  .tuple(
    fc.array(fc.array(limitArbitrary, { maxLength: 3 }), { minLength: 3, maxLength: 3 }),
    fc.array(fc.array(limitArbitrary, { maxLength: 3 }), { minLength: 3, maxLength: 3 }),
  )
  .map(([tenantLimits, accountLimits]): AuditSubject[] => [
    ...tenants.map((id, i) => ({ scope: 'tenant' as const, id, limits: tenantLimits[i] ?? [] })),
    ...accounts.map((id, i) => ({ scope: 'account' as const, id, limits: accountLimits[i] ?? [] })),
  ]);

const rowArbitrary = fc
  .record({
    role: fc.constantFrom<LedgerRow['role']>('local', 'origin', 'home'),
    tenant: fc.constantFrom(...tenants),
    account: fc.option(fc.constantFrom(...accounts), { freq: 8 }),
    node: fc.constantFrom(...nodes),
    ageMs: fc.integer({ min: 0, max: 2 * 86_400_000 }),
    inputTokens: fc.nat(5_000),
    outputTokens: fc.nat(2_000),
    cacheWriteTokens: fc.nat(500),
    cacheReadTokens: fc.nat(500),
    weightedTokens: fc.nat(20_000),
    estimated: fc.boolean(),
  })
  .map(({ ageMs, ...fields }) => ({ ...fields, chargedAtMs: nowMs - ageMs }));

const onSide = (row: LedgerRow, side: AuditScope): boolean => (side === 'tenant' ? row.role !== 'home' : row.role !== 'origin');

/** What the gateway charges one side of a row under a metric: written out again here, apart from the code under test. */
function charged(row: LedgerRow, side: AuditScope, metric: string): number {
  if (metric === 'requests') return 1;
  if (metric === 'input_tokens') return row.inputTokens + row.cacheWriteTokens;
  if (metric === 'output_tokens') return row.outputTokens;
  if (metric === 'cache_read_tokens') return row.cacheReadTokens;
  if (side === 'tenant') return row.weightedTokens;
  return Math.ceil((row.inputTokens * 1000 + row.outputTokens * 5000 + row.cacheWriteTokens * 1250 + row.cacheReadTokens * 100) / 1000);
}

/** The counters the mesh would hold: every row charged to every planned key it falls in, plus the adjustments. */
function countersOf(plan: AuditPlan, rows: readonly LedgerRow[], adjustments: ReadonlyMap<string, number>): Map<string, number> {
  const counters = new Map<string, number>();
  for (const cell of plan.cells) {
    let value = adjustments.get(cell.key) ?? 0;
    for (const row of rows) {
      const subject = cell.scope === 'tenant' ? row.tenant : row.account;
      if (onSide(row, cell.scope) && subject === cell.subject && windowAt(cell.unit, row.chargedAtMs).index === cell.index)
        value += charged(row, cell.scope, cell.metric);
    }
    counters.set(cell.key, value);
  }
  return counters;
}

/** What the upstream counted: exactly the rows' usage, less any part of the estimated rows' (`share` of it, 0 to 1). */
function upstreamOf(rows: readonly LedgerRow[], share: number): Map<string, UpstreamTotals> {
  const upstream = new Map<string, Record<string, number>>(
    accounts.map((account) => [account, Object.fromEntries(upstreamMetrics.map((metric) => [metric, 0]))]),
  );
  for (const row of rows) {
    if (!onSide(row, 'account') || row.account === null) continue;
    const totals = upstream.get(row.account) as Record<string, number>;
    for (const metric of upstreamMetrics) {
      const amount = charged(row, 'account', metric);
      totals[metric] = (totals[metric] as number) + (row.estimated ? Math.floor(amount * share) : amount);
    }
  }
  return upstream as unknown as Map<string, UpstreamTotals>;
}

/** Each node's rows fed as its two exports (the tenant side's roles, then the account side's). */
function tallyOf(plan: AuditPlan, rows: readonly LedgerRow[]): LedgerTally {
  const tally = new LedgerTally(plan, accounts);
  for (const node of nodes) {
    for (const side of ['tenant', 'account'] as const) for (const row of rows) if (row.node === node && onSide(row, side)) tally.add(row, side);
  }
  return tally;
}

const scenario = fc.record({
  subjects: subjectsArbitrary,
  rows: fc.array(rowArbitrary, { maxLength: 60 }).map((specs) => specs.map((spec, i) => ledgerRow({ requestId: `r${i}`, ...spec }))),
  sinceAgoMs: fc.integer({ min: 1, max: 10 * 60_000 }),
  adjustments: fc.array(fc.tuple(fc.nat(), fc.integer({ min: -50, max: 50 })), { maxLength: 5 }),
  share: fc.double({ min: 0, max: 1, noNaN: true }),
  pick: fc.nat(),
  delta: fc.integer({ min: 1, max: 1_000 }).chain((size) => fc.constantFrom(size, -size)),
});

interface ScenarioInput {
  readonly subjects: AuditSubject[];
  readonly sinceAgoMs: number;
  readonly adjustments: [number, number][];
}

/** The plan of a scenario, and adjustments on some of its keys. */
function consistent(input: ScenarioInput): { plan: AuditPlan; adjustments: Map<string, number> } {
  const planned = planAudit(input.subjects, { sinceMs: nowMs - input.sinceAgoMs, untilMs: nowMs }, nowMs);
  if (!planned.ok) throw new Error(planned.error);
  const plan = planned.value;
  const adjustments = new Map<string, number>();
  for (const [pick, amount] of input.adjustments) {
    const cell = plan.cells[pick % Math.max(1, plan.cells.length)];
    if (cell !== undefined) adjustments.set(cell.key, (adjustments.get(cell.key) ?? 0) + amount);
  }
  return { plan, adjustments };
}

describe('the audit', () => {
  it('finds no difference when counters and the upstream come from the same rows, wherever the rows are', () => {
    checkProperty(
      fc.property(scenario, (input) => {
        const { plan, adjustments } = consistent(input);
        const report = reconcile({
          plan,
          tally: tallyOf(plan, input.rows),
          counters: countersOf(plan, input.rows, adjustments),
          adjustments,
          upstream: upstreamOf(input.rows, input.share),
        });
        expect(report.lines.filter((line) => line.verdict === 'differs')).toEqual([]);
        expect(report.lines.filter((line) => line.window !== 'range')).toHaveLength(plan.cells.length);
      }),
    );
  });

  it('reports a changed counter at its key, by the change', () => {
    checkProperty(
      fc.property(scenario, (input) => {
        const { plan, adjustments } = consistent(input);
        const cell = plan.cells[input.pick % Math.max(1, plan.cells.length)];
        if (cell === undefined) return;
        const counters = countersOf(plan, input.rows, adjustments);
        counters.set(cell.key, (counters.get(cell.key) as number) + input.delta);
        const report = reconcile({ plan, tally: tallyOf(plan, input.rows), counters, adjustments });
        const differing = report.lines.filter((line) => line.verdict === 'differs');
        expect(differing.map((line) => [`${line.subject.replace(' ', '/')}/${line.metric}/${line.window}`, line.diff])).toEqual([[cell.key, input.delta]]);
      }),
    );
  });

  it('reports a changed upstream count, above the ledger or below it by more than the estimated rows', () => {
    checkProperty(
      fc.property(scenario, (input) => {
        const { plan, adjustments } = consistent(input);
        const tally = tallyOf(plan, input.rows);
        const upstream = upstreamOf(input.rows, 1);
        const account = accounts[input.pick % accounts.length] as string;
        const metric = upstreamMetrics[input.pick % upstreamMetrics.length] as (typeof upstreamMetrics)[number];
        const estimated = tally.upstreamSum(account, metric)?.estimated ?? 0;
        const change = input.delta > 0 ? input.delta : input.delta - estimated;
        upstream.set(account, { ...(upstream.get(account) as UpstreamTotals), [metric]: (upstream.get(account) as UpstreamTotals)[metric] + change });
        const report = reconcile({ plan, tally, counters: countersOf(plan, input.rows, adjustments), adjustments, upstream });
        const differing = report.lines.filter((line) => line.verdict === 'differs');
        expect(differing.map((line) => [line.subject, line.metric, line.diff])).toEqual([[`account ${account}`, metric, change]]);
      }),
    );
  });

  it("reports a row lost from one node's ledger wherever it was counted", () => {
    checkProperty(
      fc.property(scenario, (input) => {
        const { plan, adjustments } = consistent(input);
        const lost = input.rows[input.pick % Math.max(1, input.rows.length)];
        if (lost === undefined) return;
        const counted = plan.cells.filter((cell) => {
          const subject = cell.scope === 'tenant' ? lost.tenant : lost.account;
          return (
            onSide(lost, cell.scope) &&
            subject === cell.subject &&
            windowAt(cell.unit, lost.chargedAtMs).index === cell.index &&
            charged(lost, cell.scope, cell.metric) > 0
          );
        });
        const upstreamCounted = onSide(lost, 'account') && lost.account !== null;
        const kept = input.rows.filter((row) => row !== lost);
        const report = reconcile({
          plan,
          tally: tallyOf(plan, kept),
          counters: countersOf(plan, input.rows, adjustments),
          adjustments,
          upstream: upstreamOf(input.rows, 1),
        });
        const differing = report.lines.filter((line) => line.verdict === 'differs');
        const expectedKeys = counted.map((cell) => cell.key).sort();
        expect(
          differing
            .filter((line) => line.window !== 'range')
            .map((line) => `${line.subject.replace(' ', '/')}/${line.metric}/${line.window}`)
            .sort(),
        ).toEqual(expectedKeys);
        // Its requests at least: the upstream saw a call the ledger no longer has.
        if (upstreamCounted)
          expect(differing.some((line) => line.window === 'range' && line.subject === `account ${lost.account}` && line.metric === 'requests')).toBe(true);
      }),
    );
  });
});
