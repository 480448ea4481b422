// A known bug the crash tests found (test/chaos/), pinned down with real processes: a unary call
// forwarded from a region without accounts to an account's home region, whose home node is killed
// while the upstream is answering, is retried by the origin on an account of another region. The
// client gets one answer, but the request id reached the upstream twice (DESIGN.md §6: at most
// once mesh-wide), and the first call is on no ledger row: the account's upstream tally exceeds
// its rows, which `carpool audit` reports. The origin takes the broken forward for a connection
// that failed before any answer (src/node/forward/forward-route.ts), and the account caller retries
// a network failure on another account (src/pool/attempt-plan.ts), though the home node had called
// the upstream. The second test states the correct outcome and is marked as failing until the fix:
// make it a plain `it` then.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLocalConfig } from '../../src/local/local-config.js';
import { type LocalMesh, startLocalMesh } from '../../src/local/local-mesh.js';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';

interface Tally {
  readonly responsesInFlight: number;
  readonly keys: Record<string, { requests: number; messages: number; clientClosed: number }>;
}

const stateDir = mkdtempSync(join(tmpdir(), 'carpool-forward-death-'));
let mesh: LocalMesh;
/** What the run saw, for the second test's verdict. */
let observed: { readonly answered: boolean; readonly upstreamCalls: number; readonly cutByDeath: number } | undefined;

beforeAll(async () => {
  const regions = ['us-east', 'eu-west', 'ap-south'];
  const parsed = parseLocalConfig({
    regions: await Promise.all(
      regions.map(async (name) => ({ name, meshPort: await freePort(), adminPort: await freePort(), grpcPort: await freePort(), httpPort: await freePort() })),
    ),
    // Answers take 3 s to start: long enough to kill the home node while its call runs.
    emulator: {
      port: await freePort(),
      ttftMs: 3_000,
      tokensPerSecond: 0,
      accounts: [
        { id: 'acct-east', homeRegion: 'us-east' },
        { id: 'acct-west', homeRegion: 'eu-west' },
      ],
    },
    tenants: [{ id: 'riders', tier: 'paid', limits: [{ metric: 'requests', window: 'day', limit: 1_000_000, mode: 'eventual' }] }],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const started = await startLocalMesh(parsed.value, { stateDir, restartPolicy: { delayMsInitial: 200, delayMsMax: 1_000, stableMs: 60_000 } });
  if (!started.ok) throw new Error(started.error);
  mesh = started.value;
}, 60_000);

afterAll(async () => {
  await mesh?.stop();
  rmSync(stateDir, { recursive: true, force: true });
}, 30_000);

async function tally(): Promise<Tally> {
  return (await (await fetch(`${mesh.emulator.url}/_emulator/stats`)).json()) as Tally;
}

describe('a unary call forwarded to a home node that dies while the upstream answers', () => {
  it("is answered once to its client, after the upstream saw the home node's call cut", async () => {
    const client = new CarpoolClient({ target: mesh.regions[2]?.grpc as string, apiKey: mesh.apiKeys.riders as string });
    try {
      const body = { model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'Forwarded, then its home dies' }] };
      const pending = client.complete(
        { requestId: 'home-dies-1', requestJson: new TextEncoder().encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' },
        { deadlineMs: Date.now() + 30_000 },
      );
      let now = await tally();
      for (let waited = 0; waited < 200 && now.responsesInFlight === 0; waited++) {
        await sleep(25);
        now = await tally();
      }
      expect(now.responsesInFlight).toBe(1);
      // The account whose key the call came in on is the one whose home node is running it.
      const runningKey = Object.entries(now.keys).find(([, row]) => row.requests > 0)?.[0];
      const home = runningKey === mesh.emulator.keys[0] ? 'us-east' : 'eu-west';
      process.kill(mesh.pidOf(home) as number, 'SIGKILL');
      const answer = await pending;
      const after = await tally();
      const rows = Object.values(after.keys);
      observed = {
        answered: answer.ok,
        upstreamCalls: rows.reduce((sum, row) => sum + row.requests, 0),
        cutByDeath: rows.reduce((sum, row) => sum + row.clientClosed, 0),
      };
      // The upstream saw the dead home node's connection close mid-answer.
      expect(observed.cutByDeath).toBe(1);
    } finally {
      client.close();
    }
  }, 60_000);

  // KNOWN BUG (see the file comment): today the origin retries on the other region's account, so
  // the upstream counts two calls. Correct: one call; the client is told the call failed.
  it.fails('reaches the upstream once', () => {
    expect(observed).toBeDefined();
    expect(observed?.upstreamCalls).toBe(1);
  });
});
