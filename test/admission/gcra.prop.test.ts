// Proves the GCRA limiter never admits more than burst + rate × W in any window.
// It always admits a request spaced a full interval after the last, decides exactly like an
// unbounded reference while its key bound is not reached, and cannot be tricked by a backwards
// clock.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GcraLimiter, type GcraDecision } from '../../src/admission/gcra.js';
import { checkProperty } from '../support/property.js';

interface Config {
  readonly rate: number;
  readonly periodMs: number;
  readonly burst: number;
}

interface Op {
  readonly key: number;
  /** Time since the previous op; may be negative where the clock is allowed to step back. */
  readonly dtMs: number;
  readonly cost: number;
}

const keyCount = 6;
const arbConfig: fc.Arbitrary<Config> = fc.record({
  rate: fc.integer({ min: 1, max: 10 }),
  periodMs: fc.integer({ min: 1, max: 2_000 }),
  burst: fc.integer({ min: 1, max: 6 }),
});

/** Steps of up to three emission intervals, so runs mix bursts, refusals and idle keys. */
function arbOps(config: Config, backwards: boolean): fc.Arbitrary<Op[]> {
  const intervalMs = Math.ceil(config.periodMs / config.rate);
  const dtMs = backwards
    ? fc.oneof(fc.integer({ min: 0, max: 3 * intervalMs }), fc.integer({ min: -3 * intervalMs * config.burst, max: 0 }))
    : fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 * intervalMs }));
  return fc.array(fc.record({ key: fc.nat(keyCount - 1), dtMs, cost: fc.integer({ min: 1, max: 3 }) }), {
    maxLength: 80,
    size: 'max',
  });
}

const arbRun = (backwards: boolean): fc.Arbitrary<[Config, Op[]]> => arbConfig.chain((config) => fc.tuple(fc.constant(config), arbOps(config, backwards)));

/** The textbook algorithm over integer ticks of 1/rate ms, with no key bound: the reference. */
class ReferenceGcra {
  private readonly tatTicks = new Map<number, number>();

  constructor(private readonly config: Config) {}

  take(key: number, nowMs: number, cost: number): GcraDecision {
    const { rate, periodMs, burst } = this.config;
    const nowTicks = nowMs * rate;
    const next = Math.max(this.tatTicks.get(key) ?? nowTicks, nowTicks) + cost * periodMs;
    const over = next - nowTicks - burst * periodMs;
    if (over > 0) return { allowed: false, reason: 'rate', retryAfterMs: Math.ceil(over / rate) };
    this.tatTicks.set(key, next);
    return { allowed: true, remaining: Math.floor((burst * periodMs - (next - nowTicks)) / periodMs) };
  }

  /** For each key whose TAT lies ahead of the clock, the whole ms until it does not. */
  activeIdleInMs(nowMs: number): Map<number, number> {
    const active = new Map<number, number>();
    for (const [key, tat] of this.tatTicks) {
      if (tat > nowMs * this.config.rate) active.set(key, Math.ceil((tat - nowMs * this.config.rate) / this.config.rate));
    }
    return active;
  }
}

function keyName(key: number): string {
  return `k${key}`;
}

describe('GcraLimiter properties', () => {
  it('admits at most burst + rate × W cells in any window of W ms', () => {
    checkProperty(
      fc.property(arbRun(false), ([config, ops]) => {
        const limiter = new GcraLimiter<string>(config);
        const admitted: { atMs: number; cost: number }[][] = Array.from({ length: keyCount }, () => []);
        let nowMs = 0;
        for (const op of ops) {
          nowMs += op.dtMs;
          const decision = limiter.take(keyName(op.key), nowMs, op.cost);
          if (decision.allowed) admitted[op.key]!.push({ atMs: nowMs, cost: op.cost });
        }
        // The fullest window starts and ends on admissions, so checking every pair covers all.
        for (const perKey of admitted) {
          for (let i = 0; i < perKey.length; i++) {
            let cells = 0;
            for (let j = i; j < perKey.length; j++) {
              cells += perKey[j]!.cost;
              const windowMs = perKey[j]!.atMs - perKey[i]!.atMs;
              // cells ≤ burst + rate × W / period, multiplied out to stay in integers.
              expect((cells - config.burst) * config.periodMs).toBeLessThanOrEqual(windowMs * config.rate);
            }
          }
        }
      }),
      300,
    );
  });

  it('always admits a request spaced cost × T after the previous admission of its key', () => {
    checkProperty(
      fc.property(arbRun(false), ([config, ops]) => {
        const limiter = new GcraLimiter<string>(config);
        const lastAdmittedMs = new Map<number, number>();
        let nowMs = 0;
        for (const op of ops) {
          nowMs += op.dtMs;
          const decision = limiter.take(keyName(op.key), nowMs, op.cost);
          const last = lastAdmittedMs.get(op.key);
          const spaced = last === undefined || (nowMs - last) * config.rate >= op.cost * config.periodMs;
          if (spaced && op.cost <= config.burst) expect(decision.allowed).toBe(true);
          if (decision.allowed) lastAdmittedMs.set(op.key, nowMs);
        }
      }),
      300,
    );
  });

  it('decides exactly like the unbounded reference, and refuses for room only when the bound is full of active keys', () => {
    checkProperty(
      fc.property(arbRun(false), fc.integer({ min: 1, max: keyCount - 1 }), ([config, ops], keysMax) => {
        const limiter = new GcraLimiter<string>({ ...config, keysMax });
        const reference = new ReferenceGcra(config);
        let nowMs = 0;
        for (const op of ops) {
          nowMs += op.dtMs;
          const decision = limiter.take(keyName(op.key), nowMs, op.cost);
          expect(limiter.size).toBeLessThanOrEqual(keysMax);
          if (op.cost > config.burst) {
            expect(decision).toEqual({ allowed: false, reason: 'cost-exceeds-burst', burst: config.burst });
            continue;
          }
          const active = reference.activeIdleInMs(nowMs);
          if (!active.has(op.key) && active.size >= keysMax) {
            expect(decision).toEqual({ allowed: false, reason: 'limiter-full', retryAfterMs: Math.min(...active.values()) });
          } else {
            expect(decision).toEqual(reference.take(op.key, nowMs, op.cost));
          }
        }
      }),
      300,
    );
  });

  it("grants no more than the burst while the clock stands or steps back, and never hints past the request's own cost", () => {
    checkProperty(
      fc.property(arbRun(true), ([config, ops]) => {
        const limiter = new GcraLimiter<string>(config);
        // Per key: cells admitted since the clock last moved forward.
        const cellsSinceForward = new Map<number, number>();
        let nowMs = 1_000_000;
        for (const op of ops) {
          if (op.dtMs > 0) cellsSinceForward.clear();
          nowMs += op.dtMs;
          const decision = limiter.take(keyName(op.key), nowMs, op.cost);
          if (decision.allowed) {
            const cells = (cellsSinceForward.get(op.key) ?? 0) + op.cost;
            cellsSinceForward.set(op.key, cells);
            expect(cells).toBeLessThanOrEqual(config.burst);
          } else if (decision.reason === 'rate') {
            expect(decision.retryAfterMs).toBeLessThanOrEqual(Math.ceil((op.cost * config.periodMs) / config.rate));
          }
        }
      }),
      300,
    );
  });
});
