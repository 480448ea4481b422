import { Client, credentials as grpcCredentials, Metadata, type ServiceError, status as grpcStatus } from '@grpc/grpc-js';
import { forwardChannelsMax, grpcSendMessageBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import { type ForwardServiceMethods, loadForwardService } from './carpool-proto.js';
import type { ForwardProof, ForwardRequest, ForwardResult } from './forward-handler.js';
import { decodeForwardReply, encodeForwardRequest, memberKey, memberMacKey, memberTimestampKey, type WireForwardReply } from './forward-wire.js';

/**
 * The origin's side of carpool.mesh.v1.Forward: one grpc-js channel per home member address
 * (at most `forwardChannelsMax`, one per mesh member), and `execute`, which relays the events
 * of a forwarded stream to the caller's sink as they arrive and ends with the home node's
 * result, or with a transport error saying whether any event had arrived (only a forward that
 * received nothing may be repeated as if it never happened).
 *
 * Reading is pulled: the next message is read only when the sink's promise settled, so a slow
 * client slows the home node's upstream read through HTTP/2 flow control, as for a local call.
 */
export interface ForwardTransportError {
  readonly kind: 'transport';
  /** The gRPC status name, or `MALFORMED` for a reply that did not decode. */
  readonly code: string;
  readonly detail: string;
  readonly eventsSeen: number;
}

export interface ForwardExecuteOptions {
  readonly deadlineMs: number;
  readonly onEvent?: (event: SseEvent) => void | PromiseLike<void>;
  /** Cancels the call when it fires: the home node sees its Execute cancelled. */
  readonly signal?: AbortSignal;
}

export class ForwardClient {
  private readonly methods: ForwardServiceMethods = loadForwardService();
  private readonly channels = new Map<string, Client>();
  private closed = false;

  async execute(
    address: string,
    request: ForwardRequest,
    proof: ForwardProof,
    options: ForwardExecuteOptions,
  ): Promise<Result<ForwardResult, ForwardTransportError>> {
    if (this.closed) return err({ kind: 'transport', code: 'CANCELLED', detail: 'the forward client is closed', eventsSeen: 0 });
    const client = this.channelFor(address);
    const metadata = new Metadata();
    metadata.set(memberKey, proof.member);
    metadata.set(memberTimestampKey, String(proof.timestampMs));
    metadata.set(memberMacKey, proof.mac);
    const method = this.methods.Execute;
    const call = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, encodeForwardRequest(request), metadata, {
      deadline: options.deadlineMs,
    });
    let eventsSeen = 0;
    const cancel = (): void => call.cancel();
    options.signal?.addEventListener('abort', cancel, { once: true });
    if (options.signal?.aborted === true) cancel();
    try {
      for await (const wire of call) {
        const reply = decodeForwardReply(wire as WireForwardReply);
        if (!reply.ok) return err({ kind: 'transport', code: 'MALFORMED', detail: `${reply.error.field}: ${reply.error.reason}`, eventsSeen });
        if (reply.value.kind === 'result') return ok(reply.value.result);
        eventsSeen++;
        await options.onEvent?.(reply.value.event);
      }
      return err({ kind: 'transport', code: 'MALFORMED', detail: 'the stream ended without a result', eventsSeen });
    } catch (error) {
      const serviceError = error as Partial<ServiceError>;
      const code = typeof serviceError.code === 'number' ? (grpcStatus[serviceError.code] ?? 'UNKNOWN') : 'UNKNOWN';
      return err({ kind: 'transport', code, detail: serviceError.details ?? String(error), eventsSeen });
    } finally {
      options.signal?.removeEventListener('abort', cancel);
      // No-op once the result arrived; otherwise the reader left early and the call must end.
      call.cancel();
    }
  }

  /** Closes every channel; calls still running end with CANCELLED. */
  close(): void {
    this.closed = true;
    for (const client of this.channels.values()) client.close();
    this.channels.clear();
  }

  private channelFor(address: string): Client {
    let client = this.channels.get(address);
    if (client !== undefined) return client;
    // Addresses come from the node's configuration, one per member; a full table means a bug.
    if (this.channels.size >= forwardChannelsMax) {
      const [oldest, channel] = this.channels.entries().next().value as [string, Client];
      channel.close();
      this.channels.delete(oldest);
    }
    client = new Client(address, grpcCredentials.createInsecure(), { 'grpc.max_receive_message_length': grpcSendMessageBytesMax, 'grpc.enable_channelz': 0 });
    this.channels.set(address, client);
    return client;
  }
}
