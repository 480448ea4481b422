import { type PolicyDocument, poolSettingsOf } from '../../mesh/policy/policy-document.js';
import type { Tenant } from '../../mesh/policy/policy-schema.js';
import { keyView } from '../admin/key-lifecycle.js';

/**
 * The policy as operators see it, on the admin HTTP routes and the Admin gRPC service alike.
 * Key digests double as signing secrets (src/admission/request-signature.ts), so a tenant's keys
 * show as their metadata only (key id, name, times, state), never a digest: the key id carries
 * the digest's first eight hex digits, as logs do.
 */
export function redactTenant(tenant: Tenant, nowMs: number): unknown {
  const { apiKeys, ...settings } = tenant;
  return { ...settings, keys: apiKeys.map((record) => keyView(tenant.id, record, nowMs)) };
}

export function policyView(
  policy: Pick<PolicyDocument, 'tenants' | 'accounts' | 'settings' | 'invalidEntries'> & Partial<Pick<PolicyDocument, ViewedSettings>>,
  nowMs: number,
): unknown {
  return {
    tenants: [...policy.tenants().values()].map((tenant) => redactTenant(tenant, nowMs)),
    accounts: [...policy.accounts().values()],
    settings: settingsView(policy),
    invalid: policy.invalidEntries(),
  };
}

type ViewedSettings = 'poolSettings' | 'shedSettings' | 'scheduleSettings' | 'degradeSettings';

/**
 * Every setting as it is in effect, defaults filled: the mesh timings, `pool`, `schedule`, `shed`
 * when the policy sets thresholds (absent: each node uses its own) and `degrade` when the policy
 * degrades any tier (absent: nothing is ever degraded).
 */
export function settingsView(policy: Pick<PolicyDocument, 'settings'> & Partial<Pick<PolicyDocument, ViewedSettings>>): unknown {
  const shed = policy.shedSettings?.();
  const schedule = policy.scheduleSettings?.();
  const degrade = policy.degradeSettings?.();
  return {
    ...policy.settings(),
    pool: poolSettingsOf(policy),
    ...(schedule === undefined ? {} : { schedule }),
    ...(shed === undefined ? {} : { shed }),
    ...(degrade === undefined ? {} : { degrade }),
  };
}
