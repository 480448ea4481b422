// Proves the audit's arithmetic on cases worked by hand.
// Which keys a range checks (every overlapping window whole, sliding limits in 10-second windows,
// expired windows and uncounted metrics set apart, the key bound); how each side of a row is
// charged (a forwarded request counted once per side, account weights the default ones); usage
// adjustments from the audit log; and the verdicts: counters = ledger + adjustments exactly, the
// upstream within the estimated rows' amounts below the ledger and never above, an upstream key no
// account holds and an account without a known key.
import { describe, expect, it } from 'vitest';
import { adjustmentsOf, type AuditSubject, LedgerTally, planAudit, reconcile, rowAmount, type UpstreamTotals } from '../../src/admin-cli/audit-reconcile.js';
import { windowAt, windowStartMs } from '../../src/crdt/window.js';
import { ledgerRow } from '../support/memory-usage-reader.js';

const minuteMs = 60_000;
/** A Monday noon, so days and weeks start well before it. */
const nowMs = Date.UTC(2027, 0, 4, 12);

const acme: AuditSubject = {
  scope: 'tenant',
  id: 'acme',
  limits: [
    { metric: 'requests', window: 'day', sliding: false },
    { metric: 'weighted_tokens', window: 'minute', sliding: true },
    { metric: 'cost', window: 'day', sliding: false },
  ],
};
const acct: AuditSubject = { scope: 'account', id: 'acct-1', limits: [{ metric: 'weighted_tokens', window: 'hour', sliding: false }] };

describe('the plan', () => {
  it('checks every window overlapping the range, whole, and reads the ledgers over them', () => {
    const plan = planAudit([acme, acct], { sinceMs: nowMs - minuteMs, untilMs: nowMs }, nowMs);
    if (!plan.ok) throw new Error(plan.error);
    const day = windowAt('day', nowMs).index;
    const hour = windowAt('hour', nowMs).index;
    const firstSec10 = windowAt('sec10', nowMs - minuteMs).index;
    expect(plan.value.cells.map((cell) => cell.key)).toEqual([
      `tenant/acme/requests/day:${day}`,
      ...Array.from({ length: 6 }, (_, i) => `tenant/acme/weighted_tokens/sec10:${firstSec10 + i}`),
      `account/acct-1/weighted_tokens/hour:${hour - 1}`,
    ]);
    expect(plan.value).toMatchObject({
      fetchSinceMs: windowStartMs({ unit: 'day', index: day }),
      fetchUntilMs: windowStartMs({ unit: 'day', index: day + 1 }),
      expired: 0,
      uncounted: ['tenant acme: cost per day'],
    });
  });

  it('sets apart the windows the counters have expired, and names the key bound', () => {
    const plan = planAudit([acme], { sinceMs: nowMs - 60 * minuteMs, untilMs: nowMs }, nowMs);
    if (!plan.ok) throw new Error(plan.error);
    // Sliding windows ended more than the horizon (15 min) less the margin (1 min) ago are gone.
    const sec10 = plan.value.cells.filter((cell) => cell.unit === 'sec10');
    expect(sec10.length).toBe(6 * 14);
    expect(plan.value.expired).toBe(6 * 60 - 6 * 14);
    const tooMany = planAudit([acme], { sinceMs: nowMs - 10 * minuteMs, untilMs: nowMs }, nowMs, { keysMax: 20 });
    expect(!tooMany.ok && tooMany.error).toContain('more than 20 counter keys');
    expect(planAudit([acme], { sinceMs: nowMs, untilMs: nowMs }, nowMs).ok).toBe(false);
  });
});

describe('a row', () => {
  it('adds to each counted metric as the gateway charges it, accounts under the default weights', () => {
    const row = ledgerRow({ requestId: 'r', inputTokens: 10, outputTokens: 3, cacheWriteTokens: 4, cacheReadTokens: 7, weightedTokens: 999 });
    expect(['requests', 'input_tokens', 'output_tokens', 'weighted_tokens', 'cost'].map((metric) => rowAmount(row, 'tenant', metric))).toEqual([
      1, 14, 3, 999, 0,
    ]);
    // ceil((10×1000 + 3×5000 + 4×1250 + 7×100) / 1000) = ceil(30.7)
    expect(rowAmount(row, 'account', 'weighted_tokens')).toBe(31);
  });
});

describe('adjustments', () => {
  it("sum the audit log's charges and credits per key, skipping other entries", () => {
    const entries = [
      { action: 'usage.adjust', target: 'tenant/acme', detail: { metric: 'requests', window: 'day:5', kind: 'charge', amount: 7 } },
      { action: 'usage.adjust', target: 'tenant/acme', detail: { metric: 'requests', window: 'day:5', kind: 'credit', amount: 2 } },
      { action: 'usage.adjust', target: 'account/a:b', detail: { metric: 'output_tokens', window: 'hour:9', kind: 'credit', amount: 1 } },
      { action: 'tenant.put', target: 'tenant/acme' },
      { action: 'usage.adjust', target: 'tenant/acme', detail: { metric: 'requests', window: 'day:5', kind: 'refund', amount: 100 } },
      null,
    ];
    expect(adjustmentsOf(entries)).toEqual(
      new Map([
        ['tenant/acme/requests/day:5', 5],
        ['account/a:b/output_tokens/hour:9', -1],
      ]),
    );
  });
});

describe('the verdicts', () => {
  const subjects: AuditSubject[] = [
    { scope: 'tenant', id: 'acme', limits: [{ metric: 'requests', window: 'day', sliding: false }] },
    { scope: 'account', id: 'acct-1', limits: [{ metric: 'requests', window: 'day', sliding: false }] },
    { scope: 'account', id: 'acct-2', limits: [{ metric: 'requests', window: 'day', sliding: false }] },
  ];
  const planned = planAudit(subjects, { sinceMs: nowMs - minuteMs, untilMs: nowMs }, nowMs);
  if (!planned.ok) throw new Error(planned.error);
  const plan = planned.value;
  const day = windowAt('day', nowMs).index;
  const at = nowMs - 1_000;
  // A local request at us-east on acct-1, and one forwarded from us-east to eu-west's acct-2,
  // which has a row at each end; the second was aborted by its client, so its usage is estimated.
  const usEast = [
    ledgerRow({ requestId: 'r1', chargedAtMs: at, outputTokens: 20 }),
    ledgerRow({ requestId: 'r2', role: 'origin', account: 'acct-2', chargedAtMs: at, outputTokens: 8, estimated: true }),
  ];
  const euWest = [
    ledgerRow({
      requestId: 'r2',
      role: 'home',
      account: 'acct-2',
      node: 'eu-west-1',
      servedRegion: 'eu-west',
      chargedAtMs: at,
      outputTokens: 8,
      estimated: true,
    }),
  ];

  function tallyOf(): LedgerTally {
    const tally = new LedgerTally(plan, ['acct-1', 'acct-2']);
    for (const rows of [usEast, euWest]) {
      for (const side of ['tenant', 'account'] as const)
        for (const row of rows) if (side === 'tenant' ? row.role !== 'home' : row.role !== 'origin') tally.add(row, side);
    }
    return tally;
  }

  const counters = new Map([
    [`tenant/acme/requests/day:${day}`, 5],
    [`account/acct-1/requests/day:${day}`, 1],
    [`account/acct-2/requests/day:${day}`, 1],
  ]);
  const adjustments = new Map([[`tenant/acme/requests/day:${day}`, 3]]);
  const upstreamOf = (acct2Output: number): Map<string, UpstreamTotals> =>
    new Map([
      ['acct-1', { requests: 1, input_tokens: 10, output_tokens: 20, cache_read_tokens: 0 }],
      ['acct-2', { requests: 1, input_tokens: 10, output_tokens: acct2Output, cache_read_tokens: 0 }],
    ]);

  it('count a forwarded request once on each side, and take counters as ledger plus adjustments', () => {
    const report = reconcile({ plan, tally: tallyOf(), counters, adjustments, upstream: upstreamOf(8) });
    const byKey = Object.fromEntries(report.lines.map((line) => [`${line.subject} ${line.window} ${line.metric}`, line]));
    expect(byKey[`tenant acme day:${day} requests`]).toMatchObject({ ledger: 2, adjustments: 3, counters: 5, diff: 0, verdict: 'agrees' });
    expect(byKey[`account acct-2 day:${day} requests`]).toMatchObject({ ledger: 1, estimated: 1, counters: 1, verdict: 'agrees' });
    expect(byKey['account acct-2 range output_tokens']).toMatchObject({ ledger: 8, estimated: 8, upstream: 8, verdict: 'agrees' });
    expect(report.differences).toBe(0);
  });

  it('let the upstream fall short of the ledger by the estimated rows, never go above it', () => {
    const short = reconcile({ plan, tally: tallyOf(), counters, adjustments, upstream: upstreamOf(3) });
    expect(short.lines.find((line) => line.subject === 'account acct-2' && line.metric === 'output_tokens')).toMatchObject({
      upstream: 3,
      diff: -5,
      verdict: 'within-estimate',
    });
    expect(short.differences).toBe(0);
    const over = reconcile({ plan, tally: tallyOf(), counters, adjustments, upstream: upstreamOf(9) });
    expect(over.lines.find((line) => line.subject === 'account acct-2' && line.metric === 'output_tokens')).toMatchObject({ diff: 1, verdict: 'differs' });
    expect(over.differences).toBe(1);
    // Upstream usage on acct-1 is exact: it has no estimated row.
    const acct1 = new Map(upstreamOf(8));
    acct1.set('acct-1', { requests: 1, input_tokens: 10, output_tokens: 19, cache_read_tokens: 0 });
    expect(reconcile({ plan, tally: tallyOf(), counters, adjustments, upstream: acct1 }).differences).toBe(1);
  });

  it('report a counter that differs, by how much', () => {
    const drifted = new Map(counters);
    drifted.set(`account/acct-1/requests/day:${day}`, 2);
    const report = reconcile({ plan, tally: tallyOf(), counters: drifted, adjustments });
    expect(report.lines.filter((line) => line.verdict === 'differs')).toEqual([
      expect.objectContaining({ subject: 'account acct-1', metric: 'requests', ledger: 1, counters: 2, diff: 1 }),
    ]);
  });

  it('report upstream usage under a key no account holds, and leave an account without a known key unchecked', () => {
    const unclaimed = new Map([['sk-ant-emu-9…', { requests: 2, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0 }]]);
    const upstream = new Map(upstreamOf(8));
    upstream.delete('acct-2');
    const report = reconcile({ plan, tally: tallyOf(), counters, adjustments, upstream, unclaimedUpstream: unclaimed });
    expect(report.lines.filter((line) => line.verdict === 'differs')).toEqual([
      expect.objectContaining({ subject: 'upstream key sk-ant-emu-9…', metric: 'requests', upstream: 2, diff: 2 }),
    ]);
    expect(report.lines.filter((line) => line.subject === 'account acct-2' && line.window === 'range').map((line) => line.verdict)).toEqual([
      'unchecked',
      'unchecked',
      'unchecked',
      'unchecked',
    ]);
  });
});

describe('an interrupted request', () => {
  // A node that died running a request ends it at restart as issue 13 has it: the keys of its
  // eventual limits released, those of its strict and escrow limits charged the estimate. Its row
  // (src/ledger/request-context.ts `interruptedRow`) carries the estimate, account unknown.
  const mixed: AuditSubject = {
    scope: 'tenant',
    id: 'acme',
    limits: [
      { metric: 'requests', window: 'day', sliding: false, mode: 'eventual' },
      { metric: 'requests', window: 'minute', sliding: false, mode: 'strict' },
      { metric: 'output_tokens', window: 'hour', sliding: false, mode: 'escrow' },
      { metric: 'output_tokens', window: 'day', sliding: false, mode: 'eventual' },
    ],
  };
  const planned = planAudit([mixed], { sinceMs: nowMs - 1_000, untilMs: nowMs }, nowMs);
  if (!planned.ok) throw new Error(planned.error);
  const at = nowMs - 500;
  const key = (metric: string, unit: 'day' | 'hour' | 'minute'): string => `tenant/acme/${metric}/${unit}:${windowAt(unit, at).index}`;

  it('is counted on the keys of its strict and escrow limits only, as the counters kept it', () => {
    const tally = new LedgerTally(planned.value);
    tally.add(ledgerRow({ requestId: 'done', chargedAtMs: at, outputTokens: 20 }), 'tenant');
    tally.add(
      ledgerRow({ requestId: 'cut', account: null, chargedAtMs: at, outputTokens: 64, outcome: 'interrupted', status: 'interrupted', estimated: true }),
      'tenant',
    );
    // The counters after the restart: the finished request everywhere, the interrupted one's
    // estimate on the strict and escrow keys only.
    const counters = new Map([
      [key('requests', 'day'), 1],
      [key('requests', 'minute'), 2],
      [key('output_tokens', 'hour'), 84],
      [key('output_tokens', 'day'), 20],
    ]);
    const report = reconcile({ plan: planned.value, tally, counters, adjustments: new Map() });
    expect(report.lines.map((line) => [line.window.split(':')[0], line.metric, line.ledger, line.estimated, line.verdict])).toEqual([
      ['day', 'requests', 1, 0, 'agrees'],
      ['minute', 'requests', 2, 1, 'agrees'],
      ['hour', 'output_tokens', 84, 64, 'agrees'],
      ['day', 'output_tokens', 20, 0, 'agrees'],
    ]);
    expect(report.differences).toBe(0);
  });
});

describe('the upstream beside interrupted calls', () => {
  const day = windowAt('day', nowMs).index;
  const account: AuditSubject = { scope: 'account', id: 'acct-1', limits: [{ metric: 'requests', window: 'day', sliding: false, mode: 'eventual' }] };
  const plan = planAudit([account], { sinceMs: nowMs - minuteMs, untilMs: nowMs }, nowMs);
  if (!plan.ok) throw new Error(plan.error);
  const tallyOf = (interrupted: number): LedgerTally => {
    const tally = new LedgerTally(plan.value, ['acct-1']);
    const done = ledgerRow({ requestId: 'done', account: 'acct-1', chargedAtMs: nowMs - 1_000, inputTokens: 0, outputTokens: 10 });
    tally.add(done, 'tenant');
    tally.add(done, 'account');
    for (let i = 0; i < interrupted; i++) {
      const row = ledgerRow({
        requestId: `cut-${i}`,
        account: null,
        chargedAtMs: nowMs - 500,
        weightedTokens: 0,
        inputTokens: 0,
        outputTokens: 0,
        outcome: 'interrupted',
        estimated: true,
      });
      tally.add(row, 'tenant');
      tally.add(row, 'account');
    }
    return tally;
  };
  const counters = new Map([[`account/acct-1/requests/day:${day}`, 1]]);
  const upstream = (requests: number, output: number): Map<string, UpstreamTotals> =>
    new Map([['acct-1', { requests, input_tokens: 0, output_tokens: output, cache_read_tokens: 0 }]]);
  const rangeLine = (lines: readonly { subject: string; window: string; metric: string }[], metric: string) =>
    lines.find((line) => line.subject === 'account acct-1' && line.window === 'range' && line.metric === metric);

  it('may exceed the ledger by one request per interrupted call (and its tokens), and no more', () => {
    const explained = reconcile({ plan: plan.value, tally: tallyOf(1), counters, adjustments: new Map(), upstream: upstream(2, 30) });
    expect(rangeLine(explained.lines, 'requests')).toMatchObject({ diff: 1, verdict: 'interrupted' });
    expect(rangeLine(explained.lines, 'output_tokens')).toMatchObject({ diff: 20, verdict: 'interrupted' });
    expect(explained.differences).toBe(0);
    expect(reconcile({ plan: plan.value, tally: tallyOf(1), counters, adjustments: new Map(), upstream: upstream(3, 30) }).differences).toBeGreaterThan(0);
    expect(reconcile({ plan: plan.value, tally: tallyOf(0), counters, adjustments: new Map(), upstream: upstream(2, 30) }).differences).toBeGreaterThan(0);
  });
});
