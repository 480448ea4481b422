// A mutant escrow book, kept in test code only: a spend that lacks exactly one unit of rights goes through, as if `rights < amount` read `rights < amount - 1`. The escrow conservation checker must catch it (sim/rights-ledger.ts).
import { EscrowBook } from '../../../src/admission/escrow.js';
import type { CounterKey } from '../../../src/crdt/counter-key.js';

/**
 * The bounded counter refuses to go below zero, so the missing unit is conjured by a refund
 * first: in every view the row then reads exactly as a balance of −1 would (one unit more used
 * than the replica ever held), and the quota checker sees only a one-token overshoot, and only
 * when every other right of the limit is spent.
 */
export class OverdrawingEscrowBook extends EscrowBook {
  override spend(keys: readonly CounterKey[], amounts: readonly number[]): boolean {
    keys.forEach((key, i) => {
      const amount = amounts[i] as number;
      if (amount > 0 && this.rights(key) === amount - 1 && amount > 1) super.refund(key, 1);
    });
    return super.spend(keys, amounts);
  }
}
