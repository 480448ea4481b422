// Mixed load for the crash tests: workers that send completions of several tenants to every
// region, unary and streamed, over gRPC (the typed client) and HTTP (the official Anthropic SDK),
// each under an id the client chose, and record what the client saw of each one. Bounded in
// count; stopped by the caller.
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError } from '@anthropic-ai/sdk';
import { SeededRandom } from '../../src/core/random.js';
import { CarpoolClient, type ClientError } from '../../src/net/grpc/carpool-client.js';
import type { CompleteRequest, Usage } from '../../src/net/grpc/carpool-handler.js';
import { countTextTokens, messageOverheadTokens, requestOverheadTokens } from '../../src/upstream/emulator/token-count.js';
import { sleep } from '../support/wait.js';
import { chaosTenants } from './chaos-config.js';

export type Transport = 'grpc' | 'http';

/** What a client saw of one request id, over all its attempts. */
export interface SentRequest {
  readonly id: string;
  readonly tenant: string;
  readonly region: string;
  readonly transport: Transport;
  readonly stream: boolean;
  /** The body's max_tokens: the most output the upstream may have produced for it. */
  readonly maxTokens: number;
  /** The input tokens the emulator counts for the body (its own tokenizer). */
  readonly inputTokens: number;
  /**
   * completed: an attempt ended with the answer (the unary reply, a stream that ended OK);
   * refused: the last attempt was refused at admission (quota, rate: RESOURCE_EXHAUSTED / 429);
   * failed: anything else (the node died under it, UNAVAILABLE, a cut stream).
   */
  outcome: 'completed' | 'refused' | 'failed' | 'running';
  /** One entry per attempt: OK, a gRPC status name, `HTTP <status>`, `connection`, `timeout`. */
  readonly codes: string[];
  /** The usage the client was told, for a completed request. */
  usage: Usage | undefined;
  servedRegion: string | undefined;
}

export interface LoadEndpoint {
  readonly region: string;
  /** host:port of the region's gRPC endpoint. */
  readonly grpc: string;
  /** The base URL of its HTTP front door. */
  readonly http: string;
}

export interface ChaosLoadOptions {
  readonly endpoints: readonly LoadEndpoint[];
  readonly apiKeys: Readonly<Record<string, string>>;
  /** The tenants requests are sent for, drawn alike; the crash run's three by default. */
  readonly tenants?: readonly string[];
  readonly seed: number;
  readonly workers: number;
  /** Prefix of every request id: ids must not repeat across runs on one mesh. */
  readonly idPrefix: string;
  /** No worker starts a request past this many in all. */
  readonly requestsMax: number;
  /** A call's deadline. */
  readonly callTimeoutMs: number;
}

/** Codes after which a client would not send the same id again: the answer is final. */
const finalCodes = new Set([
  'RESOURCE_EXHAUSTED',
  'INVALID_ARGUMENT',
  'UNAUTHENTICATED',
  'FAILED_PRECONDITION',
  'HTTP 429',
  'HTTP 400',
  'HTTP 401',
  'HTTP 403',
]);
const refusalCodes = new Set(['RESOURCE_EXHAUSTED', 'HTTP 429']);
/** Attempts of one id: the first and up to two retries with the same id, as a careful client makes. */
const attemptsMax = 3;
const utf8 = new TextEncoder();
const words = ['share', 'a', 'ride', 'to', 'the', 'coast', 'pool', 'lane', 'early', 'seat', 'window', 'map'];

type Attempt =
  | { readonly code: 'OK'; readonly usage: Usage | undefined; readonly servedRegion: string | undefined }
  | { readonly code: string; readonly pushbackMs: number | undefined };

export class ChaosLoad {
  readonly sent: SentRequest[] = [];
  private readonly grpcClients = new Map<string, CarpoolClient>();
  private readonly httpClients = new Map<string, Anthropic>();
  private stopping = false;
  private workers: Promise<void>[] = [];
  private next = 0;

  constructor(private readonly options: ChaosLoadOptions) {}

  start(): void {
    for (let w = 0; w < this.options.workers; w++) this.workers.push(this.work(w, new SeededRandom(this.options.seed * 1_000 + w)));
  }

  /** Stops starting requests and waits for the running ones (each bounded by its deadline). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
    this.workers = [];
  }

  close(): void {
    for (const client of this.grpcClients.values()) client.close();
    this.grpcClients.clear();
    this.httpClients.clear();
  }

  counts(): Record<SentRequest['outcome'], number> {
    const counts = { completed: 0, refused: 0, failed: 0, running: 0 };
    for (const request of this.sent) counts[request.outcome]++;
    return counts;
  }

  private async work(worker: number, random: SeededRandom): Promise<void> {
    while (!this.stopping && this.next < this.options.requestsMax) {
      const id = `${this.options.idPrefix}-${this.next++}`;
      const tenants = this.options.tenants ?? chaosTenants;
      const tenant = tenants[random.int(tenants.length)] as string;
      const region = (this.options.endpoints[random.int(this.options.endpoints.length)] as LoadEndpoint).region;
      const transport: Transport = random.float() < 0.6 ? 'grpc' : 'http';
      const stream = random.float() < 0.5;
      const body: MessageBody = {
        model: 'claude-sonnet-4-6',
        max_tokens: 8 + random.int(40),
        messages: [{ role: 'user', content: sentence(random, id) }],
        metadata: { user_id: `w${worker}` },
      };
      const request: SentRequest = { ...sentRequest(id, tenant, region, body.max_tokens, body.messages[0]?.content ?? ''), transport, stream };
      this.sent.push(request);
      await this.run(request, body, random);
    }
  }

  /** The attempts of one id: a retry after a failure that may have been the node dying. */
  private async run(request: SentRequest, body: MessageBody, random: SeededRandom): Promise<void> {
    for (let attempt = 1; attempt <= attemptsMax; attempt++) {
      const answer = await this.attempt(request, body);
      request.codes.push(answer.code);
      if (answer.code === 'OK' && 'usage' in answer) {
        request.outcome = 'completed';
        request.usage = answer.usage;
        request.servedRegion = answer.servedRegion;
        return;
      }
      request.outcome = refusalCodes.has(answer.code) ? 'refused' : 'failed';
      const pushbackMs = 'pushbackMs' in answer ? answer.pushbackMs : undefined;
      if (finalCodes.has(answer.code) || this.stopping || random.float() < 0.5) {
        // Back off as the refusal asked (bounded), so a bound limit is not hammered.
        await sleep(Math.min(pushbackMs ?? 50, 500));
        return;
      }
      await sleep(300 + random.int(1_200));
    }
  }

  private attempt(request: SentRequest, body: MessageBody): Promise<Attempt> {
    return request.transport === 'grpc' ? this.grpcAttempt(request, body) : this.httpAttempt(request, body);
  }

  private async grpcAttempt(request: SentRequest, body: MessageBody): Promise<Attempt> {
    const client = this.grpcClient(request.region, request.tenant);
    const { metadata, ...rest } = body;
    const call: CompleteRequest = {
      requestId: request.id,
      requestJson: utf8.encode(JSON.stringify(rest)),
      anthropicVersion: '',
      anthropicBeta: '',
      user: metadata.user_id,
    };
    const deadlineMs = Date.now() + this.options.callTimeoutMs;
    if (!request.stream) {
      const answer = await client.complete(call, { deadlineMs });
      return answer.ok ? { code: 'OK', usage: answer.value.usage, servedRegion: answer.value.servedRegion } : grpcFailure(answer.error);
    }
    let summary: { usage: Usage; servedRegion: string } | undefined;
    for await (const item of client.streamComplete(call, { deadlineMs })) {
      if (item.kind === 'error') return grpcFailure(item.error);
      if (item.kind === 'summary') summary = item.summary;
    }
    // The stream ended with status OK: the client saw it complete.
    return { code: 'OK', usage: summary?.usage, servedRegion: summary?.servedRegion };
  }

  private async httpAttempt(request: SentRequest, body: MessageBody): Promise<Attempt> {
    const sdk = this.httpClient(request.region, request.tenant);
    const options = { headers: { 'Idempotency-Key': request.id } };
    try {
      const message = request.stream ? await sdk.messages.stream(body, options).finalMessage() : await sdk.messages.create(body, options);
      const usage: Usage = {
        inputTokens: message.usage.input_tokens,
        outputTokens: message.usage.output_tokens,
        cacheCreationInputTokens: message.usage.cache_creation_input_tokens ?? 0,
        cacheReadInputTokens: message.usage.cache_read_input_tokens ?? 0,
      };
      return { code: 'OK', usage, servedRegion: undefined };
    } catch (error) {
      if (error instanceof APIConnectionTimeoutError) return { code: 'timeout', pushbackMs: undefined };
      if (error instanceof APIConnectionError) return { code: 'connection', pushbackMs: undefined };
      if (error instanceof APIError && error.status !== undefined) {
        const headers = error.headers as Headers | undefined;
        const retryAfter = Number(headers?.get('retry-after-ms') ?? NaN);
        return { code: `HTTP ${error.status}`, pushbackMs: Number.isFinite(retryAfter) ? retryAfter : undefined };
      }
      // A stream cut mid-way surfaces as the SDK's own error, or a plain one from fetch.
      return { code: `error ${(error as Error).name}`, pushbackMs: undefined };
    }
  }

  private grpcClient(region: string, tenant: string): CarpoolClient {
    const name = `${region}/${tenant}`;
    let client = this.grpcClients.get(name);
    if (client === undefined) {
      client = new CarpoolClient({ target: this.endpoint(region).grpc, apiKey: this.options.apiKeys[tenant] as string });
      this.grpcClients.set(name, client);
    }
    return client;
  }

  private httpClient(region: string, tenant: string): Anthropic {
    const name = `${region}/${tenant}`;
    let client = this.httpClients.get(name);
    if (client === undefined) {
      // No retries of the SDK's own: the workers retry, with the same id, and record each attempt.
      client = new Anthropic({
        apiKey: this.options.apiKeys[tenant] as string,
        baseURL: this.endpoint(region).http,
        maxRetries: 0,
        timeout: this.options.callTimeoutMs,
      });
      this.httpClients.set(name, client);
    }
    return client;
  }

  private endpoint(region: string): LoadEndpoint {
    const found = this.options.endpoints.find((endpoint) => endpoint.region === region);
    if (found === undefined) throw new Error(`no endpoint for ${region}`);
    return found;
  }
}

interface MessageBody {
  model: string;
  max_tokens: number;
  messages: { role: 'user'; content: string }[];
  metadata: { user_id: string };
}

/** A request about to be sent, with what the emulator will count of its input. */
export function sentRequest(id: string, tenant: string, region: string, maxTokens: number, content: string): SentRequest {
  return {
    id,
    tenant,
    region,
    transport: 'grpc',
    stream: false,
    maxTokens,
    inputTokens: requestOverheadTokens + messageOverheadTokens + countTextTokens(content),
    outcome: 'running',
    codes: [],
    usage: undefined,
    servedRegion: undefined,
  };
}

function grpcFailure(error: ClientError): Attempt {
  return error.kind === 'status' ? { code: error.codeName, pushbackMs: error.pushbackMs } : { code: 'MALFORMED', pushbackMs: undefined };
}

function sentence(random: SeededRandom, id: string): string {
  const picked: string[] = [];
  for (let i = 0, n = 4 + random.int(20); i < n; i++) picked.push(words[random.int(words.length)] as string);
  return `${id}: ${picked.join(' ')}`;
}
