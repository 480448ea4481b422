// Proves the checks of a usage question (GET /usage/ledger, /usage/export, QueryUsage).
// Every parameter is validated and a problem names it; times take epoch ms, a date or a date and
// time with its offset and nothing else; groupBy takes the known fields (window units included)
// without repeats and within its bound; rows stays within usageQueryRowsMax; an export needs since
// and a format, and ends now when until is left out.
import { describe, expect, it } from 'vitest';
import { usageQueryGroupFieldsMax, usageQueryRowsMax } from '../../../src/core/limits.js';
import { parseTime, parseUsageExport, parseUsageQuery, usageParamsOf } from '../../../src/node/admin/usage-query-params.js';

const query = (text: string): ReturnType<typeof parseUsageQuery> => {
  const params = usageParamsOf(new URLSearchParams(text), 'query');
  return params.ok ? parseUsageQuery(params.value) : params;
};

const fieldOf = (result: { ok: boolean; error?: { field: string } }): string | undefined => (result.ok ? undefined : result.error?.field);

describe('a usage query', () => {
  it('reads every parameter into the filter, the groups and the row count', () => {
    const parsed = query(
      'side=account&tenant=acme&user=u-1&apiKey=acme:0badf00d&model=claude-sonnet-4-6&account=acct-1&since=2027-01-31&until=2027-02-01T00:00:00Z&groupBy=model,window:day&rows=5',
    );
    expect(parsed).toEqual({
      ok: true,
      value: {
        filter: {
          side: 'account',
          tenant: 'acme',
          user: 'u-1',
          apiKeyId: 'acme:0badf00d',
          model: 'claude-sonnet-4-6',
          account: 'acct-1',
          sinceMs: Date.UTC(2027, 0, 31),
          untilMs: Date.UTC(2027, 1, 1),
        },
        groupBy: ['model', 'window:day'],
        rowsLimit: 5,
      },
    });
  });

  it('asks the tenant side for totals only when nothing is given', () => {
    expect(query('')).toEqual({ ok: true, value: { filter: { side: 'tenant' }, rowsLimit: 0 } });
  });

  it('names the parameter at fault', () => {
    const cases: [string, string][] = [
      ['side=both', 'side'],
      ['tenant=has%20space', 'tenant'],
      [`user=${'u'.repeat(65)}`, 'user'],
      ['apiKey=cp_acme_0123456789abcdef0123456789abcdef', 'apiKey'],
      ['since=yesterday', 'since'],
      ['until=2027-01-31T12:00:00', 'until'],
      ['since=2027-02-01&until=2027-01-31', 'until'],
      ['since=5&until=5', 'until'],
      ['groupBy=model,fortnight', 'groupBy'],
      ['groupBy=window:fortnight', 'groupBy'],
      ['groupBy=model,model', 'groupBy'],
      ['groupBy=', 'none'],
      [
        `groupBy=${['tenant', 'user', 'apiKeyId', 'model', 'account', 'day', 'hour', 'window:day', 'window:minute'].slice(0, usageQueryGroupFieldsMax + 1).join(',')}`,
        'groupBy',
      ],
      [`rows=${usageQueryRowsMax + 1}`, 'rows'],
      ['rows=-1', 'rows'],
      ['rows=1.5', 'rows'],
      ['format=csv', 'format'],
      ['tenant=a&tenant=b', 'tenant'],
      ['colour=blue', 'colour'],
    ];
    for (const [text, field] of cases) expect([text, fieldOf(query(text)) ?? 'none']).toEqual([text, field]);
  });

  it('takes rows up to the bound', () => {
    expect(query(`rows=${usageQueryRowsMax}`)).toMatchObject({ ok: true, value: { rowsLimit: usageQueryRowsMax } });
  });
});

describe('times', () => {
  it('take epoch milliseconds, a date at midnight UTC, or a date and time with its offset', () => {
    expect(parseTime('1767225600000', 'since')).toEqual({ ok: true, value: 1_767_225_600_000 });
    expect(parseTime(1_767_225_600_000, 'since')).toEqual({ ok: true, value: 1_767_225_600_000 });
    expect(parseTime('2026-01-01', 'since')).toEqual({ ok: true, value: Date.UTC(2026, 0, 1) });
    expect(parseTime('2026-01-01T12:30Z', 'since')).toEqual({ ok: true, value: Date.UTC(2026, 0, 1, 12, 30) });
    expect(parseTime('2026-01-01T12:30:15.250+02:00', 'since')).toEqual({ ok: true, value: Date.UTC(2026, 0, 1, 10, 30, 15, 250) });
  });

  it('refuse what is not a time, a date that does not exist, and a time without an offset', () => {
    for (const text of [
      '',
      'now',
      '-5',
      '1e12',
      '2026-1-1',
      '2026-02-30',
      '2026-13-01',
      '2026-01-01T24:00Z',
      '2026-01-01T12:60Z',
      '2026-01-01T12:00',
      '2026-01-01 12:00Z',
      '99999999999999999',
    ]) {
      expect([text, parseTime(text, 'until').ok]).toEqual([text, false]);
    }
    expect(parseTime(-1, 'until').ok).toBe(false);
    expect(parseTime(1.5, 'until').ok).toBe(false);
    expect(parseTime('nope', 'since_ms')).toMatchObject({ ok: false, error: { field: 'since_ms' } });
  });
});

describe('an export', () => {
  const nowMs = 1_800_000_000_000;
  const exportOf = (text: string): ReturnType<typeof parseUsageExport> => {
    const params = usageParamsOf(new URLSearchParams(text), 'export');
    return params.ok ? parseUsageExport(params.value, nowMs) : params;
  };

  it('needs since and a format, and ends now unless told', () => {
    expect(exportOf('since=1000&format=csv')).toEqual({ ok: true, value: { filter: { side: 'tenant', sinceMs: 1_000, untilMs: nowMs }, format: 'csv' } });
    expect(exportOf('since=1000&until=2000&format=jsonl&side=account&tenant=acme')).toEqual({
      ok: true,
      value: { filter: { side: 'account', tenant: 'acme', sinceMs: 1_000, untilMs: 2_000 }, format: 'jsonl' },
    });
    expect(fieldOf(exportOf('format=csv'))).toBe('since');
    expect(fieldOf(exportOf('since=1000'))).toBe('format');
    expect(fieldOf(exportOf('since=1000&format=xlsx'))).toBe('format');
    expect(fieldOf(exportOf(`since=${nowMs + 1}&format=csv`))).toBe('until');
    // A listing's parameters are not an export's.
    expect(fieldOf(exportOf('since=1000&format=csv&rows=5'))).toBe('rows');
    expect(fieldOf(exportOf('since=1000&format=csv&groupBy=model'))).toBe('groupBy');
  });
});
