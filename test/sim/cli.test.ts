// Proves the simulator CLI parses its flags and formats runs, without running a simulation.
// Every mistake is refused naming its flag.
import { describe, expect, it } from 'vitest';
import { type CliOptions, parseArgs, parseCompareArgs, parseDuration } from '../../sim/cli-args.js';
import {
  faultKindsOf,
  formatCount,
  formatDuration,
  formatOverrideNote,
  formatProgress,
  formatScenarioList,
  formatSpeedUp,
  formatSummary,
  formatSwarmCrash,
  formatSwarmLine,
  formatSwarmTally,
  swarmReplayCommand,
} from '../../sim/cli-format.js';
import type { Scenario } from '../../sim/scenario.js';
import type { SimResult } from '../../sim/sim-result.js';

const scenario: Scenario = {
  name: 'partition-heal',
  description: 'A majority split, healed.',
  regions: 5,
  durationMs: 600_000,
  convergenceBudgetMs: 10_000,
  gossipIntervalMs: 50,
  workload: { tenants: 20, requestsPerSecond: 200, arrivals: 'poisson', burstSize: 1, maxTokens: 4096 },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0, bytesPerMs: 0 },
  faults: [
    { kind: 'partition', atMs: 20_000, durationMs: 20_000, partition: 'majority' },
    { kind: 'crash', atMs: 30_000, durationMs: 5_000, node: 2, durable: true },
    { kind: 'crash', atMs: 40_000, durationMs: 5_000, node: 3, durable: false },
  ],
};

const passed: SimResult = {
  scenario,
  seed: 42,
  ok: true,
  failures: [],
  traceHash: '9f1c0ffee',
  convergence: [
    { fault: 'majority', convergedAfterMs: 320 },
    { fault: 'crash', convergedAfterMs: 1_250 },
  ],
  simulatedMs: 610_000,
  wallMs: 20_000,
  stats: { requests: 600_000, framesDelivered: 1_234_567, framesDropped: 12_345, bytesDelivered: 45_600_000, events: 9_876_543 },
  durability: { commits: 123_456, commitsRefused: 0, restarts: 1, interrupted: 17, settlementsLost: 3, undispatched: 2, refusedDiskFailing: 0 },
  record: {
    regions: ['us-east', 'us-west', 'eu-west', 'ap-northeast', 'ap-southeast'],
    sampleEveryMs: 1_000,
    samples: [],
    faults: scenario.faults,
    healedAtMs: 600_000,
  },
  replay: 'npm run sim -- --scenario partition-heal --regions 5 --seed 42 --duration 600000',
};

const failed: SimResult = {
  ...passed,
  seed: 7,
  ok: false,
  failures: [
    { checker: 'convergence', atMs: 605_000, message: 'us-east reads 10 tokens, the oracle 12' },
    { checker: 'final-read', atMs: 610_000, message: 'eu-west never converged' },
  ],
  convergence: [{ fault: 'majority', convergedAfterMs: undefined }],
  replay: 'npm run sim -- --scenario partition-heal --regions 5 --seed 7 --duration 600000',
};

function parsed(argv: string[]): CliOptions {
  const result = parseArgs(argv);
  if (!result.ok) throw new Error(`parseArgs(${argv.join(' ')}) failed: ${result.error}`);
  return result.value;
}

function errorOf(argv: string[]): string {
  const result = parseArgs(argv);
  return result.ok ? '(accepted)' : result.error;
}

describe('parseDuration', () => {
  it('reads seconds, minutes, hours and bare milliseconds', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration('1.1s')).toBe(1_100);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('60000')).toBe(60_000);
  });

  it('refuses anything else', () => {
    for (const text of ['', 'abc', '10x', '-5s', '1m30s', 's', '0.0001s', '1e3', '10 m']) expect(parseDuration(text), text).toBeUndefined();
  });
});

describe('parseArgs', () => {
  it('has defaults for a bare run', () => {
    expect(parsed([])).toEqual({
      scenario: 'partition-heal',
      regions: undefined,
      seed: 1,
      durationMs: undefined,
      swarm: undefined,
      workers: undefined,
      report: undefined,
      list: false,
      table: false,
      quiet: false,
      help: false,
    });
  });

  it('reads every flag, in both --flag value and --flag=value forms', () => {
    expect(
      parsed([
        '--scenario',
        'isolate',
        '--regions',
        '3',
        '--seed=42',
        '--duration',
        '10m',
        '--swarm',
        '20',
        '--workers',
        '3',
        '--report=out.html',
        '--quiet',
        '--list',
        '--table',
        '--help',
      ]),
    ).toEqual({
      scenario: 'isolate',
      regions: 3,
      seed: 42,
      durationMs: 600_000,
      swarm: 20,
      workers: 3,
      report: 'out.html',
      list: true,
      table: true,
      quiet: true,
      help: true,
    });
    expect(parsed(['-h']).help).toBe(true);
    expect(parsed(['--scenario', 'sim/scenarios/ring.json']).scenario).toBe('sim/scenarios/ring.json');
  });

  it('names the flag in every error', () => {
    const cases: [string[], string][] = [
      [['--speed', '2'], '--speed'],
      [['--seed'], '--seed'],
      [['--seed', '--quiet'], '--seed'],
      [['--seed', '-1'], '--seed'],
      [['--seed', '1.5'], '--seed'],
      [['--seed', '1', '--seed', '2'], '--seed'],
      [['--regions', '6'], '--regions'],
      [['--regions', '1'], '--regions'],
      [['--duration', 'forever'], '--duration'],
      [['--duration', '500ms'], '--duration'],
      [['--duration', '25h'], '--duration'],
      [['--swarm', '0'], '--swarm'],
      [['--swarm', 'many'], '--swarm'],
      [['--workers', '0'], '--workers'],
      [['--workers', '65'], '--workers'],
      [['--report', 'out.txt'], '--report'],
      [['--quiet=yes'], '--quiet'],
      [['--scenario='], '--scenario'],
      [['--seed', String(Number.MAX_SAFE_INTEGER), '--swarm', '2'], '--seed'],
    ];
    for (const [argv, flag] of cases) expect(errorOf(argv), argv.join(' ')).toContain(flag);
    expect(errorOf(['isolate'])).toContain('"isolate"');
  });
});

describe('parseCompareArgs', () => {
  it('takes one scenario and the flags that shape a run, in any order', () => {
    expect(parseCompareArgs(['sched-overload'])).toEqual({
      ok: true,
      value: { scenario: 'sched-overload', seed: 1, durationMs: undefined, regions: undefined, quiet: false },
    });
    expect(parseCompareArgs(['--seed', '7', 'sched-overload', '--duration=30s', '--regions', '3', '--quiet'])).toEqual({
      ok: true,
      value: { scenario: 'sched-overload', seed: 7, durationMs: 30_000, regions: 3, quiet: true },
    });
  });

  it('refuses no scenario, two, and flags that do not go with it', () => {
    const error = (argv: string[]): string | undefined => {
      const parsed = parseCompareArgs(argv);
      return parsed.ok ? undefined : parsed.error;
    };
    expect(error([])).toBe('compare takes one scenario (for example "compare sched-overload"), not 0');
    expect(error(['a', 'b'])).toBe('compare takes one scenario (for example "compare sched-overload"), not 2');
    expect(error(['sched-overload', '--swarm', '3'])).toBe('compare takes --seed, --duration, --regions and --quiet, not --swarm');
    expect(error(['sched-overload', '--table'])).toBe('compare takes --seed, --duration, --regions and --quiet, not --table');
    expect(error(['sched-overload', '--scenario', 'x'])).toBe('compare takes --seed, --duration, --regions and --quiet, not --scenario');
    expect(error(['sched-overload', '--seed', 'x'])).toMatch(/^--seed takes an integer/);
  });
});

describe('formatting', () => {
  it('formats durations, counts and speed-ups for people', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_345)).toBe('12.3s');
    expect(formatDuration(59_999)).toBe('59.9s');
    expect(formatDuration(210_000)).toBe('3m30s');
    expect(formatDuration(600_000)).toBe('10m');
    expect(formatDuration(3_900_000)).toBe('1h5m');
    expect(formatDuration(86_400_000)).toBe('24h');
    expect(formatCount(1_234_567)).toBe('1,234,567');
    expect(formatCount(999)).toBe('999');
    expect(formatSpeedUp({ simulatedMs: 60_000, wallMs: 2_000 })).toBe('30.0×');
    expect(formatSpeedUp({ simulatedMs: 600_000, wallMs: 2_000 })).toBe('300×');
    expect(formatSpeedUp({ simulatedMs: 1_000, wallMs: 0 })).toBe('≥1,000×');
  });

  it('prints progress as in the usage example', () => {
    expect(formatProgress('partition-heal', 42, 210_000, 600_000)).toBe('[partition-heal seed 42] 35% simulated 3m30s of 10m');
    expect(formatProgress('steady', 1, 700_000, 600_000)).toContain('100%');
  });

  it('summarises a passing run without failures or replay', () => {
    const summary = formatSummary(passed);
    expect(summary).toContain('partition-heal (5 regions, 3 faults)');
    expect(summary).toMatch(/^seed +42$/m);
    expect(summary).toMatch(/^verdict +PASS$/m);
    expect(summary).toMatch(/^simulated +10m10s$/m);
    expect(summary).toMatch(/^wall time +20s$/m);
    expect(summary).toMatch(/^speed-up +30\.5×$/m);
    expect(summary).toMatch(/^requests +600,000$/m);
    expect(summary).toContain('1,234,567 delivered (45.6 MB), 12,345 dropped');
    expect(summary).toContain('majority after 320ms, crash after 1.2s');
    expect(summary).toContain(
      '123,456 commits, 1 restart from disk; 17 requests interrupted (charged their estimate; 3 of them had settled), 2 admitted but never dispatched',
    );
    expect(summary).toMatch(/^trace hash +9f1c0ffee$/m);
    expect(summary).not.toContain('replay');
    expect(summary).not.toContain('failures');
  });

  it('lists each failure and the replay command of a failed run', () => {
    const summary = formatSummary(failed);
    expect(summary).toMatch(/^verdict +FAIL \(2 failures\)$/m);
    expect(summary).toContain('majority never converged');
    expect(summary).toContain('convergence at 10m5s: us-east reads 10 tokens, the oracle 12');
    expect(summary).toContain('final-read at 10m10s: eu-west never converged');
    expect(summary).toContain(`replay: ${failed.replay}`);
  });

  it('writes one swarm line per run with seed, verdict, speed-up and fault kinds, and under a failed one each checker that fired', () => {
    expect(faultKindsOf(scenario.faults)).toEqual(['crash', 'crash/durable', 'partition/majority']);
    const line = formatSwarmLine(passed);
    expect(line).not.toContain('\n');
    expect(line).toMatch(/^seed 42 +PASS +30\.5× +3 faults: crash, crash\/durable, partition\/majority$/);
    expect(formatSwarmLine(failed)).toMatch(
      /^seed 7 +FAIL [^\n]+\n {4}convergence at 10m5s: us-east reads 10 tokens, the oracle 12\n {4}final-read at 10m10s: eu-west never converged$/,
    );
    expect(formatSwarmCrash(9, scenario, 'AssertionError: boom')).toMatch(/^seed 9 +CRASH[^\n]+\n {4}AssertionError: boom$/);
  });

  it('tallies a swarm and gives each failed seed its replay command', () => {
    const options = { scenario: 'partition-heal', regions: 3, durationMs: 90_000 };
    const replay7 = swarmReplayCommand(options, 7);
    expect(replay7).toBe('npm run sim -- --scenario partition-heal --regions 3 --duration 90000 --swarm 1 --seed 7');
    expect(swarmReplayCommand({ scenario: 'my scenarios/x.json', regions: undefined, durationMs: undefined }, 1)).toContain("--scenario 'my scenarios/x.json'");
    const tally = formatSwarmTally([
      { seed: 6, ok: true, replay: swarmReplayCommand(options, 6) },
      { seed: 7, ok: false, replay: replay7 },
      { seed: 8, ok: true, replay: swarmReplayCommand(options, 8) },
    ]);
    expect(tally).toBe(`swarm: 2 of 3 runs passed; failed seeds: 7\n  seed 7: ${replay7}`);
    expect(formatSwarmTally([{ seed: 1, ok: true, replay: '' }])).toBe('swarm: all 1 runs passed');
  });

  it('notes faults that overrides dropped or cut short, and nothing otherwise', () => {
    expect(formatOverrideNote(scenario, scenario)).toBeUndefined();
    const [partition, durable] = scenario.faults;
    // Rebuilt objects, as parseScenario returns them: equal fields count as unchanged.
    const shorter: Scenario = { ...scenario, durationMs: 35_000, faults: [{ ...partition! }, { ...durable! }] };
    expect(formatOverrideNote(scenario, shorter)).toBe('note: the --regions/--duration overrides dropped 1 fault of partition-heal (3 faults in the file)');
    const clipped: Scenario = { ...shorter, durationMs: 32_000, faults: [partition!, { ...durable!, durationMs: 2_000 }] };
    expect(formatOverrideNote(scenario, clipped)).toBe(
      'note: the --regions/--duration overrides dropped 1 fault and cut 1 fault short of partition-heal (3 faults in the file)',
    );
  });

  it('lists scenarios with the default marked', () => {
    const list = formatScenarioList(
      [
        { name: 'isolate', description: 'One region cut off.' },
        { name: 'partition-heal', description: 'The default.' },
      ],
      'partition-heal',
    );
    expect(list.split('\n')).toEqual(['  isolate         One region cut off.', '* partition-heal  The default.', '(* the default)']);
  });
});
