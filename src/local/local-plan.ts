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
  /** Where the nodes run when not all on `config.host`. */
  readonly placement?: NodePlacement;
}

/**
 * Where each node runs and how the others reach it, when not every endpoint is on `config.host`:
 * the WAN chaos run (test/chaos/wan-run.ts) puts each node in its own network namespace and routes
 * each link between two nodes through a proxy that delays, holds or cuts it.
 */
export interface NodePlacement {
  /** Runs the region's node through this command, such as `ip netns exec NS` (LocalChildOptions). */
  readonly commandPrefix: (region: LocalRegion) => readonly string[];
  /** The address the region's node binds every endpoint to; the launcher and clients reach it there. */
  readonly hostOf: (region: LocalRegion) => string;
  /** The mesh URL and gRPC target by which the node of `from` reaches the node of `to`. */
  readonly routeOf: (from: LocalRegion, to: LocalRegion) => { readonly url: string; readonly grpc: string };
  /** The emulator's base URL as the node of `region` reaches it. */
  readonly emulatorUrlFor: (region: LocalRegion) => string;
}

export function nodeConfigOf(config: LocalConfig, region: LocalRegion, inputs: NodeConfigInputs): Record<string, unknown> {
  const { placement } = inputs;
  const host = placement?.hostOf(region) ?? config.host;
  const route = (member: LocalRegion): { url: string; grpc: string } =>
    placement === undefined || member === region
      ? { url: `ws://${host}:${member.meshPort}`, grpc: grpcTarget(host, member.grpcPort) }
      : placement.routeOf(region, member);
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
    members: config.regions.map((member) => ({ id: member.node, region: member.name, ...route(member) })),
    secretFile: secretFileName,
    grpc: { host, port: region.grpcPort },
    http: { host, port: region.httpPort },
    adminTokenFile: adminTokenFileName,
    upstream: { baseUrl: placement?.emulatorUrlFor(region) ?? inputs.emulatorUrl, accounts },
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
