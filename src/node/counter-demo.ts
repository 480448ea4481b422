import { asReplicaId, type ReplicaId } from '../core/ids.js';
import { SeededRandom } from '../core/random.js';
import { counterKey, type CounterKey } from '../crdt/counter-key.js';
import { windowAt } from '../crdt/window.js';
import { WindowedCounter } from '../crdt/windowed-counter.js';
import { decodeFrame, encodeFrame, type Frame } from '../mesh/wire/frame.js';

/**
 * A self-contained look at the counter layer: three regions count one tenant's tokens, gossip
 * their deltas through the real wire codec over links that lose and delay frames, then run one
 * digest exchange and agree on the exact total. It stands in for `npm start` until the networked
 * mesh exists; the same counters and codec will run there.
 */
export interface DemoOptions {
  readonly seed: number;
  readonly ticks: number;
  /** Probability that a frame is lost on a link. */
  readonly loss: number;
  /** Real milliseconds per tick (one gossip interval); 0 runs as fast as possible. */
  readonly tickMs: number;
  readonly print: (line: string) => void;
}

interface InFlight {
  readonly to: number;
  readonly arriveTick: number;
  readonly bytes: Uint8Array;
}

const regions: ReplicaId[] = ['us-east', 'eu-west', 'ap-northeast'].map(asReplicaId);

export async function runCounterDemo(options: DemoOptions, sleep: (ms: number) => Promise<void>): Promise<boolean> {
  const random = new SeededRandom(options.seed);
  const counters = regions.map((region) => new WindowedCounter(region));
  const key: CounterKey = counterKey('tenant', 'acme', 'weighted_tokens', windowAt('day', Date.UTC(2026, 10, 26)));
  const links: InFlight[] = [];
  let truth = 0;
  let sent = 0;
  let lost = 0;
  let bytes = 0;
  const encode = (frame: Frame): Uint8Array => {
    const encoded = encodeFrame(frame);
    if (!encoded.ok) throw new Error('demo frames are small');
    bytes += encoded.value.length;
    return encoded.value;
  };
  const deliver = (to: number, frameBytes: Uint8Array): void => {
    const decoded = decodeFrame(frameBytes);
    if (!decoded.ok) throw new Error(`demo frame failed to decode: ${decoded.error.detail}`);
    if (decoded.value.kind === 'counter-delta') counters[to]!.join(decoded.value.delta);
  };
  options.print(`3 regions, ${options.ticks} gossip intervals, ${Math.round(options.loss * 100)}% frame loss, seed ${options.seed}`);
  for (let tick = 0; tick < options.ticks; tick++) {
    // Traffic: each region admits a few requests and reserves, then settles, their tokens.
    counters.forEach((counter) => {
      for (let i = random.int(4); i > 0; i--) {
        const reserved = 1000 + random.int(4000);
        const used = random.int(reserved);
        counter.increment(key, reserved);
        counter.decrement(key, reserved - used);
        truth += used;
      }
    });
    // Gossip: one batched delta per region per interval, to every peer, lossy and delayed.
    counters.forEach((counter, from) => {
      const delta = counter.takeDelta();
      if (delta.entries.length === 0) return;
      const frameBytes = encode({ kind: 'counter-delta', delta });
      for (let to = 0; to < counters.length; to++) {
        if (to === from) continue;
        sent++;
        if (random.float() < options.loss) lost++;
        else links.push({ to, arriveTick: tick + 1 + random.int(3), bytes: frameBytes });
      }
    });
    for (let i = links.length - 1; i >= 0; i--) {
      const message = links[i]!;
      if (message.arriveTick <= tick) {
        links.splice(i, 1);
        deliver(message.to, message.bytes);
      }
    }
    if (tick % 10 === 9) options.print(`  tick ${String(tick + 1).padStart(4)}  ${view(counters, key, truth)}`);
    if (options.tickMs > 0) await sleep(options.tickMs);
  }
  for (const message of links.splice(0)) deliver(message.to, message.bytes);
  options.print(`after traffic     ${view(counters, key, truth)}  (${lost} of ${sent} frames lost)`);
  // Anti-entropy: each region sends its digest to each peer and joins the repair it gets back.
  for (let to = 0; to < counters.length; to++) {
    for (let from = 0; from < counters.length; from++) {
      if (from === to) continue;
      const digestFrame = decodeFrame(encode({ kind: 'digest', digest: counters[to]!.digest() }));
      if (!digestFrame.ok || digestFrame.value.kind !== 'digest') throw new Error('digest failed to decode');
      deliver(to, encode({ kind: 'counter-delta', delta: counters[from]!.deltaSince(digestFrame.value.digest) }));
    }
  }
  options.print(`after anti-entropy ${view(counters, key, truth)}  (${bytes} bytes on the wire in all)`);
  const converged = counters.every((counter) => counter.value(key) === truth);
  options.print(converged ? 'all regions agree on the exact total' : 'REGIONS DISAGREE: this is a bug');
  return converged;
}

function view(counters: readonly WindowedCounter[], key: CounterKey, truth: number): string {
  const values = counters.map((c, i) => `${regions[i]}=${c.value(key)}`).join('  ');
  return `${values}  truth=${truth}`;
}
