import type { AdminPrincipal } from '../../admission/admin-access.js';
import { apiKeyHashHex, formatKeyId, parseApiKey, parseKeyId } from '../../admission/api-key.js';
import type { AuthCrypto } from '../../admission/auth-crypto.js';
import { type AccountId, type NodeId, parseAccountId, parseTenantId, type TenantId } from '../../core/ids.js';
import { adminCounterReadKeysMax, apiKeyNameLengthMax, auditEntriesMax, usageQueryGroupsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CounterKey } from '../../crdt/counter-key.js';
import type { LedgerRow, UsageTotals } from '../../ledger/ledger-row.js';
import type { UsageGroup, UsageReader, UsageSide } from '../../ledger/usage-query.js';
import { formatWindow } from '../../crdt/window.js';
import type { WindowedCounter } from '../../crdt/windowed-counter.js';
import type { RoundOutcome } from '../../mesh/quorum.js';
import { type AuditAction, type AuditDetailValue, type AuditEntry, isValidAuditReason, settingsAuditDetail } from '../../mesh/policy/audit-schema.js';
import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import {
  accountWritableFields,
  isValidKeyName,
  type PolicyError,
  subjectPath,
  type Tenant,
  tenantWritableFields,
  validateAccount,
  validateSettingsPatch,
  validateTenant,
} from '../../mesh/policy/policy-schema.js';
import type { AccountPool } from '../../pool/account-pool.js';
import type { DisableReason } from '../../pool/account-health.js';
import { parseCredentialBody } from '../credentials/credential-body.js';
import type { KeptIn } from '../credentials/credential-vault.js';
import type { HeldCredential } from '../credentials/held-credential.js';
import { type MintedKey, mintApiKey } from '../gateway/api-key-mint.js';
import { policyView, redactTenant, settingsView } from '../gateway/policy-view.js';
import { limitUsages, readKeysOf, type UsageSubject } from '../gateway/usage-report.js';
import { formatKeyText, parseKeyText } from './counter-key-text.js';
import { checkExpiry, checkGrace, findKey, keyIdTaken, type KeyProblem, type KeyView, keyView, withKey, withRevoked } from './key-lifecycle.js';
import { parseUsageAdjustment, type UsageAdjustment } from './usage-adjustment.js';
import {
  parseUsageExport,
  parseUsageQuery,
  type UsageExportRequest,
  type UsageParamNames,
  type UsageParams,
  usageQueryParamNames,
} from './usage-query-params.js';

/**
 * Every admin operation of a node, once, for both admin surfaces: the HTTP routes
 * (../admin-routes.ts) and the gRPC Admin service (../gateway/admin-gateway.ts). The surfaces
 * authenticate the caller and check its role (src/admission/admin-access.ts) before they call
 * here; this validates every field, applies the write, and records it in the audit log with the
 * caller's token name, this node, the time and the reason.
 *
 * What a write may touch:
 *   - policy (tenants, accounts, settings, keys): the replicated policy document, so the edit
 *     reaches every node within a gossip interval; the audit entry travels with it;
 *   - account health (re-enable): the mesh's shared health register (src/pool/health-register.ts),
 *     so one re-enable, at any node, brings the account back in every region within a gossip interval;
 *   - counters: only through a usage adjustment, applied to this node's own entries of one key
 *     (a charge increments, a credit decrements). A credit never drives the key below zero: it
 *     may not exceed the key's value after a quorum read (so every completed credit anywhere is
 *     seen), and it is then made durable at a write quorum and the key read back from a read
 *     quorum, as a strict admission is (DESIGN.md §4); should credits made at the same moment
 *     elsewhere have taken the value below zero, this one is undone and refused. Of credits racing
 *     each other, the one whose write completed last sees all the others, so the credits that
 *     stand never exceed what was charged. (Between such a race's read and its undo, a few
 *     milliseconds, the key may read below zero; readers must not assume a counter is never
 *     negative anyway, since a refund may race a charge too.) A credit therefore needs a quorum
 *     (503 without one); a charge does not.
 *
 * Reads of the usage ledger (queries, exports) answer from this node's own ledger: each node
 * keeps the rows of the requests it settled, so a mesh-wide figure is the sum over every node's
 * answer (what `carpool audit` adds up). A node without a ledger (no `dataDir`) answers
 * `no-ledger`.
 *
 * Refused writes change nothing and are not recorded; a write that changes nothing (removing an
 * absent tenant, enabling an account that is not disabled... see each method) is not recorded
 * either.
 */
export type AdminFailure =
  | { readonly kind: 'invalid'; readonly field: string; readonly reason: string }
  | { readonly kind: 'not-found'; readonly field: string; readonly reason: string }
  /** Too few members answered the round a credit (`credit`) or a QUORUM read (`read`) needs. */
  | { readonly kind: 'no-quorum'; readonly retryAfterMs: number; readonly operation: 'credit' | 'read' }
  | { readonly kind: 'no-ledger'; readonly reason: string };

/** What a node without a usage ledger answers a question about it. */
export const noLedgerReason = 'this node keeps no usage ledger (no dataDir)';

export interface AdminServiceRuntime {
  readonly config: { readonly node: NodeId };
  readonly policy: PolicyDocument;
  readonly pool: Pick<AccountPool, 'enable' | 'status' | 'stateCounts' | 'totals' | 'stats'>;
  readonly counter: WindowedCounter;
  /** A strict round (DESIGN.md §4): this node's entries of `writeKeys` to W members, then `readKeys` from R. */
  round(writeKeys: readonly CounterKey[], readKeys: readonly CounterKey[]): Promise<RoundOutcome>;
}

export interface AdminServiceOptions {
  readonly runtime: AdminServiceRuntime;
  readonly crypto: AuthCrypto;
  /** Mints a key for a tenant; `mintApiKey` with the system's CSPRNG by default. */
  readonly mint?: (tenant: TenantId) => MintedKey;
  /** The clock of audit entries and key times; the system clock by default. */
  readonly nowMs?: () => number;
  /** This node's usage ledger; undefined when the node keeps none (no `dataDir`). */
  readonly usage?: UsageReader | undefined;
  /** This node's upstream credentials, which `replaceCredential` writes; undefined on a node that calls no upstream. */
  readonly credentials?: CredentialReplacer | undefined;
}

/** What `replaceCredential` needs of the node's credentials (src/node/credentials/account-credentials.ts). */
export interface CredentialReplacer {
  replace(accountId: AccountId, held: HeldCredential): Promise<Result<KeptIn, string>>;
}

/** What a credential replacement answers: never the credential. */
export interface CredentialView {
  readonly account: string;
  readonly kind: HeldCredential['kind'];
  /** Where the node keeps it: its store, the account's credential file, or memory only (lost at a restart). */
  readonly kept: KeptIn;
  /** Whether the account had been disabled for its credential and is enabled again. */
  readonly reenabled: boolean;
  readonly expiresAtMs?: number;
}

export interface NewKey {
  /** `cp_<tenant>_<secret>`: shown in this answer only. */
  readonly apiKey: string;
  readonly key: KeyView;
}

export interface AdjustmentView {
  /** `<scope>/<subject>/<metric>/<window unit>:<index>`. */
  readonly key: string;
  readonly kind: UsageAdjustment['kind'];
  readonly amount: number;
  /** The key's value at this node before and after. */
  readonly before: number;
  readonly after: number;
  readonly node: string;
}

export interface UsageView {
  readonly tenant: string;
  readonly user?: string;
  readonly consistency: 'local' | 'quorum';
  readonly limits: ReturnType<typeof limitUsages>;
}

/** An answer to a usage question: the ledger's, with the node that answered it. */
export interface UsageLedgerView {
  /** Every node keeps its own ledger: this answer is this node's part of the mesh's usage. */
  readonly node: string;
  readonly side: UsageSide;
  readonly sinceMs?: number;
  readonly untilMs?: number;
  readonly totals: UsageTotals;
  /** At most `usageQueryGroupsMax`; `groupsTruncated` says whether any were left out. */
  readonly groups: readonly UsageGroup[];
  readonly groupsTruncated: boolean;
  readonly rows: readonly LedgerRow[];
  readonly fromAggregates: number;
}

/** An export, checked: what to read and how to write it, and the ledger to read it from. */
export interface UsageExport {
  readonly request: UsageExportRequest;
  readonly reader: UsageReader;
  readonly node: string;
}

export interface CounterReadView {
  readonly node: string;
  readonly consistency: 'local' | 'quorum';
  /** In the order asked, each key once: `<scope>/<subject>/<metric>/<unit>:<index>` and its value. */
  readonly counters: readonly { readonly key: string; readonly value: number }[];
}

/** Retry hint of a credit refused for want of a quorum: about one round's timeout. */
const noQuorumRetryAfterMs = 2_000;
/** Fresh keys drawn before giving up on a key id that no other key of the tenant has. */
const mintAttemptsMax = 8;

const keyFieldNames = ['apiKeys', 'apiKeyHashes', 'keys'];

export class AdminService {
  private readonly runtime: AdminServiceRuntime;
  private readonly crypto: AuthCrypto;
  private readonly mint: (tenant: TenantId) => MintedKey;
  private readonly now: () => number;
  private readonly ledger: UsageReader | undefined;
  private readonly credentials: CredentialReplacer | undefined;

  constructor(options: AdminServiceOptions) {
    this.runtime = options.runtime;
    this.credentials = options.credentials;
    this.crypto = options.crypto;
    this.ledger = options.usage;
    this.mint = options.mint ?? ((tenant) => mintApiKey(options.crypto, tenant));
    this.now = options.nowMs ?? (() => Date.now());
  }

  // ---- Reads ----

  policy(): unknown {
    return policyView(this.runtime.policy, this.now());
  }

  tenant(id: string): Result<unknown, AdminFailure> {
    const tenant = this.findTenant(id, 'id');
    return tenant.ok ? ok(redactTenant(tenant.value, this.now())) : tenant;
  }

  account(id: string): Result<unknown, AdminFailure> {
    const parsed = parseAccountId(id);
    const account = parsed.ok ? this.runtime.policy.account(parsed.value) : undefined;
    return account === undefined ? notFound('id', `no account ${id.slice(0, 64)} in the policy`) : ok(account);
  }

  keys(tenantId: string): Result<KeyView[], AdminFailure> {
    const tenant = this.findTenant(tenantId, 'tenant');
    if (!tenant.ok) return tenant;
    const nowMs = this.now();
    return ok(tenant.value.apiKeys.map((record) => keyView(tenant.value.id, record, nowMs)));
  }

  /** This node's view of the accounts: health, permits and queue (health is per node). */
  pool(): unknown {
    const nowMs = this.now();
    const pool = this.runtime.pool;
    return { accounts: pool.status(nowMs), states: pool.stateCounts(nowMs), totals: pool.totals(), stats: { ...pool.stats } };
  }

  /** The newest `limit` audit entries (1 to `auditEntriesMax`), and how many entries failed validation. */
  audit(limit: number = auditEntriesMax): Result<{ readonly entries: AuditEntry[]; readonly invalid: PolicyError[] }, AdminFailure> {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > auditEntriesMax) return invalid('limit', `must be an integer from 1 to ${auditEntriesMax}`);
    const { entries, invalid: bad } = this.runtime.policy.auditEntries();
    return ok({ entries: entries.slice(0, limit), invalid: bad });
  }

  /** A tenant's limits with what is used and what remains; at `quorum`, after a read round. */
  async usage(tenantId: string, user: string | undefined, consistency: 'local' | 'quorum'): Promise<Result<UsageView, AdminFailure>> {
    const tenant = this.findTenant(tenantId, 'tenant');
    if (!tenant.ok) return tenant;
    const subjects: UsageSubject[] = [{ scope: 'tenant', subject: tenant.value.id, rules: tenant.value.limits }];
    if (user !== undefined) {
      const subject = `${tenant.value.id}:${user}`;
      if (user.length === 0 || !parseTenantId(subject).ok) return invalid('user', 'must be an id that, joined to the tenant id, stays an id');
      subjects.push({ scope: 'user', subject, rules: tenant.value.userLimits });
    }
    const counter = this.runtime.counter;
    if (consistency === 'quorum') {
      const read = await this.runtime.round([], readKeysOf(counter, subjects, this.now()));
      if (!read.ok) return err({ kind: 'no-quorum', retryAfterMs: noQuorumRetryAfterMs, operation: 'read' });
    }
    return ok({ tenant: tenant.value.id, ...(user === undefined ? {} : { user }), consistency, limits: limitUsages(counter, subjects, this.now()) });
  }

  /** A question to this node's usage ledger, every parameter checked first (./usage-query-params.ts). */
  queryUsage(params: UsageParams, names: UsageParamNames = usageQueryParamNames): Result<UsageLedgerView, AdminFailure> {
    if (this.ledger === undefined) return err({ kind: 'no-ledger', reason: noLedgerReason });
    const query = parseUsageQuery(params, names);
    if (!query.ok) return invalid(query.error.field, query.error.reason);
    const answer = this.ledger.queryUsage(query.value);
    const { side, sinceMs, untilMs } = query.value.filter;
    return ok({
      node: this.runtime.config.node,
      side,
      ...(sinceMs === undefined ? {} : { sinceMs }),
      ...(untilMs === undefined ? {} : { untilMs }),
      totals: answer.totals,
      groups: answer.groups.slice(0, usageQueryGroupsMax),
      // The store stops at the bound itself and says so; a reader that does not is cut here.
      groupsTruncated: answer.groupsTruncated === true || answer.groups.length > usageQueryGroupsMax,
      rows: answer.rows,
      fromAggregates: answer.fromAggregates,
    });
  }

  /** An export of this node's ledger rows, checked; the caller streams it (./ledger-export.ts). */
  usageExport(params: UsageParams, names: UsageParamNames = usageQueryParamNames): Result<UsageExport, AdminFailure> {
    if (this.ledger === undefined) return err({ kind: 'no-ledger', reason: noLedgerReason });
    const request = parseUsageExport(params, this.now(), names);
    if (!request.ok) return invalid(request.error.field, request.error.reason);
    return ok({ request: request.value, reader: this.ledger, node: this.runtime.config.node });
  }

  /**
   * The values of the counter keys named (`<scope>/<subject>/<metric>/<unit>:<index>`, 1 to
   * `adminCounterReadKeysMax`); at `quorum` after a read round, so that every charge that
   * reached a read quorum of the mesh is in them (what `carpool audit` compares the ledger with).
   */
  async readCounters(keyTexts: readonly string[], consistency: 'local' | 'quorum'): Promise<Result<CounterReadView, AdminFailure>> {
    if (keyTexts.length === 0 || keyTexts.length > adminCounterReadKeysMax) return invalid('key', `give 1 to ${adminCounterReadKeysMax} keys`);
    const keys = new Map<string, CounterKey>();
    for (const text of keyTexts) {
      const key = parseKeyText(text);
      if (!key.ok) return invalid('key', `${JSON.stringify(text.slice(0, 200))} ${key.error}`);
      keys.set(key.value.id, key.value);
    }
    if (consistency === 'quorum') {
      const read = await this.runtime.round([], [...keys.values()]);
      if (!read.ok) return err({ kind: 'no-quorum', retryAfterMs: noQuorumRetryAfterMs, operation: 'read' });
    }
    const counters = [...keys.values()].map((key) => ({ key: formatKeyText(key), value: this.runtime.counter.value(key) }));
    return ok({ node: this.runtime.config.node, consistency, counters });
  }

  // ---- Policy writes ----

  putTenant(caller: AdminPrincipal, id: string, fields: unknown, reason: string | undefined): Result<unknown, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const parsedId = parseTenantId(id);
    const path = subjectPath('tenants', id);
    const given = subjectFields(fields, id, path, tenantWritableFields);
    if (!given.ok) return given;
    const current = parsedId.ok ? this.runtime.policy.tenant(parsedId.value) : undefined;
    // Keys are kept as they are: they have operations of their own.
    const tenant = validateTenant({ ...given.value, id, apiKeys: current?.apiKeys ?? [] });
    if (!tenant.ok) return invalidPolicy(tenant.error);
    const saved = this.runtime.policy.upsertTenant(tenant.value);
    if (!saved.ok) return invalidPolicy(saved.error);
    this.record(caller, 'tenant.put', `tenant/${tenant.value.id}`, checkedReason.value, { created: current === undefined });
    return ok(redactTenant(tenant.value, this.now()));
  }

  removeTenant(caller: AdminPrincipal, id: string, reason: string | undefined): Result<{ readonly removed: boolean }, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const parsed = parseTenantId(id);
    if (!parsed.ok) return invalid('id', 'must be a tenant id');
    const removed = this.runtime.policy.removeTenant(parsed.value);
    if (removed) this.record(caller, 'tenant.remove', `tenant/${parsed.value}`, checkedReason.value);
    return ok({ removed });
  }

  putAccount(caller: AdminPrincipal, id: string, fields: unknown, reason: string | undefined): Result<unknown, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const given = subjectFields(fields, id, subjectPath('accounts', id), accountWritableFields);
    if (!given.ok) return given;
    const account = validateAccount({ ...given.value, id });
    if (!account.ok) return invalidPolicy(account.error);
    const existed = this.runtime.policy.account(account.value.id) !== undefined;
    const saved = this.runtime.policy.upsertAccount(account.value);
    if (!saved.ok) return invalidPolicy(saved.error);
    this.record(caller, 'account.put', `account/${account.value.id}`, checkedReason.value, { created: !existed });
    return ok(account.value);
  }

  removeAccount(caller: AdminPrincipal, id: string, reason: string | undefined): Result<{ readonly removed: boolean }, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const parsed = parseAccountId(id);
    if (!parsed.ok) return invalid('id', 'must be an account id');
    const removed = this.runtime.policy.removeAccount(parsed.value);
    if (removed) this.record(caller, 'account.remove', `account/${parsed.value}`, checkedReason.value);
    return ok({ removed });
  }

  updateSettings(caller: AdminPrincipal, patch: unknown, reason: string | undefined): Result<unknown, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const checked = validateSettingsPatch(patch);
    if (!checked.ok) return invalidPolicy(checked.error);
    const updated = this.runtime.policy.updateSettings(checked.value);
    if (!updated.ok) return invalidPolicy(updated.error);
    this.record(caller, 'settings.update', 'settings', checkedReason.value, settingsAuditDetail(checked.value));
    return ok(settingsView(this.runtime.policy));
  }

  // ---- Keys ----

  /**
   * A new key for the tenant, minted here; or, with `apiKey`, that existing key registered (the
   * local launcher keeps its keys across starts, and a key moves between meshes this way). Only
   * the digest is stored either way.
   */
  createKey(
    caller: AdminPrincipal,
    tenantId: string,
    options: { readonly name: unknown; readonly expiresAtMs?: unknown; readonly apiKey?: unknown },
    reason: string | undefined,
  ): Result<NewKey, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const tenant = this.findTenant(tenantId, 'tenant');
    if (!tenant.ok) return tenant;
    const given = options.apiKey === undefined ? ok(undefined) : this.importedKey(tenant.value, options.apiKey);
    if (!given.ok) return given;
    const nowMs = this.now();
    const made = this.addKey(tenant.value, options.name, options.expiresAtMs, nowMs, given.value);
    if (!made.ok) return made;
    const view = keyView(tenant.value.id, made.value.record, nowMs);
    const detail = {
      name: view.name,
      ...(view.expiresAtMs === undefined ? {} : { expiresAtMs: view.expiresAtMs }),
      ...(given.value === undefined ? {} : { imported: true }),
    };
    this.record(caller, 'key.create', `key/${view.keyId}`, checkedReason.value, detail);
    return ok({ apiKey: made.value.apiKey, key: view });
  }

  revokeKey(caller: AdminPrincipal, keyId: string, reason: string | undefined): Result<KeyView, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const found = this.findKeyById(keyId);
    if (!found.ok) return found;
    const { tenant, record } = found.value;
    const nowMs = this.now();
    if (record.revokedAtMs !== undefined && record.revokedAtMs <= nowMs) return invalid('keyId', 'names a key that is revoked already');
    const revoked = withRevoked(tenant, record.hash, nowMs);
    const saved = this.runtime.policy.upsertTenant(revoked);
    if (!saved.ok) return invalidPolicy(saved.error);
    const view = keyView(tenant.id, { ...record, revokedAtMs: nowMs }, nowMs);
    this.record(caller, 'key.revoke', `key/${view.keyId}`, checkedReason.value, { name: view.name });
    return ok(view);
  }

  /**
   * A new key in place of `keyId`, which stops working now or after `graceMs`. The new key takes
   * the old one's name unless given one, and no expiry unless given one.
   */
  rotateKey(
    caller: AdminPrincipal,
    keyId: string,
    options: { readonly graceMs?: unknown; readonly name?: unknown; readonly expiresAtMs?: unknown },
    reason: string | undefined,
  ): Result<NewKey & { readonly previous: KeyView }, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const found = this.findKeyById(keyId);
    if (!found.ok) return found;
    const { tenant, record } = found.value;
    const nowMs = this.now();
    if (record.revokedAtMs !== undefined || (record.expiresAtMs !== undefined && record.expiresAtMs <= nowMs)) {
      return invalid('keyId', 'names a key that is revoked or expired; create a new key instead');
    }
    if (options.graceMs !== undefined && typeof options.graceMs !== 'number') return invalid('graceMs', 'must be a number of milliseconds');
    const grace = checkGrace(options.graceMs);
    if (!grace.ok) return invalidKey(grace.error);
    const revokedAtMs = nowMs + grace.value;
    const made = this.addKey(
      withRevoked(tenant, record.hash, revokedAtMs),
      options.name ?? (record.name === '' ? 'rotated' : record.name),
      options.expiresAtMs,
      nowMs,
    );
    if (!made.ok) return made;
    const view = keyView(tenant.id, made.value.record, nowMs);
    const previous = keyView(tenant.id, { ...record, revokedAtMs }, nowMs);
    this.record(caller, 'key.rotate', `key/${previous.keyId}`, checkedReason.value, { newKeyId: view.keyId, name: view.name, graceMs: grace.value });
    return ok({ apiKey: made.value.apiKey, key: view, previous });
  }

  // ---- Pool and counters ----

  /** Re-enables a disabled account (a 401, 402 or 403, or a credential not renewed), mesh-wide; false for an account not in the pool. */
  enableAccount(caller: AdminPrincipal, id: string, reason: string | undefined): Result<{ readonly enabled: boolean }, AdminFailure> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const parsed = parseAccountId(id);
    if (!parsed.ok) return invalid('account', 'must be an account id');
    const enabled = this.runtime.pool.enable(parsed.value, this.now());
    if (enabled) this.record(caller, 'account.enable', `account/${parsed.value}`, checkedReason.value);
    return ok({ enabled });
  }

  /**
   * Puts a new credential in place for an account this node calls (kept in its store, the
   * account's credential file, or memory: the answer says which), and enables the account again
   * if it was disabled for its credential: a refused renewal, or a 401 or 403 from the upstream.
   * The audit entry and the answer name the account and the kind, never the credential.
   */
  async replaceCredential(
    caller: AdminPrincipal,
    id: string,
    body: Readonly<Record<string, unknown>>,
    reason: string | undefined,
  ): Promise<Result<CredentialView, AdminFailure>> {
    const checkedReason = checkReason(reason);
    if (!checkedReason.ok) return checkedReason;
    const parsed = parseAccountId(id);
    if (!parsed.ok) return invalid('account', 'must be an account id');
    const accountId = parsed.value;
    if (this.credentials === undefined)
      return invalid('account', "this node calls no upstream (no upstream in its config): its credentials live on the account's home node");
    const held = parseCredentialBody(body);
    if (!held.ok) return invalid(held.error.field, held.error.reason);
    const account = this.runtime.policy.account(accountId);
    if (account !== undefined && (account.kind === 'api-key') !== (held.value.kind === 'api-key'))
      return invalid('kind', `account ${accountId} is of kind ${account.kind} in the policy`);
    const kept = await this.credentials.replace(accountId, held.value);
    if (!kept.ok) return invalid('account', `the credential could not be kept: ${kept.error}`);
    const status = this.runtime.pool.status(this.now()).find((entry) => entry.id === accountId);
    const reenabled = status?.state === 'disabled' && isCredentialReason(status.disabled) && this.runtime.pool.enable(accountId, this.now());
    const detail = { kind: held.value.kind, kept: kept.value, reenabled };
    this.record(caller, 'account.credential', `account/${accountId}`, checkedReason.value, detail);
    return ok({ account: accountId, ...detail, ...(held.value.kind === 'oauth' ? { expiresAtMs: held.value.credential.expiresAtMs } : {}) });
  }

  /** A charge or credit of one counter key; see the class comment and ./usage-adjustment.ts. */
  async adjustUsage(caller: AdminPrincipal, body: unknown): Promise<Result<AdjustmentView, AdminFailure>> {
    const parsed = parseUsageAdjustment(body, this.runtime.policy, this.now());
    if (!parsed.ok) return invalidKey(parsed.error);
    const adjustment = parsed.value;
    const { key, amount } = adjustment;
    const counter = this.runtime.counter;
    if (adjustment.kind === 'credit') {
      // Read first, so that a credit checked against a view lacking a completed one is refused
      // before it touches the counter: only credits truly at the same moment reach the undo.
      const read = await this.runtime.round([], [key]);
      if (!read.ok) return err({ kind: 'no-quorum', retryAfterMs: noQuorumRetryAfterMs, operation: 'credit' });
    }
    const before = counter.value(key);
    if (adjustment.kind === 'credit' && amount > before) {
      return invalid('amount', `a credit may not exceed the counter's current value, ${Math.max(0, before)}`);
    }
    const applied = adjustment.kind === 'charge' ? counter.increment(key, amount) : counter.decrement(key, amount);
    if (!applied.ok)
      return invalid(
        'index',
        applied.error.kind === 'window-expired' ? "names a window past the counters' expiry horizon" : 'the counter holds as many keys as it may',
      );
    if (adjustment.kind === 'credit') {
      const settled = await this.settleCredit(key, amount);
      if (!settled.ok) return settled;
    }
    const after = counter.value(key);
    const window = formatWindow(key.window);
    this.record(caller, 'usage.adjust', `${key.scope}/${key.subject}`, adjustment.reason, {
      metric: key.metric,
      window,
      kind: adjustment.kind,
      amount,
      before,
      after,
    });
    return ok({ key: `${key.scope}/${key.subject}/${key.metric}/${window}`, kind: adjustment.kind, amount, before, after, node: this.runtime.config.node });
  }

  // ---- Internals ----

  /** The credit's decrement made durable at W members, then the key read from R; undone if the value went below zero. */
  private async settleCredit(key: CounterKey, amount: number): Promise<Result<void, AdminFailure>> {
    const round = await this.runtime.round([key], [key]);
    const after = this.runtime.counter.value(key);
    if (round.ok && after >= 0) return ok(undefined);
    // The undo only raises the value, so it needs no round: gossip carries it.
    const undone = this.runtime.counter.increment(key, amount);
    if (!undone.ok) return invalid('index', 'the window expired while the credit was checked');
    if (!round.ok) return err({ kind: 'no-quorum', retryAfterMs: noQuorumRetryAfterMs, operation: 'credit' });
    return invalid(
      'amount',
      `a credit may not exceed the counter's value, ${Math.max(0, after + amount)} after a quorum read (other credits were made at the same time)`,
    );
  }

  /** An existing key to register: well-formed, of this tenant, and not one of its keys yet. */
  private importedKey(tenant: Tenant, apiKey: unknown): Result<MintedKey, AdminFailure> {
    if (typeof apiKey !== 'string') return invalid('apiKey', 'must be a key cp_<tenant>_<secret>');
    const parts = parseApiKey(apiKey);
    if (!parts.ok || parts.value.tenant !== tenant.id) return invalid('apiKey', `must be a key cp_${tenant.id}_<secret> of 32 to 128 base62 characters`);
    const keyHashHex = apiKeyHashHex(this.crypto, apiKey);
    if (tenant.apiKeys.some((record) => record.hash === keyHashHex)) return invalid('apiKey', "is one of the tenant's keys already");
    if (keyIdTaken(tenant, keyHashHex)) return invalid('apiKey', 'has the key id of another key of the tenant; mint a new key instead');
    return ok({ apiKey, keyHashHex, keyId: formatKeyId(tenant.id, keyHashHex) });
  }

  private addKey(
    tenant: Tenant,
    name: unknown,
    expiresAtMs: unknown,
    nowMs: number,
    given?: MintedKey,
  ): Result<{ readonly apiKey: string; readonly record: Tenant['apiKeys'][number] }, AdminFailure> {
    if (typeof name !== 'string' || name.length === 0 || !isValidKeyName(name)) {
      return invalid('name', `must be 1 to ${apiKeyNameLengthMax} printable ASCII characters, without spaces at either end`);
    }
    if (expiresAtMs !== undefined && typeof expiresAtMs !== 'number') return invalid('expiresAtMs', 'must be a time in ms since the epoch');
    const expiry = checkExpiry(expiresAtMs, nowMs);
    if (!expiry.ok) return invalidKey(expiry.error);
    let minted = given ?? this.mint(tenant.id);
    // Key ids must name one key; a clash of eight hex digits is one in tens of millions.
    for (let attempt = 1; attempt < mintAttemptsMax && keyIdTaken(tenant, minted.keyHashHex); attempt++) minted = this.mint(tenant.id);
    if (keyIdTaken(tenant, minted.keyHashHex)) return invalid('tenant', 'no fresh key id could be drawn; try again');
    const record = { hash: minted.keyHashHex, name, createdAtMs: nowMs, ...(expiry.value === undefined ? {} : { expiresAtMs: expiry.value }) };
    const updated = withKey(tenant, record, nowMs);
    if (!updated.ok) return invalidKey(updated.error);
    const saved = this.runtime.policy.upsertTenant(updated.value);
    if (!saved.ok) return invalidPolicy(saved.error);
    return ok({ apiKey: minted.apiKey, record });
  }

  private findTenant(id: string, field: string): Result<Tenant, AdminFailure> {
    const parsed = parseTenantId(id);
    const tenant = parsed.ok ? this.runtime.policy.tenant(parsed.value) : undefined;
    return tenant === undefined ? notFound(field, `no tenant ${id.slice(0, 64)} in the policy`) : ok(tenant);
  }

  private findKeyById(keyId: string): Result<{ readonly tenant: Tenant; readonly record: Tenant['apiKeys'][number] }, AdminFailure> {
    const parsed = parseKeyId(keyId);
    if (!parsed.ok) return invalid('keyId', 'must be <tenant>:<8 hex digits>');
    const tenant = this.findTenant(parsed.value.tenant, 'keyId');
    if (!tenant.ok) return tenant;
    const record = findKey(tenant.value, keyId);
    if (!record.ok) return notFound(record.error.field, record.error.reason);
    return ok({ tenant: tenant.value, record: record.value });
  }

  private record(
    caller: AdminPrincipal,
    action: AuditAction,
    target: string,
    reason: string | undefined,
    detail?: Readonly<Record<string, AuditDetailValue>>,
  ): void {
    const entry: AuditEntry = {
      atMs: this.now(),
      node: this.runtime.config.node,
      actor: caller.name,
      action,
      target,
      ...(reason === undefined ? {} : { reason }),
      ...(detail === undefined || Object.keys(detail).length === 0 ? {} : { detail }),
    };
    const appended = this.runtime.policy.appendAudit(entry);
    // Every field above comes from validated input or configuration: a refusal is a bug here.
    if (!appended.ok) throw new Error(`audit entry refused: ${appended.error.field}: ${appended.error.reason}`);
  }
}

/**
 * The JSON object of a subject's fields, checked against the fields an operator may write: an
 * `id` inside must equal the one in the path, key fields are refused (keys have their own
 * operations), and so is any field the schema does not know.
 */
function subjectFields(value: unknown, id: string, path: string, writable: readonly string[]): Result<Record<string, unknown>, AdminFailure> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid(path, 'must be a JSON object');
  const fields = { ...(value as Record<string, unknown>) };
  if (fields.id !== undefined && fields.id !== id) return invalid(`${path}.id`, 'differs from the id the request names; leave it out');
  delete fields.id;
  for (const name of Object.keys(fields)) {
    if (keyFieldNames.includes(name))
      return invalid(`${path}.${name}`, 'keys are managed with the key operations (create, revoke, rotate); leave this field out');
    if (!writable.includes(name)) return invalid(`${path}.${name.slice(0, 64)}`, `unknown field; the fields are ${writable.join(', ')}`);
  }
  return ok(fields);
}

/** Whether a new credential cures the disable: a refused renewal, or a 401 or 403 (not a 402: no credit left). */
function isCredentialReason(reason: DisableReason | undefined): boolean {
  return reason !== undefined && (reason.kind === 'credential' || reason.status === 401 || reason.status === 403);
}

function checkReason(reason: string | undefined): Result<string | undefined, AdminFailure> {
  if (reason === undefined || reason === '') return ok(undefined);
  return isValidAuditReason(reason) ? ok(reason) : invalid('reason', 'must be 1 to 512 characters without control characters');
}

function invalid(field: string, reason: string): Result<never, AdminFailure> {
  return err({ kind: 'invalid', field, reason });
}

function notFound(field: string, reason: string): Result<never, AdminFailure> {
  return err({ kind: 'not-found', field, reason });
}

function invalidPolicy(error: PolicyError): Result<never, AdminFailure> {
  return invalid(error.field, error.reason);
}

function invalidKey(problem: KeyProblem): Result<never, AdminFailure> {
  return invalid(problem.field, problem.reason);
}
