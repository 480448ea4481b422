// Proves Claude Code itself (the real `claude` binary in print mode, test/support/claude-code.ts)
// works through a region node's HTTP front door with a tenant's carpool key: its answer arrives,
// it exits 0, what it reports is what the emulator counted, and the tenant is charged exactly that,
// once; its metadata.user_id makes it a user of the tenant, and its request is not claimed (no
// Idempotency-Key), over a bearer token and an API key.
import { afterEach, describe, expect, it } from 'vitest';
import { claudeCodeAvailability, type ClaudeCodeResult, runClaudeCode } from '../../support/claude-code.js';
import { closeAll, rulesOf, startHarness, weighted } from '../../node/gateway/gateway-harness.js';
import { until } from '../../support/wait.js';

afterEach(closeAll);

const available = claudeCodeAvailability();
const title =
  'reason' in available ? `Claude Code through the front door (skipped: ${available.reason})` : `Claude Code ${available.version} through the front door`;

function expectSuccess(run: ClaudeCodeResult): NonNullable<ClaudeCodeResult['report']> {
  const context = `exit ${String(run.exitCode)} timed out ${String(run.timedOut)}\nstdout: ${run.stdout.slice(0, 2000)}\nstderr: ${run.stderr.slice(0, 2000)}`;
  expect(run.exitCode, context).toBe(0);
  const report = run.report;
  expect(report?.isError, context).toBe(false);
  expect(report?.result.trim().length).toBeGreaterThan(0);
  return report!;
}

describe.skipIf('reason' in available)(title, () => {
  for (const auth of ['bearer', 'api-key'] as const) {
    it(`answers Claude Code with a tenant key as ${auth} and charges the tenant what the emulator counted, once`, async () => {
      const h = await startHarness({ http: {}, tenants: [{ id: 'acme', userLimits: rulesOf({ requests: 100 }) }] });
      const report = expectSuccess(await runClaudeCode({ baseUrl: h.httpUrl, token: h.keys.get('acme') as string, auth, prompt: 'Say hello' }));
      await until(() => h.runtime.reservations.openCount === 0 && h.gateway.carpool.inFlight === 0, 'the call to settle', 10_000);
      const upstream = h.emulatorUsage();
      expect(report.usage).toEqual({
        inputTokens: upstream.input,
        outputTokens: upstream.output,
        cacheCreationInputTokens: upstream.cacheWrite,
        cacheReadInputTokens: upstream.cacheRead,
      });
      expect(h.tenantUsed('acme', 'requests')).toBe(upstream.requests);
      expect(h.tenantUsed('acme', 'output_tokens')).toBe(upstream.output);
      expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
      expect(h.settled).toHaveLength(upstream.requests);
      expect(h.runtime.claims.stats.claims).toBe(0);
      // Claude Code names its user in metadata.user_id: the user's limit was charged too.
      expect([...h.runtime.counter.keys()].some((key) => key.scope === 'user' && key.subject.startsWith('acme:~'))).toBe(true);
    }, 60_000);
  }
});
