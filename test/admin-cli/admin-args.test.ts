// Proves `carpool admin` reads its command line without surprises.
// Each command with its arguments and options, durations and dates for expiries, and a message for
// every mistake (which the CLI answers with exit code 2), including an option a command does not
// take.
import { describe, expect, it } from 'vitest';
import { parseAdminArgs, parseDurationMs, parseWhen } from '../../src/admin-cli/admin-args.js';

function commandOf(argv: string[]): unknown {
  const parsed = parseAdminArgs(argv);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value.command;
}

function errorOf(argv: string[]): string {
  const parsed = parseAdminArgs(argv);
  if (parsed.ok) throw new Error(`accepted ${argv.join(' ')}`);
  return parsed.error;
}

describe('parseAdminArgs', () => {
  it('reads every command', () => {
    expect(commandOf(['status'])).toEqual({ kind: 'status' });
    expect(commandOf(['tenants', 'list'])).toEqual({ kind: 'tenants-list' });
    expect(commandOf(['tenants', 'get', 'acme'])).toEqual({ kind: 'tenants-get', id: 'acme' });
    expect(commandOf(['tenants', 'put', 'acme', '--file', 't.json'])).toEqual({ kind: 'tenants-put', id: 'acme', json: undefined, file: 't.json' });
    expect(commandOf(['tenants', 'put', 'acme', '{"tier":"paid"}'])).toEqual({ kind: 'tenants-put', id: 'acme', json: '{"tier":"paid"}', file: undefined });
    expect(commandOf(['accounts', 'enable', 'acct-1', '--reason', 'key replaced'])).toEqual({ kind: 'accounts-enable', id: 'acct-1' });
    expect(commandOf(['keys', 'create', 'acme', '--name', 'ci bot', '--expires', '30d'])).toEqual({
      kind: 'keys-create',
      tenant: 'acme',
      name: 'ci bot',
      expires: { kind: 'in', ms: 30 * 86_400_000 },
    });
    expect(commandOf(['keys', 'rotate', 'acme:0badf00d', '--grace', '1h'])).toEqual({
      kind: 'keys-rotate',
      keyId: 'acme:0badf00d',
      graceMs: 3_600_000,
      name: undefined,
      expires: undefined,
    });
    expect(commandOf(['usage', 'acme', '--quorum', '--user', 'u1'])).toEqual({ kind: 'usage', tenant: 'acme', user: 'u1', quorum: true });
    expect(
      commandOf([
        'adjust',
        'credit',
        '--scope',
        'tenant',
        '--subject',
        'acme',
        '--metric',
        'requests',
        '--window',
        'day',
        '--amount',
        '5',
        '--reason',
        'refund',
      ]),
    ).toEqual({
      kind: 'adjust',
      body: { scope: 'tenant', subject: 'acme', metric: 'requests', window: 'day', kind: 'credit', amount: 5 },
    });
    expect(commandOf(['audit', '--limit', '20'])).toEqual({ kind: 'audit', limit: 20 });
    expect(commandOf(['pool', '--json'])).toEqual({ kind: 'pool' });
  });

  it('reads the global options, in any place', () => {
    const parsed = parseAdminArgs(['--url', 'http://127.0.0.1:8401', 'keys', 'list', 'acme', '--token-file', '/tmp/t', '--json']);
    expect(parsed).toMatchObject({
      ok: true,
      value: { url: 'http://127.0.0.1:8401', tokenFile: '/tmp/t', json: true, command: { kind: 'keys-list', tenant: 'acme' } },
    });
    expect(parseAdminArgs(['--help'])).toMatchObject({ ok: true, value: { help: true, command: undefined } });
  });

  it.each([
    [[], /give a command/],
    [['frob'], /unknown command "frob"/],
    [['tenants'], /tenants takes one of list, get, put, remove/],
    [['tenants', 'enable', 'acme'], /tenants takes one of/],
    [['tenants', 'get'], /takes ID/],
    [['tenants', 'put', 'acme'], /either --file FILE or the JSON/],
    [['tenants', 'put', 'acme', '{}', '--file', 'x'], /either --file FILE or the JSON/],
    [['keys', 'create', 'acme'], /needs --name/],
    [['keys', 'create', 'acme', '--name', 'ci', '--expires', 'soon'], /--expires takes a duration/],
    [['keys', 'rotate', 'acme:0badf00d', '--grace', 'forever'], /--grace takes a duration/],
    [['adjust', 'refund', '--reason', 'x'], /charge or credit/],
    [['adjust', 'credit', '--scope', 'tenant', '--subject', 'acme', '--metric', 'requests', '--window', 'day', '--amount', '5'], /needs --reason/],
    [['adjust', 'credit', '--scope', 'tenant', '--reason', 'x'], /needs --subject, --metric, --window, --amount/],
    [
      ['adjust', 'credit', '--scope', 'tenant', '--subject', 'a', '--metric', 'm', '--window', 'day', '--amount', '-5', '--reason', 'x'],
      /--amount takes a whole number/,
    ],
    [['audit', '--limit', '0'], /--limit takes a number from 1 to 1000/],
    [['status', '--name', 'x'], /takes no --name/],
    [['keys', 'list', 'acme', '--quorum'], /takes no --quorum/],
    [['status', '--bogus'], /unknown option --bogus/],
    [['status', '--url'], /--url needs a value/],
    [['status', '--url', 'ftp://x'], /--url takes http/],
    [['status', '--token', 'a', '--token-file', 'b'], /not both/],
    [['status', '--url', 'http://x:1', '--region', 'r'], /not both/],
    [['status', '--json=yes'], /takes no value/],
    [['status', '--reason', 'a', '--reason', 'b'], /given twice/],
  ])('refuses %j', (argv, message) => {
    expect(errorOf(argv)).toMatch(message);
  });
});

describe('durations and dates', () => {
  it('reads durations in ms, s, m, h and d', () => {
    expect([parseDurationMs('500ms'), parseDurationMs('90s'), parseDurationMs('15m'), parseDurationMs('12h'), parseDurationMs('7d')]).toEqual([
      500, 90_000, 900_000, 43_200_000, 604_800_000,
    ]);
    expect(parseDurationMs('1.5h')).toBeNull();
    expect(parseDurationMs('-1h')).toBeNull();
  });

  it('reads an expiry as a duration from now or as a date', () => {
    expect(parseWhen('2h')).toEqual({ ok: true, value: { kind: 'in', ms: 7_200_000 } });
    expect(parseWhen('2027-01-31')).toEqual({ ok: true, value: { kind: 'at', ms: Date.UTC(2027, 0, 31) } });
    expect(parseWhen('2027-01-31T12:00:00Z')).toEqual({ ok: true, value: { kind: 'at', ms: Date.UTC(2027, 0, 31, 12) } });
    expect(parseWhen('tomorrow').ok).toBe(false);
    expect(parseWhen('2027-13-45').ok).toBe(false);
  });
});
