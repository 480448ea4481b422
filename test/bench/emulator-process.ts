// The emulator of the upstream and gateway benchmarks, in a process of its own so that it has one
// core to itself and neither the load generator nor the node bills it. Options come as one JSON
// argument (the gateway's streams add pacing: time to first token, tokens per second); the
// process prints `{"url": …, "keys": […]}` on one line once it listens and closes on SIGTERM,
// or when its standard input ends: the harness holds it open, so a harness killed mid-run
// (SIGKILL, `timeout`) leaves no emulator behind holding a core and the harness's pipes.
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import type { AccountLimits } from '../../src/upstream/emulator/rate-limiter.js';

export interface EmulatorChildOptions {
  readonly accounts: number;
  readonly outputTokensMin: number;
  readonly outputTokensMax: number;
  readonly ttftMs?: number;
  readonly tokensPerSecond?: number;
  /** Per-minute limits of every account (the scheduling benchmark's pool); left out, none the benchmark can reach. */
  readonly limits?: AccountLimits;
}

const options = JSON.parse(process.argv[2] ?? '{}') as EmulatorChildOptions;
// Unless the options set them, limits far above anything the benchmark can reach: it measures
// the emulator, not its 429s.
const unlimited = { requestsPerMinute: 1_000_000_000, inputTokensPerMinute: 1_000_000_000, outputTokensPerMinute: 1_000_000_000 };
const accounts = generatedAccounts(options.accounts, 1).map((account) => ({ ...account, limits: options.limits ?? unlimited }));
const emulator = await startEmulator({
  accounts,
  outputTokensMin: options.outputTokensMin,
  outputTokensMax: options.outputTokensMax,
  ttftMs: options.ttftMs ?? 0,
  tokensPerSecond: options.tokensPerSecond ?? 0,
  log: (line) => console.error(line),
});
console.log(JSON.stringify({ url: emulator.url, keys: emulator.keys }));
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.once('end', stop).resume();
