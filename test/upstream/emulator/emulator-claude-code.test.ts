// Proves Claude Code itself (the real `claude` binary in print mode, test/support/claude-code.ts)
// completes against the emulator: every request it sends is answered with a 200 (its
// mid-conversation system message included, which the emulator used to refuse with a 400), the
// answer arrives and it exits 0, over one turn and a resumed second one, with a bearer token and
// with an API key; and the usage it reports is, turn by turn, what the emulator counted.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultAccountLimits } from '../../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../../src/upstream/emulator/emulator-server.js';
import { claudeCodeAvailability, claudeCodeHome, type ClaudeCodeResult, type ClaudeCodeUsage, runClaudeCode } from '../../support/claude-code.js';

const key = 'sk-ant-api03-claude-code-test-key';
const available = claudeCodeAvailability();
const title =
  'reason' in available ? `Claude Code against the emulator (skipped: ${available.reason})` : `Claude Code ${available.version} against the emulator`;

let emulator: Emulator;

beforeAll(async () => {
  if ('reason' in available) return;
  emulator = await startEmulator({ accounts: [{ key, kind: 'api-key', limits: defaultAccountLimits, faults: [] }], seed: 5 });
});
afterAll(async () => {
  await emulator?.close();
});
beforeEach(() => emulator?.resetStats());

/** The run succeeded; its stderr and stdout are in the message when it did not. */
function expectSuccess(run: ClaudeCodeResult): NonNullable<ClaudeCodeResult['report']> {
  const context = `exit ${String(run.exitCode)} signal ${String(run.signal)} timed out ${String(run.timedOut)}\nstdout: ${run.stdout.slice(0, 2000)}\nstderr: ${run.stderr.slice(0, 2000)}`;
  expect(run.exitCode, context).toBe(0);
  expect(run.report, context).toBeDefined();
  const report = run.report!;
  expect(report.isError, context).toBe(false);
  expect(report.stopReason).toBe('end_turn');
  expect(report.result.trim().length).toBeGreaterThan(0);
  return report;
}

/** What the emulator counted for the key since the last reset, in Claude Code's terms. */
function counted(): ClaudeCodeUsage {
  const row = emulator.stats().keys[key]!;
  return {
    inputTokens: row.inputTokens,
    outputTokens: row.outputTokens,
    cacheCreationInputTokens: row.cacheCreationInputTokens,
    cacheReadInputTokens: row.cacheReadInputTokens,
  };
}

describe.skipIf('reason' in available)(title, () => {
  it('answers its one request with a bearer token, and it reports the usage the emulator counted', async () => {
    const run = await runClaudeCode({ baseUrl: emulator.url, token: key, prompt: 'Say hello' });
    const report = expectSuccess(run);
    expect(report.numTurns).toBe(1);
    // One request, answered: no 400 for it to work around with a second one.
    const stats = emulator.stats();
    expect(stats.statuses).toEqual({ '200': 1 });
    expect(stats.keys[key]).toMatchObject({ requests: 1, messages: 1, clientClosed: 0 });
    expect(report.usage).toEqual(counted());
    expect(report.usage.outputTokens).toBeGreaterThan(0);
    expect(report.usage.inputTokens + report.usage.cacheCreationInputTokens + report.usage.cacheReadInputTokens).toBeGreaterThan(1_000);
    expect(report.totalCostUsd).toBeGreaterThan(0);
  });

  it('resumes the session with an API key: the second turn reads the first one from the cache, and each is reconciled', async () => {
    const home = claudeCodeHome();
    try {
      const first = expectSuccess(await runClaudeCode({ baseUrl: emulator.url, token: key, auth: 'api-key', prompt: 'Name a colour', home }));
      expect(emulator.stats().statuses).toEqual({ '200': 1 });
      expect(first.usage).toEqual(counted());
      emulator.resetStats();
      const second = expectSuccess(
        await runClaudeCode({ baseUrl: emulator.url, token: key, auth: 'api-key', prompt: 'And another one', home, resume: first.sessionId }),
      );
      expect(second.sessionId).toBe(first.sessionId);
      expect(emulator.stats().statuses).toEqual({ '200': 1 });
      expect(second.usage).toEqual(counted());
      expect(second.usage.cacheReadInputTokens).toBeGreaterThan(0);
    } finally {
      home.remove();
    }
  });

  it('reports a refused key as an API error and exits 1, without waiting on retries', async () => {
    const run = await runClaudeCode({ baseUrl: emulator.url, token: 'sk-ant-api03-not-a-key', prompt: 'Say hello', maxRetries: 0 });
    expect(run.exitCode, run.stderr).toBe(1);
    expect(run.timedOut).toBe(false);
    expect(run.report).toMatchObject({ isError: true, apiErrorStatus: 401 });
    expect(emulator.stats().statuses).toEqual({ '401': 1 });
  });
});
