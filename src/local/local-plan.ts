import type { AccountId } from '../core/ids.js';
import type { LocalAccount, LocalConfig, LocalRegion, LocalTenant } from './local-config.js';

/**
 * What the launcher writes and sends, derived from a local config without any I/O: each node's
 * config file (the format of src/node/node-config.ts), the policy entries of the accounts and
 * tenants (the JSON of PUT /policy/{accounts,tenants}/{id}, src/mesh/policy/policy-schema.ts), and
 * the addresses clients use.
 *
 * Each node holds credentials only for the accounts homed in its region, as a real deployment
 * does; a node that picks an account homed elsewhere forwards the call to that region's gRPC
 * endpoint, which every member entry carries in `grpc`.
 */

/** Names of the secret files in the state directory, referenced by every node config. */
export const secretFileName = 'mesh.secret';
export const adminTokenFileName = 'admin.token';
/** The folder under stateDir that holds every node's data directory. */
export const dataDirName = 'data';

export function grpcTarget(host: string, port: number): string {
  return `${host}:${port}`;
}

export function adminUrl(host: string, port: number): string {
  return `http://${host}:${port}`;
}

/** The base URL of a region's HTTP front door: ANTHROPIC_BASE_URL for Claude Code and the SDKs. */
export function httpBaseUrl(host: string, port: number): string {
  return `http://${host}:${port}`;
}

export interface NodeConfigInputs {
  readonly emulatorUrl: string;
  /** The emulator key of each account, by account id. */
  readonly accountKeys: ReadonlyMap<AccountId, string>;
}

export function nodeConfigOf(config: LocalConfig, region: LocalRegion, inputs: NodeConfigInputs): Record<string, unknown> {
  const { host } = config;
  const accounts: Record<string, unknown> = {};
  for (const account of config.emulator.accounts) {
    if (account.homeRegion !== region.name) continue;
    const key = inputs.accountKeys.get(account.id);
    if (key !== undefined) accounts[account.id] = { kind: 'api-key', key };
  }
  return {
    $comment: `written by carpool local (npm start) for region ${region.name} at every start: edit the local config instead (src/local/local-config.ts)`,
    node: region.node,
    region: region.name,
    listen: { host, port: region.meshPort },
    admin: { host, port: region.adminPort },
    members: config.regions.map((member) => ({
      id: member.node,
      region: member.name,
      url: `ws://${host}:${member.meshPort}`,
      grpc: grpcTarget(host, member.grpcPort),
    })),
    secretFile: secretFileName,
    grpc: { host, port: region.grpcPort },
    http: { host, port: region.httpPort },
    adminTokenFile: adminTokenFileName,
    upstream: { baseUrl: inputs.emulatorUrl, accounts },
    // Each node's durable store, beside its config: a restarted node resumes with its state.
    dataDir: `${dataDirName}/${region.node}`,
  };
}

/** The body of PUT /policy/accounts/{id}. */
export function accountPolicyOf(account: LocalAccount): Record<string, unknown> {
  return { kind: 'api-key', homeRegion: account.homeRegion, weight: account.weight, concurrencyMax: account.concurrencyMax, limits: account.limits };
}

/**
 * The body of PUT /policy/tenants/{id}: the tenant without keys, which have operations of their
 * own. A previous run's key (src/local/local-credentials.ts) is registered afterwards with POST
 * /policy/tenants/{id}/keys {apiKey}, and a tenant without one gets a key minted through the Admin
 * service.
 */
export function tenantPolicyOf(tenant: LocalTenant): Record<string, unknown> {
  return {
    tier: tenant.tier,
    requireSignature: false,
    concurrencyMax: tenant.concurrencyMax,
    weights: tenant.weights,
    limits: tenant.limits,
  };
}

/** The file name of a region's node config and log inside the state directory. */
export function nodeConfigFileName(region: Pick<LocalRegion, 'name'>): string {
  return `node-${region.name}.json`;
}

export function logFileName(name: string): string {
  return `${name}.log`;
}
