/**
 * What the mesh core counts, as plain numbers: the core has no metrics library (style guide §9);
 * the Prometheus binding reads these. Every map is keyed by a bounded set of reasons.
 */
export type AuthFailure =
  'unauthenticated-frame' | 'unknown-member' | 'wrong-member' | 'bad-proof' | 'replayed-handshake' | 'bad-protocol-version' | 'handshake-timeout';

/** Convergence-lag buckets (upper bounds in ms); the last bucket is everything slower. */
export const lagBucketsMs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] as const;

export class MeshStats {
  framesSent = 0;
  bytesSent = 0;
  framesReceived = 0;
  rightsRowsSent = 0;
  rightsRowsReceived = 0;
  healthRecordsSent = 0;
  healthRecordsReceived = 0;
  bytesReceived = 0;
  deltasSent = 0;
  deltaBytesSent = 0;
  deltaEntriesSent = 0;
  deltasReceived = 0;
  deltaEntriesReceived = 0;
  deltaResends = 0;
  /** Peers whose resend buffer overflowed and who are left to digest repair. */
  unackedOverflows = 0;
  digestsSent = 0;
  digestRepairs = 0;
  repairEntriesSent = 0;
  fullStateTransfers = 0;
  /** Inbound frames dropped because a link's queue was full. */
  inboundDropped = 0;
  /** Counter entries a join could not hold (key or replica bound reached). */
  entriesOverflowed = 0;
  policyMessagesSent = 0;
  policyMessagesReceived = 0;
  /** Policy sync messages that did not fit a frame and were not sent. */
  policyMessagesTooLarge = 0;
  linksAuthenticated = 0;
  linksClosed = 0;
  readonly badFrames = new Map<string, number>();
  readonly authFailures = new Map<AuthFailure, number>();
  /** Counts per `lagBucketsMs` bucket, plus one for slower: delta sent → applied here. */
  readonly lagBuckets = new Array<number>(lagBucketsMs.length + 1).fill(0);
  lagCount = 0;
  lagSumMs = 0;
  lagMaxMs = 0;

  countBadFrame(reason: string): void {
    this.badFrames.set(reason, (this.badFrames.get(reason) ?? 0) + 1);
  }

  countAuthFailure(reason: AuthFailure): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
  }

  recordLag(lagMs: number): void {
    const lag = Math.max(0, lagMs);
    let bucket = lagBucketsMs.findIndex((bound) => lag <= bound);
    if (bucket === -1) bucket = lagBucketsMs.length;
    this.lagBuckets[bucket] = (this.lagBuckets[bucket] as number) + 1;
    this.lagCount++;
    this.lagSumMs += lag;
    if (lag > this.lagMaxMs) this.lagMaxMs = lag;
  }
}
