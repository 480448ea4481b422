import type { Socket } from 'node:net';

/**
 * A bound on the connections an HTTP server holds, where a new connection at the bound closes the
 * one that has been idle the longest (no request in progress), and is itself closed when none is
 * idle. Idle keep-alive connections are what a flood of connections is made of, and what a client
 * loses least by: its next request simply opens a new one, as after any keep-alive timeout.
 *
 * A connection is busy from its request's arrival until the response is finished or closed, and
 * idle from then (and from its opening, before its first request). `idle` keeps insertion order,
 * which is the order connections became idle, so the first entry is the longest idle.
 */
export class ConnectionBound {
  private readonly busy = new Map<Socket, number>();
  private readonly idle = new Set<Socket>();
  /** Idle connections closed to make room for new ones. */
  evicted = 0;
  /** New connections closed at once because every held one was busy. */
  refused = 0;

  constructor(private readonly connectionsMax: number) {}

  get size(): number {
    return this.busy.size + this.idle.size;
  }

  /** A new connection: held, or closed when no room can be made. */
  opened(socket: Socket): void {
    if (this.size >= this.connectionsMax) {
      const oldest = this.idle.values().next();
      if (oldest.done === true) {
        this.refused++;
        socket.destroy();
        return;
      }
      this.evicted++;
      this.forget(oldest.value);
      oldest.value.destroy();
    }
    this.idle.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  /** A request arrived on the connection. */
  requestStarted(socket: Socket): void {
    if (this.idle.delete(socket)) this.busy.set(socket, 1);
    else if (this.busy.has(socket)) this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
  }

  /** A request's response finished (or its connection broke). */
  requestEnded(socket: Socket): void {
    const count = this.busy.get(socket);
    if (count === undefined) return;
    if (count > 1) {
      this.busy.set(socket, count - 1);
      return;
    }
    this.busy.delete(socket);
    if (!socket.destroyed) this.idle.add(socket);
  }

  /** Closes every idle connection (on shutdown, so only busy ones hold the server open). */
  closeIdle(): void {
    for (const socket of this.idle) socket.destroy();
  }

  private forget(socket: Socket): void {
    this.busy.delete(socket);
    this.idle.delete(socket);
  }
}
