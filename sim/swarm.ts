import { assert } from '../src/core/assert.js';
import { SeededRandom } from '../src/core/random.js';
import type { Fault, NetworkProfile, PartitionKind, Scenario } from './scenario.js';
import { amnesiaRecoveryMs, buggify, oneAmnesiaAtATime } from './buggify.js';
import { faultKinds, faultsMax, frameProbabilityMax, partitionKinds, partitionRegionsMin } from './scenario-file.js';

/**
 * Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): instead of giving every run every
 * kind of fault, each seed switches each fault kind (and each partition kind) on with
 * probability 1/2 and draws its faults only from what is on. Some runs then see many crashes
 * and nothing else, others a storm of mixed partitions; a fault kind that masks a bug (a crash
 * that resets the state a skew would have corrupted) is absent from half the runs, so the bug is
 * not always masked.
 *
 * Everything is drawn from one `SeededRandom`, in a fixed order, so a seed is a complete
 * description of the scenario: `randomScenario(seed, base)` is the same object every time.
 */

/** Faults per swarm scenario: enough to overlap, few enough to tell which one broke the run. */
export const swarmFaultsMax = 6;
/** Shortest fault: a few gossip rounds, so even a short fault has a chance to matter. */
export const swarmFaultMsMin = 100;
/** Network profile ranges: up to 20% loss, 10% duplication, 50 ms extra one-way delay. */
export const swarmLossMax = 0.2;
export const swarmDuplicateMax = 0.1;
export const swarmJitterMsMax = 50;
/**
 * Largest clock skew drawn. The window expiry horizon (src/core/limits.ts) is built to tolerate
 * skew of at least a minute; beyond that a failure would be the documented limit, not a bug.
 */
export const swarmSkewMsMax = 60_000;
export const swarmStrobePeriodMsMin = 10;
export const swarmStrobePeriodMsMax = 5_000;

assert(swarmFaultsMax <= faultsMax, 'a swarm scenario must pass parseScenario');
assert(swarmLossMax <= frameProbabilityMax && swarmDuplicateMax <= frameProbabilityMax, 'a swarm network profile must pass parseScenario');

/**
 * A random scenario built on `base` (regions, durations, workload, disks and bandwidth are kept;
 * faults of the kinds `base.swarmFaults` names, all by default, and the loss, duplication and
 * jitter of the network are drawn). `base.durationMs` must leave room for the shortest fault,
 * which every valid scenario does (durationMs ≥ 1,000).
 */
export function randomScenario(seed: number, base: Scenario): Scenario {
  assert(base.durationMs > swarmFaultMsMin, `the base scenario is shorter than one fault (${base.durationMs} ms)`);
  const random = new SeededRandom(seed);

  const possiblePartitions = partitionKinds.filter((kind) => base.regions >= partitionRegionsMin(kind));
  const partitions = pickSubset(random, possiblePartitions);
  const kinds = pickSubset(random, base.swarmFaults ?? faultKinds);

  const faultCount = 1 + random.int(swarmFaultsMax);
  const faults: Fault[] = [];
  for (let i = 0; i < faultCount; i++) faults.push(randomFault(random, pick(random, kinds), partitions, base));
  // Sorted by start time so that the scenario reads as a timeline in the summary and the report.
  faults.sort((a, b) => a.atMs - b.atMs);

  const network: NetworkProfile = {
    jitterMs: random.int(swarmJitterMsMax + 1),
    loss: roundTo(random.float() * swarmLossMax, 3),
    duplicate: roundTo(random.float() * swarmDuplicateMax, 3),
    bytesPerMs: base.network.bytesPerMs,
  };
  const used = [...new Set(faults.map((f) => (f.kind === 'partition' ? `partition/${f.partition}` : f.kind)))].sort();
  const drawn: Scenario = {
    ...base,
    name: `swarm-${seed}`,
    description: `A swarm run drawn from seed ${seed} on top of "${base.name}": ${faults.length} fault${faults.length === 1 ? '' : 's'} (${used.join(', ')}), loss ${network.loss}, duplication ${network.duplicate}, jitter ${network.jitterMs} ms.`,
    network,
    faults,
  };
  const aimed = base.buggify === true ? buggify(random, drawn) : drawn;
  // Strict rounds, escrow claims and request-id claims all assume at most N − W members lose
  // their state at once (src/mesh/quorum.ts); beyond that no protocol can count what was lost.
  const kept = [...aimed.faults];
  if (oneAmnesiaAtATime(aimed)) keepOneAmnesiaAtATime(kept);
  // Drawn last, and only for a base with a schedule, so every other swarm draws what it drew before.
  return withDrawnSchedule(random, { ...aimed, faults: kept });
}

/** Escape periods, escape ages, levels and aging times a scheduling swarm draws from: the edges (off, every other start, no wait) and the defaults. */
export const swarmEscapeEvery = [0, 2, 3, 5, 10] as const;
export const swarmEscapeAfterMs = [0, 100, 500, 2_000] as const;
export const swarmLevels = [1, 2, 4] as const;
export const swarmAgingMs = [100, 500, 2_000] as const;

/**
 * A request-path base with a `schedule` gets its tier queues' knobs drawn per seed, so the
 * schedule books judge the escape and the counters under many settings: with one level the
 * counters are charged by estimates (where the fairness bound is stated, and checked), with more
 * they follow the tokens used, as the gateway's do.
 */
function withDrawnSchedule(random: SeededRandom, scenario: Scenario): Scenario {
  const path = scenario.workload.requestPath;
  if (path?.schedule === undefined) return scenario;
  const levels = pick(random, swarmLevels);
  const schedule = {
    ...path.schedule,
    escapeEvery: pick(random, swarmEscapeEvery),
    escapeAfterMs: pick(random, swarmEscapeAfterMs),
    levels,
    agingMs: pick(random, swarmAgingMs),
    countersBy: levels === 1 ? ('estimate' as const) : ('used' as const),
  };
  const knobs = `escapes every ${schedule.escapeEvery} after ${schedule.escapeAfterMs} ms, ${levels} level${levels === 1 ? '' : 's'} aging ${schedule.agingMs} ms`;
  return {
    ...scenario,
    description: `${scenario.description} Schedule: ${knobs}.`,
    workload: { ...scenario.workload, requestPath: { ...path, schedule } },
  };
}

function randomFault(random: SeededRandom, kind: Fault['kind'], partitions: readonly PartitionKind[], base: Scenario): Fault {
  // Start anywhere that leaves room for the shortest fault; last until at most the end of the
  // safety phase. Durations are log-uniform so that brief blips and faults lasting most of the
  // run are both common (a uniform draw would make nearly every fault long).
  const atMs = random.int(base.durationMs - swarmFaultMsMin + 1);
  const durationMs = logUniform(random, swarmFaultMsMin, base.durationMs - atMs);
  const node = random.int(base.regions);
  switch (kind) {
    case 'partition': {
      const partition = pick(random, partitions);
      // The node matters for every kind but the ring (it picks the isolated, bridge or
      // rotated node), so it is always drawn: a fixed node 0 would hide node-specific bugs.
      return partition === 'ring' ? { kind, atMs, durationMs, partition } : { kind, atMs, durationMs, partition, node };
    }
    case 'crash':
      return { kind, atMs, durationMs, node, durable: random.int(2) === 1 };
    case 'pause':
      return { kind, atMs, durationMs, node };
    case 'skew':
      return { kind, atMs, durationMs, node, skewMs: signedSkewMs(random) };
    case 'strobe':
      return { kind, atMs, durationMs, node, skewMs: signedSkewMs(random), periodMs: logUniform(random, swarmStrobePeriodMsMin, swarmStrobePeriodMsMax) };
  }
}

/**
 * Strict and escrow are safe while at most N − W members have lost their state at once (see
 * src/mesh/quorum.ts): data lost on more is gone. The swarm keeps to that model with one: a crash
 * without state that starts while another one is down, or recovering (a second), is made
 * durable instead. Durable crashes, partitions and everything else still overlap freely: a disk
 * keeps every replica's entries its node had acknowledged, so restarts with state lose nothing
 * a quorum counted. The window after an amnesia's end is `amnesiaRecoveryMs` (sim/buggify.ts,
 * which keeps its aimed crashes clear of the others).
 */
function keepOneAmnesiaAtATime(faults: Fault[]): void {
  let busyUntilMs = -Infinity;
  for (let i = 0; i < faults.length; i++) {
    const fault = faults[i] as Fault;
    if (fault.kind !== 'crash' || fault.durable) continue;
    if (fault.atMs < busyUntilMs) faults[i] = { ...fault, durable: true };
    else busyUntilMs = fault.atMs + fault.durationMs + amnesiaRecoveryMs;
  }
}

/** Each element with probability 1/2; never empty, so every scenario has something to draw. */
function pickSubset<T>(random: SeededRandom, all: readonly T[]): T[] {
  assert(all.length > 0, 'nothing to choose from');
  const chosen = all.filter(() => random.int(2) === 1);
  return chosen.length > 0 ? chosen : [pick(random, all)];
}

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

/** An integer in [min, max], log-uniformly distributed. */
function logUniform(random: SeededRandom, min: number, max: number): number {
  const value = Math.round(Math.exp(Math.log(min) + random.float() * (Math.log(max) - Math.log(min))));
  return Math.min(max, Math.max(min, value));
}

/** A skew of 1 ms to `swarmSkewMsMax` either way, log-uniform: small skews are the subtle ones. */
function signedSkewMs(random: SeededRandom): number {
  const magnitude = logUniform(random, 1, swarmSkewMsMax);
  return random.int(2) === 1 ? magnitude : -magnitude;
}

function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
