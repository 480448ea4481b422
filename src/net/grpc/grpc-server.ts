import { degradedHeader } from '../../schedule/degrade.js';
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerErrorResponse,
  type ServerOptions,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatusMap } from 'grpc-health-check';
import { grpcStatusCodes } from '../../admission/outcome.js';
import { assert } from '../../core/assert.js';
import {
  grpcCallsInFlightMax,
  grpcCallsInFlightRetryAfterMs,
  grpcConnectionIdleMsMax,
  grpcKeepaliveTimeMs,
  grpcKeepaliveTimeoutMs,
  grpcReceiveMessageBytesMax,
  grpcSendMessageBytesMax,
  grpcStreamsPerConnectionMax,
} from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type {
  AdminCall,
  AdminError,
  AdminServiceHandler,
  CallContext,
  CarpoolCredentials,
  CarpoolHandler,
  GatewayError,
  GetPolicyRequest,
  ServiceError,
} from './carpool-handler.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import { openCall } from './call-context.js';
import {
  carpoolProtoPath,
  forwardProtoPath,
  forwardServiceOf,
  loadCarpoolProto,
  type AdminServiceMethods,
  type CarpoolServiceMethods,
} from './carpool-proto.js';
import type { ForwardHandler, ForwardResult } from './forward-handler.js';
import {
  decodeForwardProof,
  decodeForwardRequest,
  encodeForwardEvent,
  encodeForwardResult,
  memberKey,
  memberMacKey,
  memberTimestampKey,
  type WireForwardReply,
  type WireForwardRequest,
} from './forward-wire.js';
import {
  decodeAdjustUsageRequest,
  decodeCompleteRequest,
  decodeCountTokensRequest,
  decodeCreateApiKeyRequest,
  decodeEnableAccountRequest,
  decodeGetAuditRequest,
  decodeQueryUsageRequest,
  decodeGetUsageRequest,
  decodeListApiKeysRequest,
  decodePutSubjectRequest,
  decodeRemoveSubjectRequest,
  decodeRevokeApiKeyRequest,
  decodeRotateApiKeyRequest,
  encodeAdjustUsageResponse,
  encodeApiKeyInfo,
  encodeCompleteResponse,
  encodeCountTokensResponse,
  encodeCreateApiKeyResponse,
  encodeEnableAccountResponse,
  encodeGetAuditResponse,
  encodeQueryUsageResponse,
  encodeGetUsageResponse,
  encodeListApiKeysResponse,
  encodePolicyJson,
  encodeRemoveSubjectResponse,
  encodeRotateApiKeyResponse,
  type WireCompleteRequest,
  type WireCountTokensRequest,
  type WireGetUsageRequest,
  type WireStreamEvent,
} from './carpool-wire.js';
import { gatewayStatusOf, internalMessage } from './gateway-status.js';
import { adminTokenOf, carpoolCredentialsOf, type CredentialsProblem } from './metadata-credentials.js';
import { carpoolStreamEncoding, GrpcStreamSink, type StreamEncoding } from './stream-sink.js';

/**
 * The gRPC endpoint of a region node: carpool.v1.Carpool and carpool.v1.Admin translated to the
 * transport-neutral handlers of ./carpool-handler.ts, plus grpc.health.v1 and server reflection.
 *
 * Per call:
 *
 *   client ──request + metadata──▶ grpc-js (size limit: RESOURCE_EXHAUSTED before any handler)
 *          in-flight bound         past grpcCallsInFlightMax: UNAVAILABLE + pushback
 *          credentials             metadata → CarpoolCredentials (ambiguous: UNAUTHENTICATED)
 *          context                 peer IP, deadline, AbortSignal (cancel, deadline)
 *          handler                 Result<response, GatewayError>
 *   client ◀──response, or status── gatewayStatusOf (src/admission/outcome.ts tables),
 *                                   `grpc-retry-pushback-ms` when there is a retry hint
 *
 * A handler that throws or rejects is a bug: the client gets INTERNAL with a generic message, the
 * error goes to `onHandlerError` (a log line by default), and the server goes on serving. Whether
 * a failed assertion should stop the process is the composition root's call, not the adapter's.
 *
 * Health: the overall status ('') and each registered service answer NOT_SERVING until
 * `setServing(true)`; the node flips it when it can admit (quorum reached) and back while it has
 * none or drains. `stop()` reports NOT_SERVING first.
 */

export interface CarpoolGrpcServerOptions {
  readonly carpool: CarpoolHandler;
  /** The Admin service; without it the service is not registered (calls get UNIMPLEMENTED). */
  readonly admin?: AdminServiceHandler;
  /** The members-only Forward service (proto/carpool/mesh/v1/forward.proto); left out of reflection. */
  readonly forward?: ForwardHandler;
  readonly log?: (line: string) => void;
  /** Told of every handler that threw, after the client got INTERNAL. Default: a log line. */
  readonly onHandlerError?: (error: unknown, methodPath: string) => void;
  /** Largest message accepted, at most `grpcReceiveMessageBytesMax` (tests use smaller ones). */
  readonly receiveMessageBytesMax?: number;
  /** Largest message sent, at most `grpcSendMessageBytesMax`. */
  readonly sendMessageBytesMax?: number;
  /** Calls run at once, at most `grpcCallsInFlightMax`. */
  readonly callsInFlightMax?: number;
  /** Default: plaintext, for loopback, a private network or a TLS-terminating proxy. */
  readonly credentials?: ServerCredentials;
  readonly protoPath?: string;
}

export interface GrpcServerStats {
  readonly callsStarted: number;
  readonly callsInFlight: number;
  /** Calls refused at the in-flight bound. */
  readonly callsRefusedInFlight: number;
  /** Calls whose metadata held ambiguous credentials, refused before the handler. */
  readonly credentialsRefused: Readonly<Record<CredentialsProblem, number>>;
  /** Handlers that threw or rejected (answered INTERNAL). */
  readonly handlerFailures: number;
}

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port; `start` returns the one bound. */
  readonly port: number;
}

type ServerState = 'new' | 'starting' | 'started' | 'stopped';

const carpoolServiceName = 'carpool.v1.Carpool';
const adminServiceName = 'carpool.v1.Admin';
const healthServiceName = 'grpc.health.v1.Health';

/**
 * The grpc-js server options of a node's endpoint; the gateway benchmark's bare gRPC proxy
 * (test/bench/passthrough-process.ts) runs with the same ones, so its floor is this server's.
 */
export function grpcServerOptions(receiveBytesMax = grpcReceiveMessageBytesMax, sendBytesMax = grpcSendMessageBytesMax): ServerOptions {
  return {
    'grpc.max_receive_message_length': receiveBytesMax,
    'grpc.max_send_message_length': sendBytesMax,
    'grpc.keepalive_time_ms': grpcKeepaliveTimeMs,
    'grpc.keepalive_timeout_ms': grpcKeepaliveTimeoutMs,
    'grpc.max_concurrent_streams': grpcStreamsPerConnectionMax,
    'grpc.max_connection_idle_ms': grpcConnectionIdleMsMax,
    // channelz stays on (clients turn it off): with it off, grpc-js 1.14's forceShutdown no
    // longer cancels running calls (test/net/grpc/grpc-server.lifecycle.test.ts catches it).
  };
}

export class CarpoolGrpcServer {
  private readonly server: Server;
  private readonly credentials: ServerCredentials;
  private readonly health: HealthImplementation;
  private readonly healthNames: readonly string[];
  private readonly log: (line: string) => void;
  private readonly onHandlerError: (error: unknown, methodPath: string) => void;
  private readonly callsInFlightMax: number;
  private state: ServerState = 'new';
  private callsStarted = 0;
  private callsInFlight = 0;
  private callsRefusedInFlight = 0;
  private handlerFailures = 0;
  private readonly credentialsRefused: Record<CredentialsProblem, number> = {
    'repeated-credential': 0,
    'conflicting-keys': 0,
    'unsupported-authorization': 0,
    'tenant-credentials-on-admin': 0,
  };

  constructor(options: CarpoolGrpcServerOptions) {
    const receiveBytesMax = options.receiveMessageBytesMax ?? grpcReceiveMessageBytesMax;
    const sendBytesMax = options.sendMessageBytesMax ?? grpcSendMessageBytesMax;
    this.callsInFlightMax = options.callsInFlightMax ?? grpcCallsInFlightMax;
    assert(receiveBytesMax >= 1 && receiveBytesMax <= grpcReceiveMessageBytesMax, 'receiveMessageBytesMax is 1 to grpcReceiveMessageBytesMax');
    assert(sendBytesMax >= 1 && sendBytesMax <= grpcSendMessageBytesMax, 'sendMessageBytesMax is 1 to grpcSendMessageBytesMax');
    assert(this.callsInFlightMax >= 1 && this.callsInFlightMax <= grpcCallsInFlightMax, 'callsInFlightMax is 1 to grpcCallsInFlightMax');
    this.log = options.log ?? ((line) => console.error(line));
    this.onHandlerError =
      options.onHandlerError ??
      ((error, methodPath) => this.log(`grpc: ${methodPath} handler failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));

    this.server = new Server(grpcServerOptions(receiveBytesMax, sendBytesMax));
    this.credentials = options.credentials ?? ServerCredentials.createInsecure();

    // The health proto is loaded with the contract only so that reflection describes it too.
    const proto = loadCarpoolProto(options.protoPath ?? carpoolProtoPath, [healthProtoPath, forwardProtoPath]);
    this.server.addService(proto.carpool, this.carpoolService(options.carpool));
    const names = ['', carpoolServiceName];
    if (options.admin !== undefined) {
      this.server.addService(proto.admin, this.adminService(options.admin));
      names.push(adminServiceName);
    }
    const forward = options.forward;
    if (forward !== undefined) {
      const execute: handleServerStreamingCall<WireForwardRequest, WireForwardReply> = (call) => void this.forwardExecute(forward, call);
      this.server.addService(forwardServiceOf(proto.packageDefinition), { Execute: execute });
    }
    this.healthNames = names;
    const initial: ServingStatusMap = {};
    for (const name of names) initial[name] = 'NOT_SERVING';
    this.health = new HealthImplementation(initial);
    this.health.addToServer(this.server);
    // Reflection describes what is served, not all that the contract defines: without an admin
    // handler, carpool.v1.Admin is left out.
    new ReflectionService(proto.packageDefinition, { services: [...names.filter((name) => name !== ''), healthServiceName] }).addToServer(this.server);
  }

  /** Binds and serves; resolves with the bound port (the one picked, for port 0). */
  async start(address: ListenAddress): Promise<number> {
    assert(this.state === 'new', 'a server starts once');
    assert(Number.isInteger(address.port) && address.port >= 0 && address.port <= 65_535, 'a port is 0 to 65535');
    this.state = 'starting';
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${host}:${address.port}`, this.credentials, (error, bound) => (error === null ? resolve(bound) : reject(error)));
    });
    this.state = 'started';
    return port;
  }

  /** What health checks answer for the endpoint and each of its services. */
  setServing(serving: boolean): void {
    for (const name of this.healthNames) this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
  }

  /**
   * Reports NOT_SERVING, stops taking calls, and waits up to `graceMs` for the running ones; then
   * cancels what is left, whose handlers see their signal fire. Handlers may still be settling
   * (draining an upstream stream for its usage) when this resolves.
   */
  async stop(graceMs: number): Promise<void> {
    assert(Number.isFinite(graceMs) && graceMs >= 0, 'graceMs is a non-negative number');
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  stats(): GrpcServerStats {
    return {
      callsStarted: this.callsStarted,
      callsInFlight: this.callsInFlight,
      callsRefusedInFlight: this.callsRefusedInFlight,
      credentialsRefused: { ...this.credentialsRefused },
      handlerFailures: this.handlerFailures,
    };
  }

  // ---- Carpool ----

  private carpoolService(handler: CarpoolHandler): UntypedServiceImplementation {
    const streamComplete: handleServerStreamingCall<WireCompleteRequest, WireStreamEvent> = (call) => void this.streamComplete(handler, call);
    const methods: { readonly [K in keyof CarpoolServiceMethods]: UntypedHandleCall } = {
      Complete: this.unary(async (wire: WireCompleteRequest, metadata, context, call) => {
        const credentials = this.carpoolCredentials(metadata);
        if (!credentials.ok) return credentials;
        const request = decodeCompleteRequest(wire);
        const result = await handler.complete({
          ...context,
          request,
          credentials: credentials.value,
          signedContent: signed(context, request.requestJson),
          onDegraded: degradedMetadataSender(call),
        });
        return result.ok ? ok(encodeCompleteResponse(result.value)) : result;
      }),
      StreamComplete: streamComplete,
      CountTokens: this.unary(async (wire: WireCountTokensRequest, metadata, context) => {
        const credentials = this.carpoolCredentials(metadata);
        if (!credentials.ok) return credentials;
        const request = decodeCountTokensRequest(wire);
        const result = await handler.countTokens({ ...context, request, credentials: credentials.value, signedContent: signed(context, request.requestJson) });
        return result.ok ? ok(encodeCountTokensResponse(result.value)) : result;
      }),
      GetUsage: this.unary(async (wire: WireGetUsageRequest, metadata, context) => {
        const credentials = this.carpoolCredentials(metadata);
        if (!credentials.ok) return credentials;
        const request = decodeGetUsageRequest(wire);
        if (!request.ok) return request;
        const result = await handler.getUsage({
          ...context,
          request: request.value,
          credentials: credentials.value,
          signedContent: signed(context, emptyBody),
        });
        return result.ok ? ok(encodeGetUsageResponse(result.value)) : result;
      }),
    };
    return methods;
  }

  private streamComplete(handler: CarpoolHandler, call: ServerWritableStream<WireCompleteRequest, WireStreamEvent>): Promise<void> {
    return this.serverStream(call, carpoolStreamEncoding, async (context, sink) => {
      const credentials = this.carpoolCredentials(call.metadata);
      if (!credentials.ok) return credentials;
      const request = decodeCompleteRequest(call.request);
      return handler.streamComplete(
        { ...context, request, credentials: credentials.value, signedContent: signed(context, request.requestJson), onDegraded: degradedMetadataSender(call) },
        sink,
      );
    });
  }

  private carpoolCredentials(metadata: Metadata): Result<CarpoolCredentials, GatewayError> {
    const credentials = carpoolCredentialsOf(metadata);
    if (credentials.ok) return credentials;
    return this.credentialsRefusal(credentials.error);
  }

  // ---- Admin ----

  /**
   * Each Admin method: the token from metadata (a tenant's credentials are refused here), the
   * request decoded, the handler called, the answer encoded. Roles are the handler's to check,
   * since it holds the tokens.
   */
  private adminService(handler: AdminServiceHandler): UntypedServiceImplementation {
    const method = <Wire, Request, Response, Reply>(
      decode: (wire: Wire) => Request,
      invoke: (call: AdminCall<Request>) => Promise<Result<Response, AdminError>>,
      encode: (response: Response) => Reply,
    ): handleUnaryCall<Wire, Reply> =>
      this.unary(async (wire: Wire, metadata, context) => {
        const token = adminTokenOf(metadata);
        if (!token.ok) return this.credentialsRefusal(token.error, 'admin-token');
        const result = await invoke({ ...context, request: decode(wire), adminToken: token.value });
        return result.ok ? ok(encode(result.value)) : result;
      });
    const methods: { readonly [K in keyof AdminServiceMethods]: UntypedHandleCall } = {
      GetPolicy: method(
        (): GetPolicyRequest => ({}),
        (call) => handler.getPolicy(call),
        encodePolicyJson,
      ),
      GetPool: method(
        (): GetPolicyRequest => ({}),
        (call) => handler.getPool(call),
        encodePolicyJson,
      ),
      PutTenant: method(decodePutSubjectRequest, (call) => handler.putTenant(call), encodePolicyJson),
      RemoveTenant: method(decodeRemoveSubjectRequest, (call) => handler.removeTenant(call), encodeRemoveSubjectResponse),
      PutAccount: method(decodePutSubjectRequest, (call) => handler.putAccount(call), encodePolicyJson),
      RemoveAccount: method(decodeRemoveSubjectRequest, (call) => handler.removeAccount(call), encodeRemoveSubjectResponse),
      CreateApiKey: method(decodeCreateApiKeyRequest, (call) => handler.createApiKey(call), encodeCreateApiKeyResponse),
      ListApiKeys: method(decodeListApiKeysRequest, (call) => handler.listApiKeys(call), encodeListApiKeysResponse),
      RevokeApiKey: method(decodeRevokeApiKeyRequest, (call) => handler.revokeApiKey(call), encodeApiKeyInfo),
      RotateApiKey: method(decodeRotateApiKeyRequest, (call) => handler.rotateApiKey(call), encodeRotateApiKeyResponse),
      EnableAccount: method(decodeEnableAccountRequest, (call) => handler.enableAccount(call), encodeEnableAccountResponse),
      AdjustUsage: method(decodeAdjustUsageRequest, (call) => handler.adjustUsage(call), encodeAdjustUsageResponse),
      GetAudit: method(decodeGetAuditRequest, (call) => handler.getAudit(call), encodeGetAuditResponse),
      QueryUsage: method(decodeQueryUsageRequest, (call) => handler.queryUsage(call), encodeQueryUsageResponse),
    };
    return methods;
  }

  // ---- Forward (members only) ----

  private forwardExecute(handler: ForwardHandler, call: ServerWritableStream<WireForwardRequest, WireForwardReply>): Promise<void> {
    return this.serverStream(call, forwardStreamEncoding, async (context, sink) => {
      const first = (key: string): string | undefined => {
        const values = call.metadata.get(key);
        return values.length === 1 && typeof values[0] === 'string' ? values[0] : undefined;
      };
      const proof = decodeForwardProof(first(memberKey), first(memberTimestampKey), first(memberMacKey));
      if (!proof.ok) return err({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: proof.error.field } });
      const request = decodeForwardRequest(call.request);
      if (!request.ok) return err({ kind: 'invalid', field: request.error.field, reason: request.error.reason });
      const outcome = await handler.execute({ ...context, request: request.value, proof: proof.value }, request.value.stream ? sink : undefined);
      return 'outcome' in outcome ? ok(outcome) : err({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: outcome.reason } });
    });
  }

  // ---- Plumbing ----

  /**
   * A server-streaming grpc-js handler around `invoke`: the in-flight bound, the context, a
   * backpressured sink with the method's encoding, the last message on success, errors to
   * statuses, and a throwing `invoke` to INTERNAL.
   */
  private async serverStream<Request, Wire, Event, End>(
    call: ServerWritableStream<Request, Wire>,
    encoding: StreamEncoding<Event, End, Wire>,
    invoke: (context: CallContext, sink: GrpcStreamSink<Event, End, Wire>) => Promise<Result<End, GatewayError>>,
  ): Promise<void> {
    if (!this.enter()) {
      call.emit('error', this.errorResponse(inFlightRefusal));
      return;
    }
    const opened = openCall(call);
    let sink: GrpcStreamSink<Event, End, Wire> | undefined;
    try {
      sink = new GrpcStreamSink(call, opened.context.signal, encoding);
      const result = await invoke(opened.context, sink);
      opened.close();
      if (result.ok) {
        sink.finish(result.value);
        call.end();
      } else {
        sink.finish(undefined);
        call.emit('error', this.errorResponse(result.error));
      }
    } catch (error) {
      opened.close();
      sink?.finish(undefined);
      this.handlerFailed(error, opened.context.methodPath);
      call.emit('error', internalResponse());
    } finally {
      this.leave();
    }
  }

  /** A unary grpc-js handler around `invoke`: the in-flight bound, the context, errors to statuses. */
  private unary<Wire, Reply>(
    invoke: (wire: Wire, metadata: Metadata, context: CallContext, call: MetadataSender) => Promise<Result<Reply, ServiceError>>,
  ): handleUnaryCall<Wire, Reply> {
    return (call, callback) => void this.runUnary(call, callback, invoke);
  }

  private async runUnary<Wire, Reply>(
    call: ServerUnaryCall<Wire, Reply>,
    callback: sendUnaryData<Reply>,
    invoke: (wire: Wire, metadata: Metadata, context: CallContext, call: MetadataSender) => Promise<Result<Reply, ServiceError>>,
  ): Promise<void> {
    if (!this.enter()) {
      callback(this.errorResponse(inFlightRefusal));
      return;
    }
    const opened = openCall(call);
    try {
      const result = await invoke(call.request, call.metadata, opened.context, call);
      opened.close();
      if (result.ok) callback(null, result.value);
      else callback(this.errorResponse(result.error));
    } catch (error) {
      opened.close();
      this.handlerFailed(error, opened.context.methodPath);
      callback(internalResponse());
    } finally {
      this.leave();
    }
  }

  private enter(): boolean {
    if (this.callsInFlight >= this.callsInFlightMax) {
      this.callsRefusedInFlight++;
      return false;
    }
    this.callsStarted++;
    this.callsInFlight++;
    return true;
  }

  private leave(): void {
    this.callsInFlight--;
    assert(this.callsInFlight >= 0, 'every call leaves once');
  }

  private credentialsRefusal(problem: CredentialsProblem, credential: 'api-key' | 'admin-token' = 'api-key'): Result<never, GatewayError> {
    this.credentialsRefused[problem]++;
    return err({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: problem, credential } });
  }

  private handlerFailed(error: unknown, methodPath: string): void {
    this.handlerFailures++;
    try {
      this.onHandlerError(error, methodPath);
    } catch (reportError) {
      // A failing reporter must not take the endpoint down with it; the log is the last resort.
      this.log(`grpc: reporting a handler failure failed: ${String(reportError)}`);
    }
  }

  private errorResponse(error: ServiceError): ServerErrorResponse {
    const status = gatewayStatusOf(error);
    const metadata = new Metadata();
    if (status.pushbackMs !== undefined) metadata.set('grpc-retry-pushback-ms', status.pushbackMs);
    return Object.assign(new Error(status.details), { code: status.code, details: status.details, metadata });
  }
}

const emptyBody = new Uint8Array(0);

/** What sends a call's response headers: a unary call or a server stream, before its first message. */
interface MetadataSender {
  sendMetadata(metadata: Metadata): void;
}

/**
 * Sends `carpool-degraded` as response metadata: the gateway tells it before the reply or the
 * first event, so it goes out as the call's headers (grpc-js sends them with the first message
 * otherwise, and takes them once).
 */
function degradedMetadataSender(call: MetadataSender): (value: string) => void {
  return (value) => {
    const metadata = new Metadata();
    metadata.set(degradedHeader, value);
    call.sendMetadata(metadata);
  };
}

const forwardStreamEncoding: StreamEncoding<SseEvent, ForwardResult, WireForwardReply> = Object.freeze({ event: encodeForwardEvent, end: encodeForwardResult });

const inFlightRefusal: GatewayError = { kind: 'rejected', rejection: { kind: 'shed', retryAfterMs: grpcCallsInFlightRetryAfterMs } };

/** What a signature covers for a call: gRPC calls are POSTs to the method path. */
function signed(context: CallContext, body: Uint8Array): { readonly method: string; readonly path: string; readonly body: Uint8Array } {
  return { method: 'POST', path: context.methodPath, body };
}

function internalResponse(): ServerErrorResponse {
  return Object.assign(new Error(internalMessage), { code: grpcStatusCodes.INTERNAL, details: internalMessage, metadata: new Metadata() });
}
