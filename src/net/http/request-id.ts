import { createHash, randomBytes } from 'node:crypto';
import { isValidId } from '../../core/ids.js';
import { err, ok, type Result } from '../../core/result.js';
import { isValidRequestId } from '../../node/gateway/request-validation.js';

/**
 * The request id of an HTTP request, and the user a Messages body names.
 *
 * Ids. A client that wants a retry to be charged once sends `Idempotency-Key: <key>`: the key is
 * the request id, with exactly the semantics of the gRPC `request_id` (claimed mesh-wide, the
 * answer kept for a retry at the same node, 409 while the first request runs or once its answer
 * is gone). Without the header the node assigns `req_` and 144 random bits (24 base64url
 * characters): unique by construction, so it is neither claimed nor kept
 * (`CompleteRequest.requestIdAssigned`). Either way the id is the `request-id` response header,
 * on errors too. A key that begins with `req_` is refused: such ids are the node's, and a client
 * that sent one back as its key would expect a replay that was never kept.
 *
 * The official SDKs send no idempotency key of their own: `x-stainless-retry-count` counts the
 * attempts of one call but carries no id, so a node cannot tell a retry from a new request by it.
 * A client sets `Idempotency-Key` (the SDKs: `headers` per request, which every retry of that call
 * sends again).
 */
export type RequestIdChoice =
  | { readonly kind: 'client'; readonly id: string }
  | { readonly kind: 'assigned'; readonly id: string }
  /** The header was there but unusable: the request is refused, and answered under an assigned id. */
  | { readonly kind: 'bad-key'; readonly id: string; readonly reason: string };

export const assignedIdPrefix = 'req_';
export const idempotencyKeyHeader = 'idempotency-key';

export function assignRequestId(): string {
  return `${assignedIdPrefix}${randomBytes(18).toString('base64url')}`;
}

/** The id of a request from its `Idempotency-Key` values (Node's `headersDistinct` entry). */
export function requestIdOf(values: readonly string[] | undefined): RequestIdChoice {
  if (values === undefined) return { kind: 'assigned', id: assignRequestId() };
  const bad = (reason: string): RequestIdChoice => ({ kind: 'bad-key', id: assignRequestId(), reason });
  if (values.length !== 1) return bad('Idempotency-Key was sent more than once');
  const key = values[0] as string;
  if (!isValidRequestId(key)) return bad('Idempotency-Key must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"');
  if (key.startsWith(assignedIdPrefix))
    return bad(`Idempotency-Key may not begin with "${assignedIdPrefix}": such ids are assigned by the node; choose a key of your own`);
  return { kind: 'client', id: key };
}

/** Longest `metadata.user_id` used as it is; a longer one is hashed (23 characters). */
export const plainUserIdLengthMax = 32;

/**
 * The user of a request for per-user limits and rate limits: `metadata.user_id` of the body. The
 * gateway keys a user as `<tenant>:<user>` within the id bound (64 printable ASCII characters),
 * while clients send longer ids (Claude Code's is over 100 characters). So an id of at most
 * `plainUserIdLengthMax` printable ASCII characters is used as it is, and any other becomes `~`
 * and 128 bits of its SHA-256 in base64url (23 characters): stable for one user, distinct between
 * users, and never the client's text. Tenant ids of up to 31 characters (40 for hashed users) fit
 * beside it; a request whose pair does not fit is refused by the gateway as an invalid user. The
 * body itself reaches the upstream unchanged. Undefined: the request names no user.
 */
export function requestUserOf(userId: unknown): Result<string | undefined, 'not-a-string'> {
  if (userId === undefined || userId === null) return ok(undefined);
  if (typeof userId !== 'string') return err('not-a-string');
  if (userId.length === 0) return ok(undefined);
  if (userId.length <= plainUserIdLengthMax && isValidId(userId) && !userId.startsWith('~')) return ok(userId);
  return ok(`~${createHash('sha256').update(userId).digest().subarray(0, 16).toString('base64url')}`);
}
