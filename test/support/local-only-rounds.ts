// A deliberately unsafe round protocol, kept in test code only: a "round" asks no one and
// completes at the next tick on the coordinator's own view. With it a request-id claim checks
// only what its own region has heard, which is exactly the region-scoped idempotency the mesh had
// before claims (issue 13: the same id sent to another region ran again). The simulator's
// claims checker must catch it (test/sim/unsafe-claims.test.ts).
import type { QuorumStats, RoundDone, RoundOutcome, RoundRequest, RoundRunner } from '../../src/mesh/quorum.js';

export class LocalOnlyRounds implements RoundRunner {
  readonly stats: QuorumStats = { roundsStarted: 0, roundsSucceeded: 0, roundsFailed: 0, writesServed: 0, readsServed: 0 };
  readonly recovering = false;
  readonly allPeersSynced = true;
  private completions: { done: RoundDone; outcome: RoundOutcome }[] = [];

  get hasCompletions(): boolean {
    return this.completions.length > 0;
  }

  start(_request: RoundRequest, _nowMs: number, done: RoundDone): void {
    this.stats.roundsStarted++;
    this.stats.roundsSucceeded++;
    this.completions.push({ done, outcome: { ok: true } });
  }

  nextDeadlineMs(): number {
    return Infinity;
  }

  tick(nowMs: number): void {
    const completions = this.completions;
    this.completions = [];
    for (const { done, outcome } of completions) done(outcome, nowMs);
  }

  onWrite(): void {}
  onAck(): void {}
  onRead(): void {}
  onReply(): void {}
  onLinkOpened(): void {}
}
