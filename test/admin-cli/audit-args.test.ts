// Proves `carpool audit` reads its command line without surprises.
// Repeated --admin and --node-config, times as for carpool usage with the last hour by default, and
// a message for every mistake (exit code 2), an --admin URL given twice among them.
import { describe, expect, it } from 'vitest';
import { parseAuditArgs } from '../../src/admin-cli/audit-args.js';

function errorOf(argv: string[]): string {
  const parsed = parseAuditArgs(argv);
  if (parsed.ok) throw new Error(`accepted ${argv.join(' ')}`);
  return parsed.error;
}

describe('parseAuditArgs', () => {
  it('reads every node, the emulator and the node configs, in the order given', () => {
    const parsed = parseAuditArgs([
      '--admin',
      'http://127.0.0.1:8401',
      '--admin=http://127.0.0.1:8402/',
      '--token-file',
      '/tmp/t',
      '--since',
      '2h',
      '--until',
      '2027-01-31',
      '--emulator',
      'http://127.0.0.1:17400/',
      '--node-config',
      'a.json',
      '--node-config',
      'b.json',
      '--json',
    ]);
    expect(parsed).toEqual({
      ok: true,
      value: {
        admins: ['http://127.0.0.1:8401', 'http://127.0.0.1:8402'],
        token: undefined,
        tokenFile: '/tmp/t',
        stateFile: '.carpool/local/state.json',
        since: { kind: 'ago', ms: 7_200_000 },
        until: { kind: 'at', ms: Date.UTC(2027, 0, 31) },
        emulator: 'http://127.0.0.1:17400',
        nodeConfigs: ['a.json', 'b.json'],
        json: true,
        help: false,
      },
    });
  });

  it('audits the last hour of the local mesh when told nothing', () => {
    expect(parseAuditArgs([])).toMatchObject({
      ok: true,
      value: { admins: [], since: { kind: 'ago', ms: 3_600_000 }, until: undefined, emulator: undefined, nodeConfigs: [] },
    });
    expect(parseAuditArgs(['--help'])).toMatchObject({ ok: true, value: { help: true } });
  });

  it('says what is wrong', () => {
    expect(errorOf(['now'])).toBe('audit takes options only, not "now"');
    expect(errorOf(['--admin', 'localhost:8401'])).toBe('--admin takes http://host:port, not "localhost:8401"');
    expect(errorOf(['--admin', 'http://a:1', '--admin', 'http://a:1/'])).toContain('given twice');
    expect(errorOf(['--emulator', 'ftp://x'])).toBe('--emulator takes http://host:port');
    expect(errorOf(['--admin', 'http://a:1', '--node-config', 'a.json'])).toContain('goes with --emulator');
    expect(errorOf(['--since', 'last week'])).toContain('--since takes a time ago');
    expect(errorOf(['--token', 't', '--token-file', 'f'])).toBe('give --token or --token-file, not both');
    expect(errorOf(['--since', '1h', '--since', '2h'])).toBe('--since is given twice');
    expect(errorOf(['--colour'])).toBe('unknown option --colour');
  });
});
