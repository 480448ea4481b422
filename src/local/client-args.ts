import { err, ok, type Result } from '../core/result.js';
import { splitCommandOptions } from './command-options.js';
import { defaultStateFile } from './local-state.js';

/**
 * The command line of `carpool client` (`npm run client -- …`), parsed without doing anything:
 *
 *   carpool client [--region R] [--tenant T] [--unary] [--max-tokens N] [--model M] [--usage]
 *                  [--state FILE] [--target HOST:PORT --api-key KEY] [--] "prompt"
 *
 * Words that are not options make up the prompt, joined by spaces, so both `"Say hello"` and
 * `Say hello` work. Without a prompt, `--usage` alone reads the tenant's usage.
 */
export interface ClientArgs {
  readonly region: string | undefined;
  readonly tenant: string | undefined;
  readonly unary: boolean;
  readonly maxTokens: number;
  readonly model: string;
  readonly usage: boolean;
  readonly stateFile: string;
  readonly target: string | undefined;
  readonly apiKey: string | undefined;
  /** Undefined when only `--usage` was asked for. */
  readonly prompt: string | undefined;
  readonly help: boolean;
}

export const clientUsage = `usage: carpool client [options] "prompt"     (npm run client -- [options] "prompt")

  --region R         the region to call (default: the first of the running local mesh)
  --tenant T         whose API key to use (default: demo, else the first tenant)
  --unary            one Complete call instead of a streamed StreamComplete
  --max-tokens N     max_tokens of the request (default 128)
  --model M          the model (default claude-sonnet-4-6)
  --usage            after the completion (or alone, without a prompt), GetUsage with a QUORUM read
  --state FILE       the local mesh's state file (default ${defaultStateFile}, written by npm start)
  --target H:P       call this gRPC endpoint instead of a region of the state file
  --api-key K        with this API key instead of the tenant's key from the state file`;

export const defaultClientModel = 'claude-sonnet-4-6';
export const defaultClientMaxTokens = 128;
/** The largest max_tokens the client sends; the gateway and the model have their own bounds too. */
export const clientMaxTokensMax = 64_000;
/** Longest prompt taken from the command line. */
export const clientPromptCharsMax = 100_000;

const valued = ['region', 'tenant', 'max-tokens', 'model', 'state', 'target', 'api-key'];
const switches = ['unary', 'usage', 'help'];

export function parseClientArgs(argv: readonly string[]): Result<ClientArgs, string> {
  const parts = splitCommandOptions(argv, { valued, switches });
  if (!parts.ok) return parts;
  const { words, values, flags } = parts.value;
  let maxTokens = defaultClientMaxTokens;
  const maxTokensText = values.get('max-tokens');
  if (maxTokensText !== undefined) {
    maxTokens = Number(maxTokensText);
    if (!/^\d+$/.test(maxTokensText) || maxTokens < 1 || maxTokens > clientMaxTokensMax)
      return err(`--max-tokens takes a number from 1 to ${clientMaxTokensMax}`);
  }
  const target = values.get('target');
  if (target !== undefined && !/^[^\s/]+:\d{1,5}$/.test(target)) return err('--target takes host:port');
  const prompt = words.length === 0 ? undefined : words.join(' ');
  if (prompt !== undefined && prompt.length > clientPromptCharsMax) return err(`the prompt is longer than ${clientPromptCharsMax} characters`);
  const help = flags.has('help');
  if (!help && prompt === undefined && !flags.has('usage')) return err('give a prompt, or --usage');
  return ok({
    region: values.get('region'),
    tenant: values.get('tenant'),
    unary: flags.has('unary'),
    maxTokens,
    model: values.get('model') ?? defaultClientModel,
    usage: flags.has('usage'),
    stateFile: values.get('state') ?? defaultStateFile,
    target,
    apiKey: values.get('api-key'),
    prompt,
    help,
  });
}
