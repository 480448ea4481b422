// Proves that the scheduling benchmark (`npm run bench -- scheduling`) runs end to end in its
// shortest mode: real emulator and node processes, three arms, a table row per arm and tier, free
// requests served degraded in the dynamic arm only, and books that reconcile in every arm (the
// clients, the node's ledger on both sides, and the emulator's counts).
import { expect, it } from 'vitest';
import { runScheduling, schedulingSetup } from '../bench/scheduling.bench.js';
import { armLabels } from '../bench/scheduling-report.js';

it('prints a row per arm and tier, degrades only free requests of the dynamic arm, and reconciles every arm', async () => {
  const lines: string[] = [];
  // Half a second of warm-up and a 2 s window at 80/s: just above the pool's ~65/s, so the
  // dynamic arm's pool runs short, and its queue drains within a second or two.
  const outcome = await runScheduling({ ...schedulingSetup(true, 2), warmS: 0.5, rate: 80 }, (line) => lines.push(line));
  const output = lines.join('\n');
  expect(outcome.reconciled, output).toBe(true);

  const rowOf = (arm: string, tier: string) => outcome.figures.find((f) => f.arm === arm)?.rows.find((r) => r.tier === tier);
  for (const arm of ['direct', 'round-robin', 'dynamic'] as const) {
    for (const tier of ['all', 'vip', 'paid', 'free']) expect(rowOf(arm, tier), `${arm} ${tier}`).toBeDefined();
    // The table prints the arm's label on its first row, then a row per tier.
    const first = lines.findIndex((line) => line.startsWith(`  ${armLabels[arm]}`) && line.includes(' all '));
    expect(first, output).toBeGreaterThan(0);
    expect(
      lines.slice(first + 1, first + 4).map((line) => line.trim().split(/\s+/)[0]),
      output,
    ).toEqual(['vip', 'paid', 'free']);
  }
  // One account directly serves a fraction of what the pool of eight does.
  expect(rowOf('round-robin', 'all')!.servedPerS, output).toBeGreaterThan(2 * rowOf('direct', 'all')!.servedPerS);
  // Degraded: free requests of the dynamic arm while the pool is short; never vip or paid, never another arm.
  expect(rowOf('dynamic', 'free')!.degradedShare, output).toBeGreaterThan(0);
  for (const tier of ['vip', 'paid']) expect(rowOf('dynamic', tier)!.degradedShare, output).toBe(0);
  for (const arm of ['direct', 'round-robin']) expect(rowOf(arm, 'all')!.degradedShare, output).toBe(0);
  expect(output).toMatch(/design: QPS/);
}, 90_000);
