// The emulator of the gateway benchmark, in a process of its own (pinned to a core by its
// parent) so that neither the node nor the load generator bills it. Like ./emulator-process.ts,
// but with the pacing the streaming figures need (time to first token, tokens per second) and
// the emulator's own in-flight bound raised to its maximum. Options come as one JSON argument; the
// process prints `{"url": …, "keys": […]}` on one line once it listens and closes on SIGTERM.
import { emulatorResponsesInFlightMax } from '../../src/core/limits.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { startEmulator } from '../../src/upstream/emulator/emulator-server.js';

export interface GatewayEmulatorOptions {
  readonly accounts: number;
  /** Every answer is exactly this long (the natural length is pinned), so both paths do the same work. */
  readonly outputTokens: number;
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as GatewayEmulatorOptions;
// Limits far above anything the benchmark can reach: it measures the gateway, not 429s.
const unlimited = { requestsPerMinute: 1_000_000_000, inputTokensPerMinute: 1_000_000_000, outputTokensPerMinute: 1_000_000_000 };
const accounts = generatedAccounts(options.accounts, 1).map((account) => ({ ...account, limits: unlimited }));
const emulator = await startEmulator({
  accounts,
  outputTokensMin: options.outputTokens,
  outputTokensMax: options.outputTokens,
  ttftMs: options.ttftMs,
  tokensPerSecond: options.tokensPerSecond,
  responsesInFlightMax: emulatorResponsesInFlightMax,
  log: (line) => console.error(line),
});
console.log(JSON.stringify({ url: emulator.url, keys: emulator.keys }));
const stop = (): void => {
  void emulator.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
