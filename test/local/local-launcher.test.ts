// Proves `carpool local` (npm start) behaves like a real deployment when its processes die, and
// keeps its keys across starts: a region node killed with SIGKILL is restarted while the other
// regions keep serving, rejoins the mesh, takes the policy from its peers and serves again, with
// the tenant charged what the upstream counted; the emulator killed comes back with the same keys;
// a node killed with calls in flight is restarted and releases what they had reserved;
// Ctrl-C during a restart's backoff stops every process; a second start on the same state
// directory accepts the first start's API key (a tenant removed from the config loses its key, a
// new one gets one), and `--fresh` refuses it. The launcher runs as its own process, as a user
// starts it, on free ports with a temporary state directory.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { carpoolCommand, packageRoot } from '../../src/local/local-child.js';
import { type LocalConfig, parseLocalConfig } from '../../src/local/local-config.js';
import { withFreePorts } from '../../src/local/local-ports.js';
import { type LocalState, parseLocalState } from '../../src/local/local-state.js';
import { CarpoolClient, type ClientError } from '../../src/net/grpc/carpool-client.js';
import type { CompleteResponse } from '../../src/net/grpc/carpool-handler.js';
import { sleep } from '../support/wait.js';

const regionNames = ['us-east', 'eu-west', 'ap-south'] as const;
type Region = (typeof regionNames)[number];
const utf8 = new TextEncoder();
/** Longest wait for a launcher to print that the mesh is up. */
const launcherUpTimeoutMs = 45_000;
/** Longest wait for a killed child to be back and serving. */
const restartTimeoutMs = 30_000;

const dir = mkdtempSync(join(tmpdir(), 'carpool-launcher-'));
const stateDir = join(dir, 'state');
const stateFile = join(stateDir, 'state.json');

function rawConfig(tenants: readonly string[]): unknown {
  const limits = ['requests', 'input_tokens', 'output_tokens'].map((metric) => ({ metric, window: 'day', limit: 100_000_000, mode: 'eventual' }));
  return {
    regions: regionNames.map((name, i) => ({ name, basePort: 1000 + 10 * i })),
    // Each region has an account of its own, so each serves from home and none forwards.
    emulator: { port: 999, ttftMs: 0, tokensPerSecond: 0, accounts: regionNames.map((homeRegion, i) => ({ id: `acct-${i}`, homeRegion })) },
    tenants: tenants.map((id) => ({ id, tier: 'paid', limits })),
  };
}

let ports: LocalConfig | undefined;

/** The config file of a start: the same free ports every time, these tenants. */
async function writeConfig(name: string, tenants: readonly string[]): Promise<string> {
  const parsed = parseLocalConfig(rawConfig(tenants));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  ports ??= await withFreePorts(parsed.value);
  const raw = rawConfig(tenants) as { regions: unknown[]; emulator: Record<string, unknown> };
  raw.regions = ports.regions.map(({ name: region, meshPort, adminPort, grpcPort, httpPort }) => ({ name: region, meshPort, adminPort, grpcPort, httpPort }));
  raw.emulator.port = ports.emulator.port;
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(raw));
  return path;
}

/** One `carpool local` process: its output lines, waits on them, its exit. */
class Launcher {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly process: ChildProcess;
  private partial = '';

  constructor(args: readonly string[]) {
    const { command, args: prefix } = carpoolCommand();
    this.process = spawn(command, [...prefix, 'local', ...args], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (chunk: Buffer): void => {
      const parts = (this.partial + chunk.toString('utf8')).split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
    };
    this.process.stdout?.on('data', onData);
    this.process.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => this.process.once('close', (code) => resolve(code)));
  }

  get pid(): number {
    return this.process.pid as number;
  }

  /** The first line matching, waiting up to `timeoutMs`; fails with the output so far. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((candidate) => pattern.test(candidate));
      if (line !== undefined) return line;
      if (Date.now() > deadline || this.process.exitCode !== null)
        throw new Error(`no line ${pattern} from the launcher; it printed:\n${this.lines.join('\n')}`);
      await sleep(20);
    }
  }

  /** Ctrl-C, and its exit code (bounded). */
  async interrupt(): Promise<number | null> {
    this.process.kill('SIGINT');
    return Promise.race([this.exited, sleep(20_000).then(() => -1)]);
  }
}

const launchers: Launcher[] = [];

async function launch(configFile: string, ...extra: string[]): Promise<Launcher> {
  const launcher = new Launcher(['--config', configFile, '--state-dir', stateDir, '--status-every', '0', ...extra]);
  launchers.push(launcher);
  await launcher.waitFor(/^local mesh up in/, launcherUpTimeoutMs);
  return launcher;
}

function readState(): LocalState {
  const state = parseLocalState(JSON.parse(readFileSync(stateFile, 'utf8')));
  if (state === undefined) throw new Error('unreadable state file');
  return state;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line names the test's directory: nodes read their config from it. */
function processesUsing(path: string): string[] {
  const listing = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return listing.split('\n').filter((line) => line.includes(path) && !line.includes('ps -eo'));
}

/** One client per region and key; every start uses the same ports, so a client outlives a launcher. */
const clients = new Map<string, CarpoolClient>();
function clientOf(region: Region, apiKey: string): CarpoolClient {
  const name = `${region} ${apiKey}`;
  let made = clients.get(name);
  if (made === undefined) {
    const endpoint = readState().regions.find((r) => r.region === region);
    if (endpoint === undefined) throw new Error(`no region ${region}`);
    made = new CarpoolClient({ target: endpoint.grpc, apiKey });
    clients.set(name, made);
  }
  return made;
}

let nextId = 0;
function complete(client: CarpoolClient): Promise<Result<CompleteResponse, ClientError>> {
  const body = { model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: `Share a ride, call ${++nextId}?` }] };
  return client.complete(
    { requestId: `launcher-${process.pid}-${nextId}`, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' },
    { deadlineMs: Date.now() + 10_000 },
  );
}

function codeOf(result: Result<unknown, ClientError>): string {
  if (result.ok) return 'OK';
  return result.error.kind === 'status' ? result.error.codeName : 'MALFORMED';
}

/** Retries at `region` until a call succeeds (a node just back may not have the policy yet). */
async function completeEventually(region: Region, apiKey: string): Promise<CompleteResponse> {
  const client = clientOf(region, apiKey);
  const codes: string[] = [];
  const deadline = Date.now() + restartTimeoutMs;
  while (Date.now() < deadline) {
    const answer = await complete(client);
    if (answer.ok) return answer.value;
    codes.push(codeOf(answer));
    await sleep(200);
  }
  throw new Error(`${region} did not serve within ${restartTimeoutMs / 1000} s: ${codes.join(',')}`);
}

interface Totals {
  readonly requests: number;
  readonly input: number;
  readonly output: number;
}

/** What the emulator counted over every key since it started. */
async function upstreamTotals(): Promise<Totals & { keys: string[] }> {
  const stats = (await (await fetch(`${readState().emulator}/_emulator/stats`)).json()) as {
    keys: Record<string, { messages: number; inputTokens: number; cacheCreationInputTokens: number; outputTokens: number }>;
  };
  const rows = Object.values(stats.keys);
  return {
    keys: Object.keys(stats.keys),
    requests: rows.reduce((sum, row) => sum + row.messages, 0),
    input: rows.reduce((sum, row) => sum + row.inputTokens + row.cacheCreationInputTokens, 0),
    output: rows.reduce((sum, row) => sum + row.outputTokens, 0),
  };
}

/** What the tenant was charged, read with QUORUM at `region`. */
async function chargedAt(region: Region, apiKey: string): Promise<Totals | undefined> {
  const answer = await clientOf(region, apiKey).getUsage({ consistency: 'quorum', user: '' });
  if (!answer.ok) return undefined;
  const used = (metric: string): number => answer.value.limits.find((limit) => limit.metric === metric)?.used ?? -1;
  return { requests: used('requests'), input: used('input_tokens'), output: used('output_tokens') };
}

/** Waits (bounded, about 10 s) until every region reports `expected` for the tenant. */
async function expectChargedEverywhere(apiKey: string, expected: Totals): Promise<void> {
  let seen: (Totals | undefined)[] = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    seen = await Promise.all(regionNames.map((region) => chargedAt(region, apiKey)));
    if (
      seen.every(
        (totals) => totals !== undefined && totals.requests === expected.requests && totals.input === expected.input && totals.output === expected.output,
      )
    )
      return;
    await sleep(200);
  }
  expect(seen).toEqual(regionNames.map(() => expected));
}

const sumOf = (answers: readonly CompleteResponse[]): Totals => ({
  requests: answers.length,
  input: answers.reduce((sum, answer) => sum + answer.usage.inputTokens + answer.usage.cacheCreationInputTokens, 0),
  output: answers.reduce((sum, answer) => sum + answer.usage.outputTokens, 0),
});

let first: Launcher;
let firstKeys: Readonly<Record<string, string>>;
let firstSecrets: Secrets;
let configFile: string;

interface Secrets {
  readonly mesh: string;
  readonly admin: string;
}

/** The mesh secret and admin token files of the state directory, checked to be the owner's alone. */
function readSecrets(): Secrets {
  for (const name of ['mesh.secret', 'admin.token', 'state.json']) expect(statSync(join(stateDir, name)).mode & 0o777, name).toBe(0o600);
  return { mesh: readFileSync(join(stateDir, 'mesh.secret'), 'utf8'), admin: readFileSync(join(stateDir, 'admin.token'), 'utf8') };
}

beforeAll(async () => {
  configFile = await writeConfig('carpool.json', ['demo', 'gone']);
  first = await launch(configFile);
  firstKeys = readState().apiKeys;
  firstSecrets = readSecrets();
}, launcherUpTimeoutMs + 5_000);

afterAll(async () => {
  for (const client of clients.values()) client.close();
  for (const launcher of launchers) if (launcher.pid !== undefined && isAlive(launcher.pid)) await launcher.interrupt();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('carpool local keeps the mesh running', () => {
  it("prints per region a Claude Code line whose base URL serves the Anthropic API and whose key part reads the tenant's key", async () => {
    const pattern = /^ {2}ANTHROPIC_BASE_URL=(\S+) ANTHROPIC_AUTH_TOKEN=\$\((node -p "[^"]+")\) claude$/;
    const printed = first.lines.map((line) => pattern.exec(line)).filter((match) => match !== null);
    const state = readState();
    expect(printed.map((match) => match[1])).toEqual(state.regions.map((region) => region.http));
    // The command substitution, run as a shell would from the launcher's directory, gives the key.
    const command = printed[0]?.[2] as string;
    expect(execFileSync('sh', ['-c', command], { cwd: packageRoot, encoding: 'utf8' }).trim()).toBe(firstKeys.demo);
    const models = await fetch(`${state.regions[0]?.http ?? ''}/v1/models`, { headers: { authorization: `Bearer ${firstKeys.demo as string}` } });
    expect(models.status).toBe(200);
  });

  it('restarts a killed region node while the other regions keep serving; it serves again and the charges match the upstream', async () => {
    const key = firstKeys.demo as string;
    const answers: CompleteResponse[] = [];
    for (const region of regionNames) answers.push(await completeEventually(region, key));
    // Everything charged so far has reached every region before the kill: a node keeps nothing
    // durable, so what it had not gossiped would die with it.
    await expectChargedEverywhere(key, sumOf(answers));

    const victim = readState().pids['eu-west'] as number;
    process.kill(victim, 'SIGKILL');
    // The others serve throughout the outage, and the launcher brings eu-west back.
    const survivors: Region[] = ['us-east', 'ap-south'];
    const deadline = Date.now() + restartTimeoutMs;
    let during = 0;
    // Bounded in count and time; paced well under a node's per-client rate limit (20 calls/s).
    while (!first.lines.some((line) => /eu-west is back/.test(line)) && Date.now() < deadline && during < 1_000) {
      const region = survivors[during % 2] as Region;
      const answer = await complete(clientOf(region, key));
      expect(codeOf(answer), `${region} during the outage`).toBe('OK');
      if (answer.ok) answers.push(answer.value);
      during++;
      await sleep(50);
    }
    expect(during).toBeGreaterThan(0);
    const died = await first.waitFor(/eu-west died/, 1_000);
    expect(died).toMatch(/eu-west died \(signal SIGKILL\); restarting it in 0\.5 s \(log .*eu-west\.log\)/);
    await first.waitFor(/eu-west is back \(pid \d+, restart 1\)/, 1_000);
    const restarted = readState().pids['eu-west'];
    expect(restarted).not.toBe(victim);
    expect(isAlive(restarted as number)).toBe(true);

    // It joined the mesh again, took the policy from its peers, and serves with its own account.
    const again = await completeEventually('eu-west', key);
    expect(again.servedRegion).toBe('eu-west');
    answers.push(again);
    const upstream = await upstreamTotals();
    expect({ requests: upstream.requests, input: upstream.input, output: upstream.output }).toEqual(sumOf(answers));
    await expectChargedEverywhere(key, sumOf(answers));
  }, 90_000);

  it('restarts a killed emulator with the same account keys, and the nodes call it again', async () => {
    const key = firstKeys.demo as string;
    const before = await upstreamTotals();
    const chargedBefore = await chargedAt('us-east', key);
    const victim = readState().pids.emulator as number;
    process.kill(victim, 'SIGKILL');
    await first.waitFor(/emulator is back \(pid \d+, restart 1\)$/, restartTimeoutMs);
    expect(readState().pids.emulator).not.toBe(victim);
    const after = await upstreamTotals();
    expect(after.keys).toEqual(before.keys);
    // A new emulator process counts from zero: reconcile what happens from here on.
    expect(after.requests).toBe(0);
    const answers: CompleteResponse[] = [];
    for (const region of regionNames) answers.push(await completeEventually(region, key));
    const upstream = await upstreamTotals();
    const sum = sumOf(answers);
    expect({ requests: upstream.requests, input: upstream.input, output: upstream.output }).toEqual(sum);
    await expectChargedEverywhere(key, {
      requests: (chargedBefore?.requests ?? 0) + sum.requests,
      input: (chargedBefore?.input ?? 0) + sum.input,
      output: (chargedBefore?.output ?? 0) + sum.output,
    });
  }, 60_000);

  it('releases what a region node killed mid-call had reserved, once it is back, so only finished calls stay charged', async () => {
    // Issue 13, item 6: a node killed with calls in flight left their estimates charged for good.
    const key = firstKeys.demo as string;
    const before = await chargedAt('eu-west', key);
    if (before === undefined) throw new Error('no usage at eu-west');
    // Three streams stall at us-east's account after three events, holding their reservations.
    const emulator = readState().emulator;
    await fetch(`${emulator}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ kind: 'stall-mid-stream', afterEvents: 3, count: 3 }) });
    const client = clientOf('us-east', key);
    const started = [false, false, false];
    const streams = started.map(async (_, i) => {
      const body = { model: 'claude-sonnet-4-6', max_tokens: 500, messages: [{ role: 'user', content: `A long ride, stream ${i}` }] };
      const request = {
        requestId: `launcher-${process.pid}-stall-${i}`,
        requestJson: utf8.encode(JSON.stringify(body)),
        anthropicVersion: '',
        anthropicBeta: '',
        user: '',
      };
      try {
        for await (const item of client.streamComplete(request, { deadlineMs: Date.now() + 60_000 })) {
          if (item.kind === 'event') started[i] = true;
          else break;
        }
      } catch {
        // The node dies under the stream: how the stream ends is not what this test is about.
      }
    });
    for (let waited = 0; waited < 200 && !started.every(Boolean); waited++) await sleep(50);
    expect(started).toEqual([true, true, true]);
    // The estimates are charged while the streams hang.
    const during = await chargedAt('us-east', key);
    expect(during?.requests).toBe(before.requests + 3);

    const victim = readState().pids['us-east'] as number;
    process.kill(victim, 'SIGKILL');
    await Promise.all(streams);
    await first.waitFor(/us-east is back \(pid \d+, restart 1\)/, restartTimeoutMs);
    await fetch(`${emulator}/_emulator/faults`, { method: 'DELETE' });
    // The node comes back from its store (npm start gives it a data directory) and ends the three
    // interrupted calls as a successor would: their estimates released on the eventual limits.
    await expectChargedEverywhere(key, before);
    chargedAtEnd = before;
    // The node says so in its log, which the launcher writes as the lines arrive (bounded wait).
    const released = /store: resumed as us-east-1~\S+ \(start 2\): .* 3 request\(s\) interrupted mid-call ended/;
    for (let waited = 0; waited < 50 && !released.test(readFileSync(join(stateDir, 'us-east.log'), 'utf8')); waited++) await sleep(100);
    expect(readFileSync(join(stateDir, 'us-east.log'), 'utf8')).toMatch(released);
  }, 60_000);

  it('stops every process on Ctrl-C, also while a restart waits for its backoff', async () => {
    const seen = Object.values(readState().pids);
    process.kill(readState().pids['ap-south'] as number, 'SIGKILL');
    await first.waitFor(/ap-south died/, 5_000);
    // The backoff is half a second: the interrupt lands in it (or, on a slow machine, during the
    // restart, which must stop as cleanly).
    expect(await first.interrupt()).toBe(0);
    expect(first.lines.join('\n')).toMatch(/SIGINT: stopping the nodes and the emulator/);
    expect(first.lines.some((line) => /ap-south is back/.test(line))).toBe(false);
    const left = [...seen, ...Object.values(readState().pids)].filter(isAlive);
    expect(left).toEqual([]);
    expect(processesUsing(stateDir)).toEqual([]);
  }, 30_000);
});

/** What tenant demo was charged when the first mesh stopped: the second start must carry it. */
let chargedAtEnd: Totals | undefined;

describe('carpool local keeps its keys across starts', () => {
  it("accepts the previous start's key, drops the key of a tenant removed from the config, mints one for a new tenant", async () => {
    const changed = await writeConfig('carpool-changed.json', ['demo', 'newcomer']);
    const second = await launch(changed);
    expect(second.lines.join('\n')).toMatch(/reusing the API keys of demo from the previous run/);
    expect(second.lines.join('\n')).toMatch(/tenant gone is no longer in the configuration/);
    expect(second.lines.join('\n')).toMatch(/tenant newcomer is new: minting its key/);
    const state = readState();
    expect(readSecrets()).toEqual(firstSecrets);
    expect(state.adminToken).toBe(firstSecrets.admin.trim());
    expect(state.apiKeys.demo).toBe(firstKeys.demo);
    expect(Object.keys(state.apiKeys)).toEqual(['demo', 'newcomer']);
    const answer = await completeEventually('ap-south', firstKeys.demo as string);
    expect(codeOf(await complete(clientOf('us-east', firstKeys.gone as string)))).toBe('UNAUTHENTICATED');
    await completeEventually('us-east', state.apiKeys.newcomer as string);
    // The nodes restarted with their stores: the charges go on from where the first mesh left them.
    const carried = chargedAtEnd;
    if (carried === undefined) throw new Error('the first mesh left no charges to carry');
    const added = sumOf([answer]);
    await expectChargedEverywhere(firstKeys.demo as string, {
      requests: carried.requests + added.requests,
      input: carried.input + added.input,
      output: carried.output + added.output,
    });
    expect(await second.interrupt()).toBe(0);
  }, 90_000);

  it('mints everything anew with --fresh, and the previous key is refused', async () => {
    const fresh = await launch(configFile, '--fresh');
    const state = readState();
    const secrets = readSecrets();
    expect(secrets.mesh).not.toBe(firstSecrets.mesh);
    expect(secrets.admin).not.toBe(firstSecrets.admin);
    expect(state.apiKeys.demo).not.toBe(firstKeys.demo);
    expect(codeOf(await complete(clientOf('eu-west', firstKeys.demo as string)))).toBe('UNAUTHENTICATED');
    const answer = await completeEventually('eu-west', state.apiKeys.demo as string);
    const upstream = await upstreamTotals();
    expect({ requests: upstream.requests, input: upstream.input, output: upstream.output }).toEqual(sumOf([answer]));
    await expectChargedEverywhere(state.apiKeys.demo as string, sumOf([answer]));
    expect(await fresh.interrupt()).toBe(0);
  }, 90_000);
});
