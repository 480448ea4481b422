// Proves the hybrid logical clock follows wall time and orders stamps, within its drift bound.
import { describe, expect, it } from 'vitest';
import { compareStamps, HybridClock } from '../../src/core/hlc.js';
import type { NodeId } from '../../src/core/ids.js';
import { hlcAheadMsMax } from '../../src/core/limits.js';

const node = 'n1' as NodeId;

describe('hybrid logical clock', () => {
  it('follows wall time, and counts within a millisecond or while the clock stands still or steps back', () => {
    const clock = new HybridClock(node);
    const a = clock.now(1000);
    const b = clock.now(1000);
    const c = clock.now(900);
    const d = clock.now(1001);
    expect([a, b, c, d].map((s) => [s.wallMs, s.logical])).toEqual([
      [1000, 0],
      [1000, 1],
      [1000, 2],
      [1001, 0],
    ]);
    expect(compareStamps(a, b)).toBeLessThan(0);
    expect(compareStamps(c, d)).toBeLessThan(0);
  });

  it('stamps after a remote stamp it observed, within the drift bound', () => {
    const clock = new HybridClock(node);
    clock.observe({ wallMs: 5000, logical: 7, node: 'n2' as NodeId }, 1000);
    const next = clock.now(1000);
    expect([next.wallMs, next.logical]).toEqual([5000, 8]);
  });

  it('does not leap after a stamp too far ahead of the local clock', () => {
    const clock = new HybridClock(node);
    clock.observe({ wallMs: 1000 + hlcAheadMsMax + 1, logical: 0, node: 'n2' as NodeId }, 1000);
    expect(clock.now(1000).wallMs).toBe(1000);
  });

  it('breaks exact ties by node id', () => {
    expect(compareStamps({ wallMs: 1, logical: 1, node: 'a' as NodeId }, { wallMs: 1, logical: 1, node: 'b' as NodeId })).toBeLessThan(0);
    expect(compareStamps({ wallMs: 1, logical: 1, node: 'a' as NodeId }, { wallMs: 1, logical: 1, node: 'a' as NodeId })).toBe(0);
  });
});
