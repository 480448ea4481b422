// The seeded fault schedule of a WAN chaos run, as data: partitions of every kind the region count
// allows (the simulator's kinds, sim/network.ts), each silent or loud, lossy and slow links, and
// SIGKILLs of single nodes, one of them while a partition lasts. A pure function of the seed and
// the run's shape, so a failing run's faults replay exactly (its timing does not).
import { SeededRandom } from '../../src/core/random.js';
import { partitionRegionsMin } from '../../sim/scenario-file.js';
import type { PartitionKind } from '../../sim/scenario.js';
import { partitionPairs } from '../../sim/network.js';
import type { Cut } from './wan-links.js';

export type WanFault =
  | {
      readonly kind: 'partition';
      readonly atMs: number;
      readonly durationMs: number;
      readonly partition: PartitionKind;
      /** The node cut off (isolate, one-way), the bridge, or where the majority starts. */
      readonly node: number;
      readonly cut: Exclude<Cut, 'none'>;
    }
  /** Every link from and to `node` loses `rate` of its chunks (each late by a retransmission). */
  | { readonly kind: 'loss'; readonly atMs: number; readonly durationMs: number; readonly node: number; readonly rate: number }
  /** Every link from and to `node` is `extraMs` slower one way (a congested or rerouted path). */
  | { readonly kind: 'slow'; readonly atMs: number; readonly durationMs: number; readonly node: number; readonly extraMs: number }
  | { readonly kind: 'kill'; readonly atMs: number; readonly node: number };

export interface WanScheduleShape {
  readonly regions: number;
  /** Faults start after this and are all over by `faultsEndMs`. */
  readonly faultsStartMs: number;
  readonly faultsEndMs: number;
  /** Each partition lasts within [min, max] ms; the gap after one within the same bounds. */
  readonly partitionMs: readonly [number, number];
}

/** The partition kinds that cut anything among `regions` nodes. */
export function feasibleKinds(regions: number): PartitionKind[] {
  return (['isolate', 'majority', 'one-way', 'bridge', 'ring'] as const).filter((kind) => regions >= partitionRegionsMin(kind));
}

/**
 * One partition at a time, the kinds in a seeded order that repeats until the time is up, each
 * alternately silent and loud (the first's style drawn; one-way ones always silent); between two
 * partitions a lossy or slow node; and a kill in every other gap, plus one kill inside the
 * second partition, at the node it cuts off.
 */
export function planWanFaults(seed: number, shape: WanScheduleShape): WanFault[] {
  const random = new SeededRandom(seed);
  const kinds = shuffle(feasibleKinds(shape.regions), random);
  const [shortest, longest] = shape.partitionMs;
  const draw = (): number => shortest + random.int(longest - shortest + 1);
  const faults: WanFault[] = [];
  let cut: 'hold' | 'reset' = random.float() < 0.5 ? 'hold' : 'reset';
  let atMs = shape.faultsStartMs;
  let killedInPartition = false;
  for (let i = 0; ; i++) {
    const durationMs = draw();
    if (atMs + durationMs > shape.faultsEndMs) break;
    const partition = kinds[i % kinds.length] as PartitionKind;
    const node = random.int(shape.regions);
    // A reset cannot go one way: TCP loses the whole connection, so a one-way cut is silent.
    faults.push({ kind: 'partition', atMs, durationMs, partition, node, cut: partition === 'one-way' ? 'hold' : cut });
    if (!killedInPartition && i >= 1) {
      // A node killed while cut off: it restarts into the partition.
      faults.push({ kind: 'kill', atMs: atMs + Math.floor(durationMs / 3), node });
      killedInPartition = true;
    }
    cut = cut === 'hold' ? 'reset' : 'hold';
    const gapMs = draw();
    const between = atMs + durationMs + Math.floor(gapMs / 4);
    const spanMs = Math.floor(gapMs / 2);
    const other = random.int(shape.regions);
    if (i % 2 === 0) faults.push({ kind: 'loss', atMs: between, durationMs: spanMs, node: other, rate: 0.05 + random.int(16) / 100 });
    else faults.push({ kind: 'slow', atMs: between, durationMs: spanMs, node: other, extraMs: 50 + random.int(200) });
    if (i % 2 === 1) faults.push({ kind: 'kill', atMs: between + random.int(Math.max(1, spanMs)), node: random.int(shape.regions) });
    atMs += durationMs + gapMs;
  }
  return faults.filter((fault) => fault.atMs < shape.faultsEndMs).sort((a, b) => a.atMs - b.atMs);
}

/** The directed links a partition cuts. */
export function cutLinks(fault: Extract<WanFault, { kind: 'partition' }>, regions: number): [number, number][] {
  return partitionPairs(regions, fault.partition, fault.node);
}

export function describeFault(fault: WanFault, names: readonly string[]): string {
  const name = (node: number): string => names[node] ?? `node ${node}`;
  switch (fault.kind) {
    case 'partition':
      return `${fault.cut === 'hold' ? 'silent' : 'loud'} ${fault.partition} partition at ${name(fault.node)} for ${(fault.durationMs / 1000).toFixed(1)} s`;
    case 'loss':
      return `${Math.round(fault.rate * 100)} % loss on ${name(fault.node)}'s links for ${(fault.durationMs / 1000).toFixed(1)} s`;
    case 'slow':
      return `${name(fault.node)}'s links ${fault.extraMs} ms slower one way for ${(fault.durationMs / 1000).toFixed(1)} s`;
    case 'kill':
      return `SIGKILL ${name(fault.node)}`;
  }
}

function shuffle<T>(items: T[], random: SeededRandom): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
