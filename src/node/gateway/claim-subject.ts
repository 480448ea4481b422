import { hash } from 'node:crypto';
import type { RequestId, TenantId } from '../../core/ids.js';

/**
 * The subject under which a request id is claimed mesh-wide (src/admission/request-claims.ts):
 * 128 bits of SHA-256 over the tenant and the id, in base64url (22 characters, a valid id).
 * Scoped by tenant, so one tenant's ids can never block another's, and hashed, so the counter
 * key stays short whatever the two ids are and carries neither in clear. One-shot `hash` rather
 * than a Hash object: this runs for every completion with a client-chosen id.
 */
export function claimSubjectOf(tenant: TenantId, requestId: RequestId): string {
  return hash('sha256', `${tenant}\u0000${requestId}`, 'buffer').subarray(0, 16).toString('base64url');
}
