// A deliberately unsafe strict-round protocol, kept in test code only: each member applies the
// coordinator's reservation and answers with its state in the same round trip (QuorumWrite and
// QuorumRead sent back to back), and the coordinator decides once R members answered. DESIGN.md
// §4 explains why that is not safe: three concurrent requests can each see only one other. The
// simulator's quota checker must catch it overshooting (test/sim/unsafe-rounds.test.ts).
import type { NodeId } from '../../src/core/ids.js';
import type { CounterKey } from '../../src/crdt/counter-key.js';
import type { CounterEntry } from '../../src/crdt/windowed-counter.js';
import type { QuorumStats, RoundDone, RoundOutcome, RoundRequest, RoundRunner, RoundRunnerParts } from '../../src/mesh/quorum.js';

interface Round {
  readonly request: RoundRequest;
  readonly done: RoundDone;
  readonly entries: readonly CounterEntry[];
  readonly sentOn: Set<number>;
  readonly answered: Set<NodeId>;
  readonly deadlineMs: number;
}

export class SingleRoundApplyAndRead implements RoundRunner {
  readonly stats: QuorumStats = { roundsStarted: 0, roundsSucceeded: 0, roundsFailed: 0, writesServed: 0, readsServed: 0 };
  readonly recovering = false;
  readonly allPeersSynced = true;
  private readonly rounds = new Map<number, Round>();
  private completions: { done: RoundDone; outcome: RoundOutcome }[] = [];
  private nextRound = 1;

  constructor(private readonly parts: RoundRunnerParts) {}

  get hasCompletions(): boolean {
    return this.completions.length > 0;
  }

  start(request: RoundRequest, nowMs: number, done: RoundDone): void {
    this.stats.roundsStarted++;
    const round: Round = {
      request,
      done,
      entries: this.parts.counter.ownEntries(request.writeKeys),
      sentOn: new Set(),
      answered: new Set([this.parts.self]),
      deadlineMs: nowMs + this.parts.timeoutMs,
    };
    const id = this.nextRound++;
    this.rounds.set(id, round);
    this.advance(id, round);
  }

  nextDeadlineMs(): number {
    let earliest = Infinity;
    for (const round of this.rounds.values()) earliest = Math.min(earliest, round.deadlineMs);
    return earliest;
  }

  tick(nowMs: number): void {
    for (const [id, round] of [...this.rounds]) {
      if (nowMs >= round.deadlineMs) this.finish(id, round, { ok: false, reason: 'no-quorum' });
      else this.advance(id, round);
    }
    const completions = this.completions;
    this.completions = [];
    for (const { done, outcome } of completions) done(outcome, nowMs);
  }

  onWrite(link: number, round: number, entries: readonly CounterEntry[]): void {
    this.parts.counter.join({ entries, ranges: [] });
    this.stats.writesServed++;
    this.parts.links.send(link, { kind: 'quorum-ack', round });
  }

  onAck(): void {
    // The single round waits for read replies only.
  }

  onRead(link: number, round: number, keys: readonly CounterKey[]): void {
    this.stats.readsServed++;
    this.parts.links.send(link, { kind: 'quorum-reply', round, entries: this.parts.counter.entriesFor(keys) });
  }

  onReply(peer: NodeId, id: number, entries: readonly CounterEntry[]): void {
    const round = this.rounds.get(id);
    if (round === undefined) return;
    this.parts.counter.join({ entries, ranges: [] });
    round.answered.add(peer);
    this.advance(id, round);
  }

  onLinkOpened(): void {}

  private advance(id: number, round: Round): void {
    if (round.answered.size >= this.parts.sizes.read) return this.finish(id, round, { ok: true });
    for (const { link, peer } of this.parts.links.openPeers()) {
      if (round.sentOn.has(link) || round.answered.has(peer)) continue;
      round.sentOn.add(link);
      // Apply and read in one round trip: the member joins the write, then answers the read.
      this.parts.links.send(link, { kind: 'quorum-write', round: id, entries: round.entries });
      this.parts.links.send(link, { kind: 'quorum-read', round: id, keys: round.request.readKeys });
    }
  }

  private finish(id: number, round: Round, outcome: RoundOutcome): void {
    this.rounds.delete(id);
    if (outcome.ok) this.stats.roundsSucceeded++;
    else this.stats.roundsFailed++;
    this.completions.push({ done: round.done, outcome });
  }
}
