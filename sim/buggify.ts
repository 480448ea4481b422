import type { Random } from '../src/core/random.js';
import { type Fault, type MutedLink, rttMatrixMs, type Scenario, type SlowLink, type Workload } from './scenario.js';

/**
 * Aiming a swarm at the dangerous interleavings, in the spirit of FoundationDB's BUGGIFY: a
 * plain swarm draws faults anywhere in a run whose limits bind after seconds, so a protocol
 * change that is wrong only in a narrow window (a round's write and read reordered, a node
 * answering reads the moment it restarts empty) is rarely handed that window. A scenario with
 * `buggify: true` gets, on top of its swarm draw, each of these knobs with probability 1/2
 * (swarm-style: a knob that masks a bug is off in half the runs):
 *
 * - **small requests**: estimates of 1 to 16 tokens, so an escrow balance meets a request that
 *   lacks exactly one unit, and limits are counted to the token;
 * - **a tight limit**: a few estimates per region, so limits bind within the first round trips,
 *   while every region's first rounds are still in flight together;
 * - **no refunds**: every request uses its whole estimate, so a lost or unseen write is never
 *   made up by the refunds of later settlements (an overshoot stays an overshoot);
 * - **amnesia in rounds**: short crashes without state early in the run, while the limits bind
 *   and the rounds race;
 * - **a bridged amnesia**: a bridge partition around one node that crashes without state inside
 *   it, so the halves meet only through a node that forgot what it held, and one edge comes
 *   back late (isolated for a moment from the restart on), so the restarted bridge hears the
 *   other edge first: only the recovery fence stops it from answering that edge's reads before
 *   it holds what the late edge wrote through it;
 * - **lost last words**: a node's gossip is lost to all its peers for a moment (the connections
 *   stay up) and then to one of them, and it crashes without state, for the rest of the traffic,
 *   before anything lost is resent: its peers hold the same versions of it contiguously but
 *   the others hold its last batch above that, so only the held-versions repair of the digest
 *   exchange spreads that batch once its owner is gone (no new link, no lag, masks it);
 * - **even round trips**: every pair of regions slowed to the farthest pair's round trip, with
 *   jitter, so which peer answers a round first changes from round to round and concurrent
 *   rounds can each hear a different peer (else, half the time, **slow links**: one or two
 *   directed links carry extra delay one way, so a round's write and a concurrent round's read
 *   cross in either order);
 * - **heavy loss**: up to 60 % of the droppable frames (gossip deltas, acks) lost, so repairs
 *   through digests and third nodes carry the load.
 *
 * Every draw comes from the swarm's `Random`, after its own draws: a seed is still the whole
 * description of the run, and scenarios without `buggify` draw exactly what they did before.
 */

export const buggifySmallTokensMax = 16;
/** A tight limit: this many estimates per region, at most (at least one per region). */
export const buggifyLimitEstimatesPerRegionMax = 6;
/** Amnesia crashes fall in the first share of the run, while the limits bind. */
export const buggifyEarlyShare = 0.4;
export const buggifyCrashMsMin = 100;
export const buggifyCrashMsMax = 600;
export const buggifySlowLinkMsMin = 20;
export const buggifySlowLinkMsMax = 300;
/** Jitter with even round trips: enough to reorder which peer answers first. */
export const buggifyEvenJitterMsMin = 10;
export const buggifyEvenJitterMsMax = 60;
export const buggifyLossMin = 0.2;
/** A late edge: isolated for this long from the bridge's restart on. */
export const buggifyLateEdgeMsMin = 100;
export const buggifyLateEdgeMsMax = 600;
/**
 * Lost last words: the node's gossip is lost to every peer from this long before its crash to
 * `tail` before it, and to one peer from then on; the crash comes within a resend timeout
 * (`deltaAckTimeoutMsMin`, 250 ms) of the first lost batch, so nothing lost is ever resent.
 */
export const buggifyLastWordsLeadMsMin = 110;
export const buggifyLastWordsLeadMsMax = 240;
export const buggifyLastWordsTailMsMin = 50;
/** At least one gossip batch's worth of time in each part of the lost last words. */
export const buggifyGossipWindowMs = 50;
/**
 * The lost last words come near the end of the traffic, `quiet` to `quiet + span` before it, and
 * the crash lasts to its end: the gap then outlives the last digest exchange that traffic in
 * flight makes look behind, which would repair it as a side effect.
 */
export const buggifyLastWordsQuietMs = 100;
export const buggifyLastWordsSpanMs = 300;
export const buggifyLossMax = 0.6;

export function buggify(random: Random, scenario: Scenario): Scenario {
  const on = (): boolean => random.int(2) === 1;
  let workload: Workload = scenario.workload;
  const faults: Fault[] = [...scenario.faults];
  let network = scenario.network;
  const knobs: string[] = [];

  if (on()) {
    workload = { ...workload, maxTokens: 1 + random.int(buggifySmallTokensMax) };
    knobs.push('small requests');
  }
  if (on() && workload.quota !== undefined && workload.quota.mode !== 'eventual') {
    const estimates = scenario.regions * (1 + random.int(buggifyLimitEstimatesPerRegionMax));
    workload = { ...workload, quota: { ...workload.quota, tokensPerDay: Math.max(1, Math.floor((estimates * workload.maxTokens) / 2)) } };
    knobs.push('tight limit');
  }
  if (on()) {
    workload = { ...workload, refunds: false };
    knobs.push('no refunds');
  }
  if (on()) {
    const crashes = 1 + random.int(3);
    for (let i = 0; i < crashes; i++) faults.push(earlyAmnesia(random, scenario, random.int(scenario.regions)));
    knobs.push('amnesia in rounds');
  }
  if (on() && scenario.regions >= 3) {
    bridgedAmnesia(random, scenario, faults);
    knobs.push('bridged amnesia');
  }
  if (on() && scenario.regions >= 3) {
    const words = lostLastWords(random, scenario);
    network = { ...network, mutedLinks: [...(network.mutedLinks ?? []), ...words.muted] };
    faults.push(words.crash);
    if (oneAmnesiaAtATime(scenario)) keepAmnesiaClear(faults, words.crash);
    knobs.push('lost last words');
  }
  if (on() && scenario.regions >= 3) {
    network = {
      ...network,
      slowLinks: evenRoundTrips(scenario.regions),
      jitterMs: buggifyEvenJitterMsMin + random.int(buggifyEvenJitterMsMax - buggifyEvenJitterMsMin + 1),
    };
    knobs.push('even round trips');
  } else if (on() && scenario.regions >= 2) {
    const slowLinks: SlowLink[] = [];
    const count = 1 + random.int(2);
    for (let i = 0; i < count; i++) {
      const from = random.int(scenario.regions);
      const to = (from + 1 + random.int(scenario.regions - 1)) % scenario.regions;
      slowLinks.push({ from, to, extraMs: buggifySlowLinkMsMin + random.int(buggifySlowLinkMsMax - buggifySlowLinkMsMin + 1) });
    }
    network = { ...network, slowLinks };
    knobs.push('slow links');
  }
  if (on()) {
    network = { ...network, loss: Math.round((buggifyLossMin + random.float() * (buggifyLossMax - buggifyLossMin)) * 1000) / 1000 };
    knobs.push('heavy loss');
  }
  faults.sort((a, b) => a.atMs - b.atMs);
  const aimed = knobs.length === 0 ? 'no knob' : knobs.join(', ');
  return { ...scenario, workload, network, faults, description: `${scenario.description} Buggified: ${aimed}.` };
}

/**
 * A bridge partition around one node that crashes without state inside it, and one edge cut
 * off for a moment from the restart on (pushed onto `faults`).
 */
function bridgedAmnesia(random: Random, scenario: Scenario, faults: Fault[]): void {
  const bridge = random.int(scenario.regions);
  const crash = earlyAmnesia(random, scenario, bridge);
  const lead = 200 + random.int(400);
  const atMs = Math.max(0, crash.atMs - lead);
  faults.push({
    kind: 'partition',
    partition: 'bridge',
    node: bridge,
    atMs,
    durationMs: Math.min(scenario.durationMs - atMs, lead + crash.durationMs + random.int(2_000)),
  });
  faults.push(crash);
  if (oneAmnesiaAtATime(scenario)) keepAmnesiaClear(faults, crash);
  const edge = (bridge + 1 + random.int(scenario.regions - 1)) % scenario.regions;
  const restartMs = crash.atMs + crash.durationMs;
  const lateMs = Math.min(scenario.durationMs - restartMs, buggifyLateEdgeMsMin + random.int(buggifyLateEdgeMsMax - buggifyLateEdgeMsMin + 1));
  if (lateMs > 0) faults.push({ kind: 'partition', partition: 'isolate', node: edge, atMs: restartMs, durationMs: lateMs });
}

/** A node's last gossip lost to all its peers, then to one, and its crash to the end of the traffic. */
function lostLastWords(random: Random, scenario: Scenario): { readonly muted: MutedLink[]; readonly crash: Fault } {
  const node = random.int(scenario.regions);
  const leadMs = buggifyLastWordsLeadMsMin + random.int(buggifyLastWordsLeadMsMax - buggifyLastWordsLeadMsMin + 1);
  const tailMs = buggifyLastWordsTailMsMin + random.int(leadMs - buggifyLastWordsTailMsMin - buggifyGossipWindowMs + 1);
  const atMs = Math.max(leadMs, scenario.durationMs - buggifyLastWordsQuietMs - random.int(buggifyLastWordsSpanMs + 1));
  const deaf = (node + 1 + random.int(scenario.regions - 1)) % scenario.regions;
  const muted: MutedLink[] = [];
  for (let to = 0; to < scenario.regions; to++) if (to !== node) muted.push({ from: node, to, fromMs: atMs - leadMs, toMs: atMs - tailMs });
  muted.push({ from: node, to: deaf, fromMs: atMs - tailMs, toMs: atMs });
  return { muted, crash: { kind: 'crash', atMs, durationMs: scenario.durationMs - atMs, node, durable: false } };
}

/**
 * Every pair as far apart as the farthest, give or take the jitter: which peer answers a round
 * first is then a coin toss per round, and three rounds can each hear a different one.
 */
function evenRoundTrips(regions: number): SlowLink[] {
  const slowLinks: SlowLink[] = [];
  let farthest = 0;
  for (let i = 0; i < regions; i++) for (let j = 0; j < regions; j++) if (i !== j) farthest = Math.max(farthest, rttOf(i, j));
  for (let i = 0; i < regions; i++) {
    for (let j = 0; j < regions; j++)
      if (i !== j && rttOf(i, j) < farthest) slowLinks.push({ from: i, to: j, extraMs: Math.floor((farthest - rttOf(i, j)) / 2) });
  }
  return slowLinks;
}

/**
 * Strict and escrow swarms keep one amnesia at a time (sim/swarm.ts): a crash without state that
 * starts within `amnesiaRecoveryMs` of another's end is made durable, the earlier one winning.
 * The aimed crash must stay an amnesia, so the others near it are made durable here instead.
 */
export const amnesiaRecoveryMs = 1_000;

/** Whether the swarm keeps one amnesia at a time for this scenario (sim/swarm.ts). */
export function oneAmnesiaAtATime(scenario: Scenario): boolean {
  return (scenario.workload.quota !== undefined && scenario.workload.quota.mode !== 'eventual') || scenario.workload.claims !== undefined;
}

function keepAmnesiaClear(faults: Fault[], aimed: Fault): void {
  for (let i = 0; i < faults.length; i++) {
    const fault = faults[i] as Fault;
    if (fault === aimed || fault.kind !== 'crash' || fault.durable) continue;
    const apart = fault.atMs >= aimed.atMs + aimed.durationMs + amnesiaRecoveryMs || aimed.atMs >= fault.atMs + fault.durationMs + amnesiaRecoveryMs;
    if (!apart) faults[i] = { ...fault, durable: true };
  }
}

function rttOf(i: number, j: number): number {
  return (rttMatrixMs[i] as readonly number[])[j] as number;
}

function earlyAmnesia(random: Random, scenario: Scenario, node: number): Fault {
  const atMs = random.int(Math.max(1, Math.floor(scenario.durationMs * buggifyEarlyShare)));
  const durationMs = Math.min(scenario.durationMs - atMs, buggifyCrashMsMin + random.int(buggifyCrashMsMax - buggifyCrashMsMin + 1));
  return { kind: 'crash', atMs, durationMs, node, durable: false };
}
