// Proves the launcher's status line computes requests per second from the cumulative count, and
// prints "-" for what a node's status lacks instead of failing; and that status lines are printed
// when something a reader acts on changes (answering, restart, peers, queue crossing zero) or at
// the periodic interval, not at every poll.
import { describe, expect, it } from 'vitest';
import {
  formatRegionStatus,
  type RegionSample,
  requestsPerSecond,
  sampleOf,
  StatusSchedule,
  statusChange,
  unreachableSample,
} from '../../src/local/region-status.js';

const status = (requests: number | undefined, connected: number, extra: { queueDepth?: number; replica?: string } = {}): unknown => ({
  replica: extra.replica ?? 'us-east-1~a',
  peers: [{ connected: connected > 0 }, { connected: connected > 1 }],
  ...(requests === undefined ? {} : { gateway: { requests, completed: requests, inFlight: 1, queueDepth: extra.queueDepth ?? 3 } }),
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

  it('has no rate when the count went backwards or the replica changed (a restarted node)', () => {
    expect(requestsPerSecond(sampleOf(status(50, 2), 0), sampleOf(status(2, 2), 2_000))).toBeUndefined();
    expect(requestsPerSecond(sampleOf(status(2, 2), 0), sampleOf(status(50, 2, { replica: 'us-east-1~b' }), 2_000))).toBeUndefined();
  });

  it('says when a node does not answer', () => {
    expect(formatRegionStatus('ap-south', 8, undefined, unreachableSample(0))).toBe('ap-south  not answering on its admin endpoint');
  });
});

describe('statusChange', () => {
  const base = sampleOf(status(10, 2, { queueDepth: 0 }), 0);
  it('names what a reader acts on, and ignores rates, in-flight counts and queue lengths above zero', () => {
    expect(statusChange(base, sampleOf(status(500, 2, { queueDepth: 0 }), 1_000))).toBeUndefined();
    expect(statusChange(sampleOf(status(10, 2, { queueDepth: 3 }), 0), sampleOf(status(10, 2, { queueDepth: 9 }), 1_000))).toBeUndefined();
    expect(statusChange(base, sampleOf(status(10, 1, { queueDepth: 0 }), 1_000))).toBe('peers were 2/2');
    expect(statusChange(base, sampleOf(status(10, 2, { queueDepth: 2 }), 1_000))).toBe('requests queue');
    expect(statusChange(sampleOf(status(10, 2, { queueDepth: 2 }), 0), base)).toBe('queue empty');
    expect(statusChange(base, sampleOf(status(0, 0, { queueDepth: 0, replica: 'us-east-1~b' }), 1_000))).toBe('restarted, peers were 2/2');
    expect(statusChange(base, unreachableSample(1_000))).toBe('stopped answering');
    expect(statusChange(unreachableSample(0), unreachableSample(1_000))).toBeUndefined();
    expect(statusChange(unreachableSample(0), base)).toBe('answering again');
  });
});

describe('StatusSchedule', () => {
  const regions = ['us-east', 'eu-west'];
  const both = (atMs: number, east: unknown, west: unknown): RegionSample[] => [sampleOf(east, atMs), sampleOf(west, atMs)];

  it('prints every region at first, then only on change, then every region once the interval passed', () => {
    const schedule = new StatusSchedule(regions, 30_000);
    expect(schedule.lines(0, both(0, status(0, 1), status(0, 1)))).toEqual([
      'us-east       - req/s  queue 3  in flight 1  peers 1/2',
      'eu-west       - req/s  queue 3  in flight 1  peers 1/2',
    ]);
    // Traffic alone is no reason to print between the periodic lines.
    for (let second = 1; second < 30; second++) expect(schedule.lines(second * 1_000, both(second * 1_000, status(second * 10, 1), status(0, 1)))).toEqual([]);
    // A lost peer at us-east: its line alone, saying why.
    expect(schedule.lines(29_500, both(29_500, status(290, 0), status(0, 1)))).toEqual([
      'us-east     9.8 req/s  queue 3  in flight 1  peers 0/2  (peers were 1/2)',
    ]);
    expect(schedule.lines(29_800, both(29_800, status(298, 0), status(0, 1)))).toEqual([]);
    // 30 s after the last full print: every region, rates since each region's last line.
    expect(schedule.lines(30_000, both(30_000, status(300, 0), status(0, 1)))).toEqual([
      'us-east    20.0 req/s  queue 3  in flight 1  peers 0/2',
      'eu-west     0.0 req/s  queue 3  in flight 1  peers 1/2',
    ]);
    expect(schedule.lines(31_000, both(31_000, status(300, 0), status(0, 1)))).toEqual([]);
  });

  it('prints on change only with an interval of 0, a node that stops answering once', () => {
    const schedule = new StatusSchedule(regions, 0);
    expect(schedule.lines(0, both(0, status(0, 1), status(0, 1)))).toHaveLength(2);
    expect(schedule.lines(3_600_000, both(3_600_000, status(0, 1), status(0, 1)))).toEqual([]);
    const down = [sampleOf(status(0, 1), 3_601_000), unreachableSample(3_601_000)];
    expect(schedule.lines(3_601_000, down)).toEqual(['eu-west  not answering on its admin endpoint  (stopped answering)']);
    expect(schedule.lines(3_602_000, down)).toEqual([]);
    expect(schedule.lines(3_605_000, both(3_605_000, status(0, 1), status(0, 1, { replica: 'eu-west-1~b' })))).toEqual([
      'eu-west       - req/s  queue 3  in flight 1  peers 1/2  (answering again)',
    ]);
  });
});
