import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../platform/system-clock.js';
import {
  emulatorAccountsMax,
  emulatorCacheEntriesMax,
  emulatorControlBytesMax,
  emulatorOutputTokensMax,
  emulatorRequestBytesMax,
  emulatorResponsesInFlightMax,
  emulatorTokenRequestBytesMax,
} from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { apiError, type ApiError, apiErrorStatus, errorBody } from './api-error.js';
import { defaultSubscriptionLimits, type EmulatorAccount, isServedModel } from './emulator-config.js';
import { EmulatorIds } from './emulator-ids.js';
import { EmulatorStats, type KeyStats, type StatsSnapshot } from './emulator-stats.js';
import { type Fault, type FaultAction, FaultPlan, type FaultPlanError, parseFaults } from './fault-plan.js';
import { errorEventFrame, messageBody, type MessageOutcome, sseFrame, streamEvents, streamHeadEvents } from './message-events.js';
import { cacheMinTokensDefault, PromptCache } from './prompt-cache.js';
import { layOutPrompt } from './prompt-segments.js';
import { OAuthTokens } from './oauth-tokens.js';
import { type Headers, rateLimitHeaders, retryAfterSeconds, throttledState, unifiedHeaders } from './rate-limit-headers.js';
import { AccountRateLimiter } from './rate-limiter.js';
import { inputCharge, outputCharge, SubscriptionWindows, type WindowName } from './subscription-windows.js';
import { parseTokenRequest, type TokenError, tokenErrorBody } from './token-request.js';
import {
  invalidRequestMessage,
  type MessagesRequest,
  type RequestBetas,
  requestBetas,
  validateCountTokensRequest,
  validateMessagesRequest,
} from './request-validation.js';
import { generateText } from './text-generator.js';

/**
 * An HTTP server that answers like the Anthropic Messages API, faithfully enough that the
 * official SDK cannot tell: the pool, the upstream client and benchmarks run against it. This
 * file is the adapter; what it answers is decided by the pure parts beside it (validation,
 * tokenizer, prompt cache, rate limiter, text generator, fault plan, event shapes).
 *
 *   POST   /v1/messages                JSON, or SSE with `"stream": true`
 *   POST   /v1/messages/count_tokens   {"input_tokens": n}
 *   POST   /v1/oauth/token             refresh an OAuth login (token-request.ts, oauth-tokens.ts)
 *   GET    /_emulator/stats            counts (emulator-stats.ts); DELETE resets them
 *   GET    /_emulator/faults           the queued faults; POST queues a plan (fault-plan.ts);
 *                                      DELETE clears them all, configured ones included
 *   POST   /_emulator/oauth/revoke     {"account": KEY}: its refresh token is refused from now on
 *   POST   /_emulator/oauth/expire     {"account": KEY}: its access tokens expire now
 *   POST   /_emulator/windows/exhaust  {"account": KEY, "window": "5h"|"7d", "resetInMs": n}:
 *                                      the window is spent now and ends n ms from now
 *
 * An account is named in the hooks by its configured key. OAuth accounts: a bearer token is looked
 * up among the issued access tokens first (401 "OAuth token has expired" past its life, the
 * real body), then among static keys; each answer carries the subscription windows'
 * `anthropic-ratelimit-unified-*` headers (rate-limit-headers.ts), and a spent window answers 429
 * until its end, before the per-minute limits are consulted.
 *
 * A Messages request goes through, in order: the body is read (413 past `requestBytesMax`,
 * counted while reading, never buffered whole first); the key is checked (401); the
 * `anthropic-version` header (400); the JSON and its fields (400); the model (404); then a
 * queued fault may answer instead (429, 529, 500, 401, 403, a dropped connection, or a stream
 * that breaks later); then capacity (529 past `responsesInFlightMax`); then the account's rate
 * limits (429 with `retry-after`). An admitted request is billed its input at once and its
 * output tokens as they are produced. count_tokens is neither faulted nor rate limited.
 *
 * Timing: a stream sends its headers, `message_start`, `content_block_start` and `ping` at
 * once, its first text delta after `ttftMs`, and each later delta when the tokens it carries
 * would have been generated at `tokensPerSecond`; a JSON answer is sent after the same total
 * time. Zero means no wait. Time for rate limits and the cache comes from `clock`; waits use
 * real timers, all cancelled by `close()`, which also ends open streams and connections.
 *
 * The control endpoints have no authentication: bind the emulator to loopback.
 */
export interface EmulatorOptions {
  readonly accounts: readonly EmulatorAccount[];
  /** The exact set of models served; undefined serves any `claude-*` name. */
  readonly models?: readonly string[] | undefined;
  /** Defaults to 127.0.0.1. */
  readonly host?: string;
  /** Defaults to 0: any free port. */
  readonly port?: number;
  /** Seeds generated text and ids; defaults to 0. */
  readonly seed?: number;
  readonly ttftMs?: number;
  /** Output pacing; 0 (the default) sends as fast as possible. */
  readonly tokensPerSecond?: number;
  /** The natural length of an answer is drawn from [outputTokensMin, outputTokensMax]: 16 to 256 by default. */
  readonly outputTokensMin?: number;
  readonly outputTokensMax?: number;
  /** The shortest prefix cached; 1024 by default, like the real API. */
  readonly cacheMinTokens?: number;
  readonly cacheEntriesMax?: number;
  readonly requestBytesMax?: number;
  readonly responsesInFlightMax?: number;
  readonly clock?: Clock;
  /** Where an unexpected failure of a request handler is reported; defaults to stderr. */
  readonly log?: (line: string) => void;
}

export interface Emulator {
  /** `http://host:port`, the `baseURL` for the SDK. */
  readonly url: string;
  readonly port: number;
  readonly keys: readonly string[];
  /** Queues faults after those queued; all or none. */
  addFaults(faults: readonly Fault[]): Result<number, FaultPlanError>;
  clearFaults(): void;
  faults(): Fault[];
  /** Refuses the account's refresh token from now on; false for a key that is not a renewable OAuth login. */
  revokeRefreshToken(key: string): boolean;
  /** Expires every access token of the account now; false for a key that is not a renewable OAuth login. */
  expireAccessTokens(key: string): boolean;
  /** The refresh token the account honours now; undefined once revoked or for any other key. */
  currentRefreshToken(key: string): string | undefined;
  /** Spends the window now, ending it `resetInMs` from now; false for a key that is not an OAuth account or a reset past the window's length. */
  exhaustWindow(key: string, window: WindowName, resetInMs: number): boolean;
  stats(): StatsSnapshot;
  resetStats(): void;
  /** Ends open streams and connections, cancels every wait, and stops listening. */
  close(): Promise<void>;
}

const anthropicVersionPattern = /^\d{4}-\d{2}-\d{2}$/;

interface AccountState {
  readonly account: EmulatorAccount;
  readonly limiter: AccountRateLimiter;
  /** OAuth accounts only. */
  readonly windows: SubscriptionWindows | undefined;
}

/**
 * The 401 bodies of a subscription token. Expired: the message Claude Code users and relays
 * quote, `{"type":"error","error":{"type":"authentication_error","message":"OAuth token has
 * expired. Please obtain a new token or refresh your existing token."},"request_id":"req_..."}`
 * (https://github.com/anthropics/claude-code/issues/6459, also #33879, #44930). Unknown or
 * revoked: `{"type":"error","error":{"type":"authentication_error","message":"Invalid
 * authentication credentials"},"request_id":"req_..."}`
 * (https://github.com/anthropics/claude-code/issues/44930, https://github.com/vybestack/llxprt-code/issues/2035).
 */
const expiredTokenMessage = 'OAuth token has expired. Please obtain a new token or refresh your existing token.';
const invalidTokenMessage = 'Invalid authentication credentials';
/**
 * The 429 of a spent subscription window: the real message
 * (https://github.com/anthropics/claude-code/issues/71670 quotes it in full).
 */
const windowRefusedMessage = "This request would exceed your account's rate limit. Please try again later.";
/** The scopes the token endpoint grants: those a Claude Code login holds for inference. */
const grantedScope = 'user:inference user:profile';

/** A request past authentication and validation, ready to be answered. */
interface Admitted {
  readonly requestId: string;
  readonly state: AccountState;
  readonly row: KeyStats;
  readonly request: MessagesRequest;
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const emulator = new EmulatorServer(options);
  await emulator.listen(options.host ?? '127.0.0.1', options.port ?? 0);
  return emulator;
}

class EmulatorServer implements Emulator {
  private readonly server: Server;
  private readonly clock: Clock;
  private readonly accounts = new Map<string, AccountState>();
  private readonly tokens: OAuthTokens;
  private readonly plan: FaultPlan;
  private readonly cache: PromptCache;
  private readonly statsTable: EmulatorStats;
  private readonly ids: EmulatorIds;
  private readonly seed: number;
  private readonly ttftMs: number;
  private readonly tokensPerSecond: number;
  private readonly outputTokensMin: number;
  private readonly outputTokensMax: number;
  private readonly requestBytesMax: number;
  private readonly responsesInFlightMax: number;
  private readonly log: (line: string) => void;
  /** One per running answer: aborting it cancels the answer's waits. */
  private readonly running = new Set<AbortController>();
  private closing: Promise<void> | undefined;
  /** Faults injected before the last stats reset, which the stats no longer report. */
  private faultsInjectedBefore = 0;
  private boundPort = 0;
  private boundHost = '';

  constructor(private readonly options: EmulatorOptions) {
    assert(options.accounts.length >= 1 && options.accounts.length <= emulatorAccountsMax, 'an emulator serves 1 to emulatorAccountsMax accounts');
    this.clock = options.clock ?? systemClock;
    this.seed = options.seed ?? 0;
    this.ttftMs = options.ttftMs ?? 0;
    this.tokensPerSecond = options.tokensPerSecond ?? 0;
    this.outputTokensMin = options.outputTokensMin ?? 16;
    this.outputTokensMax = options.outputTokensMax ?? 256;
    this.requestBytesMax = options.requestBytesMax ?? emulatorRequestBytesMax;
    this.responsesInFlightMax = options.responsesInFlightMax ?? emulatorResponsesInFlightMax;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    assert(Number.isSafeInteger(this.seed), 'the seed is a safe integer');
    assert(Number.isFinite(this.ttftMs) && this.ttftMs >= 0, 'ttftMs is a duration');
    assert(Number.isFinite(this.tokensPerSecond) && this.tokensPerSecond >= 0, 'tokensPerSecond is a rate');
    assert(
      Number.isSafeInteger(this.outputTokensMin) &&
        this.outputTokensMin >= 1 &&
        this.outputTokensMin <= this.outputTokensMax &&
        this.outputTokensMax <= emulatorOutputTokensMax,
      'output lengths are within 1 to emulatorOutputTokensMax',
    );
    assert(this.requestBytesMax >= 1 && this.requestBytesMax <= emulatorRequestBytesMax, 'the body bound is within emulatorRequestBytesMax');
    assert(
      this.responsesInFlightMax >= 1 && this.responsesInFlightMax <= emulatorResponsesInFlightMax,
      'the in-flight bound is within emulatorResponsesInFlightMax',
    );
    const nowMs = this.clock.nowMs();
    const configured: Fault[] = [];
    this.tokens = new OAuthTokens(this.seed);
    for (const account of options.accounts) {
      assert(!this.accounts.has(account.key), 'account keys are distinct');
      assert(account.kind === 'oauth' || (account.oauth === undefined && account.windows === undefined), 'only OAuth accounts have logins and windows');
      const windows = account.kind === 'oauth' ? new SubscriptionWindows(account.windows ?? defaultSubscriptionLimits) : undefined;
      this.accounts.set(account.key, { account, limiter: new AccountRateLimiter(account.limits, nowMs), windows });
      if (account.oauth !== undefined) this.tokens.register(account.key, account.oauth, nowMs);
      configured.push(...account.faults);
    }
    this.plan = new FaultPlan();
    const queued = this.plan.add(configured);
    assert(queued.ok, 'configured faults fit the plan');
    this.cache = new PromptCache(options.cacheMinTokens ?? cacheMinTokensDefault, options.cacheEntriesMax ?? emulatorCacheEntriesMax);
    this.statsTable = new EmulatorStats([...this.accounts.keys()]);
    this.ids = new EmulatorIds(this.seed);
    this.server = createServer((req, res) => {
      req.on('error', ignore);
      res.on('error', ignore);
      this.handle(req, res).catch((error: unknown) => this.failed(req, res, error));
    });
  }

  get url(): string {
    return `http://${this.boundHost.includes(':') ? `[${this.boundHost}]` : this.boundHost}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  get keys(): readonly string[] {
    return [...this.accounts.keys()];
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.boundPort = address.port;
    this.boundHost = host;
  }

  addFaults(faults: readonly Fault[]): Result<number, FaultPlanError> {
    return this.plan.add(faults);
  }

  clearFaults(): void {
    this.plan.clear();
  }

  revokeRefreshToken(key: string): boolean {
    return this.tokens.revoke(key);
  }

  expireAccessTokens(key: string): boolean {
    return this.tokens.expireAccessTokens(key, this.clock.nowMs());
  }

  currentRefreshToken(key: string): string | undefined {
    return this.tokens.currentRefreshToken(key);
  }

  exhaustWindow(key: string, window: WindowName, resetInMs: number): boolean {
    const windows = this.accounts.get(key)?.windows;
    if (windows === undefined || !Number.isSafeInteger(resetInMs) || resetInMs < 1) return false;
    const limits = window === 'five_hour' ? windows.limits.fiveHour : windows.limits.sevenDay;
    if (resetInMs > limits.lengthMs) return false;
    windows.exhaust(window, this.clock.nowMs(), resetInMs);
    return true;
  }

  faults(): Fault[] {
    return this.plan.list();
  }

  stats(): StatsSnapshot {
    return this.statsTable.snapshot({
      faultsInjected: this.plan.injected - this.faultsInjectedBefore,
      responsesInFlight: this.running.size,
      cacheEntries: this.cache.size,
      cacheEvictions: this.cache.evictions,
    });
  }

  resetStats(): void {
    this.statsTable.reset();
    this.faultsInjectedBefore = this.plan.injected;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const controller of this.running) controller.abort();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private failed(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    this.log(`emulator: ${req.method ?? '?'} ${req.url ?? '?'} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (!res.headersSent) this.sendError(res, this.ids.next('req_'), apiError('api_error', 'Internal server error'));
    else res.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path.startsWith('/_emulator/')) return this.control(req, res, path);
    const requestId = this.ids.next('req_');
    if (req.method === 'POST' && path === '/v1/messages') return this.messages(req, res, requestId);
    if (req.method === 'POST' && path === '/v1/messages/count_tokens') return this.countTokens(req, res, requestId);
    if (req.method === 'POST' && path === '/v1/oauth/token') return this.token(req, res);
    this.sendError(res, requestId, apiError('not_found_error', 'Not Found'));
  }

  private async messages(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    this.statsTable.onRequest();
    const checked = await this.checkRequest(req, res, requestId, validateMessagesRequest);
    if (checked === undefined) return;
    const { state, request } = checked;
    const row = this.statsTable.key(state.account.key) as KeyStats;
    row.requests += 1;
    const retryCount = Number(req.headers['x-stainless-retry-count'] ?? '0');
    if (Number.isFinite(retryCount) && retryCount > 0) row.retries += 1;
    const admitted: Admitted = { requestId, state, row, request };

    const fault = this.plan.take(state.account.key, request.stream);
    if (fault !== undefined) {
      row.faults += 1;
      if (this.answerFault(req, res, admitted, fault)) return;
    }
    if (this.running.size >= this.responsesInFlightMax) {
      this.sendError(res, requestId, apiError('overloaded_error', 'Overloaded'), this.limitHeaders(state));
      return;
    }

    const nowMs = this.clock.nowMs();
    const layout = layOutPrompt(request);
    const cachePlan = this.cache.plan(state.account.key, layout.segments, nowMs);
    const billedInput = cachePlan.usage.inputTokens + cachePlan.usage.cacheCreationInputTokens;
    if (state.windows !== undefined) {
      const window = state.windows.admit(nowMs);
      if (!window.ok) {
        row.rateLimited += 1;
        row.windowRefusals += 1;
        const headers = this.limitHeaders(state);
        headers['retry-after'] = retryAfterSeconds(window.error.resetAtMs - nowMs);
        this.sendError(res, requestId, apiError('rate_limit_error', windowRefusedMessage), headers);
        return;
      }
    }
    const admission = state.limiter.admit(billedInput, nowMs);
    if (!admission.ok) {
      row.rateLimited += 1;
      const { limit, retryAfterMs } = admission.error;
      const [perMinute, unit] =
        limit === 'requests'
          ? [state.account.limits.requestsPerMinute, 'requests']
          : limit === 'input-tokens'
            ? [state.account.limits.inputTokensPerMinute, 'input tokens']
            : [state.account.limits.outputTokensPerMinute, 'output tokens'];
      const message = `This request would exceed your account's rate limit of ${perMinute} ${unit} per minute. Please try again later.`;
      const headers = this.limitHeaders(state);
      headers['retry-after'] = retryAfterSeconds(retryAfterMs);
      this.sendError(res, requestId, apiError('rate_limit_error', message), headers);
      return;
    }
    this.cache.commit(cachePlan, nowMs);
    state.windows?.charge(inputCharge(state.windows.limits.unit, cachePlan.usage), nowMs);
    this.statsTable.onInput(state.account.key, cachePlan.usage);
    const generated = generateText({
      seed: this.seed,
      promptSeed: layout.seed,
      maxTokens: request.maxTokens,
      lengthMin: this.outputTokensMin,
      lengthMax: this.outputTokensMax,
      stopSequences: request.stopSequences,
    });
    const outcome: MessageOutcome = { id: this.ids.next('msg_'), model: request.model, usage: cachePlan.usage, generated };
    const midStream =
      fault !== undefined && (fault.kind === 'drop-mid-stream' || fault.kind === 'stall-mid-stream' || fault.kind === 'error-event') ? fault : undefined;
    row.messages += 1;

    const jsonWaitMs = this.ttftMs + this.paceMs(generated.outputTokens);
    if (!request.stream && jsonWaitMs === 0) {
      // Nothing to wait for, so nothing to cancel: the answer goes out now, without the
      // controller of a running answer (an abort on every close costs a DOMException).
      this.chargeOutput(admitted, generated.outputTokens);
      this.sendMessage(res, admitted, outcome);
      return;
    }
    const controller = new AbortController();
    const abort = controller.abort.bind(controller);
    this.running.add(controller);
    res.once('close', abort);
    try {
      if (request.stream) await this.stream(res, admitted, outcome, midStream, controller.signal);
      else await this.json(res, admitted, outcome, jsonWaitMs, controller.signal);
    } finally {
      this.running.delete(controller);
      res.off('close', abort);
      // Aborted before the answer ended, and not by close(): the client hung up on it.
      if (controller.signal.aborted && this.closing === undefined) row.clientClosed += 1;
    }
  }

  /**
   * Answers with the fault when it decides the whole answer; returns false for the mid-stream
   * faults, which the stream applies as it goes.
   */
  private answerFault(req: IncomingMessage, res: ServerResponse, admitted: Admitted, fault: FaultAction): boolean {
    const { requestId, state } = admitted;
    switch (fault.kind) {
      case 'rate-limit': {
        const nowMs = this.clock.nowMs();
        const retryAfterMs = fault.retryAfterSeconds * 1000;
        const headers = rateLimitHeaders(throttledState(state.limiter.state(nowMs), fault.remaining, nowMs, retryAfterMs));
        if (state.windows !== undefined) unifiedHeaders(state.windows.state(nowMs), headers);
        headers['retry-after'] = String(fault.retryAfterSeconds);
        admitted.row.rateLimited += 1;
        this.sendError(res, requestId, apiError('rate_limit_error', 'Rate limited. Please try again later.'), headers);
        return true;
      }
      case 'overloaded':
        this.sendError(res, requestId, apiError('overloaded_error', 'Overloaded'), this.limitHeaders(state));
        return true;
      case 'server-error':
        this.sendError(res, requestId, apiError('api_error', 'Internal server error'), this.limitHeaders(state));
        return true;
      case 'unauthorized':
        this.sendError(res, requestId, apiError('authentication_error', 'invalid x-api-key'));
        return true;
      case 'forbidden':
        this.sendError(res, requestId, apiError('permission_error', 'Your API key does not have permission to use the specified resource.'));
        return true;
      case 'drop-before-headers':
        req.socket.destroy();
        return true;
      case 'drop-mid-stream':
      case 'stall-mid-stream':
      case 'error-event':
        return false;
    }
  }

  private async stream(
    res: ServerResponse,
    admitted: Admitted,
    outcome: MessageOutcome,
    fault: Extract<FaultAction, { afterEvents: number }> | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const events = streamEvents(outcome);
    const headers = this.limitHeaders(admitted.state, { 'request-id': admitted.requestId });
    headers['content-type'] = 'text/event-stream; charset=utf-8';
    headers['cache-control'] = 'no-cache';
    res.writeHead(200, headers);
    this.statsTable.onStatus(200);
    let pending = '';
    const flush = async (): Promise<boolean> => {
      if (pending === '') return !signal.aborted;
      const drained = res.write(pending);
      pending = '';
      if (!drained) await waitForDrain(res, signal);
      return !signal.aborted;
    };
    // Bounded by the events of one answer, which the generator bounds by emulatorOutputTokensMax.
    for (let i = 0; i <= events.length; i++) {
      if (fault !== undefined && i === fault.afterEvents) {
        await this.breakStream(res, fault, pending, signal);
        return;
      }
      const event = events[i];
      if (event === undefined) break;
      // The first text delta comes after the time to first token; every later one when its
      // tokens would have been generated. Writes are batched between waits.
      const waitMs = i === streamHeadEvents ? this.ttftMs : this.paceMs(event.outputTokens);
      if (waitMs > 0) {
        if (!(await flush())) return;
        if (!(await sleep(waitMs, signal))) return;
      }
      if (event.outputTokens > 0) this.chargeOutput(admitted, event.outputTokens);
      pending += sseFrame(event.type, event.data);
    }
    res.end(pending);
  }

  private async breakStream(res: ServerResponse, fault: Extract<FaultAction, { afterEvents: number }>, pending: string, signal: AbortSignal): Promise<void> {
    switch (fault.kind) {
      case 'error-event': {
        const message = fault.errorType === 'overloaded_error' ? 'Overloaded' : 'Internal server error';
        res.end(pending + errorEventFrame(fault.errorType, message));
        return;
      }
      case 'drop-mid-stream':
        // The events before the drop reach the client; then the connection is cut, not ended.
        await new Promise<void>((resolve) => res.write(pending, () => resolve()));
        res.destroy();
        return;
      case 'stall-mid-stream':
        if (pending !== '') res.write(pending);
        // Never ends: waits for the client to go away or the emulator to close.
        await sleep(Number.POSITIVE_INFINITY, signal);
        return;
    }
  }

  /** A JSON answer after its wait. */
  private async json(res: ServerResponse, admitted: Admitted, outcome: MessageOutcome, waitMs: number, signal: AbortSignal): Promise<void> {
    const sent = await sleep(waitMs, signal);
    // Charged either way: if the client left or the emulator closed, the answer was generated all the same.
    this.chargeOutput(admitted, outcome.generated.outputTokens);
    if (sent) this.sendMessage(res, admitted, outcome);
  }

  private sendMessage(res: ServerResponse, admitted: Admitted, outcome: MessageOutcome): void {
    const headers = this.limitHeaders(admitted.state, { 'request-id': admitted.requestId });
    headers['content-type'] = 'application/json';
    this.send(res, 200, headers, JSON.stringify(messageBody(outcome)));
  }

  private chargeOutput(admitted: Admitted, tokens: number): void {
    const nowMs = this.clock.nowMs();
    admitted.state.limiter.chargeOutput(tokens, nowMs);
    const windows = admitted.state.windows;
    if (windows !== undefined) windows.charge(outputCharge(windows.limits.unit, tokens), nowMs);
    admitted.row.outputTokens += tokens;
  }

  private paceMs(tokens: number): number {
    return this.tokensPerSecond > 0 ? (tokens * 1000) / this.tokensPerSecond : 0;
  }

  private async countTokens(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const checked = await this.checkRequest(req, res, requestId, validateCountTokensRequest);
    if (checked === undefined) return;
    const layout = layOutPrompt(checked.request);
    this.send(res, 200, { 'request-id': requestId, 'content-type': 'application/json' }, JSON.stringify({ input_tokens: layout.totalTokens }));
  }

  /** Body, key, version, JSON, fields and model; answers and returns undefined on the first failure. */
  private async checkRequest<T extends { readonly model: string }>(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    validate: (body: unknown, betas: RequestBetas) => Result<T, Parameters<typeof invalidRequestMessage>[0]>,
  ): Promise<{ state: AccountState; request: T } | undefined> {
    const body = await readBody(req, this.requestBytesMax);
    if (!body.ok) {
      if (body.error === 'aborted') return undefined;
      // The rest of the body is not read: the connection closes after this answer.
      this.sendError(
        res,
        requestId,
        apiError('request_too_large', `Request exceeds the maximum allowed number of bytes. The maximum request size is ${this.requestBytesMax} bytes.`),
        { connection: 'close' },
      );
      return undefined;
    }
    const state = this.authenticate(req);
    if (!state.ok) {
      this.sendError(res, requestId, state.error);
      return undefined;
    }
    const version = req.headers['anthropic-version'];
    if (version === undefined || version === '') {
      this.sendError(res, requestId, apiError('invalid_request_error', 'anthropic-version: header is required'));
      return undefined;
    }
    if (typeof version !== 'string' || !anthropicVersionPattern.test(version)) {
      this.sendError(res, requestId, apiError('invalid_request_error', `anthropic-version: "${String(version)}" is not a valid version`));
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.value.toString('utf8'));
    } catch (error) {
      this.sendError(
        res,
        requestId,
        apiError('invalid_request_error', `There was an issue with your request body: ${error instanceof Error ? error.message : 'not JSON'}`),
      );
      return undefined;
    }
    // Some betas change what a body may hold (mid-conversation system messages, request-validation.ts).
    const request = validate(json, requestBetas(req.headers['anthropic-beta']));
    if (!request.ok) {
      this.sendError(res, requestId, apiError('invalid_request_error', invalidRequestMessage(request.error)));
      return undefined;
    }
    if (!isServedModel(request.value.model, this.options.models)) {
      this.sendError(res, requestId, apiError('not_found_error', `model: ${request.value.model}`));
      return undefined;
    }
    return { state: state.value, request: request.value };
  }

  /**
   * An API key may come as `x-api-key` or as a bearer token (SDKs differ); an OAuth token only
   * as a bearer token. Either header that names a known key of the right kind is enough. A
   * bearer token is first looked up among the issued OAuth access tokens: one past its life is
   * refused as expired (and counted against its account); then among static keys, where the key
   * of a renewable login does not count once forgotten by the token table.
   */
  private authenticate(req: IncomingMessage): Result<AccountState, ApiError> {
    const apiKey = req.headers['x-api-key'];
    const authorization = req.headers.authorization;
    const bearer = typeof authorization === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1] : undefined;
    if (typeof apiKey === 'string') {
      const state = this.accounts.get(apiKey);
      if (state !== undefined && state.account.kind === 'api-key') return ok(state);
    }
    if (bearer !== undefined) {
      const issued = this.tokens.lookup(bearer, this.clock.nowMs());
      if (issued.kind === 'live') return ok(this.accounts.get(issued.account) as AccountState);
      if (issued.kind === 'expired') {
        (this.statsTable.key(issued.account) as KeyStats).expiredTokenRefusals += 1;
        return err(apiError('authentication_error', expiredTokenMessage));
      }
      const state = this.accounts.get(bearer);
      if (state !== undefined && state.account.oauth === undefined) return ok(state);
    }
    if (apiKey === undefined && authorization === undefined) return err(apiError('authentication_error', 'x-api-key header is required'));
    return err(apiError('authentication_error', apiKey !== undefined ? 'invalid x-api-key' : invalidTokenMessage));
  }

  /** `POST /v1/oauth/token`: a refresh, answered as the real endpoint does (token-request.ts has the shapes). */
  private async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headers = (): Headers => ({ 'content-type': 'application/json', 'cache-control': 'no-store' });
    const refuse = (error: TokenError): void => this.send(res, 400, headers(), JSON.stringify(tokenErrorBody(error)));
    const body = await readBody(req, emulatorTokenRequestBytesMax);
    if (!body.ok) {
      if (body.error === 'aborted') return;
      this.send(
        res,
        413,
        { ...headers(), connection: 'close' },
        JSON.stringify(tokenErrorBody({ error: 'invalid_request', description: `The request body exceeds ${emulatorTokenRequestBytesMax} bytes.` })),
      );
      return;
    }
    const request = parseTokenRequest(req.headers['content-type'], body.value.toString('utf8'));
    if (!request.ok) return refuse(request.error);
    const issued = this.tokens.refresh(request.value.refreshToken, this.clock.nowMs());
    if (!issued.ok) {
      const account = issued.error.account;
      if (account === undefined) this.statsTable.onUnknownRefreshToken();
      else (this.statsTable.key(account) as KeyStats).refreshesRefused += 1;
      // The real endpoint's words: https://github.com/ex-machina-co/opencode-anthropic-auth/issues/162
      return refuse({ error: 'invalid_grant', description: 'Refresh token not found or invalid' });
    }
    (this.statsTable.key(issued.value.account) as KeyStats).refreshes += 1;
    // The fields of the real answer: Wei-Shaw/sub2api backend/internal/pkg/oauth/oauth.go `TokenResponse`
    // (access_token, token_type, expires_in in seconds, refresh_token, scope).
    const answer = {
      token_type: 'Bearer',
      access_token: issued.value.accessToken,
      expires_in: issued.value.expiresInSeconds,
      refresh_token: issued.value.refreshToken,
      scope: grantedScope,
    };
    this.send(res, 200, headers(), JSON.stringify(answer));
  }

  private async control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    // Control answers are not counted: the stats describe the API a client sees.
    const reply = (status: number, body: unknown): void => this.send(res, status, { 'content-type': 'application/json' }, JSON.stringify(body), false);
    const refuse = (status: number, message: string): void =>
      reply(status, { type: 'error', error: { type: status === 404 ? 'not_found_error' : 'invalid_request_error', message } });
    if (path === '/_emulator/stats' && method === 'GET') return reply(200, this.stats());
    if (path === '/_emulator/stats' && method === 'DELETE') {
      this.resetStats();
      return reply(200, this.stats());
    }
    if (path.startsWith('/_emulator/oauth/') || path === '/_emulator/windows/exhaust') {
      if (method !== 'POST') return refuse(404, 'Not Found');
      return this.hook(req, path, reply, refuse);
    }
    if (path === '/_emulator/faults' && method === 'GET') return reply(200, { faults: this.faults() });
    if (path === '/_emulator/faults' && method === 'DELETE') {
      this.clearFaults();
      return reply(200, { queued: 0 });
    }
    if (path === '/_emulator/faults' && method === 'POST') {
      const body = await readBody(req, emulatorControlBytesMax);
      if (!body.ok) return body.error === 'aborted' ? undefined : refuse(413, `a fault plan is at most ${emulatorControlBytesMax} bytes`);
      let json: unknown;
      try {
        json = JSON.parse(body.value.toString('utf8'));
      } catch {
        return refuse(400, 'the fault plan is not JSON');
      }
      const faults = parseFaults(json);
      const queued = faults.ok ? this.plan.add(faults.value) : faults;
      if (!queued.ok) {
        return refuse(
          400,
          queued.error.kind === 'bad-fault' ? `${queued.error.field}: ${queued.error.reason}` : `at most ${queued.error.faultsMax} faults may be queued`,
        );
      }
      return reply(200, { queued: queued.value });
    }
    return refuse(404, 'Not Found');
  }

  /** The test hooks on OAuth accounts: revoke a refresh token, expire access tokens, spend a window. */
  private async hook(
    req: IncomingMessage,
    path: string,
    reply: (status: number, body: unknown) => void,
    refuse: (status: number, message: string) => void,
  ): Promise<void> {
    const body = await readBody(req, emulatorControlBytesMax);
    if (!body.ok) return body.error === 'aborted' ? undefined : refuse(413, `a hook request is at most ${emulatorControlBytesMax} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(body.value.toString('utf8'));
    } catch {
      return refuse(400, 'the hook request is not JSON');
    }
    const fields = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
    const account = fields.account;
    if (typeof account !== 'string' || !this.accounts.has(account)) return refuse(400, 'account: must be the key of a configured account');
    if (path === '/_emulator/oauth/revoke' || path === '/_emulator/oauth/expire') {
      const done = path === '/_emulator/oauth/revoke' ? this.revokeRefreshToken(account) : this.expireAccessTokens(account);
      return done ? reply(200, { account }) : refuse(400, 'account: has no renewable OAuth login (no "oauth" in its configuration)');
    }
    if (path !== '/_emulator/windows/exhaust') return refuse(404, 'Not Found');
    const window = fields.window === '5h' ? 'five_hour' : fields.window === '7d' ? 'seven_day' : undefined;
    if (window === undefined) return refuse(400, 'window: must be "5h" or "7d"');
    const resetInMs = fields.resetInMs;
    if (typeof resetInMs !== 'number' || !Number.isSafeInteger(resetInMs) || resetInMs < 1)
      return refuse(400, 'resetInMs: must be a positive whole number of milliseconds');
    if (!this.exhaustWindow(account, window, resetInMs)) return refuse(400, 'account: is not an OAuth account, or resetInMs is longer than the window');
    return reply(200, { account, window: fields.window, resetAtMs: this.clock.nowMs() + resetInMs });
  }

  /** The account's rate-limit headers, added to `headers` (a fresh object by default). */
  private limitHeaders(state: AccountState, headers: Headers = {}): Headers {
    const nowMs = this.clock.nowMs();
    rateLimitHeaders(state.limiter.state(nowMs), headers);
    if (state.windows !== undefined) unifiedHeaders(state.windows.state(nowMs), headers);
    return headers;
  }

  /** Answers `error`; `headers`, the caller's fresh object, gets the common ones added. */
  private sendError(res: ServerResponse, requestId: string, error: ApiError, headers: Headers = {}): void {
    headers['request-id'] = requestId;
    headers['content-type'] = 'application/json';
    this.send(res, apiErrorStatus[error.type], headers, JSON.stringify(errorBody(error, requestId)));
  }

  /**
   * Sends a whole answer. `headers` is the caller's fresh object and gets `content-length` added:
   * headers are built in place, never copied, as every answer carries a dozen of them.
   */
  private send(res: ServerResponse, status: number, headers: Headers, body: string, counted = true): void {
    if (res.destroyed) return;
    if (counted) this.statsTable.onStatus(status);
    headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(status, headers);
    res.end(body);
  }
}

function ignore(): void {}

type ReadError = 'too-large' | 'aborted';

/**
 * Reads a request body of at most `bytesMax` bytes. A declared length past the bound is refused
 * before reading; an undeclared one is counted as it arrives and refused as soon as it passes the
 * bound, dropping what was read, so no more than the bound is ever held.
 */
function readBody(req: IncomingMessage, bytesMax: number): Promise<Result<Buffer, ReadError>> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > bytesMax) return Promise.resolve(err('too-large'));
  return new Promise((resolve) => {
    const body = new BodyReader(bytesMax, resolve);
    req.on('data', (chunk: Buffer) => body.onData(chunk));
    req.on('end', () => body.onEnd());
    req.on('close', () => body.onClose());
  });
}

/** One body being read: a class rather than closures, as every request reads one. */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private settled = false;

  constructor(
    private readonly bytesMax: number,
    private readonly resolve: (result: Result<Buffer, ReadError>) => void,
  ) {}

  onData(chunk: Buffer): void {
    if (this.settled) return;
    this.bytes += chunk.length;
    if (this.bytes > this.bytesMax) this.settle(err('too-large'));
    else this.chunks.push(chunk);
  }

  onEnd(): void {
    if (this.settled) return;
    // A small body arrives in one chunk, which needs no copy.
    this.settle(ok(this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks)));
  }

  onClose(): void {
    this.settle(err('aborted'));
  }

  private settle(result: Result<Buffer, ReadError>): void {
    if (this.settled) return;
    this.settled = true;
    // A refused body is dropped at once, not held until the request goes.
    if (!result.ok) this.chunks.length = 0;
    this.resolve(result);
  }
}

/** Waits `ms`; false if `signal` aborted first. An infinite wait lasts until the abort. */
async function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (!Number.isFinite(ms)) {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return false;
  }
  try {
    await sleepFor(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

function waitForDrain(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
