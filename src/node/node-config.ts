import { isValidId, type NodeId, type RegionId } from '../core/ids.js';
import { meshMembersMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { Member } from '../mesh/membership.js';

/**
 * The configuration of one node process, read from a JSON file (`carpool node --config FILE`).
 *
 * ```json
 * {
 *   "node": "us-east-1",                  // this node's member id (1-48 printable ASCII chars)
 *   "region": "us-east",                  // its region id
 *   "listen": { "host": "127.0.0.1", "port": 7401 },   // mesh WebSocket endpoint
 *   "admin": { "host": "127.0.0.1", "port": 8401 },    // optional admin/status HTTP endpoint
 *   "members": [                          // every member of the mesh, this node included
 *     { "id": "us-east-1", "region": "us-east", "url": "ws://127.0.0.1:7401" },
 *     { "id": "eu-west-1", "region": "eu-west", "url": "ws://127.0.0.1:7402" }
 *   ],
 *   "secretFile": "mesh.secret",          // or "secret": "..." (at least 16 characters);
 *                                         // or the CARPOOL_MESH_SECRET environment variable
 *   "tls": { "certFile": "...", "keyFile": "...", "caFile": "..." }   // optional: serve wss,
 *                                         // trust caFile when dialing wss:// members
 * }
 * ```
 *
 * Every error names the field it is about. Files are resolved relative to the config file.
 */
export interface NodeConfig {
  readonly node: NodeId;
  readonly region: RegionId;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number } | undefined;
  readonly members: readonly Member[];
  readonly secret: { readonly kind: 'inline'; readonly value: string } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'env' };
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string | undefined } | undefined;
}

export interface ConfigError {
  readonly kind: 'bad-config';
  readonly field: string;
  readonly reason: string;
}

/** Node ids leave room for the incarnation suffix of replica ids (`~` and up to 15 chars). */
export const nodeIdLengthMax = 48;

const bad = (field: string, reason: string): Result<never, ConfigError> => err({ kind: 'bad-config', field, reason });

export function parseNodeConfig(raw: unknown): Result<NodeConfig, ConfigError> {
  if (!isRecord(raw)) return bad('(root)', 'the configuration must be a JSON object');
  for (const field of Object.keys(raw)) {
    if (!['node', 'region', 'listen', 'admin', 'members', 'secret', 'secretFile', 'tls'].includes(field)) return bad(field, 'unknown field');
  }
  const node = raw.node;
  if (typeof node !== 'string' || !isValidId(node) || node.length > nodeIdLengthMax) {
    return bad('node', `must be 1 to ${nodeIdLengthMax} printable ASCII characters without spaces`);
  }
  const region = raw.region;
  if (typeof region !== 'string' || !isValidId(region)) return bad('region', 'must be a printable ASCII id');
  const listen = parseEndpoint(raw.listen, 'listen');
  if (!listen.ok) return listen;
  let admin: NodeConfig['admin'];
  if (raw.admin !== undefined) {
    const parsed = parseEndpoint(raw.admin, 'admin');
    if (!parsed.ok) return parsed;
    admin = parsed.value;
  }
  if (!Array.isArray(raw.members) || raw.members.length === 0 || raw.members.length > meshMembersMax) {
    return bad('members', `must list 1 to ${meshMembersMax} members, this node included`);
  }
  const members: Member[] = [];
  for (const [i, entry] of (raw.members as unknown[]).entries()) {
    const field = `members[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with id, region and url');
    if (typeof entry.id !== 'string' || !isValidId(entry.id) || entry.id.length > nodeIdLengthMax) return bad(`${field}.id`, 'must be a member id');
    if (typeof entry.region !== 'string' || !isValidId(entry.region)) return bad(`${field}.region`, 'must be a region id');
    if (typeof entry.url !== 'string' || !/^wss?:\/\/[^\s]+$/.test(entry.url)) return bad(`${field}.url`, 'must be a ws:// or wss:// URL');
    if (members.some((m) => m.id === entry.id)) return bad(`${field}.id`, `"${entry.id}" is listed twice`);
    members.push({ id: entry.id as NodeId, region: entry.region as RegionId, url: entry.url });
  }
  const self = members.find((m) => m.id === node);
  if (self === undefined) return bad('members', `must include this node "${node}"`);
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
  return ok({ node: node as NodeId, region: region as RegionId, listen: listen.value, admin, members, secret, tls });
}

function parseEndpoint(raw: unknown, field: string): Result<{ host: string; port: number }, ConfigError> {
  if (!isRecord(raw)) return bad(field, 'must be an object with host and port');
  if (typeof raw.host !== 'string' || raw.host.length === 0) return bad(`${field}.host`, 'must be a host name or address');
  if (typeof raw.port !== 'number' || !Number.isInteger(raw.port) || raw.port < 0 || raw.port > 65_535) {
    return bad(`${field}.port`, 'must be an integer from 0 to 65535');
  }
  return ok({ host: raw.host, port: raw.port });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
