import { readFile } from 'node:fs/promises';
import { emulatorAccountsMax } from '../../core/limits.js';
import { type EmulatorAccount, generatedAccounts, parseAccountsFile } from './emulator-config.js';
import { startEmulator } from './emulator-server.js';

/**
 * `carpool emulate`: one Messages API emulator process. Prints one line with its URL and keys,
 * serves until SIGINT or SIGTERM, then closes its streams and connections and returns 0. A bad
 * accounts file is reported with the field at fault and returns 2, like a bad flag.
 */
export interface RunEmulatorOptions {
  readonly host: string;
  readonly port: number;
  /** A number of generated API-key accounts, or the path of an accounts file (emulator-config.ts). */
  readonly accounts: number | string;
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
  readonly seed: number;
  readonly print: (line: string) => void;
  readonly printError: (line: string) => void;
}

export async function runEmulator(options: RunEmulatorOptions): Promise<number> {
  let accounts: readonly EmulatorAccount[];
  let models: readonly string[] | undefined;
  if (typeof options.accounts === 'number') {
    if (!Number.isSafeInteger(options.accounts) || options.accounts < 1 || options.accounts > emulatorAccountsMax) {
      options.printError(`carpool emulate: --accounts takes a count from 1 to ${emulatorAccountsMax} or a JSON file`);
      return 2;
    }
    accounts = generatedAccounts(options.accounts, options.seed);
  } else {
    const loaded = await loadAccounts(options.accounts);
    if (typeof loaded === 'string') {
      options.printError(`carpool emulate: ${options.accounts}: ${loaded}`);
      return 2;
    }
    ({ accounts, models } = loaded);
  }
  const emulator = await startEmulator({
    accounts,
    models,
    host: options.host,
    port: options.port,
    seed: options.seed,
    ttftMs: options.ttftMs,
    tokensPerSecond: options.tokensPerSecond,
  });
  options.print(`emulator listening on ${emulator.url} keys ${accounts.map((a) => (a.kind === 'oauth' ? `${a.key}(oauth)` : a.key)).join(',')}`);
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await emulator.close();
  options.print('emulator stopped');
  return 0;
}

async function loadAccounts(path: string): Promise<{ accounts: readonly EmulatorAccount[]; models: readonly string[] | undefined } | string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return `cannot read the accounts file: ${error instanceof Error ? error.message : String(error)}`;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return `the accounts file is not JSON: ${error instanceof Error ? error.message : String(error)}`;
  }
  const parsed = parseAccountsFile(raw);
  if (!parsed.ok) return `${parsed.error.field}: ${parsed.error.reason}`;
  return parsed.value;
}
