import {
  type CallOptions,
  type ChannelCredentials,
  Client,
  credentials as grpcCredentials,
  Metadata,
  type MethodDefinition,
  type ServiceError,
  status as grpcStatus,
} from '@grpc/grpc-js';
import { assert } from '../../core/assert.js';
import { grpcSendMessageBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type {
  CompleteRequest,
  CompleteResponse,
  CountTokensRequest,
  CountTokensResponse,
  GetUsageRequest,
  GetUsageResponse,
  StreamEvent,
} from './carpool-handler.js';
import { carpoolProtoPath, loadCarpoolProto, type CarpoolServiceMethods } from './carpool-proto.js';
import {
  decodeCompleteResponse,
  decodeCountTokensResponse,
  decodeGetUsageResponse,
  decodeStreamEvent,
  encodeCompleteRequest,
  encodeCountTokensRequest,
  encodeGetUsageRequest,
} from './carpool-wire.js';

/**
 * A typed Node client for carpool.v1.Carpool, for tests, the `client` command and end-to-end
 * runs. It loads the same .proto as the server and speaks the handler's types
 * (./carpool-handler.ts). A call that ends with a non-OK status is an expected outcome (over quota,
 * shed, bad key), so it comes back as a `ClientError` value with the retry pushback read out,
 * never as an exception.
 */

export interface CarpoolClientOptions {
  /** `host:port`, or any grpc-js target (`dns:///carpool.example:443`). */
  readonly target: string;
  /** Sent as `x-api-key` on every call, unless a call's own metadata names a credential. */
  readonly apiKey?: string;
  /** Default: plaintext. */
  readonly credentials?: ChannelCredentials;
  /** Largest message accepted; default the server's send bound, so a whole message always fits. */
  readonly receiveMessageBytesMax?: number;
  readonly protoPath?: string;
}

export interface CarpoolCallOptions {
  /** Milliseconds since the Unix epoch; the server's signal fires then and the call fails. */
  readonly deadlineMs?: number;
  /** Cancels the call when it fires. */
  readonly signal?: AbortSignal;
  /** Extra metadata (signature fields, a different key); replaces the client's `x-api-key`. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Told the server's response headers (such as `carpool-degraded`), when they arrive. */
  readonly onMetadata?: (metadata: Metadata) => void;
}

export type ClientError =
  /** The call ended with a status other than OK. */
  | {
      readonly kind: 'status';
      readonly code: number;
      /** The status's canonical name, such as `RESOURCE_EXHAUSTED`. */
      readonly codeName: string;
      readonly details: string;
      /** `grpc-retry-pushback-ms`, when the server sent one. */
      readonly pushbackMs: number | undefined;
      readonly metadata: Metadata;
    }
  /** A stream message with no case of the oneof set. */
  | { readonly kind: 'malformed'; readonly detail: string };

/** What a stream yields: its events, the summary, and at most one error, last. */
export type StreamItem = StreamEvent | { readonly kind: 'error'; readonly error: ClientError };

const credentialHeaders = ['x-api-key', 'authorization', 'x-carpool-key-id', 'x-carpool-timestamp', 'x-carpool-nonce', 'x-carpool-signature'];

export class CarpoolClient {
  private readonly client: Client;
  private readonly methods: CarpoolServiceMethods;
  private readonly apiKey: string | undefined;

  constructor(options: CarpoolClientOptions) {
    const receiveBytesMax = options.receiveMessageBytesMax ?? grpcSendMessageBytesMax;
    assert(Number.isSafeInteger(receiveBytesMax) && receiveBytesMax >= 1, 'receiveMessageBytesMax is a positive integer');
    this.methods = loadCarpoolProto(options.protoPath ?? carpoolProtoPath).carpool;
    this.apiKey = options.apiKey;
    this.client = new Client(options.target, options.credentials ?? grpcCredentials.createInsecure(), {
      'grpc.max_receive_message_length': receiveBytesMax,
      'grpc.enable_channelz': 0,
    });
  }

  complete(request: CompleteRequest, options: CarpoolCallOptions = {}): Promise<Result<CompleteResponse, ClientError>> {
    return this.unary(this.methods.Complete, encodeCompleteRequest(request), options, decodeCompleteResponse);
  }

  countTokens(request: CountTokensRequest, options: CarpoolCallOptions = {}): Promise<Result<CountTokensResponse, ClientError>> {
    return this.unary(this.methods.CountTokens, encodeCountTokensRequest(request), options, decodeCountTokensResponse);
  }

  getUsage(request: GetUsageRequest, options: CarpoolCallOptions = {}): Promise<Result<GetUsageResponse, ClientError>> {
    return this.unary(this.methods.GetUsage, encodeGetUsageRequest(request), options, decodeGetUsageResponse);
  }

  /**
   * The events of one streamed completion, the summary, and an error item if the call failed.
   * Reading is pulled: while the consumer does not ask for the next item, the client stops
   * reading and HTTP/2 flow control holds the server back. Leaving the loop early (`break`)
   * cancels the call.
   */
  async *streamComplete(request: CompleteRequest, options: CarpoolCallOptions = {}): AsyncGenerator<StreamItem, void, undefined> {
    const method = this.methods.StreamComplete;
    const call = this.client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      encodeCompleteRequest(request),
      this.metadataOf(options),
      callOptionsOf(options),
    );
    const cancel = (): void => call.cancel();
    if (options.onMetadata !== undefined) call.on('metadata', options.onMetadata);
    options.signal?.addEventListener('abort', cancel, { once: true });
    if (options.signal?.aborted === true) cancel();
    try {
      for await (const wire of call) {
        const event = decodeStreamEvent(wire as Parameters<typeof decodeStreamEvent>[0]);
        if (event === undefined) {
          yield { kind: 'error', error: { kind: 'malformed', detail: 'a stream message had no event and no summary' } };
          return;
        }
        yield event;
      }
    } catch (error) {
      yield { kind: 'error', error: statusErrorOf(error as ServiceError) };
    } finally {
      options.signal?.removeEventListener('abort', cancel);
      // No-op after the status arrived; otherwise the consumer left early and the call must end.
      call.cancel();
    }
  }

  close(): void {
    this.client.close();
  }

  private unary<WireRequest, WireResponse, Response>(
    method: MethodDefinition<WireRequest, WireResponse>,
    request: WireRequest,
    options: CarpoolCallOptions,
    decode: (wire: WireResponse) => Response,
  ): Promise<Result<Response, ClientError>> {
    return new Promise((resolve) => {
      const call = this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        this.metadataOf(options),
        callOptionsOf(options),
        (error, response) => {
          options.signal?.removeEventListener('abort', cancel);
          if (error !== null) resolve(err(statusErrorOf(error)));
          else if (response === undefined) resolve(err({ kind: 'malformed', detail: 'an OK status without a response' }));
          else resolve(ok(decode(response)));
        },
      );
      const cancel = (): void => call.cancel();
      if (options.onMetadata !== undefined) call.on('metadata', options.onMetadata);
      options.signal?.addEventListener('abort', cancel, { once: true });
      if (options.signal?.aborted === true) cancel();
    });
  }

  private metadataOf(options: CarpoolCallOptions): Metadata {
    const metadata = new Metadata();
    const extra = options.metadata ?? {};
    const namesCredential = Object.keys(extra).some((name) => credentialHeaders.includes(name.toLowerCase()));
    if (this.apiKey !== undefined && !namesCredential) metadata.set('x-api-key', this.apiKey);
    for (const [name, value] of Object.entries(extra)) metadata.set(name, value);
    return metadata;
  }
}

function callOptionsOf(options: CarpoolCallOptions): Partial<CallOptions> {
  return options.deadlineMs === undefined ? {} : { deadline: options.deadlineMs };
}

function statusErrorOf(error: ServiceError): ClientError {
  const pushback = error.metadata?.get('grpc-retry-pushback-ms')[0];
  const pushbackMs = typeof pushback === 'string' && /^\d+$/.test(pushback) ? Number(pushback) : undefined;
  return {
    kind: 'status',
    code: error.code,
    codeName: grpcStatus[error.code] ?? 'UNKNOWN',
    details: error.details,
    pushbackMs,
    metadata: error.metadata ?? new Metadata(),
  };
}
