import { idLengthMax, nameLengthMax } from './limits.js';
import { err, ok, type Result } from './result.js';

/**
 * Branded ids: a `TenantId` cannot be passed where a `ReplicaId` is expected, although both are
 * strings at run time. Values come from the `parse*` functions (untrusted input) or the `as*`
 * casts (literals and values already validated, such as decoded frames).
 */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A replica of the counters: one admission node incarnation. */
export type ReplicaId = Brand<string, 'ReplicaId'>;
export type RegionId = Brand<string, 'RegionId'>;
export type NodeId = Brand<string, 'NodeId'>;
export type TenantId = Brand<string, 'TenantId'>;
export type UserId = Brand<string, 'UserId'>;
export type AccountId = Brand<string, 'AccountId'>;
export type RequestId = Brand<string, 'RequestId'>;

export interface IdError {
  readonly kind: 'bad-id';
  readonly reason: string;
}

/**
 * Ids are 1 to `idLengthMax` printable ASCII characters without spaces. That keeps them safe as
 * metric labels, log fields and key parts, and makes their wire size equal to their length.
 */
export function isValidId(text: string): boolean {
  if (text.length === 0 || text.length > idLengthMax) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** Names (counter scopes and metrics) are short lowercase identifiers: `[a-z][a-z0-9_]*`. */
export function isValidName(text: string): boolean {
  return text.length <= nameLengthMax && /^[a-z][a-z0-9_]*$/.test(text);
}

function parseId<T extends string>(text: string, what: string): Result<T, IdError> {
  if (isValidId(text)) return ok(text as T);
  return err({
    kind: 'bad-id',
    reason: `${what} must be 1 to ${idLengthMax} printable ASCII characters without spaces`,
  });
}

export const parseReplicaId = (text: string): Result<ReplicaId, IdError> => parseId(text, 'replica id');
export const parseRegionId = (text: string): Result<RegionId, IdError> => parseId(text, 'region id');
export const parseNodeId = (text: string): Result<NodeId, IdError> => parseId(text, 'node id');
export const parseTenantId = (text: string): Result<TenantId, IdError> => parseId(text, 'tenant id');
export const parseUserId = (text: string): Result<UserId, IdError> => parseId(text, 'user id');
export const parseAccountId = (text: string): Result<AccountId, IdError> => parseId(text, 'account id');
export const parseRequestId = (text: string): Result<RequestId, IdError> => parseId(text, 'request id');

export const asReplicaId = (text: string): ReplicaId => text as ReplicaId;
export const asRegionId = (text: string): RegionId => text as RegionId;
export const asNodeId = (text: string): NodeId => text as NodeId;
export const asTenantId = (text: string): TenantId => text as TenantId;
