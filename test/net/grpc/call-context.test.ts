// Proves a call's context turns grpc-js peers into IPs and fires its signal for the right reason.
// Peer strings from grpc-js become IPs (IPv6 without brackets included); the signal fires on
// cancellation or at the deadline with the right reason, and never after close().
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CallEndedError } from '../../../src/net/grpc/carpool-handler.js';
import { deadlineMsOf, openCall, peerIpOf, type SurfaceCall } from '../../../src/net/grpc/call-context.js';
import { until } from '../../support/wait.js';

class FakeCall extends EventEmitter implements SurfaceCall {
  cancelled = false;
  constructor(private readonly deadline: Date | number = Infinity) {
    super();
  }
  getDeadline(): Date | number {
    return this.deadline;
  }
  getPeer(): string {
    return '10.1.2.3:4567';
  }
  getPath(): string {
    return '/carpool.v1.Carpool/Complete';
  }
}

describe('peerIpOf', () => {
  it('drops the port of IPv4 and unbracketed or bracketed IPv6 peers, and reduces IPv4-mapped addresses', () => {
    expect(peerIpOf('127.0.0.1:5000')).toBe('127.0.0.1');
    expect(peerIpOf('::1:5000')).toBe('::1');
    expect(peerIpOf('2001:db8::1:443')).toBe('2001:db8::1');
    expect(peerIpOf('[2001:DB8::2]:443')).toBe('2001:db8::2');
    expect(peerIpOf('::ffff:10.0.0.7:5000')).toBe('10.0.0.7');
    expect(peerIpOf('10.0.0.8')).toBe('10.0.0.8');
  });

  it('gives undefined for what is not an address', () => {
    expect(peerIpOf('unknown')).toBeUndefined();
    expect(peerIpOf('/run/carpool.sock')).toBeUndefined();
    expect(peerIpOf('')).toBeUndefined();
    expect(peerIpOf('999.1.1.1:80')).toBeUndefined();
  });
});

describe('openCall', () => {
  it('reads the deadline and the peer', () => {
    expect(deadlineMsOf(Infinity)).toBeUndefined();
    expect(deadlineMsOf(new Date(1_000))).toBe(1_000);
    const opened = openCall(new FakeCall(5_000_000_000_000));
    expect(opened.context).toMatchObject({ peerIp: '10.1.2.3', deadlineMs: 5_000_000_000_000, methodPath: '/carpool.v1.Carpool/Complete' });
    opened.close();
  });

  it('fires on cancellation with reason cancelled, or deadline once the deadline has passed', () => {
    const call = new FakeCall();
    const opened = openCall(call);
    call.emit('cancelled');
    expect((opened.context.signal.reason as CallEndedError).reason).toBe('cancelled');

    let nowMs = 1_000;
    const late = new FakeCall(2_000);
    const lateOpened = openCall(late, () => nowMs);
    nowMs = 2_000;
    late.emit('cancelled');
    expect(lateOpened.context.signal.reason).toBeInstanceOf(CallEndedError);
    expect((lateOpened.context.signal.reason as CallEndedError).reason).toBe('deadline');

    // Well before the deadline, a cancellation is the client's own.
    const early = new FakeCall(2_000);
    nowMs = 1_000;
    const earlyOpened = openCall(early, () => nowMs);
    early.emit('cancelled');
    expect((earlyOpened.context.signal.reason as CallEndedError).reason).toBe('cancelled');
    opened.close();
    lateOpened.close();
    earlyOpened.close();
  });

  it('fires at the deadline by its own timer', async () => {
    const opened = openCall(new FakeCall(Date.now() + 30));
    await until(() => opened.context.signal.aborted, 'the deadline timer', 1_000);
    expect((opened.context.signal.reason as CallEndedError).reason).toBe('deadline');
    opened.close();
  });

  it('stops firing after close(), as grpc-js emits cancelled after every call', async () => {
    const call = new FakeCall(Date.now() + 20);
    const opened = openCall(call);
    opened.close();
    call.emit('cancelled');
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(opened.context.signal.aborted).toBe(false);
    expect(call.listenerCount('cancelled')).toBe(0);
  });

  it('fires at once for a call already cancelled', () => {
    const call = new FakeCall();
    call.cancelled = true;
    expect(openCall(call).context.signal.aborted).toBe(true);
  });
});
