import type { InterruptedRequest } from '../admission/quota-gate.js';
import { decodeOpenRequest, keyOf, type OpenRequestRecord } from '../admission/open-request-record.js';
import { isCount } from '../core/assert.js';
import { isValidId, type ReplicaId } from '../core/ids.js';
import { err, ok, type Result } from '../core/result.js';
import type { KeyedRightsRow } from '../crdt/bounded-counter.js';
import type { CounterEntry } from '../crdt/windowed-counter.js';
import { counterVersionMeta, type JournalParts } from './durable-journal.js';
import type { NodeSnapshot } from './node-state.js';
import { decodeRightsRow } from './stored-rights.js';

/**
 * Puts a durable node's state back into its cores at start, before any frame or request: the
 * counter entries it held (its own and other replicas'), its own rights rows, the policy document, and the requests that were open when it
 * died, which are ended at once (src/admission/quota-gate.ts, "Durability"). The caller writes a
 * usage row for every interrupted request the gate had admitted. Records that do not decode are
 * skipped and counted (a store is input like any other); a policy update that does not apply is
 * an error: the node must not serve on a policy it cannot read.
 */
export interface RestoreReport {
  readonly counterEntries: number;
  readonly rightsRows: number;
  readonly policyUpdates: number;
  readonly interrupted: readonly InterruptedRequest[];
  /** Stored records that did not decode and were left out. */
  readonly skipped: number;
}

export function restoreNode(snapshot: NodeSnapshot, parts: JournalParts, nowMs: number): Result<RestoreReport, string> {
  const { counter, escrow, gate, policy } = parts;
  const restoredPolicy = policy.restore(snapshot.policyUpdates);
  if (!restoredPolicy.ok) return err(`the stored policy document does not apply: ${restoredPolicy.error.detail}`);
  let skipped = 0;
  const entries: CounterEntry[] = [];
  for (const stored of snapshot.counterEntries) {
    const key = keyOf([stored.scope, stored.subject, stored.metric, stored.unit, stored.index]);
    if (key === undefined || !isValidId(stored.replica) || !isCount(stored.p) || !isCount(stored.n) || !isCount(stored.version)) {
      skipped++;
      continue;
    }
    entries.push({ key, replica: stored.replica as ReplicaId, p: stored.p, n: stored.n, version: stored.version });
  }
  const floor = Number(snapshot.meta.get(counterVersionMeta) ?? '0');
  if (!isCount(floor)) skipped++;
  const counterEntries = counter.restore(entries, isCount(floor) ? floor : 0);
  counter.expire(nowMs);
  const rows: KeyedRightsRow[] = [];
  for (const stored of snapshot.rightsRows) {
    const row = decodeRightsRow(stored.json);
    if (row === undefined || row.row.owner !== escrow.self) skipped++;
    else rows.push(row);
  }
  escrow.restoreOwn(rows, nowMs);
  const records: OpenRequestRecord[] = [];
  for (const stored of snapshot.openRequests) {
    const record = decodeOpenRequest(stored.requestId, stored.json);
    if (record.ok) records.push(record.value);
    else skipped++;
  }
  gate.restoreOpen(records);
  const interrupted = gate.recoverInterrupted();
  return ok({ counterEntries, rightsRows: rows.length, policyUpdates: snapshot.policyUpdates.length, interrupted, skipped });
}
