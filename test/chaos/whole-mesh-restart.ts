// Item (d) of the crash tests: every node of the mesh killed at once (a power cut, an upgrade gone
// wrong), so no peer holds anything a node could take back: the policy, the tenants, their keys
// and the usage must all come from the nodes' own stores. The launcher restarts the nodes without
// applying the policy again (it does that only when it starts), so what the nodes serve afterwards
// is what they kept.
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import type { LimitUsage } from '../../src/net/grpc/carpool-handler.js';
import type { LocalMesh } from '../../src/local/local-mesh.js';
import { sleep } from '../support/wait.js';
import { type ChaosRegion, chaosRegions, type ChaosTenant, chaosTenants } from './chaos-config.js';
import { type SentRequest, sentRequest } from './chaos-load.js';
import { killAndWait } from './mesh-waits.js';

export interface WholeMeshRestartOptions {
  /** Prefix of the ids of the requests sent after the restart. */
  readonly idPrefix: string;
  readonly log: (line: string) => void;
}

export interface WholeMeshRestartResult {
  /** The requests sent after the restart, for the ledger checks. */
  readonly sent: SentRequest[];
  readonly problems: string[];
}

const utf8 = new TextEncoder();

export async function checkWholeMeshRestart(mesh: LocalMesh, options: WholeMeshRestartOptions): Promise<WholeMeshRestartResult> {
  const problems: string[] = [];
  const clients = new Map<string, CarpoolClient>();
  const client = (region: ChaosRegion, tenant: ChaosTenant): CarpoolClient => {
    const name = `${region}/${tenant}`;
    let made = clients.get(name);
    if (made === undefined) {
      made = new CarpoolClient({ target: endpoint(mesh, region).grpc, apiKey: mesh.apiKeys[tenant] as string });
      clients.set(name, made);
    }
    return made;
  };
  try {
    const policyBefore = await policies(mesh);
    if (new Set(policyBefore).size !== 1) problems.push('before the restart the nodes do not hold the same policy');
    const usageBefore = await usageEverywhere(client, options.log);
    const back = await killAndWait(mesh, chaosRegions);
    if (back.problem !== undefined) return { sent: [], problems: [...problems, `after killing every node at once: ${back.problem}`] };
    options.log(`whole mesh killed at once (quiet) and serving again after ${(back.tookMs / 1000).toFixed(1)} s`);
    const policyAfter = await policies(mesh);
    for (const [i, region] of chaosRegions.entries()) {
      if (policyAfter[i] !== policyBefore[0])
        problems.push(`${region}'s policy after the restart differs from the one before: ${policyAfter[i]?.slice(0, 400)}`);
    }
    const usageAfter = await usageEverywhere(client, options.log);
    problems.push(...compareUsage(usageBefore, usageAfter));
    const sent = await sendWithOldKeys(client, options.idPrefix, problems);
    await checkCarried(client, usageBefore, sent, problems);
    return { sent, problems };
  } finally {
    for (const made of clients.values()) made.close();
  }
}

function endpoint(mesh: LocalMesh, region: ChaosRegion): { grpc: string; admin: string } {
  const found = mesh.regions.find((r) => r.region === region);
  if (found === undefined) throw new Error(`no region ${region}`);
  return found;
}

/** Each node's policy (tenants with their key ids, accounts, settings) as JSON, in region order. */
async function policies(mesh: LocalMesh): Promise<string[]> {
  return Promise.all(
    chaosRegions.map(async (region) => {
      const response = await fetch(`${endpoint(mesh, region).admin}/policy`, { headers: { authorization: `Bearer ${mesh.adminToken}` } });
      return `${response.status} ${await response.text()}`;
    }),
  );
}

type UsageTable = Map<string, readonly LimitUsage[] | string>;

/**
 * Every tenant's limits as each region reads them at QUORUM with the tenant's key. A node killed
 * in the last round may still be recovering (it answers no quorum read until every peer has sent
 * its state, src/mesh/quorum.ts): UNAVAILABLE is asked again, for up to `quorumWaitMs`, since
 * what is compared is the value across the restart, not how soon a restarted node reads.
 */
async function usageEverywhere(client: (region: ChaosRegion, tenant: ChaosTenant) => CarpoolClient, log: (line: string) => void): Promise<UsageTable> {
  const table: UsageTable = new Map();
  for (const region of chaosRegions) {
    for (const tenant of chaosTenants) {
      const startedMs = Date.now();
      const deadlineMs = startedMs + quorumWaitMs;
      let read: readonly LimitUsage[] | string = 'UNAVAILABLE';
      // Bounded by the deadline: one read per half second at most.
      while (read === 'UNAVAILABLE' && Date.now() < deadlineMs) {
        const answer = await client(region, tenant).getUsage({ consistency: 'quorum', user: '' }, { deadlineMs: Date.now() + 10_000 });
        read = answer.ok ? answer.value.limits : answer.error.kind === 'status' ? answer.error.codeName : 'MALFORMED';
        if (read === 'UNAVAILABLE') await new Promise((resolve) => setTimeout(resolve, 500));
      }
      table.set(`${region}/${tenant}`, read);
      const waitedMs = Date.now() - startedMs;
      if (waitedMs >= 1_000) log(`${region}/${tenant}: the quorum read waited ${(waitedMs / 1000).toFixed(1)} s for a recovering node`);
    }
  }
  return table;
}

/** How long a quorum read may stay UNAVAILABLE after a restart before it counts as a problem. */
const quorumWaitMs = 15_000;

/** Every limit whose window did not turn meanwhile must read the same after the restart. */
function compareUsage(before: UsageTable, after: UsageTable): string[] {
  const problems: string[] = [];
  for (const [name, was] of before) {
    const now = after.get(name);
    if (typeof was === 'string' || typeof now === 'string' || now === undefined) {
      problems.push(
        `${name}: GetUsage at QUORUM answered ${typeof was === 'string' ? was : 'OK'} before the restart and ${typeof now === 'string' ? now : 'OK'} after`,
      );
      continue;
    }
    for (const limit of was) {
      const same = now.find((l) => l.metric === limit.metric && l.window === limit.window && l.resetsAtMs === limit.resetsAtMs);
      if (same !== undefined && same.used !== limit.used)
        problems.push(`${name}: ${limit.metric} per ${limit.window} read ${limit.used} before the restart and ${same.used} after`);
    }
  }
  return problems;
}

/** One completion per tenant and region with the keys minted before the restart. */
async function sendWithOldKeys(
  client: (region: ChaosRegion, tenant: ChaosTenant) => CarpoolClient,
  idPrefix: string,
  problems: string[],
): Promise<SentRequest[]> {
  const sent: SentRequest[] = [];
  for (const region of chaosRegions) {
    for (const tenant of chaosTenants) {
      const id = `${idPrefix}-${region}-${tenant}`;
      const content = `after the restart, ${id}`;
      const body = { model: 'claude-sonnet-4-6', max_tokens: 12, messages: [{ role: 'user', content }] };
      const answer = await client(region, tenant).complete(
        { requestId: id, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' },
        { deadlineMs: Date.now() + 15_000 },
      );
      const code = answer.ok ? 'OK' : answer.error.kind === 'status' ? answer.error.codeName : 'MALFORMED';
      // The strict and escrow tenants may have spent this minute's requests; their keys must still be known.
      const fine = code === 'OK' || (tenant !== 'riders' && code === 'RESOURCE_EXHAUSTED');
      if (!fine)
        problems.push(
          `${tenant}'s key from before the restart at ${region}: ${code}${answer.ok ? '' : ` ${answer.error.kind === 'status' ? answer.error.details : ''}`}`,
        );
      sent.push({
        ...sentRequest(id, tenant, region, body.max_tokens, content),
        outcome: code === 'OK' ? 'completed' : code === 'RESOURCE_EXHAUSTED' ? 'refused' : 'failed',
        codes: [code],
        usage: answer.ok ? answer.value.usage : undefined,
        servedRegion: answer.ok ? answer.value.servedRegion : undefined,
      });
    }
  }
  return sent;
}

/** The riders' daily requests go on from where they were: before + what completed since, at every region (bounded wait). */
async function checkCarried(
  client: (region: ChaosRegion, tenant: ChaosTenant) => CarpoolClient,
  before: UsageTable,
  sent: readonly SentRequest[],
  problems: string[],
): Promise<void> {
  const was = before.get('us-east/riders');
  const daily = typeof was === 'string' ? undefined : was?.find((limit) => limit.metric === 'requests' && limit.window === 'day');
  if (daily === undefined) return;
  const expected = daily.used + sent.filter((request) => request.tenant === 'riders' && request.outcome === 'completed').length;
  for (const region of chaosRegions) {
    let used: number | undefined;
    for (let attempt = 0; attempt < 30 && used !== expected; attempt++) {
      if (attempt > 0) await sleep(200);
      const answer = await client(region, 'riders').getUsage({ consistency: 'quorum', user: '' }, { deadlineMs: Date.now() + 10_000 });
      const now = answer.ok ? answer.value.limits.find((limit) => limit.metric === 'requests' && limit.window === 'day') : undefined;
      // A day that turned meanwhile starts from zero: nothing to compare.
      if (now !== undefined && now.resetsAtMs !== daily.resetsAtMs) return;
      used = now?.used;
    }
    if (used !== expected)
      problems.push(
        `riders' requests per day at ${region} after the restart: ${used} at QUORUM, expected ${expected} (${daily.used} before it and the completions since)`,
      );
  }
}
