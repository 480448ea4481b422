import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import type { Tenant } from '../../mesh/policy/policy-schema.js';

/**
 * The policy as operators see it, on the admin HTTP routes and the Admin gRPC service alike.
 * Key digests double as signing secrets (src/admission/request-signature.ts), so a tenant shows
 * only the first eight hex digits of each, which is also what its key ids carry.
 */
export function redactTenant(tenant: Tenant): unknown {
  return { ...tenant, apiKeyHashes: tenant.apiKeyHashes.map((hash) => `${hash.slice(0, 8)}…`) };
}

export function policyView(policy: Pick<PolicyDocument, 'tenants' | 'accounts' | 'settings' | 'invalidEntries'>): unknown {
  return {
    tenants: [...policy.tenants().values()].map(redactTenant),
    accounts: [...policy.accounts().values()],
    settings: policy.settings(),
    invalid: policy.invalidEntries(),
  };
}
