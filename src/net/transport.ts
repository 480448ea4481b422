/**
 * What the composition root needs from a mesh transport, so the same node code runs over real
 * WebSockets (`ws-transport.ts`) and over the simulator's network. A link is one connection;
 * which member is at its other end is only known once the mesh handshake (src/mesh) is done.
 */
export type LinkId = number;

export interface LinkInfo {
  readonly direction: 'inbound' | 'outbound';
  /** For outbound links: the member id this transport dialed. */
  readonly dialedPeer?: string;
  /** `host:port` of the other end, for logs. */
  readonly remoteAddress: string;
}

export interface TransportHandler {
  onOpen(link: LinkId, info: LinkInfo): void;
  /** One binary message; text messages never reach the handler (the link is closed instead). */
  onMessage(link: LinkId, bytes: Uint8Array): void;
  onClose(link: LinkId, info: { readonly code: number; readonly reason: string }): void;
}

/**
 * `dropped`: a droppable frame was not queued because the link's send queue is full (the mesh
 * repairs the loss by digest). `closed`: the link is gone, or an essential frame did not fit and
 * the link was closed (a fresh connection restarts with a digest exchange).
 */
export type SendResult = 'sent' | 'dropped' | 'closed';

export interface Transport {
  send(link: LinkId, bytes: Uint8Array, droppable: boolean): SendResult;
  close(link: LinkId, code: number, reason: string): void;
}
