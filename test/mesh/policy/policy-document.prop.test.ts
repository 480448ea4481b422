// Proves three policy documents converge after random concurrent edits over a faulty network.
// They reach identical tenants, accounts and settings after edits over a network that reorders,
// duplicates and loses sync messages, once a final step 1/step 2 round runs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AccountId, asRegionId, asTenantId, type TenantId } from '../../../src/core/ids.js';
import {
  type Account,
  accountKinds,
  consistencyModes,
  type LimitRule,
  limitWindowUnits,
  type MeshSettings,
  PolicyDocument,
  type Tenant,
  tiers,
} from '../../../src/mesh/policy/index.js';
import { checkProperty } from '../../support/property.js';

const peerCount = 3;
const tenantIds = ['acme', 'beta', 'gamma', 'delta'].map(asTenantId);
const accountIds = ['pool-1', 'pool-2', 'pool-3'].map((id) => id as AccountId);
const keyHashes = ['0', '1', '2', '3', 'a', 'f'].map((digit) => digit.repeat(64));

const arbPeer = fc.integer({ min: 0, max: peerCount - 1 });

const arbLimit: fc.Arbitrary<LimitRule> = fc
  .record({
    metric: fc.constantFrom('requests', 'weighted_tokens', 'cost'),
    window: fc.constantFrom(...limitWindowUnits),
    slidingWish: fc.boolean(),
    limit: fc.nat(10_000_000),
    mode: fc.constantFrom(...consistencyModes),
  })
  // Only minute windows are short enough to slide (see validateLimitRule).
  .map(({ slidingWish, ...rule }) => ({ ...rule, sliding: slidingWish && rule.window === 'minute' && rule.mode !== 'escrow' }));

const arbLimits = fc.uniqueArray(arbLimit, { maxLength: 3, selector: (rule) => `${rule.metric}/${rule.window}/${rule.sliding}` });

const arbTenant = (id: TenantId): fc.Arbitrary<Tenant> =>
  fc.record(
    {
      id: fc.constant(id),
      tier: fc.constantFrom(...tiers),
      apiKeys: fc
        .uniqueArray(fc.constantFrom(...keyHashes), { maxLength: 3 })
        .chain((hashes) =>
          fc.tuple(
            ...hashes.map((hash) =>
              fc.record(
                { hash: fc.constant(hash), name: fc.constantFrom('', 'ci', 'laptop'), createdAtMs: fc.nat(1_000), revokedAtMs: fc.nat(2_000) },
                { requiredKeys: ['hash', 'name', 'createdAtMs'] },
              ),
            ),
          ),
        ),
      requireSignature: fc.boolean(),
      concurrencyMax: fc.nat(64),
      weights: fc.record({ input: fc.nat(5000), output: fc.nat(5000), cacheWrite: fc.nat(5000), cacheRead: fc.nat(5000) }),
      limits: arbLimits,
      userLimits: arbLimits,
      userConcurrencyMax: fc.nat(64),
      // Absent (drain) or abort: edits set and remove it.
      onClientCancel: fc.constant('abort' as const),
      // Absent (mesh) or region, likewise.
      idempotency: fc.constant('region' as const),
    },
    { requiredKeys: ['id', 'tier', 'apiKeys', 'requireSignature', 'concurrencyMax', 'weights', 'limits', 'userLimits', 'userConcurrencyMax'] },
  );

const arbAccount: fc.Arbitrary<Account> = fc.record(
  {
    id: fc.constantFrom(...accountIds),
    kind: fc.constantFrom(...accountKinds),
    homeRegion: fc.constantFrom('us-east', 'eu-west').map(asRegionId),
    weight: fc.integer({ min: 1, max: 1000 }),
    concurrencyMax: fc.nat(100),
    limits: arbLimits,
    // Absent (shared) or dedicated to some tenants: edits add, change and remove dedications.
    dedicatedTenants: fc.uniqueArray(fc.constantFrom(...tenantIds), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: ['id', 'kind', 'homeRegion', 'weight', 'concurrencyMax', 'limits'] },
);

const arbSettings: fc.Arbitrary<Partial<MeshSettings>> = fc.record(
  {
    gossipIntervalMs: fc.integer({ min: 10, max: 10_000 }),
    digestIntervalMs: fc.integer({ min: 100, max: 600_000 }),
    heartbeatIntervalMs: fc.integer({ min: 10, max: 60_000 }),
  },
  { requiredKeys: [] },
);

const editableFields = [
  'tier',
  'apiKeys',
  'requireSignature',
  'concurrencyMax',
  'weights',
  'limits',
  'userLimits',
  'userConcurrencyMax',
  'onClientCancel',
  'idempotency',
] as const;

type Op =
  | { readonly kind: 'upsert-tenant'; readonly at: number; readonly tenant: Tenant }
  /** Changes one field of the tenant as this peer currently sees it: how admin edits look. */
  | { readonly kind: 'edit-tenant'; readonly at: number; readonly field: (typeof editableFields)[number]; readonly from: Tenant }
  | { readonly kind: 'remove-tenant'; readonly at: number; readonly id: TenantId }
  | { readonly kind: 'upsert-account'; readonly at: number; readonly account: Account }
  | { readonly kind: 'remove-account'; readonly at: number; readonly id: AccountId }
  | { readonly kind: 'settings'; readonly at: number; readonly patch: Partial<MeshSettings> }
  /** `from` sends a step 1 to `to`, as when a link comes up. */
  | { readonly kind: 'sync'; readonly at: number; readonly to: number }
  /** Delivers (or loses) one in-flight message, picked by `pick`, possibly leaving a duplicate behind. */
  | { readonly kind: 'deliver'; readonly pick: number; readonly duplicate: boolean; readonly lose: boolean };

const arbTenantOf = fc.constantFrom(...tenantIds).chain(arbTenant);

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('upsert-tenant' as const), at: arbPeer, tenant: arbTenantOf }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('edit-tenant' as const), at: arbPeer, field: fc.constantFrom(...editableFields), from: arbTenantOf }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove-tenant' as const), at: arbPeer, id: fc.constantFrom(...tenantIds) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('upsert-account' as const), at: arbPeer, account: arbAccount }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove-account' as const), at: arbPeer, id: fc.constantFrom(...accountIds) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('settings' as const), at: arbPeer, patch: arbSettings }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const), at: arbPeer, to: arbPeer }) },
  {
    weight: 10,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), duplicate: fc.boolean(), lose: fc.boolean() }),
  },
);

interface InFlight {
  readonly from: number;
  readonly to: number;
  readonly bytes: Uint8Array;
}

/** An in-memory mesh of three documents whose links reorder, duplicate and (when lossy) lose messages. */
class Connector {
  readonly docs = Array.from({ length: peerCount }, (_, i) => new PolicyDocument(1000 + i));
  private readonly inFlight: InFlight[] = [];

  constructor(private readonly lossy: boolean) {}

  apply(op: Op): void {
    switch (op.kind) {
      case 'upsert-tenant':
        expect(this.docs[op.at]!.upsertTenant(op.tenant).ok).toBe(true);
        return this.broadcast(op.at);
      case 'edit-tenant': {
        const doc = this.docs[op.at]!;
        const current = doc.tenant(op.from.id) ?? op.from;
        expect(doc.upsertTenant({ ...current, [op.field]: op.from[op.field] }).ok).toBe(true);
        return this.broadcast(op.at);
      }
      case 'remove-tenant':
        this.docs[op.at]!.removeTenant(op.id);
        return this.broadcast(op.at);
      case 'upsert-account':
        expect(this.docs[op.at]!.upsertAccount(op.account).ok).toBe(true);
        return this.broadcast(op.at);
      case 'remove-account':
        this.docs[op.at]!.removeAccount(op.id);
        return this.broadcast(op.at);
      case 'settings':
        expect(this.docs[op.at]!.updateSettings(op.patch).ok).toBe(true);
        return this.broadcast(op.at);
      case 'sync':
        if (op.at !== op.to) this.inFlight.push({ from: op.at, to: op.to, bytes: this.docs[op.at]!.syncStep1() });
        return;
      case 'deliver': {
        if (this.inFlight.length === 0) return;
        const index = op.pick % this.inFlight.length;
        const message = this.inFlight[index]!;
        if (!op.duplicate) this.inFlight.splice(index, 1);
        if (!(this.lossy && op.lose)) this.deliver(message);
        return;
      }
    }
  }

  /** Delivers everything still in flight, replies included, with no more loss (the network healed). */
  drain(): void {
    for (let message = this.inFlight.shift(); message !== undefined; message = this.inFlight.shift()) this.deliver(message);
  }

  /** Every document pulls from every other: step 1 out, step 2 back. */
  fullSyncRound(): void {
    for (let i = 0; i < peerCount; i++) {
      for (let j = 0; j < peerCount; j++) {
        if (i === j) continue;
        const reply = this.docs[j]!.onSyncMessage(this.docs[i]!.syncStep1());
        if (!reply.ok || reply.value === undefined) throw new Error(`peer ${j} did not answer step 1`);
        expect(this.docs[i]!.onSyncMessage(reply.value)).toEqual({ ok: true, value: undefined });
      }
    }
  }

  private broadcast(from: number): void {
    for (const bytes of this.docs[from]!.takeUpdates()) {
      for (let to = 0; to < peerCount; to++) if (to !== from) this.inFlight.push({ from, to, bytes });
    }
  }

  private deliver(message: InFlight): void {
    const result = this.docs[message.to]!.onSyncMessage(message.bytes);
    expect(result.ok).toBe(true);
    if (result.ok && result.value !== undefined) this.inFlight.push({ from: message.to, to: message.from, bytes: result.value });
  }
}

const sortedEntries = <K extends string, V>(map: ReadonlyMap<K, V>): [K, V][] => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function expectConverged(docs: readonly PolicyDocument[]): void {
  const [first, ...rest] = docs.map((doc) => ({
    tenants: sortedEntries(doc.tenants()),
    accounts: sortedEntries(doc.accounts()),
    settings: doc.settings(),
  }));
  for (const view of rest) expect(view).toEqual(first);
  for (const doc of docs) expect(doc.invalidEntries()).toEqual([]);
}

describe('PolicyDocument convergence', () => {
  it('converges under reordering, duplication and loss after a full sync round', () => {
    checkProperty(
      fc.property(fc.array(arbOp, { maxLength: 150, size: 'max' }), fc.boolean(), (ops, lossy) => {
        const mesh = new Connector(lossy);
        for (const op of ops) mesh.apply(op);
        mesh.drain();
        // Without loss every update reached every peer, so the updates alone must suffice.
        if (!lossy) expectConverged(mesh.docs);
        mesh.fullSyncRound();
        expectConverged(mesh.docs);
        // Applying what peers sent never counts as a local edit to rebroadcast.
        for (const doc of mesh.docs) expect(doc.takeUpdates()).toEqual([]);
      }),
    );
  });
});
