// Proves `carpool usage` reads its command line without surprises.
// Query and export with their filters; times as a duration ago, a date, a date and time with its
// offset or epoch ms; the node options of `carpool admin`; and a message for every mistake (exit
// code 2), including an option the command does not take.
import { describe, expect, it } from 'vitest';
import { filterParams, parseTimeArg, parseUsageArgs } from '../../src/admin-cli/usage-args.js';

function errorOf(argv: string[]): string {
  const parsed = parseUsageArgs(argv);
  if (parsed.ok) throw new Error(`accepted ${argv.join(' ')}`);
  return parsed.error;
}

describe('parseUsageArgs', () => {
  it('reads an export with its filters and the node options', () => {
    const parsed = parseUsageArgs([
      'export',
      '--since',
      '12h',
      '--until',
      '2027-01-31T12:00:00Z',
      '--tenant',
      'acme',
      '--side',
      'account',
      '--format',
      'csv',
      '--out',
      '/tmp/u.csv',
      '--region',
      'eu-west',
    ]);
    expect(parsed).toEqual({
      ok: true,
      value: {
        url: undefined,
        region: 'eu-west',
        token: undefined,
        tokenFile: undefined,
        stateFile: '.carpool/local/state.json',
        help: false,
        command: {
          kind: 'export',
          filter: {
            side: 'account',
            tenant: 'acme',
            user: undefined,
            apiKey: undefined,
            model: undefined,
            account: undefined,
            since: { kind: 'ago', ms: 12 * 3_600_000 },
            until: { kind: 'at', ms: Date.UTC(2027, 0, 31, 12) },
          },
          format: 'csv',
          out: '/tmp/u.csv',
        },
      },
    });
  });

  it('reads a query with groups, rows and --json', () => {
    const parsed = parseUsageArgs([
      'query',
      '--url',
      'http://127.0.0.1:8401',
      '--token-file',
      '/tmp/t',
      '--group-by',
      'model,window:day',
      '--rows',
      '10',
      '--json',
      '--api-key',
      'acme:0badf00d',
      '--since',
      '1767225600000',
    ]);
    expect(parsed).toMatchObject({
      ok: true,
      value: {
        url: 'http://127.0.0.1:8401',
        tokenFile: '/tmp/t',
        command: {
          kind: 'query',
          groupBy: 'model,window:day',
          rows: 10,
          json: true,
          filter: { apiKey: 'acme:0badf00d', since: { kind: 'at', ms: 1_767_225_600_000 } },
        },
      },
    });
    expect(parseUsageArgs(['--help'])).toMatchObject({ ok: true, value: { help: true, command: undefined } });
  });

  it('says what is wrong', () => {
    expect(errorOf([])).toBe('give a command: query or export');
    expect(errorOf(['list'])).toContain('unknown command "list"');
    expect(errorOf(['export', '--format', 'csv'])).toContain('needs --since');
    expect(errorOf(['export', '--since', '1h'])).toContain('--format csv or --format jsonl');
    expect(errorOf(['export', '--since', '1h', '--format', 'xlsx'])).toContain('--format csv or --format jsonl');
    expect(errorOf(['export', '--since', 'yesterday', '--format', 'csv'])).toContain('--since takes a time ago');
    expect(errorOf(['export', '--since', '2027-01-31T12:00', '--format', 'csv'])).toContain('--since takes');
    expect(errorOf(['export', '--since', '1h', '--format', 'csv', '--rows', '5'])).toBe('usage export takes no --rows');
    expect(errorOf(['query', '--out', 'f'])).toBe('usage query takes no --out');
    expect(errorOf(['query', '--rows', '10001'])).toBe('--rows takes a number from 0 to 10000');
    expect(errorOf(['query', '--side', 'both'])).toBe('--side takes tenant or account');
    expect(errorOf(['query', 'acme'])).toContain('takes options only');
    expect(errorOf(['query', '--url', 'http://a:1', '--region', 'x'])).toBe('give --url or --region, not both');
    expect(errorOf(['query', '--token', 't', '--token-file', 'f'])).toBe('give --token or --token-file, not both');
    expect(errorOf(['query', '--colour', 'red'])).toBe('unknown option --colour');
  });
});

describe('times and the query string', () => {
  it('resolve a time ago when the command runs, and send every filter by its parameter name', () => {
    expect(parseTimeArg('90s', 'since')).toEqual({ ok: true, value: { kind: 'ago', ms: 90_000 } });
    const params = filterParams(
      {
        side: 'tenant',
        tenant: 'acme',
        user: 'u1',
        apiKey: 'acme:0badf00d',
        model: 'm',
        account: 'a',
        since: { kind: 'ago', ms: 1_000 },
        until: { kind: 'at', ms: 50_000 },
      },
      10_000,
    );
    expect(Object.fromEntries(params)).toEqual({
      side: 'tenant',
      tenant: 'acme',
      user: 'u1',
      apiKey: 'acme:0badf00d',
      model: 'm',
      account: 'a',
      since: '9000',
      until: '50000',
    });
  });
});
