// Proves the answer ledger (here with the home node's forward answers) runs a key once: a repeat
// while it runs is refused, a repeat after it is replayed with its owner; entries expire and are
// evicted oldest first within their bounds, running ones never; answers past the bound are not kept.
import { describe, expect, it } from 'vitest';
import type { RegionId } from '../../src/core/ids.js';
import type { ForwardResult } from '../../src/net/grpc/forward-handler.js';
import type { AnswerLedger } from '../../src/node/answer-ledger.js';
import { forwardLedgerBounds, newForwardLedger, type StoredAnswer } from '../../src/node/forward/forward-executor.js';

const account = 'acct-1';
const origin = 'use-1';
const other = 'aps-1';
const id = (n: number, on = account): string => `req-${n}/${on}`;

function ledgerOf(entriesMax: number, bytesMax: number, ttlMs: number): AnswerLedger<StoredAnswer> {
  return newForwardLedger({ ...forwardLedgerBounds, entriesMax, bytesMax, ttlMs });
}

function answer(messageBytes: number): StoredAnswer {
  const result: ForwardResult = {
    outcome: 'ok',
    usage: { input: 10, output: 5, cacheWrite: 0, cacheRead: 0 },
    feedback: undefined,
    messageJson: new Uint8Array(messageBytes),
    upstreamRequestId: undefined,
    status: 0,
    errorType: '',
    detail: '',
    cancelled: false,
    estimated: false,
    replayed: false,
    settledElsewhere: false,
    servedRegion: 'eu-west' as RegionId,
  };
  return { result, events: undefined, answerKept: true, stream: false };
}

describe('AnswerLedger', () => {
  it('runs a pair once: running is refused, done is replayed with the first origin', () => {
    const ledger = newForwardLedger();
    expect(ledger.begin(id(1), origin, 0).kind).toBe('new');
    expect(ledger.begin(id(1), other, 1).kind).toBe('running');
    // Another account is another pair: a retry may go elsewhere.
    expect(ledger.begin(id(1, 'acct-2'), origin, 1).kind).toBe('new');
    ledger.finish(id(1), answer(100), 2);
    const again = ledger.begin(id(1), other, 3);
    expect(again.kind).toBe('done');
    if (again.kind === 'done') {
      expect(again.owner).toBe(origin);
      expect(again.answer.result.usage.output).toBe(5);
      expect(again.answer.result.messageJson?.length).toBe(100);
    }
    expect(ledger.stats.replayed).toBe(1);
    expect(ledger.stats.refusedRunning).toBe(1);
  });

  it('forgets an abandoned pair so that a repeat may run it', () => {
    const ledger = newForwardLedger();
    ledger.begin(id(1), origin, 0);
    ledger.abandon(id(1));
    expect(ledger.begin(id(1), origin, 1).kind).toBe('new');
  });

  it('expires done entries after the time to live, never running ones', () => {
    const ledger = ledgerOf(10, 1_000_000, 100);
    ledger.begin(id(1), origin, 0);
    ledger.begin(id(2), origin, 0);
    ledger.finish(id(2), answer(10), 0);
    expect(ledger.begin(id(3), origin, 150).kind).toBe('new');
    expect(ledger.stats.expired).toBe(1);
    expect(ledger.begin(id(2), origin, 150).kind).toBe('new');
    expect(ledger.begin(id(1), origin, 150).kind).toBe('running');
  });

  it('evicts the oldest done entry when full, and refuses when every entry runs', () => {
    const ledger = ledgerOf(2, 1_000_000, 1_000_000);
    ledger.begin(id(1), origin, 0);
    ledger.finish(id(1), answer(1), 0);
    ledger.begin(id(2), origin, 1);
    expect(ledger.begin(id(3), origin, 2).kind).toBe('new');
    expect(ledger.stats.evicted).toBe(1);
    expect(ledger.size).toBe(2);
    expect(ledger.begin(id(4), origin, 3).kind).toBe('full');
    expect(ledger.begin(id(1), origin, 3).kind).toBe('full');
  });

  it('keeps answers within the byte bounds and the outcome of one too large', () => {
    const ledger = ledgerOf(100, 1_000, 1_000_000);
    for (let n = 1; n <= 3; n++) {
      ledger.begin(id(n), origin, n);
      ledger.finish(id(n), answer(400), n);
    }
    // Three answers of 400 bytes do not fit 1,000: the oldest went.
    expect(ledger.storedBytes).toBe(800);
    expect(ledger.begin(id(1), origin, 10).kind).toBe('new');
    ledger.finish(id(1), answer(5_000), 11);
    const big = ledger.begin(id(1), other, 12);
    expect(big.kind).toBe('done');
    if (big.kind === 'done') {
      expect(big.answer.answerKept).toBe(false);
      expect(big.answer.result.messageJson).toBeUndefined();
      expect(big.answer.result.usage.input).toBe(10);
    }
    expect(ledger.stats.answersDropped).toBe(1);
  });

  it('holds bytes for running answers against the same bound', () => {
    const ledger = ledgerOf(100, 1_000, 1_000_000);
    expect(ledger.hold(600)).toBe(true);
    expect(ledger.hold(600)).toBe(false);
    ledger.release(600);
    expect(ledger.hold(600)).toBe(true);
  });
});
