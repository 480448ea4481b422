// Proves the product end to end with real processes on loopback: three region nodes and the
// emulator, started by `startLocalMesh`. A region without accounts forwards to an account's home
// and the call is counted once, also when the client retries the same request id at either
// region; a quota reached through one region holds in the others in each consistency mode; a
// throttled account fails over to another region's; bad input gets the right status and nothing
// is counted; every region serves the Anthropic API over HTTP to the official SDK (and chat
// completions to the official openai SDK), forwarding
// from a region without accounts, each call counted once.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalConfig, parseLocalConfig } from '../../src/local/local-config.js';
import { type LocalMesh, startLocalMesh } from '../../src/local/local-mesh.js';
import { withFreePorts } from '../../src/local/local-ports.js';
import { type CarpoolCallOptions, CarpoolClient, type ClientError } from '../../src/net/grpc/carpool-client.js';
import type { CompleteRequest, CompleteResponse } from '../../src/net/grpc/carpool-handler.js';
import type { Result } from '../../src/core/result.js';
import { sleep } from '../support/wait.js';

const regions = ['us-east', 'eu-west', 'ap-south'] as const;
type Region = (typeof regions)[number];
const modes = ['eventual', 'strict', 'escrow'] as const;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

async function meshConfig(): Promise<LocalConfig> {
  const cap = (mode: string): unknown => ({ id: `cap-${mode}`, tier: 'paid', limits: [{ metric: 'requests', window: 'day', limit: 3, mode }] });
  const parsed = parseLocalConfig({
    regions: regions.map((name, i) => ({ name, basePort: 1000 + 10 * i })),
    emulator: {
      port: 999,
      ttftMs: 0,
      tokensPerSecond: 0,
      // ap-south has no account of its own: every call there is forwarded.
      accounts: [
        { id: 'acct-east', homeRegion: 'us-east' },
        { id: 'acct-west-1', homeRegion: 'eu-west' },
        { id: 'acct-west-2', homeRegion: 'eu-west' },
      ],
    },
    tenants: [{ id: 'open', tier: 'paid', limits: [{ metric: 'requests', window: 'day', limit: 100_000, mode: 'eventual' }] }, ...modes.map(cap)],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return withFreePorts(parsed.value);
}

let mesh: LocalMesh;
const stateDir = mkdtempSync(join(tmpdir(), 'carpool-e2e-'));
const clients = new Map<string, CarpoolClient>();
let nextId = 0;

function client(region: Region, tenant: string, apiKey?: string): CarpoolClient {
  const name = `${region}/${tenant}/${apiKey ?? ''}`;
  let made = clients.get(name);
  if (made === undefined) {
    const endpoint = mesh.regions.find((r) => r.region === region);
    if (endpoint === undefined) throw new Error(`no region ${region}`);
    made = new CarpoolClient({ target: endpoint.grpc, apiKey: apiKey ?? (mesh.apiKeys[tenant] as string) });
    clients.set(name, made);
  }
  return made;
}

function request(text = 'Share a ride?', requestId = `e2e-${++nextId}`): CompleteRequest {
  const body = { model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: text }] };
  return { requestId, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' };
}

function complete(
  region: Region,
  tenant: string,
  req: CompleteRequest = request(),
  options: CarpoolCallOptions = {},
): Promise<Result<CompleteResponse, ClientError>> {
  return client(region, tenant).complete(req, { deadlineMs: Date.now() + 15_000, ...options });
}

function codeOf(result: Result<unknown, ClientError>): string {
  if (result.ok) return 'OK';
  return result.error.kind === 'status' ? result.error.codeName : 'MALFORMED';
}

async function upstreamMessages(): Promise<number> {
  const stats = (await (await fetch(`${mesh.emulator.url}/_emulator/stats`)).json()) as { keys: Record<string, { messages: number }> };
  return Object.values(stats.keys).reduce((sum, row) => sum + row.messages, 0);
}

/** The tenant's `requests` used, as a region answers GetUsage. */
async function usedAt(region: Region, tenant: string, consistency: 'local' | 'quorum'): Promise<number | undefined> {
  const answer = await client(region, tenant).getUsage({ consistency, user: '' });
  return answer.ok ? answer.value.limits.find((limit) => limit.metric === 'requests')?.used : undefined;
}

async function waitUsed(region: Region, tenant: string, consistency: 'local' | 'quorum', expected: number): Promise<number | undefined> {
  let used: number | undefined;
  // Bounded: about 5 s of gossip.
  for (let attempt = 0; attempt < 50; attempt++) {
    used = await usedAt(region, tenant, consistency);
    if (used === expected) return used;
    await sleep(100);
  }
  return used;
}

beforeAll(async () => {
  const started = await startLocalMesh(await meshConfig(), { stateDir });
  if (!started.ok) throw new Error(started.error);
  mesh = started.value;
}, 45_000);

afterAll(async () => {
  for (const made of clients.values()) made.close();
  await mesh?.stop();
  rmSync(stateDir, { recursive: true, force: true });
}, 20_000);

describe('three region processes end to end', () => {
  it('forwards a call from a region without accounts and counts it once, also when the client retries', async () => {
    const usedBefore = (await waitUsed('us-east', 'open', 'quorum', 0)) ?? -1;
    const upstreamBefore = await upstreamMessages();
    const first = request('Forward this one');
    const answer = await complete('ap-south', 'open', first);
    if (!answer.ok) throw new Error(JSON.stringify(answer.error));
    expect(['us-east', 'eu-west']).toContain(answer.value.servedRegion);
    expect(await upstreamMessages()).toBe(upstreamBefore + 1);

    // The client missed the answer and retries the same id: where it first went, the answer
    // kept there is given again; any other region, the one that served it included, refuses to
    // run it again (the id is claimed mesh-wide) and names where to ask.
    const again = await complete('ap-south', 'open', first);
    if (!again.ok) throw new Error(JSON.stringify(again.error));
    expect(fromUtf8.decode(again.value.messageJson)).toBe(fromUtf8.decode(answer.value.messageJson));
    const served = answer.value.servedRegion as Region;
    const elsewhere = await complete(served, 'open', first);
    expect(!elsewhere.ok && elsewhere.error.kind === 'status' && [elsewhere.error.codeName, elsewhere.error.details]).toEqual([
      'ALREADY_EXISTS',
      'this request id already ran at region ap-south (node ap-south-1); send the retry there for its answer, or use a new id for a new request',
    ]);
    expect(await upstreamMessages()).toBe(upstreamBefore + 1);
    expect(await waitUsed('eu-west', 'open', 'quorum', usedBefore + 1)).toBe(usedBefore + 1);
    // Still one, a moment later, everywhere.
    await sleep(300);
    for (const region of regions) expect(await usedAt(region, 'open', 'quorum')).toBe(usedBefore + 1);
    // The metrics say where it went: ap-south forwarded, the served region refused the id's claim.
    const metricsOf = async (region: Region): Promise<string> =>
      (await fetch(mesh.regions.find((r) => r.region === region)?.metrics as string, { headers: { authorization: `Bearer ${mesh.adminToken}` } })).text();
    expect(await metricsOf('ap-south')).toMatch(/^carpool_forward_sent_total\{[^}]*\} [1-9]/m);
    expect(await metricsOf(served)).toMatch(/^carpool_request_claims_total\{[^}]*outcome="held-elsewhere"[^}]*\} [1-9]/m);
  }, 30_000);

  it('serves the Anthropic API (and the OpenAI-compatible route) over HTTP in every region: the SDKs from ap-south are forwarded home and counted once', async () => {
    const usedBefore = (await waitUsed('us-east', 'open', 'quorum', (await usedAt('us-east', 'open', 'local')) ?? 0)) ?? -1;
    const upstreamBefore = await upstreamMessages();
    for (const region of mesh.regions) {
      const sdk = new Anthropic({ apiKey: mesh.apiKeys.open as string, baseURL: region.http, maxRetries: 0, timeout: 15_000 });
      const answer = await sdk.messages
        .create({ model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: `HTTP from ${region.region}` }] })
        .withResponse();
      expect(answer.data.type).toBe('message');
      expect(answer.response.headers.get('carpool-region')).toBe(region.region);
      const servedRegion = answer.response.headers.get('carpool-served-region');
      // us-east and eu-west serve from home; ap-south, with no account, forwards to one.
      expect(region.region === 'ap-south' ? ['us-east', 'eu-west'].includes(servedRegion ?? '') : servedRegion === region.region).toBe(true);
      const final = await sdk.messages
        .stream({ model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: `Stream over HTTP from ${region.region}` }] })
        .finalMessage();
      expect(final.usage.output_tokens).toBeGreaterThan(0);
      // The OpenAI-compatible route of the same region, with the official openai SDK.
      const openai = new OpenAI({ apiKey: mesh.apiKeys.open as string, baseURL: `${region.http}/v1`, maxRetries: 0, timeout: 15_000 });
      const chat = await openai.chat.completions.create({
        model: 'claude-sonnet-4-6',
        max_tokens: 16,
        messages: [{ role: 'user', content: `Chat from ${region.region}` }],
      });
      expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
    }
    // The state file names every region's base URL, as `npm start` prints it.
    const state = JSON.parse(await readFile(mesh.stateFile, 'utf8')) as { regions: { region: string; http: string }[] };
    expect(state.regions.map((r) => r.http)).toEqual(mesh.regions.map((r) => r.http));
    expect(await upstreamMessages()).toBe(upstreamBefore + 9);
    expect(await waitUsed('ap-south', 'open', 'quorum', usedBefore + 9)).toBe(usedBefore + 9);
  }, 30_000);

  it('streams through every region', async () => {
    for (const region of regions) {
      const types: string[] = [];
      let servedRegion = '';
      for await (const item of client(region, 'open').streamComplete(request(`Stream from ${region}`), { deadlineMs: Date.now() + 15_000 })) {
        if (item.kind === 'error') throw new Error(JSON.stringify(item.error));
        if (item.kind === 'event') types.push(item.event.type);
        else servedRegion = item.summary.servedRegion;
      }
      expect(types[0]).toBe('message_start');
      expect(types.at(-1)).toBe('message_stop');
      // us-east and eu-west serve from home; ap-south forwards.
      expect(servedRegion === region || region === 'ap-south').toBe(true);
    }
  }, 30_000);

  for (const mode of modes) {
    it(`holds a ${mode} quota reached through one region in the others`, async () => {
      const tenant = `cap-${mode}`;
      const upstreamBefore = await upstreamMessages();
      let served = 0;
      const codes: string[] = [];
      if (mode === 'eventual') {
        // Eventual counts are checked against the local view: fill it at one region, let gossip
        // carry it, then every region refuses.
        for (let i = 0; i < 3; i++) codes.push(codeOf(await complete('us-east', tenant)));
        served = codes.filter((code) => code === 'OK').length;
        for (const region of regions) expect(await waitUsed(region, tenant, 'local', 3)).toBe(3);
      } else {
        // Strict and escrow hold under any interleaving: requests spread over the regions never
        // get more than the limit through, and the limit is reached.
        for (let i = 0; i < 9; i++) {
          const code = codeOf(await complete(regions[i % 3] as Region, tenant));
          codes.push(code);
          if (code === 'OK') served++;
          // An escrow region out of rights asks its peers for theirs; give the transfer a moment.
          else if (mode === 'escrow') await sleep(200);
        }
      }
      expect(served, codes.join(',')).toBe(3);
      for (const region of regions) {
        const refused = await complete(region, tenant);
        expect(codeOf(refused), `${mode} at ${region}`).toBe('RESOURCE_EXHAUSTED');
        if (!refused.ok && refused.error.kind === 'status') expect(refused.error.pushbackMs).toBeGreaterThan(0);
      }
      expect(await upstreamMessages()).toBe(upstreamBefore + 3);
      expect(await waitUsed('eu-west', tenant, 'quorum', 3)).toBe(3);
    }, 40_000);
  }

  it('moves a call off an account the upstream throttles, to another region', async () => {
    const eastKey = mesh.emulator.keys[0] as string;
    const injected = await fetch(`${mesh.emulator.url}/_emulator/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ faults: [{ kind: 'rate-limit', key: eastKey, count: 1, retryAfterSeconds: 30, remaining: 0 }] }),
    });
    expect(injected.status).toBe(200);
    const answer = await complete('us-east', 'open', request('Throttle me'));
    if (!answer.ok) throw new Error(JSON.stringify(answer.error));
    expect(answer.value.servedRegion).toBe('eu-west');
  }, 20_000);

  it('refuses bad input with the right status and a clear message, counting nothing', async () => {
    const usedBefore = await usedAt('us-east', 'open', 'quorum');
    const upstreamBefore = await upstreamMessages();
    const bad = async (req: CompleteRequest, apiKey?: string): Promise<{ code: string; details: string }> => {
      const result = await client('eu-west', 'open', apiKey).complete(req, { deadlineMs: Date.now() + 10_000 });
      return { code: codeOf(result), details: !result.ok && result.error.kind === 'status' ? result.error.details : '' };
    };
    expect(await bad(request(), 'cp_open_0000000000000000000000000000000000000000')).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await bad(request(), 'cp_ghost_0000000000000000000000000000000000000000')).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await bad(request(), 'not-a-key')).toMatchObject({ code: 'UNAUTHENTICATED' });
    const notJson = await bad({ ...request(), requestJson: utf8.encode('{"model": ') });
    expect(notJson.code).toBe('INVALID_ARGUMENT');
    expect(notJson.details).toMatch(/request_json/);
    const noModel = await bad({ ...request(), requestJson: utf8.encode(JSON.stringify({ max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })) });
    expect(noModel.code).toBe('INVALID_ARGUMENT');
    expect(noModel.details).toMatch(/model/);
    const noId = await bad({ ...request(), requestId: '' });
    expect(noId.code).toBe('INVALID_ARGUMENT');
    expect(noId.details).toMatch(/request_id/);
    const huge = await bad({ ...request(), requestJson: new Uint8Array(40 * 1024 * 1024).fill(32) });
    expect(huge.code).toBe('RESOURCE_EXHAUSTED');
    expect(await upstreamMessages()).toBe(upstreamBefore);
    await sleep(200);
    expect(await usedAt('us-east', 'open', 'quorum')).toBe(usedBefore);
  }, 30_000);
});
