import { adminRoles, type AdminRole, isAdminRole } from '../admission/admin-access.js';
import type { GcraConfig } from '../admission/gcra.js';
import { type AccountId, isValidId, type NodeId, type RegionId } from '../core/ids.js';
import {
  adminAllowedHostsMax,
  adminTokensMax,
  httpModelsMax,
  limiterBurstMax,
  limiterPeriodMsMax,
  limiterRateMax,
  meshMembersMax,
  oauthRefreshLeadMsDefault,
  oauthRefreshLeadMsMax,
  oauthRefreshLeadMsMin,
  upstreamCredentialsMax,
} from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { Member } from '../mesh/membership.js';
import { defaultHttpBounds, type HttpBounds } from '../net/http/http-server.js';
import type { ModelEntry } from '../net/http/model-catalogue.js';
import { defaultRateLimitSettings, type RateLimitSettings } from './gateway/gateway-settings.js';

/**
 * The configuration of one node process, read from a JSON file (`carpool node --config FILE`).
 *
 * ```json
 * {
 *   "node": "us-east-1",                  // this node's member id (1-48 printable ASCII chars),
 *                                         // or { "env": "POD_NAME" }: the id is the value of that
 *                                         // environment variable when the node starts
 *   "region": "us-east",                  // its region id
 *   "listen": { "host": "127.0.0.1", "port": 7401 },   // mesh WebSocket endpoint
 *   "admin": { "host": "127.0.0.1", "port": 8401,      // optional admin/status HTTP endpoint;
 *              "allowedHosts": ["admin.internal:8401"],   //   more Host values it answers for
 *              "allowedOrigins": [] },                    //   origins whose requests it serves
 *   "members": [                          // every member of the mesh, this node included
 *     { "id": "us-east-1", "region": "us-east", "url": "ws://127.0.0.1:7401", "grpc": "127.0.0.1:9401" },
 *     { "id": "eu-west-1", "region": "eu-west", "url": "ws://127.0.0.1:7402", "grpc": "127.0.0.1:9402" }
 *   ],                                    // "grpc" (optional): the member's gRPC endpoint; a call
 *                                         // for an account homed in its region is forwarded there
 *   "secretFile": "mesh.secret",          // or "secret": "..." (at least 16 characters);
 *                                         // or the CARPOOL_MESH_SECRET environment variable
 *   "tls": { "certFile": "...", "keyFile": "...", "caFile": "..." },  // optional: serve wss,
 *                                         // trust caFile when dialing wss:// members
 *   "grpc": { "host": "0.0.0.0", "port": 9401 },       // optional: the public gRPC endpoint
 *                                         // (carpool.v1.Carpool, Admin, health, reflection)
 *   "http": { "host": "0.0.0.0", "port": 9501,         // optional (needs grpc): the HTTP front
 *                                         // door, the Anthropic Messages API (src/net/http/)
 *             "bodyBytesMax": 8388608,    // optional bounds, each at most its default of
 *             "headersTimeoutMs": 10000,  //   src/core/limits.ts (http*): request body bytes,
 *             "requestTimeoutMs": 60000,  //   time for the head, for the whole request, for an
 *             "keepAliveTimeoutMs": 30000, //  idle keep-alive connection, and open connections
 *             "connectionsMax": 10000,    //   (the longest idle closes first at the bound)
 *             "models": ["claude-sonnet-4-5-20250929", { "id": "claude-haiku-4-5-20251001", "displayName": "Claude Haiku 4.5" }] },
 *                                         // optional: the only models taken and listed by
 *                                         // GET /v1/models; without it a default list is shown
 *                                         // and any model name goes to the upstream
 *   "adminTokenFile": "admin.token",      // or "adminToken": "..." (at least 16 characters):
 *                                         // a bearer token of the role admin, named "admin"
 *   "adminTokens": [                      // optional: more named tokens, each with a role
 *     { "name": "grafana", "role": "viewer", "tokenFile": "grafana.token" },
 *     { "name": "oncall", "role": "admin", "token": "..." }
 *   ],                                    // the admin HTTP endpoint needs at least one token;
 *                                         // the gRPC Admin service is served when there is one
 *   "upstream": {                         // optional: where this node's accounts' calls go
 *     "baseUrl": "https://api.anthropic.com",
 *     "accounts": {                       // credentials of the accounts homed here, by the
 *       "acct-1": { "kind": "api-key", "keyEnv": "ACCT1_KEY" },      // account id of the policy
 *       "acct-2": { "kind": "oauth", "credentialsFile": "acct-2.credentials.json" },
 *       "acct-4": { "kind": "oauth", "credentialsEnv": "ACCT4_CREDENTIALS" },
 *       "acct-5": { "kind": "oauth", "keyFile": "acct-5.token" },   // a bare token: never renewed
 *       "acct-3": { "kind": "api-key", "key": "sk-ant-..." }         // inline: tests only
 *     },
 *     "oauth": {                          // optional: how subscription credentials are renewed
 *       "tokenUrl": "https://platform.claude.com/v1/oauth/token",   // the defaults
 *       "clientId": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
 *       "refreshLeadMs": 300000           // refresh this long before the access token expires
 *     }
 *   },
 *   "dataDir": "data/eu-1",               // optional: the node's durable store (src/ledger/), one
 *                                         // SQLite file node.sqlite in this folder; without it the
 *                                         // node keeps nothing across restarts
 *   "store": {                            // optional, with dataDir
 *     "sync": "normal",                   // "normal" survives kill -9; "full" also a power cut
 *     "retentionDays": 90,                // usage rows older roll up into daily aggregates
 *     "maxBytes": 10737418240             // the file's bound: past it the node refuses work
 *   },
 *   "rateLimits": {                       // optional; defaults in src/node/gateway/gateway-settings.ts
 *     "client": { "rate": 1200, "periodMs": 60000, "burst": 100 },  // per client IP and user
 *     "tenant": { "rate": 12000, "periodMs": 60000, "burst": 1000 } // per tenant at this node
 *   }
 * }
 * ```
 *
 * Admin tokens: `viewer` may read (status, metrics, counters, policy, keys, pool, usage, audit),
 * `admin` may also write (src/admission/admin-access.ts). A token's name is what the audit log
 * records as the actor; names and token values must be distinct.
 *
 * Credentials never enter the replicated policy document: each node holds the keys of the
 * accounts it calls, by one of `key`, `keyEnv` (an environment variable) or `keyFile`. An account
 * of the policy that has no credential here is passed over by this node's calls.
 *
 * A subscription (`oauth`) account given by `credentialsFile` or `credentialsEnv` holds JSON with
 * an access token, a refresh token and the expiry (src/node/credentials/oauth-credential.ts: the
 * shape of Claude Code's ~/.claude/.credentials.json); the node renews it before it expires
 * (src/node/credentials/). Its file must not be readable by group or others (mode 0600 or
 * stricter). A bare token (`key`, `keyEnv`, `keyFile` on an `oauth` account) is used as it is and
 * never renewed: when it expires the account is disabled until an operator replaces it.
 *
 * The member id from the environment: one file then serves several nodes whose only difference is
 * their id, as a Kubernetes StatefulSet's pods (`carpool-us-east-0`, `-1`, ...) share one
 * ConfigMap and each gets its pod name in `POD_NAME` (deploy/k8s/). The parser stays pure: it is
 * handed the environment (`loadNodeConfig` passes the process's), and a variable that is unset,
 * empty or not a member id is an error naming the field `node` and the variable; the id must still
 * be one of `members`.
 *
 * A top-level `"$comment"` (a string or an array of strings) is ignored, so a file can say what
 * it is for; any other unknown field is an error naming it. Every error names the field it is
 * about. Files are resolved relative to the config file.
 */
export interface NodeConfig {
  readonly node: NodeId;
  readonly region: RegionId;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: AdminEndpointConfig | undefined;
  readonly members: readonly Member[];
  /** Members' gRPC addresses (host:port), where calls for accounts homed in their region are forwarded. */
  readonly memberGrpc?: ReadonlyMap<NodeId, string> | undefined;
  readonly secret: { readonly kind: 'inline'; readonly value: string } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env' };
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string | undefined } | undefined;
  /** The public gRPC endpoint; none without it. */
  readonly grpc?: { readonly host: string; readonly port: number } | undefined;
  /** The HTTP front door; none without it. Needs `grpc`. */
  readonly http?: HttpEndpointConfig | undefined;
  /** The token named `admin`, of the role admin. */
  readonly adminToken?: TokenSource | undefined;
  /** More named tokens with their roles. */
  readonly adminTokens?: readonly AdminTokenConfig[] | undefined;
  readonly upstream?: UpstreamConfig | undefined;
  readonly rateLimits?: RateLimitSettings | undefined;
  /** The folder of the node's durable store, relative to the config file; none keeps nothing. */
  readonly dataDir?: string | undefined;
  readonly store?: StoreConfig | undefined;
}

/** How the durable store writes (src/ledger/sqlite-store.ts); each field has a default. */
export interface StoreConfig {
  readonly sync: 'normal' | 'full';
  readonly retentionDays: number;
  readonly maxBytes: number;
}

export const defaultStoreConfig: StoreConfig = Object.freeze({ sync: 'normal', retentionDays: 90, maxBytes: 10 * 1024 ** 3 });

export interface AdminEndpointConfig {
  readonly host: string;
  readonly port: number;
  /** `Host` values the endpoint answers for besides its own address and loopback names. */
  readonly allowedHosts?: readonly string[];
  /** Origins whose requests it serves; none by default. */
  readonly allowedOrigins?: readonly string[];
}

export interface HttpEndpointConfig {
  readonly host: string;
  readonly port: number;
  /** Bounds below the defaults of src/core/limits.ts; a field left out keeps its default. */
  readonly bounds: Partial<HttpBounds>;
  /** The model catalogue; undefined: the default list, any model taken. */
  readonly models: readonly ModelEntry[] | undefined;
}

export type TokenSource = { readonly kind: 'inline'; readonly value: string } | { readonly kind: 'file'; readonly path: string };

export interface AdminTokenConfig {
  readonly name: string;
  readonly role: AdminRole;
  readonly token: TokenSource;
}

/** The name of the token that `adminToken` or `adminTokenFile` configures. */
export const defaultAdminTokenName = 'admin';

/** Where one account's credential comes from; it is read when the node starts (and on SIGHUP). */
export type CredentialSource =
  { readonly kind: 'inline'; readonly value: string } | { readonly kind: 'env'; readonly name: string } | { readonly kind: 'file'; readonly path: string };

export interface UpstreamAccountConfig {
  /** `api-key` is sent as `x-api-key`, `oauth` as a bearer token. */
  readonly kind: 'api-key' | 'oauth';
  readonly credential: CredentialSource;
  /**
   * `token`: the source holds the bare key or token (`key`, `keyEnv`, `keyFile`); `renewable`: an
   * `oauth` account's JSON credential with its refresh token (`credentialsFile`, `credentialsEnv`).
   */
  readonly format: 'token' | 'renewable';
}

/** How renewable OAuth credentials are refreshed (src/node/credentials/). */
export interface OAuthSettings {
  readonly tokenUrl: string;
  readonly clientId: string;
  /** How long before an access token's expiry the refresh starts. */
  readonly refreshLeadMs: number;
}

/**
 * The token endpoint and public client id Claude Code itself uses: `TOKEN_URL` and `CLIENT_ID` in
 * the Claude Code 2.1.332 binary installed under node_modules/@anthropic-ai/claude-code (older
 * releases and the relays use https://console.anthropic.com/v1/oauth/token with the same client
 * id, e.g. notforyou23/evobrew anthropic-oauth-flow.md, "Key Constants").
 */
export const defaultOAuthSettings: OAuthSettings = Object.freeze({
  tokenUrl: 'https://platform.claude.com/v1/oauth/token',
  clientId: '9d1c250a-e61b-44d9-88ed-5944d1962f5e',
  refreshLeadMs: oauthRefreshLeadMsDefault,
});

export interface UpstreamConfig {
  readonly baseUrl: string;
  readonly accounts: ReadonlyMap<AccountId, UpstreamAccountConfig>;
  readonly oauth: OAuthSettings;
}

export interface ConfigError {
  readonly kind: 'bad-config';
  readonly field: string;
  readonly reason: string;
}

/** Node ids leave room for the incarnation suffix of replica ids (`~` and up to 15 chars). */
export const nodeIdLengthMax = 48;

const bad = (field: string, reason: string): Result<never, ConfigError> => err({ kind: 'bad-config', field, reason });

const memberFields = ['id', 'region', 'url', 'grpc'];

/** A top-level field the parser skips: a string or an array of strings, for comments. */
const commentField = '$comment';

const knownFields = [
  'node',
  'region',
  'listen',
  'admin',
  'members',
  'secret',
  'secretFile',
  'tls',
  'grpc',
  'http',
  'adminToken',
  'adminTokenFile',
  'adminTokens',
  'upstream',
  'rateLimits',
  'dataDir',
  'store',
];

/** Shortest admin token accepted, as for the mesh secret: long enough not to be guessed. */
export const adminTokenLengthMin = 16;

/** Longest admin token accepted. */
export const adminTokenLengthMax = 512;

const tokenNamePattern = /^[a-z0-9][a-z0-9._-]{0,31}$/;
const tokenPattern = /^[\x21-\x7e]+$/;

/** Whether `text` may be an admin token: printable ASCII without spaces (it travels as `Bearer <token>`). */
export function isValidAdminToken(text: string): boolean {
  return text.length >= adminTokenLengthMin && text.length <= adminTokenLengthMax && tokenPattern.test(text);
}

/** The environment variables the parser may read: only those a config names (`"node": { "env": ... }`). */
export type NodeConfigEnv = Readonly<Record<string, string | undefined>>;

/**
 * Checks a parsed JSON config. `env` is where `"node": { "env": NAME }` looks its id up; it is
 * passed in, not read here, so parsing stays a function of its arguments. Without it such a
 * config is refused for the missing variable.
 */
export function parseNodeConfig(raw: unknown, env: NodeConfigEnv = {}): Result<NodeConfig, ConfigError> {
  if (!isRecord(raw)) return bad('(root)', 'the configuration must be a JSON object');
  for (const [field, value] of Object.entries(raw)) {
    // A note for people, as the local config allows (src/local/local-config.ts); only at the top,
    // where a file says what it is for. Anything else unknown is refused so a misspelling is seen.
    if (field === commentField) {
      if (typeof value !== 'string' && !(Array.isArray(value) && value.every((line) => typeof line === 'string')))
        return bad(field, 'must be a string or an array of strings');
      continue;
    }
    if (!knownFields.includes(field)) return bad(field, `unknown field (known: ${knownFields.join(', ')}, ${commentField})`);
  }
  const nodeField = parseNodeId(raw.node, env);
  if (!nodeField.ok) return nodeField;
  const { id: node, from } = nodeField.value;
  const region = raw.region;
  if (typeof region !== 'string' || !isValidId(region)) return bad('region', 'must be a printable ASCII id');
  const listen = parseEndpoint(raw.listen, 'listen');
  if (!listen.ok) return listen;
  let admin: NodeConfig['admin'];
  if (raw.admin !== undefined) {
    const parsed = parseAdminEndpoint(raw.admin);
    if (!parsed.ok) return parsed;
    admin = parsed.value;
  }
  if (!Array.isArray(raw.members) || raw.members.length === 0 || raw.members.length > meshMembersMax) {
    return bad('members', `must list 1 to ${meshMembersMax} members, this node included`);
  }
  const members: Member[] = [];
  const memberGrpc = new Map<NodeId, string>();
  for (const [i, entry] of (raw.members as unknown[]).entries()) {
    const field = `members[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with id, region and url');
    if (typeof entry.id !== 'string' || !isValidId(entry.id) || entry.id.length > nodeIdLengthMax) return bad(`${field}.id`, 'must be a member id');
    if (typeof entry.region !== 'string' || !isValidId(entry.region)) return bad(`${field}.region`, 'must be a region id');
    if (typeof entry.url !== 'string' || !/^wss?:\/\/[^\s]+$/.test(entry.url)) return bad(`${field}.url`, 'must be a ws:// or wss:// URL');
    if (members.some((m) => m.id === entry.id)) return bad(`${field}.id`, `"${entry.id}" is listed twice`);
    members.push({ id: entry.id as NodeId, region: entry.region as RegionId, url: entry.url });
    if (entry.grpc !== undefined) {
      if (typeof entry.grpc !== 'string' || !isGrpcAddress(entry.grpc)) return bad(`${field}.grpc`, "must be the member's gRPC address as host:port");
      memberGrpc.set(entry.id as NodeId, entry.grpc);
    }
    const unknown = Object.keys(entry).find((key) => !memberFields.includes(key));
    if (unknown !== undefined) return bad(`${field}.${unknown}`, 'unknown field');
  }
  const self = members.find((m) => m.id === node);
  if (self === undefined) return bad('members', `must include this node "${node}"${from === undefined ? '' : ` (the value of ${from})`}`);
  if (self.region !== region) return bad('region', `differs from this node's entry in members ("${self.region}")`);
  let secret: NodeConfig['secret'];
  if (raw.secret !== undefined && raw.secretFile !== undefined) return bad('secret', 'give either secret or secretFile, not both');
  if (raw.secret !== undefined) {
    if (typeof raw.secret !== 'string' || raw.secret.length < 16) return bad('secret', 'must be a string of at least 16 characters');
    secret = { kind: 'inline', value: raw.secret };
  } else if (raw.secretFile !== undefined) {
    if (typeof raw.secretFile !== 'string' || raw.secretFile.length === 0) return bad('secretFile', 'must be a file path');
    secret = { kind: 'file', path: raw.secretFile };
  } else {
    secret = { kind: 'env' };
  }
  let tls: NodeConfig['tls'];
  if (raw.tls !== undefined) {
    if (!isRecord(raw.tls)) return bad('tls', 'must be an object with certFile and keyFile');
    const { certFile, keyFile, caFile } = raw.tls;
    if (typeof certFile !== 'string') return bad('tls.certFile', 'must be a file path');
    if (typeof keyFile !== 'string') return bad('tls.keyFile', 'must be a file path');
    if (caFile !== undefined && typeof caFile !== 'string') return bad('tls.caFile', 'must be a file path');
    tls = { certFile, keyFile, caFile };
  }
  const gateway = parseGatewayFields(raw);
  if (!gateway.ok) return gateway;
  if (admin !== undefined && gateway.value.adminToken === undefined && (gateway.value.adminTokens ?? []).length === 0) {
    return bad('admin', 'the admin endpoint refuses every request without a token: set adminToken, adminTokenFile or adminTokens');
  }
  const stored = parseStore(raw);
  if (!stored.ok) return stored;
  return ok({
    node: node as NodeId,
    region: region as RegionId,
    listen: listen.value,
    admin,
    members,
    memberGrpc,
    secret,
    tls,
    ...gateway.value,
    ...stored.value,
  });
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const nodeIdRule = `1 to ${nodeIdLengthMax} printable ASCII characters without spaces`;

/** `node`: the member id, given or taken from an environment variable; `from` names the variable. */
function parseNodeId(raw: unknown, env: NodeConfigEnv): Result<{ id: string; from: string | undefined }, ConfigError> {
  if (typeof raw === 'string') {
    if (!isValidId(raw) || raw.length > nodeIdLengthMax) return bad('node', `must be ${nodeIdRule}, or { "env": NAME }`);
    return ok({ id: raw, from: undefined });
  }
  if (!isRecord(raw)) return bad('node', `must be a member id (${nodeIdRule}) or { "env": NAME }`);
  const unknown = Object.keys(raw).find((key) => key !== 'env');
  if (unknown !== undefined) return bad(`node.${unknown}`, 'unknown field (known: env)');
  const name = raw.env;
  if (typeof name !== 'string' || !envNamePattern.test(name)) return bad('node.env', 'must be an environment variable name');
  const value = env[name];
  if (value === undefined) return bad('node', `takes the member id from the environment variable ${name}, which is not set`);
  if (value === '') return bad('node', `takes the member id from the environment variable ${name}, which is empty`);
  if (!isValidId(value) || value.length > nodeIdLengthMax) {
    return bad('node', `the environment variable ${name} holds "${value.slice(0, 64)}", which is not a member id (${nodeIdRule})`);
  }
  return ok({ id: value, from: `the environment variable ${name}` });
}

/** `dataDir` and `store`: where and how the node keeps its state. */
function parseStore(raw: Record<string, unknown>): Result<Pick<NodeConfig, 'dataDir' | 'store'>, ConfigError> {
  if (raw.dataDir === undefined) {
    if (raw.store !== undefined) return bad('store', 'needs dataDir: the store is a file in the data directory');
    return ok({});
  }
  if (typeof raw.dataDir !== 'string' || raw.dataDir.length === 0 || raw.dataDir.includes('\0')) return bad('dataDir', 'must be a folder path');
  if (raw.store === undefined) return ok({ dataDir: raw.dataDir, store: defaultStoreConfig });
  if (!isRecord(raw.store)) return bad('store', 'must be an object with sync, retentionDays and maxBytes (each optional)');
  const { sync = defaultStoreConfig.sync, retentionDays = defaultStoreConfig.retentionDays, maxBytes = defaultStoreConfig.maxBytes } = raw.store;
  const unknown = Object.keys(raw.store).find((key) => !['sync', 'retentionDays', 'maxBytes'].includes(key));
  if (unknown !== undefined) return bad(`store.${unknown}`, 'unknown field (known: sync, retentionDays, maxBytes)');
  if (sync !== 'normal' && sync !== 'full') return bad('store.sync', 'must be "normal" (survives a killed process) or "full" (also a power cut)');
  if (typeof retentionDays !== 'number' || !Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > 3_650)
    return bad('store.retentionDays', 'must be a whole number of days from 1 to 3650');
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1024 * 1024)
    return bad('store.maxBytes', 'must be a whole number of bytes, at least 1048576 (1 MiB)');
  return ok({ dataDir: raw.dataDir, store: { sync, retentionDays, maxBytes } });
}

type GatewayFields = Pick<NodeConfig, 'grpc' | 'http' | 'adminToken' | 'adminTokens' | 'upstream' | 'rateLimits'>;

/** The request path's fields: all optional, so a mesh-only node needs none of them. */
function parseGatewayFields(raw: Record<string, unknown>): Result<GatewayFields, ConfigError> {
  const fields: { -readonly [K in keyof GatewayFields]: GatewayFields[K] } = {};
  if (raw.grpc !== undefined) {
    const grpc = parseEndpoint(raw.grpc, 'grpc');
    if (!grpc.ok) return grpc;
    fields.grpc = grpc.value;
  }
  if (raw.http !== undefined) {
    if (fields.grpc === undefined)
      return bad('http', "needs grpc: the front door runs the gRPC endpoint's request path, and forwarding and the Admin service are served there");
    const http = parseHttpEndpoint(raw.http);
    if (!http.ok) return http;
    fields.http = http.value;
  }
  if (raw.adminToken !== undefined && raw.adminTokenFile !== undefined) return bad('adminToken', 'give either adminToken or adminTokenFile, not both');
  if (raw.adminToken !== undefined || raw.adminTokenFile !== undefined) {
    const token = parseTokenSource(raw.adminToken, raw.adminTokenFile, 'adminToken', 'adminTokenFile');
    if (!token.ok) return token;
    fields.adminToken = token.value;
  }
  if (raw.adminTokens !== undefined) {
    const tokens = parseAdminTokens(raw.adminTokens, fields.adminToken !== undefined);
    if (!tokens.ok) return tokens;
    fields.adminTokens = tokens.value;
  }
  if (raw.upstream !== undefined) {
    const upstream = parseUpstream(raw.upstream);
    if (!upstream.ok) return upstream;
    fields.upstream = upstream.value;
  }
  if (raw.rateLimits !== undefined) {
    const rateLimits = parseRateLimits(raw.rateLimits);
    if (!rateLimits.ok) return rateLimits;
    fields.rateLimits = rateLimits.value;
  }
  return ok(fields);
}

function parseTokenSource(inline: unknown, file: unknown, inlineField: string, fileField: string): Result<TokenSource, ConfigError> {
  if (inline !== undefined) {
    if (typeof inline !== 'string' || !isValidAdminToken(inline)) {
      return bad(inlineField, `must be ${adminTokenLengthMin} to ${adminTokenLengthMax} printable ASCII characters without spaces`);
    }
    return ok({ kind: 'inline', value: inline });
  }
  if (typeof file !== 'string' || file.length === 0) return bad(fileField, 'must be a file path');
  return ok({ kind: 'file', path: file });
}

function parseAdminTokens(raw: unknown, hasDefault: boolean): Result<AdminTokenConfig[], ConfigError> {
  if (!Array.isArray(raw) || raw.length > adminTokensMax) return bad('adminTokens', `must be an array of at most ${adminTokensMax} tokens`);
  const tokens: AdminTokenConfig[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    const field = `adminTokens[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with name, role and one of token, tokenFile');
    const unknown = Object.keys(entry).find((key) => !['name', 'role', 'token', 'tokenFile'].includes(key));
    if (unknown !== undefined) return bad(`${field}.${unknown}`, 'unknown field');
    if (typeof entry.name !== 'string' || !tokenNamePattern.test(entry.name))
      return bad(`${field}.name`, 'must be 1 to 32 characters of [a-z0-9._-], starting with a letter or digit');
    if (entry.name === defaultAdminTokenName && hasDefault) return bad(`${field}.name`, `"${defaultAdminTokenName}" is the name of adminToken/adminTokenFile`);
    if (tokens.some((token) => token.name === entry.name)) return bad(`${field}.name`, `"${entry.name}" is listed twice`);
    if (!isAdminRole(entry.role)) return bad(`${field}.role`, `must be one of ${adminRoles.join(', ')}`);
    if ((entry.token === undefined) === (entry.tokenFile === undefined)) return bad(field, 'give exactly one of token, tokenFile');
    const token = parseTokenSource(entry.token, entry.tokenFile, `${field}.token`, `${field}.tokenFile`);
    if (!token.ok) return token;
    if (token.value.kind === 'inline') {
      const value = token.value.value;
      const same = tokens.findIndex((other) => other.token.kind === 'inline' && other.token.value === value);
      if (same >= 0) return bad(`${field}.token`, `the same token as adminTokens[${same}]: each name needs its own token`);
    }
    tokens.push({ name: entry.name, role: entry.role, token: token.value });
  }
  return ok(tokens);
}

function parseAdminEndpoint(raw: unknown): Result<AdminEndpointConfig, ConfigError> {
  const endpoint = parseEndpoint(raw, 'admin');
  if (!endpoint.ok) return endpoint;
  const fields = raw as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !['host', 'port', 'allowedHosts', 'allowedOrigins'].includes(key));
  if (unknown !== undefined) return bad(`admin.${unknown}`, 'unknown field');
  const allowedHosts = parseNames(
    fields.allowedHosts,
    'admin.allowedHosts',
    /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/,
    'a host name or address, with an optional :port',
  );
  if (!allowedHosts.ok) return allowedHosts;
  const allowedOrigins = parseNames(
    fields.allowedOrigins,
    'admin.allowedOrigins',
    /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/,
    'an origin such as https://ops.example.com',
  );
  if (!allowedOrigins.ok) return allowedOrigins;
  return ok({ ...endpoint.value, allowedHosts: allowedHosts.value, allowedOrigins: allowedOrigins.value });
}

const httpBoundFields = {
  bodyBytesMax: defaultHttpBounds.bodyBytesMax,
  headersTimeoutMs: defaultHttpBounds.headersTimeoutMs,
  requestTimeoutMs: defaultHttpBounds.requestTimeoutMs,
  keepAliveTimeoutMs: defaultHttpBounds.keepAliveTimeoutMs,
  connectionsMax: defaultHttpBounds.connectionsMax,
} as const satisfies HttpBounds;

const modelIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

function parseHttpEndpoint(raw: unknown): Result<HttpEndpointConfig, ConfigError> {
  const endpoint = parseEndpoint(raw, 'http');
  if (!endpoint.ok) return endpoint;
  const fields = raw as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !['host', 'port', 'models', ...Object.keys(httpBoundFields)].includes(key));
  if (unknown !== undefined) return bad(`http.${unknown}`, 'unknown field');
  const bounds: { -readonly [K in keyof HttpBounds]?: number } = {};
  for (const [name, max] of Object.entries(httpBoundFields) as [keyof HttpBounds, number][]) {
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max)
      return bad(`http.${name}`, `must be an integer from 1 to ${max}`);
    bounds[name] = value;
  }
  if ((bounds.headersTimeoutMs ?? httpBoundFields.headersTimeoutMs) > (bounds.requestTimeoutMs ?? httpBoundFields.requestTimeoutMs)) {
    return bad('http.headersTimeoutMs', 'must not be over requestTimeoutMs: the head is part of the request');
  }
  let models: ModelEntry[] | undefined;
  if (fields.models !== undefined) {
    if (!Array.isArray(fields.models) || fields.models.length === 0 || fields.models.length > httpModelsMax)
      return bad('http.models', `must be an array of 1 to ${httpModelsMax} models`);
    models = [];
    for (const [i, entry] of (fields.models as unknown[]).entries()) {
      const field = `http.models[${i}]`;
      const id = typeof entry === 'string' ? entry : isRecord(entry) ? entry.id : undefined;
      const displayName = isRecord(entry) ? entry.displayName : undefined;
      if (isRecord(entry)) {
        const extra = Object.keys(entry).find((key) => !['id', 'displayName'].includes(key));
        if (extra !== undefined) return bad(`${field}.${extra}`, 'unknown field');
      }
      if (typeof id !== 'string' || !modelIdPattern.test(id)) return bad(field, 'must be a model id, or an object with id and an optional displayName');
      if (displayName !== undefined && (typeof displayName !== 'string' || displayName.length === 0 || displayName.length > 128))
        return bad(`${field}.displayName`, 'must be 1 to 128 characters');
      if (models.some((model) => model.id === id)) return bad(field, `"${id}" is listed twice`);
      models.push({ id, ...(typeof displayName === 'string' ? { displayName } : {}) });
    }
  }
  return ok({ ...endpoint.value, bounds, models });
}

function parseNames(raw: unknown, field: string, pattern: RegExp, what: string): Result<string[], ConfigError> {
  if (raw === undefined) return ok([]);
  if (!Array.isArray(raw) || raw.length > adminAllowedHostsMax) return bad(field, `must be an array of at most ${adminAllowedHostsMax} entries`);
  const names: string[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    if (typeof entry !== 'string' || !pattern.test(entry)) return bad(`${field}[${i}]`, `must be ${what}`);
    names.push(entry);
  }
  return ok(names);
}

const printablePattern = /^[\x21-\x7e]+$/;

function parseUpstream(raw: unknown): Result<UpstreamConfig, ConfigError> {
  if (!isRecord(raw)) return bad('upstream', 'must be an object with baseUrl and accounts');
  for (const field of Object.keys(raw)) if (!['baseUrl', 'accounts', 'oauth'].includes(field)) return bad(`upstream.${field}`, 'unknown field');
  if (typeof raw.baseUrl !== 'string' || !isHttpUrl(raw.baseUrl))
    return bad('upstream.baseUrl', 'must be an http:// or https:// URL without query or user info');
  if (!isRecord(raw.accounts)) return bad('upstream.accounts', 'must be an object of account id to credential');
  const entries = Object.entries(raw.accounts);
  if (entries.length > upstreamCredentialsMax) return bad('upstream.accounts', `at most ${upstreamCredentialsMax} accounts`);
  const accounts = new Map<AccountId, UpstreamAccountConfig>();
  for (const [id, entry] of entries) {
    if (!isValidId(id)) return bad('upstream.accounts', `"${id.slice(0, 64)}" is not an account id`);
    const account = parseUpstreamAccount(entry, `upstream.accounts.${id}`);
    if (!account.ok) return account;
    accounts.set(id as AccountId, account.value);
  }
  const oauth = raw.oauth === undefined ? ok(defaultOAuthSettings) : parseOAuthSettings(raw.oauth);
  if (!oauth.ok) return oauth;
  return ok({ baseUrl: raw.baseUrl, accounts, oauth: oauth.value });
}

const credentialFields = ['key', 'keyEnv', 'keyFile', 'credentialsFile', 'credentialsEnv'];

function parseUpstreamAccount(entry: unknown, field: string): Result<UpstreamAccountConfig, ConfigError> {
  if (!isRecord(entry)) return bad(field, `must be an object with kind and one of ${credentialFields.join(', ')}`);
  for (const name of Object.keys(entry)) if (!['kind', ...credentialFields].includes(name)) return bad(`${field}.${name}`, 'unknown field');
  if (entry.kind !== 'api-key' && entry.kind !== 'oauth') return bad(`${field}.kind`, 'must be api-key or oauth');
  const given = credentialFields.filter((name) => entry[name] !== undefined);
  if (given.length !== 1) return bad(field, `give exactly one of ${credentialFields.join(', ')}`);
  if (entry.key !== undefined) {
    if (typeof entry.key !== 'string' || !printablePattern.test(entry.key)) return bad(`${field}.key`, 'must be printable ASCII without spaces');
    return ok({ kind: entry.kind, credential: { kind: 'inline', value: entry.key }, format: 'token' });
  }
  const renewable = entry.credentialsFile !== undefined || entry.credentialsEnv !== undefined;
  if (renewable && entry.kind !== 'oauth')
    return bad(`${field}.${given[0]}`, 'holds a renewable OAuth credential: for kind oauth only (an api-key takes key, keyEnv or keyFile)');
  const format = renewable ? 'renewable' : 'token';
  const envField = renewable ? 'credentialsEnv' : 'keyEnv';
  const fileField = renewable ? 'credentialsFile' : 'keyFile';
  const env = entry[envField];
  if (env !== undefined) {
    if (typeof env !== 'string' || !envNamePattern.test(env)) return bad(`${field}.${envField}`, 'must be an environment variable name');
    return ok({ kind: entry.kind, credential: { kind: 'env', name: env }, format });
  }
  const file = entry[fileField];
  if (typeof file !== 'string' || file.length === 0) return bad(`${field}.${fileField}`, 'must be a file path');
  return ok({ kind: entry.kind, credential: { kind: 'file', path: file }, format });
}

function parseOAuthSettings(raw: unknown): Result<OAuthSettings, ConfigError> {
  if (!isRecord(raw)) return bad('upstream.oauth', 'must be an object with tokenUrl, clientId and refreshLeadMs (each optional)');
  for (const field of Object.keys(raw))
    if (!['tokenUrl', 'clientId', 'refreshLeadMs'].includes(field))
      return bad(`upstream.oauth.${field}`, 'unknown field (known: tokenUrl, clientId, refreshLeadMs)');
  const { tokenUrl = defaultOAuthSettings.tokenUrl, clientId = defaultOAuthSettings.clientId, refreshLeadMs = defaultOAuthSettings.refreshLeadMs } = raw;
  if (typeof tokenUrl !== 'string' || !isHttpUrl(tokenUrl))
    return bad('upstream.oauth.tokenUrl', 'must be an http:// or https:// URL without query or user info');
  if (typeof clientId !== 'string' || clientId.length > 256 || !printablePattern.test(clientId))
    return bad('upstream.oauth.clientId', 'must be 1 to 256 printable ASCII characters without spaces');
  if (
    typeof refreshLeadMs !== 'number' ||
    !Number.isSafeInteger(refreshLeadMs) ||
    refreshLeadMs < oauthRefreshLeadMsMin ||
    refreshLeadMs > oauthRefreshLeadMsMax
  ) {
    return bad('upstream.oauth.refreshLeadMs', `must be a whole number of milliseconds from ${oauthRefreshLeadMsMin} to ${oauthRefreshLeadMsMax}`);
  }
  return ok({ tokenUrl, clientId, refreshLeadMs });
}

function parseRateLimits(raw: unknown): Result<RateLimitSettings, ConfigError> {
  if (!isRecord(raw)) return bad('rateLimits', 'must be an object with client and tenant');
  for (const field of Object.keys(raw)) if (!['client', 'tenant'].includes(field)) return bad(`rateLimits.${field}`, 'unknown field');
  const client = raw.client === undefined ? ok(defaultRateLimitSettings.client) : parseGcra(raw.client, 'rateLimits.client');
  if (!client.ok) return client;
  const tenant = raw.tenant === undefined ? ok(defaultRateLimitSettings.tenant) : parseGcra(raw.tenant, 'rateLimits.tenant');
  if (!tenant.ok) return tenant;
  return ok({ client: client.value, tenant: tenant.value });
}

function parseGcra(raw: unknown, field: string): Result<GcraConfig, ConfigError> {
  if (!isRecord(raw)) return bad(field, 'must be an object with rate, periodMs and burst');
  for (const name of Object.keys(raw)) if (!['rate', 'periodMs', 'burst'].includes(name)) return bad(`${field}.${name}`, 'unknown field');
  const bounds = { rate: limiterRateMax, periodMs: limiterPeriodMsMax, burst: limiterBurstMax } as const;
  for (const [name, max] of Object.entries(bounds)) {
    const value = raw[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max)
      return bad(`${field}.${name}`, `must be an integer from 1 to ${max}`);
  }
  return ok({ rate: raw.rate as number, periodMs: raw.periodMs as number, burst: raw.burst as number });
}

function isHttpUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.search === '' && url.hash === '';
}

function parseEndpoint(raw: unknown, field: string): Result<{ host: string; port: number }, ConfigError> {
  if (!isRecord(raw)) return bad(field, 'must be an object with host and port');
  if (typeof raw.host !== 'string' || raw.host.length === 0) return bad(`${field}.host`, 'must be a host name or address');
  if (typeof raw.port !== 'number' || !Number.isInteger(raw.port) || raw.port < 0 || raw.port > 65_535) {
    return bad(`${field}.port`, 'must be an integer from 0 to 65535');
  }
  return ok({ host: raw.host, port: raw.port });
}

/** `host:port` or `[v6]:port`, as grpc-js dials it; the host is checked by the dial, not here. */
function isGrpcAddress(text: string): boolean {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (match === null) return false;
  const port = Number(match[2]);
  return port >= 1 && port <= 65_535;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
