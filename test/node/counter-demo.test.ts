// Proves the `npm start` demo reconciles lossy gossip to the exact total.
// The demo also reports the outcome it printed.
import { describe, expect, it } from 'vitest';
import { runCounterDemo } from '../../src/node/counter-demo.js';

describe('counter demo', () => {
  it('ends with every region on the true total despite frame loss', async () => {
    const lines: string[] = [];
    const converged = await runCounterDemo({ seed: 7, ticks: 40, loss: 0.5, tickMs: 0, print: (line) => lines.push(line) }, () => Promise.resolve());
    expect(converged).toBe(true);
    expect(lines.at(-1)).toBe('all regions agree on the exact total');
    const finalLine = lines.find((line) => line.startsWith('after anti-entropy'))!;
    const values = [...finalLine.matchAll(/=(\d+)/g)].map((m) => m[1]);
    expect(new Set(values).size).toBe(1);
  });
});
