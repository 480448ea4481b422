import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { ledgerRollUpRowsMax } from '../core/limits.js';
import { dayMs, sqlFloorDiv } from './usage-sql.js';

/**
 * Retention: ledger rows older than the retention age are folded into `ledger_daily` (one row per
 * day and per role, tenant, user, key, model and account, with the sums and a request count) and
 * deleted, so the ledger's size is bounded by the traffic of the retention age while totals over
 * any span stay what they were.
 *
 * Only whole UTC days roll up: the cut is the start of the day that holds `now - retention`, so a
 * day is either all rows or all aggregate (a row written later for a day already rolled up adds
 * to the totals next to the aggregate, and the next roll-up folds it in). A call moves at most
 * `ledgerRollUpRowsMax` rows, the oldest first, in one transaction: the event loop is never held
 * long, and a crash leaves each row either live or aggregated, never both.
 */
export class LedgerRetention {
  private readonly pick: Database.Statement;
  private readonly fold: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly clear: Database.Statement;
  private readonly step: (cutoffMs: number) => number;

  constructor(
    db: Database.Database,
    private readonly retentionMs: number,
  ) {
    db.exec('CREATE TEMP TABLE IF NOT EXISTS rollup_chunk (id INTEGER PRIMARY KEY)');
    this.pick = db.prepare('INSERT INTO temp.rollup_chunk (id) SELECT id FROM ledger WHERE charged_at_ms < ? ORDER BY charged_at_ms LIMIT ?');
    // The WHERE clause also keeps SQLite's parser from reading ON CONFLICT as a join constraint.
    this.fold = db.prepare(`
      INSERT INTO ledger_daily (day, role, tenant, user, api_key_id, model, account, requests, input_tokens, output_tokens,
        cache_write_tokens, cache_read_tokens, weighted_tokens, cost_micros)
      SELECT ${sqlFloorDiv('charged_at_ms', dayMs)}, role, tenant, coalesce(user, ''), coalesce(api_key_id, ''), model, coalesce(account, ''),
        count(*), sum(input_tokens), sum(output_tokens), sum(cache_write_tokens), sum(cache_read_tokens), sum(weighted_tokens),
        coalesce(sum(cost_micros), 0)
      FROM ledger WHERE id IN (SELECT id FROM temp.rollup_chunk)
      GROUP BY 1, 2, 3, 4, 5, 6, 7
      ON CONFLICT (day, role, tenant, user, api_key_id, model, account) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        weighted_tokens = weighted_tokens + excluded.weighted_tokens,
        cost_micros = cost_micros + excluded.cost_micros`);
    this.remove = db.prepare('DELETE FROM ledger WHERE id IN (SELECT id FROM temp.rollup_chunk)');
    this.clear = db.prepare('DELETE FROM temp.rollup_chunk');
    this.step = db.transaction((cutoffMs: number): number => {
      const picked = this.pick.run(cutoffMs, ledgerRollUpRowsMax).changes;
      if (picked > 0) {
        this.fold.run();
        const removed = this.remove.run().changes;
        assert(removed === picked, 'every picked row is deleted once it is aggregated');
      }
      this.clear.run();
      return picked;
    });
  }

  /** The first instant whose rows stay live at `nowMs`: the start of the UTC day holding `nowMs - retention`. */
  cutoffMs(nowMs: number): number {
    return Math.floor((nowMs - this.retentionMs) / dayMs) * dayMs;
  }

  /** Rolls up at most `ledgerRollUpRowsMax` rows older than the cut; returns how many. SQLite errors propagate. */
  rollUp(nowMs: number): number {
    assert(Number.isSafeInteger(nowMs), 'now is whole milliseconds');
    return this.step(this.cutoffMs(nowMs));
  }
}
