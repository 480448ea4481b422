// Arbitraries of the accounts' shared health records, for the register's laws and the wire codec.
import fc from 'fast-check';
import type { HlcStamp } from '../../src/core/hlc.js';
import type { AccountId, NodeId, RegionId } from '../../src/core/ids.js';
import type { DisableReason } from '../../src/pool/account-health.js';
import { type HealthRecord, pauseCauses, type SharedHealth } from '../../src/pool/health-register.js';

export const arbAccountId = fc.constantFrom('acct-a', 'acct-b', 'acct-c').map((id) => id as AccountId);
export const arbNodeId = fc.constantFrom('us-1', 'eu-1', 'ap-1').map((id) => id as NodeId);
export const arbRegionId = fc.constantFrom('us', 'eu', 'ap').map((id) => id as RegionId);

const arbReason: fc.Arbitrary<DisableReason> = fc.oneof(
  fc.constantFrom(401, 402, 403).map((status) => ({ kind: 'auth-failed' as const, status: status })),
  fc.string({ maxLength: 40, unit: 'grapheme' }).map((detail) => ({ kind: 'credential' as const, detail })),
);

export const arbSharedHealth: fc.Arbitrary<SharedHealth> = fc.oneof(
  fc.constant({ kind: 'available' as const }),
  fc.record({ kind: fc.constant('paused' as const), cause: fc.constantFrom(...pauseCauses), untilMs: fc.nat({ max: 2 ** 45 }) }),
  arbReason.map((reason) => ({ kind: 'disabled' as const, reason })),
);

export const arbStamp: fc.Arbitrary<HlcStamp> = fc.record({ wallMs: fc.nat({ max: 2 ** 45 }), logical: fc.nat({ max: 1000 }), node: arbNodeId });

export const arbHealthRecord: fc.Arbitrary<HealthRecord> = fc.record({ account: arbAccountId, health: arbSharedHealth, stamp: arbStamp, region: arbRegionId });
