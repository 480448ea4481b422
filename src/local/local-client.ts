import { randomBytes } from 'node:crypto';
import { CarpoolClient, type ClientError } from '../net/grpc/carpool-client.js';
import type { CompleteRequest, GetUsageResponse, Usage } from '../net/grpc/carpool-handler.js';
import type { ClientArgs } from './client-args.js';
import { isProcessAlive, type LocalState, readLocalState } from './local-state.js';

/**
 * `carpool client` (`npm run client`): one completion through a region of the running local mesh,
 * streamed by default, its text printed as it arrives; then one line with the usage and the
 * region that served it; with `--usage`, the tenant's limits from a QUORUM GetUsage. Where to
 * call and with which key come from the state file that `npm start` writes, unless `--target`
 * and `--api-key` say otherwise.
 *
 * The model's text goes to `out` (stdout) alone, so it can be piped; everything else goes to
 * `info` (stderr). Exit codes: 0 done, 1 the call failed, 2 the command line or the state file
 * is at fault.
 */
export interface ClientIo {
  /** Model text, written as it arrives (no newline added). */
  readonly out: (text: string) => void;
  /** Whole lines about the call. */
  readonly info: (line: string) => void;
  /** Cancels the call (Ctrl-C). */
  readonly signal?: AbortSignal;
}

/** Longest a completion or usage call may take before the client gives up. */
export const clientCallTimeoutMs = 120_000;

interface Resolved {
  readonly target: string;
  readonly apiKey: string;
  readonly label: string;
  readonly state: LocalState | undefined;
  readonly stateFile: string;
}

export async function runClient(args: ClientArgs, io: ClientIo): Promise<number> {
  const resolved = await resolveTarget(args);
  if (typeof resolved === 'string') {
    io.info(`carpool client: ${resolved}`);
    return 2;
  }
  const client = new CarpoolClient({ target: resolved.target, apiKey: resolved.apiKey });
  try {
    if (args.prompt !== undefined) {
      const done = args.unary ? await unary(client, args, args.prompt, io) : await stream(client, args, args.prompt, io);
      if (done !== undefined) return fail(done, resolved, io);
    }
    if (args.usage) {
      const usage = await client.getUsage({ consistency: 'quorum', user: '' }, callOptions(io));
      if (!usage.ok) return fail(usage.error, resolved, io);
      for (const line of usageLines(usage.value, resolved.label)) io.info(line);
    }
    return 0;
  } finally {
    client.close();
  }
}

async function resolveTarget(args: ClientArgs): Promise<Resolved | string> {
  let state: LocalState | undefined;
  if (args.target === undefined || args.apiKey === undefined) {
    const read = await readLocalState(args.stateFile);
    if (!read.ok) return args.target === undefined ? read.error : `--target needs --api-key, or a state file with the tenant's key (${read.error})`;
    state = read.value;
    if (args.target === undefined && !isProcessAlive(state.pid)) {
      return `the local mesh that wrote ${args.stateFile} (pid ${state.pid}) is not running: start the mesh first with npm start`;
    }
  }
  let target = args.target;
  let label = args.target ?? '';
  if (target === undefined) {
    const regions = state?.regions ?? [];
    const endpoint = args.region === undefined ? regions[0] : regions.find((r) => r.region === args.region);
    if (endpoint === undefined) return `unknown region "${args.region ?? ''}"; the local mesh has ${regions.map((r) => r.region).join(', ') || 'no regions'}`;
    target = endpoint.grpc;
    label = endpoint.region;
  }
  let apiKey = args.apiKey;
  if (apiKey === undefined) {
    const keys = state?.apiKeys ?? {};
    const tenants = Object.keys(keys);
    const tenant = args.tenant ?? (tenants.includes('demo') ? 'demo' : tenants[0]);
    apiKey = tenant === undefined ? undefined : keys[tenant];
    if (apiKey === undefined) return `unknown tenant "${args.tenant ?? ''}"; the local mesh has ${tenants.join(', ') || 'no tenants'}`;
  }
  return { target, apiKey, label, state, stateFile: args.stateFile };
}

function requestOf(args: ClientArgs, prompt: string): CompleteRequest {
  const body = { model: args.model, max_tokens: args.maxTokens, messages: [{ role: 'user', content: prompt }] };
  return {
    // The idempotency key of this one request: a fresh id each run.
    requestId: `cli-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`,
    requestJson: new TextEncoder().encode(JSON.stringify(body)),
    anthropicVersion: '',
    anthropicBeta: '',
    user: '',
  };
}

function callOptions(io: ClientIo): { deadlineMs: number; signal?: AbortSignal } {
  return { deadlineMs: Date.now() + clientCallTimeoutMs, ...(io.signal === undefined ? {} : { signal: io.signal }) };
}

/** Streams one completion; undefined when it ended well. */
async function stream(client: CarpoolClient, args: ClientArgs, prompt: string, io: ClientIo): Promise<ClientError | undefined> {
  const request = requestOf(args, prompt);
  let stopReason: string | undefined;
  let wroteText = false;
  const utf8 = new TextDecoder();
  for await (const item of client.streamComplete(request, callOptions(io))) {
    if (item.kind === 'error') {
      if (wroteText) io.out('\n');
      return item.error;
    }
    if (item.kind === 'summary') {
      if (wroteText) io.out('\n');
      io.info(summaryLine(item.summary.usage, item.summary.servedRegion, item.summary.requestId, stopReason));
      continue;
    }
    const data = parseJson(utf8.decode(item.event.dataJson));
    if (item.event.type === 'content_block_delta') {
      const delta = isRecord(data) && isRecord(data.delta) ? data.delta : undefined;
      if (delta !== undefined && typeof delta.text === 'string') {
        io.out(delta.text);
        wroteText = true;
      }
    } else if (item.event.type === 'message_delta') {
      const delta = isRecord(data) && isRecord(data.delta) ? data.delta : undefined;
      if (typeof delta?.stop_reason === 'string') stopReason = delta.stop_reason;
    } else if (item.event.type === 'error') {
      const error = isRecord(data) && isRecord(data.error) ? data.error : undefined;
      if (wroteText) io.out('\n');
      wroteText = false;
      const type = typeof error?.type === 'string' ? error.type : 'error';
      const message = typeof error?.message === 'string' ? error.message : '';
      io.info(`upstream error mid-stream: ${type}: ${message}`);
    }
  }
  return undefined;
}

async function unary(client: CarpoolClient, args: ClientArgs, prompt: string, io: ClientIo): Promise<ClientError | undefined> {
  const answer = await client.complete(requestOf(args, prompt), callOptions(io));
  if (!answer.ok) return answer.error;
  const message = parseJson(new TextDecoder().decode(answer.value.messageJson));
  const content = isRecord(message) && Array.isArray(message.content) ? (message.content as unknown[]) : [];
  const text = content.map((block) => (isRecord(block) && block.type === 'text' && typeof block.text === 'string' ? block.text : '')).join('');
  io.out(`${text}\n`);
  const stopReason = isRecord(message) && typeof message.stop_reason === 'string' ? message.stop_reason : undefined;
  io.info(summaryLine(answer.value.usage, answer.value.servedRegion, answer.value.requestId, stopReason));
  return undefined;
}

export function summaryLine(usage: Usage, servedRegion: string, requestId: string, stopReason: string | undefined): string {
  const tokens = `input ${usage.inputTokens}, output ${usage.outputTokens}, cache write ${usage.cacheCreationInputTokens}, cache read ${usage.cacheReadInputTokens}`;
  const stop = stopReason === undefined ? '' : `, stop ${stopReason}`;
  return `[usage: ${tokens}; served by ${servedRegion || '?'}; request ${requestId}${stop}]`;
}

export function usageLines(usage: GetUsageResponse, label: string): string[] {
  const lines = [`usage of tenant ${usage.tenant} (QUORUM read at ${label}):`];
  if (usage.limits.length === 0) lines.push('  no limits');
  for (const row of usage.limits) {
    const window = `${row.sliding ? 'sliding ' : ''}${row.window}`;
    const resets = new Date(row.resetsAtMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
    lines.push(`  ${row.scope} ${row.metric} per ${window} (${row.mode}): used ${row.used} of ${row.limit}, remaining ${row.remaining}, resets ${resets}`);
  }
  const minute = usage.lastMinute;
  lines.push(
    `  last minute: input ${minute.inputTokens}, output ${minute.outputTokens}, cache write ${minute.cacheCreationInputTokens}, cache read ${minute.cacheReadInputTokens}`,
  );
  return lines;
}

function fail(error: ClientError, resolved: Resolved, io: ClientIo): number {
  if (error.kind === 'malformed') {
    io.info(`carpool client: a malformed answer from ${resolved.label}: ${error.detail}`);
    return 1;
  }
  // The server's message already says when to retry, as a duration people read.
  io.info(`carpool client: ${error.codeName}: ${error.details}`);
  if (error.codeName === 'UNAVAILABLE' && resolved.state !== undefined && !isProcessAlive(resolved.state.pid)) {
    io.info(`the local mesh that wrote ${resolved.stateFile} is no longer running: start the mesh first with npm start`);
  }
  return 1;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
