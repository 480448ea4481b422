// The shared health register's merge laws: whatever order, grouping or repetition records arrive
// in, replicas that received the same records hold the same value, and that value is the record
// with the greatest stamp. And a word written after another was heard always wins over it,
// however far apart the writers' clocks are.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStamps } from '../../src/core/hlc.js';
import type { AccountId, NodeId, RegionId } from '../../src/core/ids.js';
import { type HealthRecord, HealthRegister } from '../../src/pool/health-register.js';
import { checkProperty } from '../support/property.js';
import { arbHealthRecord } from '../support/health-records.js';

const region = 'us' as RegionId;

function registerOf(batches: readonly (readonly HealthRecord[])[]): HealthRegister {
  const register = new HealthRegister('x' as NodeId, region);
  for (const batch of batches) register.join(batch, 0);
  return register;
}

function valueOf(register: HealthRegister): unknown {
  return register
    .state()
    .map((record) => JSON.stringify(record))
    .sort();
}

/** Records with distinct stamps per account: a real mesh never makes two records with one stamp. */
const arbRecords = fc.uniqueArray(arbHealthRecord, { selector: (r) => `${r.stamp.wallMs}|${r.stamp.logical}|${r.stamp.node}`, maxLength: 30 });

describe('health register merge', () => {
  it('is commutative, associative and idempotent: any delivery order gives the same value', () => {
    checkProperty(
      fc.property(arbRecords, fc.func(fc.nat()), fc.nat({ max: 5 }), (records, rank, splits) => {
        const shuffled = [...records].sort((a, b) => rank(a.stamp.wallMs) - rank(b.stamp.wallMs));
        const batches: HealthRecord[][] = [];
        const size = Math.max(1, Math.ceil(shuffled.length / (splits + 1)));
        for (let i = 0; i < shuffled.length; i += size) batches.push(shuffled.slice(i, i + size));
        const once = registerOf([records]);
        const reordered = registerOf([...batches, records.slice(0, 3)]);
        expect(valueOf(reordered)).toEqual(valueOf(once));
        for (const record of once.state()) {
          const greatest = records.filter((r) => r.account === record.account).reduce((a, b) => (compareStamps(a.stamp, b.stamp) >= 0 ? a : b));
          expect(record).toEqual(greatest);
        }
      }),
      300,
    );
  });

  it('relays what a join raised, and nothing a join left', () => {
    checkProperty(
      fc.property(arbRecords, (records) => {
        const register = registerOf([records]);
        const changed = register.takeChanged();
        expect(changed.map((r) => r.account).sort()).toEqual(
          register
            .state()
            .map((r) => r.account)
            .sort(),
        );
        register.join(records, 0);
        expect(register.takeChanged()).toEqual([]);
      }),
      200,
    );
  });

  it('a write made after hearing a record wins over it, whatever the two clocks say', () => {
    checkProperty(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.integer({ min: -60_000, max: 60_000 }), arbHealthRecord, (nowMs, skewMs, heard) => {
        const account = 'acct-a' as AccountId;
        const register = new HealthRegister('eu-1' as NodeId, 'eu' as RegionId);
        const remote = { ...heard, account, stamp: { ...heard.stamp, wallMs: Math.max(0, nowMs + skewMs) } };
        register.join([remote], nowMs);
        const mine = register.write(account, { kind: 'available' }, nowMs);
        expect(compareStamps(mine.stamp, remote.stamp)).toBeGreaterThan(0);
        expect(register.get(account)).toEqual(mine);
      }),
      300,
    );
  });
});
