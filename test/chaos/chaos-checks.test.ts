// Proves the crash tests' checker can fail: each rule it enforces over the clients' records and
// the ledger rows (a completed request without its one row, an id with two rows, a row from
// nowhere, a refused request with a row, tokens that differ, a strict limit exceeded) is reported
// on rows made to break it, a clean run is not, and the audit's differences are explained only
// within what the interrupted calls bound (and the calls a dying node cut, for the known
// forwarding issue).
import { describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import { ledgerRow } from '../support/memory-usage-reader.js';
import type { BindingLimit } from './chaos-config.js';
import { type AuditJsonLine, checkLedger, explainAudit } from './chaos-checks.js';
import { sentRequest, type SentRequest } from './chaos-load.js';

const at = Date.UTC(2027, 0, 4, 12, 0, 30);
const limits: BindingLimit[] = [{ tenant: 'strict-co', mode: 'strict', metric: 'requests', window: 'minute', limit: 2 }];

function completed(id: string, tenant: SentRequest['tenant'] = 'riders'): SentRequest {
  return {
    ...sentRequest(id, tenant, 'us-east', 32, `content of ${id}`),
    outcome: 'completed',
    codes: ['OK'],
    usage: { inputTokens: 10, outputTokens: 20, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 },
  };
}

function rowOf(id: string, fields: Partial<LedgerRow> = {}): LedgerRow {
  return ledgerRow({ requestId: id, tenant: 'riders', chargedAtMs: at, inputTokens: 10, outputTokens: 20, ...fields });
}

describe('the ledger checks', () => {
  const sent = [completed('a'), completed('b'), { ...completed('c'), outcome: 'failed' as const, codes: ['UNAVAILABLE'], usage: undefined }];
  // b is forwarded: an origin row and a home row; c was interrupted by a node's death.
  const clean = [
    rowOf('a'),
    rowOf('b', { role: 'origin', account: 'acct-2' }),
    rowOf('b', { role: 'home', account: 'acct-2', node: 'eu-west-1' }),
    rowOf('c', { outcome: 'interrupted', account: null, estimated: true }),
  ];

  it('pass a clean run, and count its figures', () => {
    const verdict = checkLedger(sent, clean, limits);
    expect(verdict.problems).toEqual([]);
    expect(verdict.figures).toMatchObject({ completed: 2, tenantRows: 3, accountRows: 2, interrupted: 1, forwarded: 1 });
  });

  it('report a completed request without its row, or with tokens other than its client was told', () => {
    expect(checkLedger(sent, clean.slice(1), limits).problems).toEqual([
      expect.stringMatching(/request a .* completed at its client but has 0 tenant-side rows/),
    ]);
    const changed = [rowOf('a', { outputTokens: 21 }), ...clean.slice(1)];
    expect(checkLedger(sent, changed, limits).problems).toEqual([expect.stringMatching(/request a .* was told .* but its row holds/)]);
  });

  it('report an id with two rows on a side, and a row no client sent', () => {
    const twice = [...clean, rowOf('c', { node: 'eu-west-1' })];
    expect(checkLedger(sent, twice, limits).problems).toEqual([expect.stringMatching(/request c has 2 tenant-side rows/)]);
    const stray = [...clean, rowOf('z')];
    expect(checkLedger(sent, stray, limits).problems).toEqual([expect.stringMatching(/request z has rows but no client sent it/)]);
  });

  it('report a request refused at admission that has a row anyway', () => {
    const refused: SentRequest = { ...completed('r'), outcome: 'refused', codes: ['RESOURCE_EXHAUSTED'], usage: undefined };
    expect(checkLedger([...sent, refused], [...clean, rowOf('r')], limits).problems).toEqual([
      expect.stringMatching(/request r .* was refused at admission but has a row/),
    ]);
  });

  it('report a strict limit exceeded in one window, not across two', () => {
    const strict = ['s1', 's2', 's3'].map((id) => completed(id, 'strict-co'));
    const inOneMinute = strict.map((request) => rowOf(request.id, { tenant: 'strict-co' }));
    expect(checkLedger(strict, inOneMinute, limits).problems).toEqual([
      expect.stringMatching(/strict-co's strict limit of 2 requests per minute admitted 3 in minute:/),
    ]);
    const acrossTwo = inOneMinute.map((row, i) => ({ ...row, chargedAtMs: i === 2 ? at + 60_000 : at }));
    expect(checkLedger(strict, acrossTwo, limits).problems).toEqual([]);
  });
});

describe('the audit explanation', () => {
  const line = (fields: Partial<AuditJsonLine>): AuditJsonLine => ({
    subject: 'account acct-1',
    window: 'range',
    metric: 'requests',
    ledger: 10,
    estimated: 0,
    upstream: 11,
    diff: 1,
    verdict: 'differs',
    ...fields,
  });
  // c reached the upstream and its node died: a tenant row, no account row.
  const sent = [completed('a'), { ...completed('c'), outcome: 'failed' as const, usage: undefined }];
  const rows = [rowOf('a'), rowOf('c', { outcome: 'interrupted', account: null, estimated: true })];
  const c = sent[1] as SentRequest;

  it("accepts the upstream above the accounts' rows within the interrupted calls", () => {
    const explained = explainAudit(
      [
        line({}),
        line({ metric: 'output_tokens', diff: c.maxTokens }),
        line({ metric: 'input_tokens', diff: c.inputTokens }),
        line({ verdict: 'agrees', diff: 0 }),
      ],
      sent,
      rows,
      0,
    );
    expect(explained.problems).toEqual([]);
    expect(explained.note).toMatch(/^3 line\(s\) differ or read interrupted: the upstream counted 1 call\(s\)/);
  });

  it('checks the lines the audit itself reads as interrupted with the same bound', () => {
    expect(explainAudit([line({ verdict: 'interrupted' })], sent, rows, 0).problems).toEqual([]);
    expect(explainAudit([line({ verdict: 'interrupted', metric: 'output_tokens', diff: c.maxTokens + 1 })], sent, rows, 0).problems).toEqual([
      expect.stringMatching(/output_tokens above the accounts' rows, more than/),
    ]);
  });

  it('accepts calls beyond them only up to the calls a dying node cut (the known forwarding issue), and says so', () => {
    expect(explainAudit([line({ diff: 2 })], sent, rows, 0).problems).toEqual([
      expect.stringMatching(/counted 2 requests above the accounts' rows, more than the 1 .* and the 0 of the 0 call\(s\) cut/),
    ]);
    const retried = explainAudit([line({ diff: 2 })], sent, rows, 1);
    expect(retried.problems).toEqual([]);
    expect(retried.note).toMatch(/1 call\(s\) beyond them, of the 1 the upstream saw cut by a dying node/);
  });

  it('reports the upstream below the ledger, and any counter difference', () => {
    expect(explainAudit([line({ diff: -1 })], sent, rows, 5).problems).toEqual([expect.stringMatching(/no crash explains it/)]);
    expect(explainAudit([line({ subject: 'tenant riders', window: 'day:1', counters: 9, diff: -1 })], sent, rows, 5).problems).toEqual([
      expect.stringMatching(/tenant riders day:1 requests: .* no crash explains it/),
    ]);
  });
});
