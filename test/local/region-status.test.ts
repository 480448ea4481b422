// Proves the launcher's status line computes requests per second from the cumulative count, and
// prints "-" for what a node's status lacks instead of failing.
import { describe, expect, it } from 'vitest';
import { formatRegionStatus, requestsPerSecond, sampleOf, unreachableSample } from '../../src/local/region-status.js';

const status = (requests: number | undefined, connected: number): unknown => ({
  peers: [{ connected: connected > 0 }, { connected: connected > 1 }],
  ...(requests === undefined ? {} : { gateway: { requests, completed: requests, inFlight: 1, queueDepth: 3 } }),
});

describe('region status', () => {
  it('reads the rate, queue and peers', () => {
    const before = sampleOf(status(10, 2), 1_000);
    const after = sampleOf(status(15, 2), 3_000);
    expect(requestsPerSecond(before, after)).toBe(2.5);
    expect(formatRegionStatus('us-east', 8, before, after)).toBe('us-east      2.5 req/s  queue 3  in flight 1  peers 2/2');
  });

  it('prints - without a gateway section or a previous sample', () => {
    const sample = sampleOf(status(undefined, 1), 1_000);
    expect(formatRegionStatus('eu-west', 7, undefined, sample)).toBe('eu-west       - req/s  queue -  in flight -  peers 1/2');
    expect(formatRegionStatus('eu-west', 7, undefined, sampleOf('garbage', 0))).toBe('eu-west       - req/s  queue -  in flight -  peers -');
  });

  it('has no rate when the count went backwards (a restarted node)', () => {
    expect(requestsPerSecond(sampleOf(status(50, 2), 0), sampleOf(status(2, 2), 2_000))).toBeUndefined();
  });

  it('says when a node does not answer', () => {
    expect(formatRegionStatus('ap-south', 8, undefined, unreachableSample(0))).toBe('ap-south  not answering on its admin endpoint');
  });
});
