// Proves `carpool usage` against a node's admin endpoint over a ledger.
// A query prints the node that answered, the totals, groups and rows (or the JSON); an export
// copies every row to a file, written whole or not at all, or to stdout with progress lines on
// stderr; an export that breaks off halfway exits 1 saying after how many rows and leaves no file;
// a node without a ledger, a parameter the node refuses and a node that cannot be reached each exit
// 1 with a message; the CSV record count is right whatever the chunking and line breaks inside
// quoted fields.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../src/admission/admin-access.js';
import { RecordCounter, runUsage, type UsageIo } from '../../src/admin-cli/run-usage.js';
import { parseUsageArgs } from '../../src/admin-cli/usage-args.js';
import { asNodeId, asRegionId } from '../../src/core/ids.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { UsageFilter } from '../../src/ledger/usage-query.js';
import { type AdminServer, startAdminHttp } from '../../src/net/admin-http.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { csvHeader, csvLine } from '../../src/node/admin/ledger-export.js';
import { AdminRoutes } from '../../src/node/admin-routes.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { freePort } from '../support/cluster.js';
import { ledgerRow, MemoryUsageReader } from '../support/memory-usage-reader.js';

const token = 'run-usage-viewer-token-01';
const node = asNodeId('usage-1');
const region = asRegionId('us-east');
const t0 = 1_767_225_600_000;
const rowCount = 5_000;
const rows = Array.from({ length: rowCount }, (_, i) =>
  ledgerRow({
    requestId: `r${i}`,
    tenant: i % 2 === 0 ? 'acme' : 'globex',
    user: i % 7 === 0 ? 'line\nbreak, "quoted"' : `u${i % 3}`,
    chargedAtMs: t0 + i * 10,
    inputTokens: i,
  }),
);

/** Throws once the export has read `okReads` slices: a store that fails halfway. */
class FailingReader extends MemoryUsageReader {
  constructor(private readonly okReads: number) {
    super(rows);
  }

  override eachRow(filter: UsageFilter, visit: (row: LedgerRow) => void): number {
    if (this.calls.eachRow >= this.okReads) throw new Error('disk I/O error');
    return super.eachRow(filter, visit);
  }
}

let runtime: MeshRuntime;
const servers: Record<string, AdminServer> = {};
let dir: string;

beforeAll(async () => {
  const secret = 'run-usage-test-secret';
  runtime = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      members: [{ id: node, region, url: 'ws://127.0.0.1:1' }],
      secret: { kind: 'inline', value: secret },
      tls: undefined,
    },
    secret: new TextEncoder().encode(secret),
  });
  const tokens = new AdminTokens(nodeAuthCrypto, [{ name: 'grafana', role: 'viewer', token }]);
  const start = async (usage: MemoryUsageReader | undefined): Promise<AdminServer> =>
    startAdminHttp({ host: '127.0.0.1', port: 0, handler: new AdminRoutes(runtime, new AdminService({ runtime, crypto: nodeAuthCrypto, usage })), tokens });
  servers.ledger = await start(new MemoryUsageReader(rows));
  servers.failing = await start(new FailingReader(1));
  servers.none = await start(undefined);
  dir = mkdtempSync(join(tmpdir(), 'carpool-usage-cli-'));
}, 20_000);

afterAll(async () => {
  for (const server of Object.values(servers)) await server.close();
  await runtime?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly out: string[];
  readonly err: string[];
  readonly stdout: string;
}

async function usage(argv: readonly string[], server = 'ledger', io: Partial<UsageIo> = {}): Promise<Run> {
  const url = server === 'unreachable' ? `http://127.0.0.1:${await freePort()}` : `http://127.0.0.1:${servers[server]?.port}`;
  const parsed = parseUsageArgs([...argv, '--url', url, '--token', token]);
  if (!parsed.ok) throw new Error(parsed.error);
  const out: string[] = [];
  const err: string[] = [];
  const chunks: Buffer[] = [];
  const stdout = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      // A slow terminal: the export must wait for it.
      setImmediate(done);
    },
  });
  const code = await runUsage(parsed.value, { out: (line) => out.push(line), err: (line) => err.push(line), stdout, env: {}, nowMs: () => Date.now(), ...io });
  return { code, out, err, stdout: Buffer.concat(chunks).toString('utf8') };
}

describe('carpool usage query', () => {
  it('prints the node that answered, the totals and the groups', async () => {
    const run = await usage(['query', '--tenant', 'acme', '--group-by', 'user', '--rows', '2', '--since', String(t0)]);
    expect(run.code).toBe(0);
    expect(run.out[0]).toBe(
      `the tenant side of node usage-1's ledger, from ${new Date(t0).toISOString().replace('T', ' ').replace('.000Z', 'Z')} (other nodes keep their own rows):`,
    );
    expect(run.out[2]).toMatch(/^ {2}2500 {2}/);
    expect(run.out.join('\n')).toContain('groups:');
    expect(run.out.join('\n')).toContain('rows, newest first:');
    expect(run.out.join('\n')).toContain('r4998');
  });

  it('prints the JSON with --json', async () => {
    const run = await usage(['query', '--json', '--side', 'account']);
    expect(JSON.parse(run.out.join('\n'))).toMatchObject({ node: 'usage-1', side: 'account', totals: { requests: rowCount } });
  });

  it('exits 1 naming the parameter the node refused, and for a node without a ledger or out of reach', async () => {
    const refused = await usage(['query', '--group-by', 'colour']);
    expect([refused.code, refused.err[0]]).toEqual([1, expect.stringContaining('HTTP 400: groupBy: "colour" is none of')]);
    const none = await usage(['query'], 'none');
    expect([none.code, none.err[0]]).toEqual([1, expect.stringContaining('HTTP 404: this node keeps no usage ledger (no dataDir)')]);
    const gone = await usage(['query'], 'unreachable');
    expect([gone.code, gone.err[0]]).toEqual([1, expect.stringContaining('cannot reach')]);
  });
});

describe('carpool usage export', () => {
  it('writes every row of the range to a file, whole, and says how many from which node', async () => {
    const out = join(dir, 'acme.csv');
    const run = await usage(['export', '--since', String(t0), '--format', 'csv', '--tenant', 'acme', '--out', out]);
    expect(run.code).toBe(0);
    const expected =
      csvHeader() +
      rows
        .filter((row) => row.tenant === 'acme')
        .map(csvLine)
        .join('');
    expect(readFileSync(out, 'utf8')).toBe(expected);
    expect(run.err.at(-1)).toMatch(new RegExp(`^carpool usage: exported 2500 rows \\(\\d+\\.\\d MB\\) from usage-1 to ${out}$`));
    expect(readdirSync(dir).filter((name) => name.endsWith('.part'))).toEqual([]);
    rmSync(out);
  });

  it('streams JSON lines to stdout at the pace stdout takes them, with progress on stderr', async () => {
    const run = await usage(['export', '--since', String(t0), '--until', String(t0 + 10 * 1_000), '--format', 'jsonl'], 'ledger', { progressEveryMs: 0 });
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as LedgerRow);
    expect(lines.map((row) => row.requestId)).toEqual(rows.slice(0, 1_000).map((row) => row.requestId));
    expect(run.err.filter((line) => / rows \(.*\) from usage-1 so far/.test(line)).length).toBeGreaterThan(0);
    expect(run.err.at(-1)).toMatch(/^carpool usage: exported 1000 rows/);
  });

  it('exits 1 when the export breaks off halfway, saying after how many rows, and leaves no file', async () => {
    const out = join(dir, 'broken.csv');
    const run = await usage(['export', '--since', String(t0), '--format', 'csv', '--out', out], 'failing');
    expect(run.code).toBe(1);
    expect(run.err.at(-1)).toMatch(/^carpool usage: the export from usage-1 broke off after \d+ rows: .*; nothing was written$/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.part`)).toBe(false);
  });

  it('exits 1 for a node without a ledger', async () => {
    const run = await usage(['export', '--since', '1h', '--format', 'csv'], 'none');
    expect([run.code, run.err[0]]).toEqual([1, expect.stringContaining('this node keeps no usage ledger (no dataDir)')]);
  });
});

describe('the record count', () => {
  it('counts CSV records whatever the chunking, line breaks inside quoted fields included, and JSON lines', () => {
    const csv = Buffer.from(csvHeader() + rows.slice(0, 50).map(csvLine).join(''));
    for (const size of [1, 7, 64, csv.length]) {
      const counter = new RecordCounter('csv');
      for (let at = 0; at < csv.length; at += size) counter.add(csv.subarray(at, at + size));
      expect([size, counter.rows, counter.bytes]).toEqual([size, 50, csv.length]);
    }
    const jsonl = new RecordCounter('jsonl');
    jsonl.add(Buffer.from('{"a":"x\\ny"}\n{"a":2}\n'));
    expect(jsonl.rows).toBe(2);
  });
});
