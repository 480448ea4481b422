import { type DegradeSettings, readDegradeSettings, readScheduleSettings, type ScheduleSettings } from './schedule-schema.js';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { assert } from '../../core/assert.js';
import type { AccountId, TenantId } from '../../core/ids.js';
import { auditEntriesMax, policyAccountsMax, policyLocalUpdatesMax, policySyncErrorDetailLengthMax, policyTenantsMax } from '../../core/limits.js';
import { err, ok, OK_VOID, type Result } from '../../core/result.js';
import { type AuditEntry, validateAuditEntry } from './audit-schema.js';
import {
  type Account,
  accountWritableFields,
  defaultMeshSettings,
  defaultPoolSettings,
  legacyKeyHashes,
  type MeshSettings,
  meshSettingNames,
  type PolicyError,
  type PoolSettings,
  readPoolSettings,
  readShedSettings,
  type SettingsPatch,
  settingsWrites,
  type ShedSettings,
  subjectPath,
  type Tenant,
  tenantWritableFields,
  validateAccount,
  validateMeshSetting,
  validateSettingsPatch,
  validateTenant,
} from './policy-schema.js';

/**
 * The policy document: tenants, accounts and mesh settings as one Yjs document that every mesh
 * node holds. An admin edit made at any node converges to all of them; hot counters never live
 * here (a Y.Map overwrite leaves a struct behind per write, see DESIGN.md §5).
 *
 * Message flow over one authenticated mesh link (y-protocols sync, peer to peer):
 *
 *   node A                                            node B
 *     │── step 1: A's state vector ───────────────────▶│  both sides send step 1 as soon as
 *     │◀─────────────────── step 1: B's state vector ──│  the link is authenticated
 *     │◀──────────── step 2: what A lacks (B's reply) ─│
 *     │── step 2: what B lacks (A's reply) ───────────▶│
 *     │── update: A's local edits (takeUpdates) ──────▶│  broadcast to every peer, any time
 *     │◀──────────────────── update: B's local edits ──│
 *
 * Each message is `varUint type · varUint8Array payload` and nothing else: type 0 (step 1)
 * carries a Yjs state vector, types 1 (step 2) and 2 (update) carry a Yjs v1 update. Updates may
 * arrive duplicated, reordered or not at all: Yjs applies each struct once, parks structs whose
 * causal predecessors are missing, and a later step 1/step 2 exchange repairs whatever was lost.
 *
 * Layout: top-level maps `tenants` (id → Y.Map of fields), `accounts` (id → Y.Map of fields) and
 * `settings` (name → number, or a JSON value for the pool and shedding settings, see
 * ./policy-schema.ts), and the array `audit` of admin audit entries (plain JSON objects,
 * see ./audit-schema.ts), trimmed to `auditEntriesMax` at each append. A tenant is a nested map rather than one JSON value so that
 * concurrent edits of different fields of one tenant merge field by field. Two nodes that create
 * the same tenant concurrently still produce two nested maps, of which Yjs keeps one everywhere:
 * field-wise merging applies to tenants that already exist on both sides.
 */

export interface BadSyncMessage {
  readonly kind: 'bad-sync-message';
  readonly detail: string;
}

/**
 * The root types this schema writes; an update that names another is not ours. A peer of a
 * version before the audit log refuses updates that name `audit`: mix versions only while no
 * admin write is made (see the README's admin section).
 */
const rootNames = new Set(['tenants', 'accounts', 'settings', 'audit']);

/**
 * A tenant's stored fields: what operators write, and its keys twice: `apiKeys` (the records) and
 * `apiKeyHashes` (the digests of keys not revoked, which peers of the schema before records read).
 */
const tenantFieldNames = [...tenantWritableFields, 'apiKeys', 'apiKeyHashes'] as const;
const accountFieldNames = accountWritableFields;

type FieldValue = string | number | boolean | readonly FieldValue[] | { readonly [name: string]: FieldValue };

/**
 * A field to write; `undefined` removes an optional field. Optional fields are removed rather
 * than written empty, so an account that never had one makes no update for it and reads the
 * same on peers of an older schema version.
 */
type FieldWrite = readonly [string, FieldValue | undefined];

export class PolicyDocument {
  private readonly doc: Y.Doc;
  private readonly tenantsRoot: Y.Map<unknown>;
  private readonly accountsRoot: Y.Map<unknown>;
  private readonly settingsRoot: Y.Map<unknown>;
  private readonly auditRoot: Y.Array<unknown>;
  private readonly tenantView: SubjectView<TenantId, Tenant>;
  private readonly accountView: SubjectView<AccountId, Account>;
  /** Transaction origins: they tell local edits (to broadcast) from applied remote messages. */
  private readonly localOrigin = { origin: 'local' };
  private readonly remoteOrigin = { origin: 'remote' };
  /** Yjs v1 updates of local edits not yet taken; at most `policyLocalUpdatesMax`. */
  private pendingUpdates: Uint8Array[] = [];
  /** Every update (local or a peer's) not yet taken by a durable owner; kept only once `keepDurable` was called. */
  private unsavedUpdates: Uint8Array[] | undefined;
  private readonly restoreOrigin = { origin: 'restore' };
  private readonly listeners = new Set<() => void>();
  /** Counts document changes, so listeners run once per public call that changed something. */
  private changeCount = 0;
  private notifiedChangeCount = 0;
  /**
   * The pool and shedding settings as last read, dropped whenever the settings map changes: the
   * gateway reads them on every request, and an unchanged object tells it nothing moved.
   */
  private settingsCache:
    | {
        readonly pool: PoolSettings;
        readonly shed: ShedSettings | undefined;
        readonly schedule: ScheduleSettings;
        readonly degrade: DegradeSettings | undefined;
        readonly errors: readonly PolicyError[];
      }
    | undefined;

  /**
   * `clientId` is this incarnation's Yjs client id, a u32 the caller derives from the replica id.
   * Yjs names every struct by (clientID, clock) and trusts that a clientID is used by one writer
   * only: two incarnations writing under one id would create different structs under the same
   * names and the replicas would diverge for good. Yjs would pick a random id itself, but cores
   * take no randomness from the environment, and a derived id makes simulator runs repeatable.
   */
  constructor(private readonly clientId: number) {
    assert(Number.isInteger(clientId) && clientId >= 0 && clientId <= 0xffff_ffff, `client id must be a u32, got ${clientId}`);
    // A fixed guid keeps Yjs from drawing a random one; the guid is never sent. The constructor
    // still draws a random client id, which is replaced before anything is written under it.
    this.doc = new Y.Doc({ guid: 'carpool-policy', gc: true });
    this.doc.clientID = clientId;
    this.tenantsRoot = this.doc.getMap<unknown>('tenants');
    this.accountsRoot = this.doc.getMap<unknown>('accounts');
    this.settingsRoot = this.doc.getMap<unknown>('settings');
    this.auditRoot = this.doc.getArray<unknown>('audit');
    this.settingsRoot.observe(() => {
      this.settingsCache = undefined;
    });
    this.tenantView = new SubjectView(this.tenantsRoot, (id, entry) => readSubject(entry, 'tenants', id, tenantFieldNames, validateTenant));
    this.accountView = new SubjectView(this.accountsRoot, (id, entry) => readSubject(entry, 'accounts', id, accountFieldNames, validateAccount));
    this.doc.on('update', (update: Uint8Array, origin: unknown) => {
      this.changeCount++;
      if (this.unsavedUpdates !== undefined && origin !== this.restoreOrigin) {
        this.unsavedUpdates.push(update);
        if (this.unsavedUpdates.length > policyLocalUpdatesMax) this.unsavedUpdates = [Y.mergeUpdates(this.unsavedUpdates)];
      }
      if (origin !== this.localOrigin) return;
      this.pendingUpdates.push(update);
      // Merging keeps the count bounded; the merged update holds the same structs, so peers
      // receive exactly what they would have from the separate updates.
      if (this.pendingUpdates.length > policyLocalUpdatesMax) this.pendingUpdates = [Y.mergeUpdates(this.pendingUpdates)];
    });
  }

  // ---- Durability ----

  /**
   * From now on, keeps every update, local or a peer's, for `takeUnsaved`: a node with a durable
   * store writes them before it sends any frame, so a restarted node has the policy it last had
   * even if every peer is down. The restarted node takes a new Yjs client id (the caller derives
   * it from the replica id and its start count), so nothing it writes can collide with structs an
   * earlier start wrote but did not save.
   */
  keepDurable(): void {
    this.unsavedUpdates ??= [];
  }

  takeUnsaved(): Uint8Array[] {
    if (this.unsavedUpdates === undefined || this.unsavedUpdates.length === 0) return [];
    const taken = this.unsavedUpdates;
    this.unsavedUpdates = [];
    return taken;
  }

  /** Applies updates a durable store kept, at start; a bad one is refused as a peer's would be. */
  restore(updates: readonly Uint8Array[]): Result<undefined, BadSyncMessage> {
    for (const update of updates) {
      const problem = this.checkRemoteUpdate(update);
      if (problem !== undefined) return badSyncMessage(problem);
      try {
        Y.applyUpdate(this.doc, update, this.restoreOrigin);
      } catch (error) {
        return badSyncMessage(`stored update failed to apply: ${describe(error)}`);
      }
    }
    assert(this.doc.clientID === this.clientId, 'the Yjs client id changed');
    this.notifyIfChanged();
    return ok(undefined);
  }

  // ---- Sync ----

  /** A sync step 1 message: send it on a link once the link is authenticated. */
  syncStep1(): Uint8Array {
    const encoder = encoding.createEncoder();
    syncProtocol.writeSyncStep1(encoder, this.doc);
    return encoding.toUint8Array(encoder);
  }

  /**
   * Applies one sync message from a peer and returns the reply to send back on the same link, if
   * any (a step 2 for a step 1). Never throws on bad bytes: a message that does not decode, or
   * whose update could not have come from a policy document, is refused before anything is
   * applied and the document stays as it was. These checks catch corrupt and foreign bytes; a
   * well-formed update is trusted as Yjs trusts it, which is why links authenticate first.
   *
   * Content is not validated here: refusing a well-formed update because of what it says would
   * leave this replica diverged forever. Entries that fail validation are left out of the typed
   * reads and reported by `invalidEntries()` instead.
   */
  onSyncMessage(bytes: Uint8Array): Result<Uint8Array | undefined, BadSyncMessage> {
    const result = this.readSyncMessage(bytes);
    this.notifyIfChanged();
    return result;
  }

  /**
   * The update messages of local edits made since the last call, to broadcast to every peer.
   * Updates applied from peers are not included: their senders broadcast them.
   */
  takeUpdates(): Uint8Array[] {
    const messages = this.pendingUpdates.map((update) => {
      const encoder = encoding.createEncoder();
      syncProtocol.writeUpdate(encoder, update);
      return encoding.toUint8Array(encoder);
    });
    this.pendingUpdates = [];
    return messages;
  }

  /** The Yjs state vector: which structs of which clients this replica holds. */
  stateVector(): Uint8Array {
    return Y.encodeStateVector(this.doc);
  }

  /** The whole document as one Yjs v1 update. */
  encodeState(): Uint8Array {
    return Y.encodeStateAsUpdate(this.doc);
  }

  // ---- Reads ----

  /** Valid tenants; a snapshot that later edits do not change. */
  tenants(): ReadonlyMap<TenantId, Tenant> {
    return this.tenantView.all();
  }

  tenant(id: TenantId): Tenant | undefined {
    return this.tenantView.get(id);
  }

  /** Valid accounts; a snapshot that later edits do not change. */
  accounts(): ReadonlyMap<AccountId, Account> {
    return this.accountView.all();
  }

  account(id: AccountId): Account | undefined {
    return this.accountView.get(id);
  }

  /** Mesh settings; a missing or invalid field reads as its default. */
  settings(): MeshSettings {
    const settings: Record<keyof MeshSettings, number> = { ...defaultMeshSettings };
    for (const name of meshSettingNames) {
      const stored = this.settingsRoot.get(name);
      if (stored === undefined) continue;
      const checked = validateMeshSetting(name, stored);
      if (checked.ok) settings[name] = checked.value;
    }
    return settings;
  }

  /**
   * How the pool picks and rests accounts, every field filled (its default when the policy does
   * not set it, or sets it invalidly); the same object until the settings change.
   */
  poolSettings(): PoolSettings {
    return this.readSettings().pool;
  }

  /**
   * The policy's load-shedding thresholds, or undefined when it sets none: then each node keeps
   * its own. The same object until the settings change.
   */
  shedSettings(): ShedSettings | undefined {
    return this.readSettings().shed;
  }

  /** How admission queues order requests, defaults filled; the same object until the settings change. */
  scheduleSettings(): ScheduleSettings {
    return this.readSettings().schedule;
  }

  /** When lower tiers are served degraded, or undefined when the policy never degrades; the same object until the settings change. */
  degradeSettings(): DegradeSettings | undefined {
    return this.readSettings().degrade;
  }

  /**
   * Entries present in the document that fail validation (written by a peer on another schema
   * version, or by a bug), which the typed reads leave out or replace by defaults.
   */
  invalidEntries(): PolicyError[] {
    const errors = [...this.tenantView.errors(), ...this.accountView.errors(), ...this.readSettings().errors];
    for (const name of meshSettingNames) {
      const stored = this.settingsRoot.get(name);
      if (stored === undefined) continue;
      const checked = validateMeshSetting(name, stored);
      if (!checked.ok) errors.push(checked.error);
    }
    return errors;
  }

  // ---- Edits ----

  upsertTenant(tenant: Tenant): Result<void, PolicyError> {
    const checked = validateTenant(tenant);
    if (!checked.ok) return checked;
    const t = checked.value;
    if (!this.tenantsRoot.has(t.id) && this.tenantView.entryCount() >= policyTenantsMax) {
      return err({ kind: 'invalid-policy', field: 'tenants', reason: `at most ${policyTenantsMax} tenants` });
    }
    this.writeSubject(this.tenantsRoot, t.id, [
      ['tier', t.tier],
      ['apiKeys', t.apiKeys.map((record) => ({ ...record }))],
      ['apiKeyHashes', legacyKeyHashes(t.apiKeys)],
      ['requireSignature', t.requireSignature],
      ['concurrencyMax', t.concurrencyMax],
      ['weights', { ...t.weights }],
      ['limits', t.limits.map((rule) => ({ ...rule }))],
      ['userLimits', t.userLimits.map((rule) => ({ ...rule }))],
      ['userConcurrencyMax', t.userConcurrencyMax],
      // Written only for `abort`. A peer on a schema without the field reads the tenant as
      // `drain`: abort holds only once every node that serves the tenant knows the field.
      ['onClientCancel', t.onClientCancel],
      // Written only for `region`; a peer without the field claims ids mesh-wide, the safe side.
      ['idempotency', t.idempotency],
      // Written only when the tenant has its own; a peer without the field uses the default.
      ['poolStrategy', t.poolStrategy],
    ]);
    return OK_VOID;
  }

  /** Returns whether the tenant was present. */
  removeTenant(id: TenantId): boolean {
    return this.removeSubject(this.tenantsRoot, id);
  }

  upsertAccount(account: Account): Result<void, PolicyError> {
    const checked = validateAccount(account);
    if (!checked.ok) return checked;
    const a = checked.value;
    if (!this.accountsRoot.has(a.id) && this.accountView.entryCount() >= policyAccountsMax) {
      return err({ kind: 'invalid-policy', field: 'accounts', reason: `at most ${policyAccountsMax} accounts` });
    }
    this.writeSubject(this.accountsRoot, a.id, [
      ['kind', a.kind],
      ['homeRegion', a.homeRegion],
      ['weight', a.weight],
      ['concurrencyMax', a.concurrencyMax],
      ['limits', a.limits.map((rule) => ({ ...rule }))],
      // A peer on a schema without this field ignores it and reads the account as shared: VIP
      // isolation holds only once every node runs a version that knows the field.
      ['dedicatedTenants', a.dedicatedTenants === undefined ? undefined : [...a.dedicatedTenants]],
    ]);
    return OK_VOID;
  }

  /** Returns whether the account was present. */
  removeAccount(id: AccountId): boolean {
    return this.removeSubject(this.accountsRoot, id);
  }

  /**
   * Sets the given settings, merged over the stored ones (see `SettingsPatch`); all of them or,
   * if one is invalid alone or with what is stored, none.
   */
  updateSettings(patch: SettingsPatch): Result<void, PolicyError> {
    const checked = validateSettingsPatch(patch);
    if (!checked.ok) return checked;
    const writes = settingsWrites((key) => this.settingsRoot.get(key), checked.value);
    if (!writes.ok) return writes;
    const changes = writes.value.filter(([key, value]) => (value === undefined ? this.settingsRoot.has(key) : !jsonEqual(this.settingsRoot.get(key), value)));
    if (changes.length > 0) {
      this.doc.transact(() => {
        for (const [key, value] of changes) {
          if (value === undefined) this.settingsRoot.delete(key);
          else this.settingsRoot.set(key, value);
        }
      }, this.localOrigin);
      this.notifyIfChanged();
    }
    return OK_VOID;
  }

  // ---- Audit log ----

  /**
   * Appends an admin audit entry and trims the oldest beyond `auditEntriesMax`. The entry is
   * validated first; an invalid one is a bug of the caller and is refused.
   */
  appendAudit(entry: AuditEntry): Result<void, PolicyError> {
    const checked = validateAuditEntry(entry, 'audit[+]');
    if (!checked.ok) return checked;
    this.doc.transact(() => {
      this.auditRoot.push([{ ...checked.value, ...(checked.value.detail === undefined ? {} : { detail: { ...checked.value.detail } }) }]);
      const excess = this.auditRoot.length - auditEntriesMax;
      if (excess > 0) this.auditRoot.delete(0, excess);
    }, this.localOrigin);
    this.notifyIfChanged();
    return OK_VOID;
  }

  /**
   * The audit log, newest first, with the entries that fail validation reported apart (a peer of
   * another schema version, or a bug, wrote them). Read rarely, so validated on every call.
   */
  auditEntries(): { readonly entries: AuditEntry[]; readonly invalid: PolicyError[] } {
    const entries: AuditEntry[] = [];
    const invalid: PolicyError[] = [];
    this.auditRoot.toArray().forEach((value, i) => {
      const checked = validateAuditEntry(value, `audit[${i}]`);
      if (checked.ok) entries.push(checked.value);
      else invalid.push(checked.error);
    });
    // The array's order is the same on every replica, but concurrent appends interleave by
    // client id; the time each node stamped is what a reader expects to see.
    entries.reverse().sort((a, b) => b.atMs - a.atMs);
    return { entries, invalid };
  }

  /**
   * Calls `listener` after every public call that changed the document, local or remote, once
   * the change is complete. Listeners must not throw: their error would reach the caller of the
   * edit or of `onSyncMessage`. Returns the function that unsubscribes.
   */
  onChange(listener: () => void): () => void {
    // Wrapping makes each subscription distinct, so subscribing one function twice is harmless.
    const entry = (): void => listener();
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  // ---- Internals ----

  private readSettings(): NonNullable<PolicyDocument['settingsCache']> {
    if (this.settingsCache === undefined) {
      const stored = (key: string): unknown => this.settingsRoot.get(key);
      const pool = readPoolSettings(stored);
      const shed = readShedSettings(stored);
      const schedule = readScheduleSettings(stored);
      const degrade = readDegradeSettings(stored);
      this.settingsCache = {
        pool: pool.settings,
        shed: shed.settings,
        schedule: schedule.settings,
        degrade: degrade.settings,
        errors: [...pool.errors, ...shed.errors, ...schedule.errors, ...degrade.errors],
      };
    }
    return this.settingsCache;
  }

  private readSyncMessage(bytes: Uint8Array): Result<Uint8Array | undefined, BadSyncMessage> {
    let type: number;
    let payload: Uint8Array;
    try {
      const decoder = decoding.createDecoder(bytes);
      type = decoding.readVarUint(decoder);
      payload = decoding.readVarUint8Array(decoder);
      if (decoding.hasContent(decoder)) return badSyncMessage('trailing bytes after the payload');
    } catch (error) {
      return badSyncMessage(`malformed message: ${describe(error)}`);
    }
    switch (type) {
      case syncProtocol.messageYjsSyncStep1:
        return this.answerStep1(payload);
      case syncProtocol.messageYjsSyncStep2:
      case syncProtocol.messageYjsUpdate:
        // A copy: decoded values may keep views into the buffer, which the transport may reuse.
        return this.applyRemoteUpdate(payload.slice());
      default:
        return badSyncMessage(`unknown message type ${type}`);
    }
  }

  private answerStep1(stateVector: Uint8Array): Result<Uint8Array, BadSyncMessage> {
    try {
      Y.decodeStateVector(stateVector);
      const encoder = encoding.createEncoder();
      syncProtocol.writeSyncStep2(encoder, this.doc, stateVector);
      return ok(encoding.toUint8Array(encoder));
    } catch (error) {
      return badSyncMessage(`malformed state vector: ${describe(error)}`);
    }
  }

  /**
   * Yjs integrates an update struct by struct and cannot roll back, so an update is decoded and
   * checked in full before it is applied. Should Yjs still throw while applying (nothing known
   * triggers it after the checks), its transaction cleanup runs regardless and the document stays
   * consistent, holding the structs integrated so far.
   */
  private applyRemoteUpdate(update: Uint8Array): Result<undefined, BadSyncMessage> {
    const problem = this.checkRemoteUpdate(update);
    if (problem !== undefined) return badSyncMessage(problem);
    try {
      Y.applyUpdate(this.doc, update, this.remoteOrigin);
    } catch (error) {
      return badSyncMessage(`update failed to apply: ${describe(error)}`);
    }
    // Yjs silently draws a random client id when a remote update advances ours; the check
    // above refuses such updates, so the id cannot have moved.
    assert(this.doc.clientID === this.clientId, 'the Yjs client id changed');
    return ok(undefined);
  }

  /** Returns why `update` cannot be applied, or undefined if it may be. */
  private checkRemoteUpdate(update: Uint8Array): string | undefined {
    let structs: ReturnType<typeof Y.decodeUpdate>['structs'];
    try {
      structs = Y.decodeUpdate(update).structs;
    } catch (error) {
      return `malformed update: ${describe(error)}`;
    }
    const ownClock = Y.getState(this.doc.store, this.clientId);
    for (const struct of structs) {
      if (struct instanceof Y.Skip) continue;
      // Only this incarnation writes under its client id, so a peer cannot hold structs of it
      // that this replica lacks unless the id was reused (a broken caller guarantee) or the
      // bytes are garbage. Applying them would make Yjs re-randomize the client id.
      if (struct.id.client === this.clientId && struct.id.clock + struct.length > ownClock) {
        return `update carries structs of this replica's own client id ${this.clientId} that it never wrote`;
      }
      if (!(struct instanceof Y.Item)) continue;
      // The lazy decoder leaves a root parent as its name (a string) instead of a type.
      const parent: unknown = struct.parent;
      if (typeof parent === 'string' && !rootNames.has(parent)) return `update names an unknown root type ${JSON.stringify(parent.slice(0, 32))}`;
      // A struct can only refer to structs that existed when it was made, so a reference to its
      // own client names an earlier clock. Yjs relies on it without checking and throws midway
      // through integration otherwise.
      for (const ref of [struct.origin, struct.rightOrigin, parent instanceof Y.ID ? parent : null]) {
        if (ref !== null && ref.client === struct.id.client && ref.clock >= struct.id.clock) {
          return 'update holds a struct that refers to itself or to a later struct of its client';
        }
      }
      const content = struct.content;
      if (content instanceof Y.ContentType) {
        if (!(content.type instanceof Y.Map)) return 'update holds a shared type other than a map';
      } else if (!(content instanceof Y.ContentAny) && !(content instanceof Y.ContentDeleted)) {
        return 'update holds content the policy document never writes';
      }
    }
    return undefined;
  }

  /** Writes only the fields whose value differs, so an unchanged upsert makes no update. */
  private writeSubject(root: Y.Map<unknown>, id: string, fields: readonly FieldWrite[]): void {
    const existing = root.get(id);
    const entry = existing instanceof Y.Map ? (existing as Y.Map<unknown>) : undefined;
    const changes =
      entry === undefined
        ? fields.filter(([, value]) => value !== undefined)
        : fields.filter(([name, value]) => (value === undefined ? entry.has(name) : !jsonEqual(entry.get(name), value)));
    if (changes.length === 0) return;
    this.doc.transact(() => {
      if (entry === undefined) {
        root.set(id, new Y.Map<unknown>(changes));
      } else {
        // Fields this schema does not know (written by a newer peer) are left in place.
        for (const [name, value] of changes) {
          if (value === undefined) entry.delete(name);
          else entry.set(name, value);
        }
      }
    }, this.localOrigin);
    this.notifyIfChanged();
  }

  private removeSubject(root: Y.Map<unknown>, id: string): boolean {
    if (!root.has(id)) return false;
    this.doc.transact(() => root.delete(id), this.localOrigin);
    this.notifyIfChanged();
    return true;
  }

  private notifyIfChanged(): void {
    if (this.changeCount === this.notifiedChangeCount) return;
    this.notifiedChangeCount = this.changeCount;
    // A copy: a listener may subscribe or unsubscribe while we iterate.
    for (const listener of [...this.listeners]) listener();
  }
}

/**
 * The typed, validated view of one root map (tenants or accounts). Entries are revalidated only
 * when Yjs reports that they changed, because admission reads them on every request while admin
 * edits are rare; the snapshot map is rebuilt at most once per change.
 */
class SubjectView<Id extends string, T> {
  private readonly valid = new Map<Id, T>();
  private readonly invalid = new Map<Id, PolicyError>();
  /** Keys changed since the last refresh; at most the keys the root map has held. */
  private readonly dirty = new Set<string>();
  private snapshot: ReadonlyMap<Id, T> | undefined = undefined;

  constructor(
    private readonly root: Y.Map<unknown>,
    private readonly read: (id: string, entry: unknown) => Result<T, PolicyError>,
  ) {
    root.observeDeep((events) => {
      for (const event of events) {
        if (event.target === root) {
          const keys: ReadonlySet<string> = (event as Y.YMapEvent<unknown>).keysChanged;
          for (const key of keys) this.dirty.add(key);
        } else {
          // The path is relative to the root: its first step is the subject's key.
          const key = event.path[0];
          if (typeof key === 'string') this.dirty.add(key);
        }
      }
    });
  }

  all(): ReadonlyMap<Id, T> {
    this.refresh();
    this.snapshot ??= new Map(this.valid);
    return this.snapshot;
  }

  get(id: Id): T | undefined {
    this.refresh();
    return this.valid.get(id);
  }

  errors(): PolicyError[] {
    this.refresh();
    return [...this.invalid.values()];
  }

  /** Entries in the root map, valid or not. (`Y.Map.size` would walk the whole map.) */
  entryCount(): number {
    this.refresh();
    return this.valid.size + this.invalid.size;
  }

  private refresh(): void {
    if (this.dirty.size === 0) return;
    for (const key of this.dirty) {
      const id = key as Id;
      const entry = this.root.get(key);
      this.valid.delete(id);
      this.invalid.delete(id);
      if (entry === undefined) continue;
      const read = this.read(key, entry);
      if (read.ok) this.valid.set(id, read.value);
      else this.invalid.set(id, read.error);
    }
    this.dirty.clear();
    this.snapshot = undefined;
  }
}

/**
 * Reads one subject entry (its key and its known fields) and validates it. Fields this schema
 * does not know are ignored, so a newer peer may add some without hiding the entry here.
 */
function readSubject<T>(
  entry: unknown,
  root: 'tenants' | 'accounts',
  id: string,
  names: readonly string[],
  validate: (fields: Record<string, unknown>) => Result<T, PolicyError>,
): Result<T, PolicyError> {
  if (!(entry instanceof Y.Map)) return err({ kind: 'invalid-policy', field: subjectPath(root, id), reason: 'is not a map' });
  const map = entry as Y.Map<unknown>;
  const fields: Record<string, unknown> = { id };
  for (const name of names) fields[name] = map.get(name);
  return validate(fields);
}

/** Deep equality of JSON-like values as Yjs stores them (primitives, arrays, plain objects). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

function isPlainObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function badSyncMessage(detail: string): Result<never, BadSyncMessage> {
  return err({ kind: 'bad-sync-message', detail: detail.slice(0, policySyncErrorDetailLengthMax) });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The pool settings a runtime reads, complete with defaults: the policy's, or the defaults
 * outright for a runtime whose policy is a stand-in without settings (a test's).
 */
export function poolSettingsOf(policy: Partial<Pick<PolicyDocument, 'poolSettings'>> | undefined): PoolSettings {
  return policy?.poolSettings?.() ?? defaultPoolSettings;
}
