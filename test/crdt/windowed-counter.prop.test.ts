// Proves the windowed counter is a CRDT: lawful joins, deltas equal states, and one anti-entropy
// exchange after any lossy, duplicating, reordering delivery makes every replica read the true sums.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WindowedCounter, type CounterDelta } from '../../src/crdt/windowed-counter.js';
import { decodeFrame, encodeFrame } from '../../src/mesh/wire/frame.js';
import { checkProperty } from '../support/property.js';
import { arbCounterOps, buildReplicas, canonical, copyOf, keyPool, replicaNames } from '../support/counters.js';

const replicaCount = 3;
/** Three replicas' states after random operations, as the laws' inputs. */
const arbStates = arbCounterOps(replicaCount, 40).map((ops) => buildReplicas(replicaCount, ops));

function joinAll(into: WindowedCounter, ...others: WindowedCounter[]): WindowedCounter {
  for (const other of others) into.join(other.state());
  return into;
}

/** Sends a delta through the wire codec, as the mesh will. */
function overTheWire(delta: CounterDelta): CounterDelta {
  const encoded = encodeFrame({ kind: 'counter-delta', delta });
  if (!encoded.ok) throw new Error('frame too large');
  const decoded = decodeFrame(encoded.value);
  if (!decoded.ok || decoded.value.kind !== 'counter-delta') throw new Error(`decode failed: ${JSON.stringify(decoded)}`);
  return decoded.value.delta;
}

describe('WindowedCounter laws', () => {
  it('join is commutative', () => {
    checkProperty(
      fc.property(arbStates, ([x, y]) => {
        const xy = joinAll(copyOf(x!), y!);
        const yx = joinAll(new WindowedCounter(x!.self), y!, x!);
        expect(canonical(xy)).toEqual(canonical(yx));
      }),
    );
  });

  it('join is associative', () => {
    checkProperty(
      fc.property(arbStates, ([x, y, z]) => {
        const left = joinAll(joinAll(copyOf(x!), y!), z!);
        const right = joinAll(copyOf(x!), joinAll(copyOf(y!), z!));
        expect(canonical(left).entries).toEqual(canonical(right).entries);
      }),
    );
  });

  it('join is idempotent', () => {
    checkProperty(
      fc.property(arbStates, ([x, y]) => {
        const once = joinAll(copyOf(x!), y!);
        const twice = joinAll(joinAll(copyOf(x!), y!), y!, x!);
        expect(canonical(twice)).toEqual(canonical(once));
      }),
    );
  });

  it('joining the stream of deltas equals joining the full states', () => {
    checkProperty(
      fc.property(arbCounterOps(replicaCount, 60), (ops) => {
        const replicas = replicaNames.slice(0, replicaCount).map((id) => new WindowedCounter(id));
        const viaDeltas = new WindowedCounter(replicaNames[4]!);
        for (const op of ops) {
          const replica = replicas[op.replica]!;
          if (op.kind === 'gossip') viaDeltas.join(overTheWire(replica.takeDelta()));
          else if (op.kind === 'inc') replica.increment(keyPool[op.key]!, op.amount);
          else replica.decrement(keyPool[op.key]!, op.amount);
        }
        for (const replica of replicas) viaDeltas.join(replica.takeDelta());
        const viaStates = joinAll(new WindowedCounter(replicaNames[4]!), ...replicas);
        expect(canonical(viaDeltas)).toEqual(canonical(viaStates));
      }),
    );
  });
});

/**
 * A schedule drives replicas through operations, batch sends, and deliveries that may drop a
 * message, deliver it and keep it in flight (a duplicate), or deliver any in-flight message
 * (reordering).
 */
type Step =
  | { kind: 'op'; replica: number; key: number; up: boolean; amount: number }
  | { kind: 'send'; replica: number }
  | { kind: 'deliver'; pick: number; fate: 'deliver' | 'duplicate' | 'drop' };

const arbStep = (replicas: number): fc.Arbitrary<Step> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('op' as const),
        replica: fc.nat(replicas - 1),
        key: fc.nat(keyPool.length - 1),
        up: fc.boolean(),
        amount: fc.integer({ min: 1, max: 500 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('send' as const), replica: fc.nat(replicas - 1) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('deliver' as const),
        pick: fc.nat(),
        fate: fc.constantFrom('deliver' as const, 'duplicate' as const, 'drop' as const),
      }),
    },
  );

describe('WindowedCounter convergence', () => {
  it('after any lossy delivery and one anti-entropy exchange, all replicas read the true sums', () => {
    const arbRun = fc.integer({ min: 2, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.array(arbStep(n), { maxLength: 150, size: 'max' })));
    checkProperty(
      fc.property(arbRun, ([n, steps]) => {
        const replicas = replicaNames.slice(0, n).map((id) => new WindowedCounter(id));
        const truth = new Map<string, number>();
        const inFlight: { to: number; bytes: Uint8Array }[] = [];
        for (const step of steps) {
          if (step.kind === 'op') {
            const key = keyPool[step.key]!;
            const replica = replicas[step.replica]!;
            expect((step.up ? replica.increment(key, step.amount) : replica.decrement(key, step.amount)).ok).toBe(true);
            truth.set(key.id, (truth.get(key.id) ?? 0) + (step.up ? step.amount : -step.amount));
          } else if (step.kind === 'send') {
            const delta = replicas[step.replica]!.takeDelta();
            const encoded = encodeFrame({ kind: 'counter-delta', delta });
            if (!encoded.ok) throw new Error('frame too large');
            for (let to = 0; to < n; to++) if (to !== step.replica) inFlight.push({ to, bytes: encoded.value });
          } else if (inFlight.length > 0) {
            const index = step.pick % inFlight.length;
            const message = inFlight[index]!;
            if (step.fate !== 'duplicate') inFlight.splice(index, 1);
            if (step.fate !== 'drop') {
              const decoded = decodeFrame(message.bytes);
              if (!decoded.ok || decoded.value.kind !== 'counter-delta') throw new Error('decode failed');
              replicas[message.to]!.join(decoded.value.delta);
            }
          }
        }
        // One anti-entropy exchange: every replica sends its digest to every other and joins
        // the repair it gets back, over the wire.
        for (const receiver of replicas) {
          for (const sender of replicas) {
            if (sender !== receiver) receiver.join(overTheWire(sender.deltaSince(receiver.digest())));
          }
        }
        for (const key of keyPool) {
          const expected = truth.get(key.id) ?? 0;
          for (const replica of replicas) expect(replica.value(key)).toBe(expected);
        }
        const digests = replicas.map((r) => canonical(r).digest);
        for (const digest of digests) expect(digest).toEqual(digests[0]);
      }),
      200,
    );
  });
});
