import { readFile } from 'node:fs/promises';
import { type AdminArgs, adminUsage, type AdminCommand, type When } from './admin-args.js';
import { accountsLines, adjustmentLines, auditLines, keysLines, newKeyLines, poolLines, statusLines, tenantsLines, usageLines } from './admin-format.js';
import { type AdminTarget, resolveAdminTarget } from './admin-target.js';

/**
 * `carpool admin …`: one request to a node's admin HTTP endpoint per command, with the admin
 * token as `Authorization: Bearer`, and its answer printed as text (or as the endpoint's JSON with
 * `--json`). Writes carry `--reason`, which the audit log keeps. Exit codes: 0 done; 1 the
 * endpoint refused (its status and message are printed) or could not be reached; 2 the command
 * line, a file it names or the state file is at fault.
 */
export interface AdminIo {
  /** Answers: stdout. */
  readonly out: (line: string) => void;
  /** Errors: stderr. */
  readonly err: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly nowMs: () => number;
}

/** Longest an admin request may take; a credit's quorum round is the slowest. */
export const adminRequestTimeoutMs = 15_000;

interface Request {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: Record<string, unknown>;
  /** Text lines for the answer. */
  readonly print: (answer: unknown) => string[];
}

export async function runAdmin(args: AdminArgs, io: AdminIo): Promise<number> {
  if (args.help || args.command === undefined) {
    io.out(adminUsage);
    return args.help ? 0 : 2;
  }
  const request = await requestOf(args.command, args, io.nowMs());
  if (typeof request === 'string') {
    io.err(`carpool admin: ${request}`);
    return 2;
  }
  const target = await resolveAdminTarget(args, io.env);
  if (!target.ok) {
    io.err(`carpool admin: ${target.error}`);
    return 2;
  }
  const answer = await send(target.value, request);
  if (answer.kind === 'unreachable') {
    io.err(`carpool admin: cannot reach ${target.value.label} (${target.value.url}): ${answer.detail}`);
    return 1;
  }
  if (answer.status !== 200) {
    const body = answer.body as { error?: unknown; field?: unknown } | undefined;
    const field = typeof body?.field === 'string' ? `${body.field}: ` : '';
    const message = typeof body?.error === 'string' ? body.error : JSON.stringify(answer.body);
    io.err(`carpool admin: ${request.method} ${request.path} at ${target.value.label}: HTTP ${answer.status}: ${field}${message}`);
    return 1;
  }
  if (args.json) io.out(JSON.stringify(answer.body, null, 2));
  else for (const line of request.print(answer.body)) io.out(line);
  return 0;
}

const json = (answer: unknown): string[] => [JSON.stringify(answer, null, 2)];
const segment = encodeURIComponent;

/** The route, method and body of a command; a message when a file it names cannot be read. */
async function requestOf(command: AdminCommand, args: AdminArgs, nowMs: number): Promise<Request | string> {
  const reason = args.reason === undefined ? {} : { reason: args.reason };
  switch (command.kind) {
    case 'status':
      return { method: 'GET', path: '/status', print: statusLines };
    case 'pool':
      return { method: 'GET', path: '/pool', print: (answer) => poolLines(answer, nowMs) };
    case 'audit':
      return { method: 'GET', path: `/audit${command.limit === undefined ? '' : `?limit=${command.limit}`}`, print: auditLines };
    case 'tenants-list':
      return { method: 'GET', path: '/policy', print: tenantsLines };
    case 'accounts-list':
      return { method: 'GET', path: '/policy', print: accountsLines };
    case 'tenants-get':
      return { method: 'GET', path: `/policy/tenants/${segment(command.id)}`, print: json };
    case 'accounts-get':
      return { method: 'GET', path: `/policy/accounts/${segment(command.id)}`, print: json };
    case 'tenants-put':
    case 'accounts-put': {
      const fields = await subjectJson(command.json, command.file);
      if (typeof fields === 'string') return fields;
      const root = command.kind === 'tenants-put' ? 'tenants' : 'accounts';
      return {
        method: 'PUT',
        path: `/policy/${root}/${segment(command.id)}`,
        body: { ...fields, ...reason },
        print: () => [`${root.slice(0, -1)} ${command.id} stored`],
      };
    }
    case 'tenants-remove':
    case 'accounts-remove': {
      const root = command.kind === 'tenants-remove' ? 'tenants' : 'accounts';
      return { method: 'DELETE', path: `/policy/${root}/${segment(command.id)}`, body: reason, print: () => [`${root.slice(0, -1)} ${command.id} removed`] };
    }
    case 'accounts-enable':
      return {
        method: 'POST',
        path: `/pool/accounts/${segment(command.id)}/enable`,
        body: reason,
        print: () => [`account ${command.id} enabled at this node`],
      };
    default:
      return keysOrUsage(command, reason, nowMs);
  }
}

function keysOrUsage(command: AdminCommand, reason: { reason?: string }, nowMs: number): Request {
  switch (command.kind) {
    case 'keys-list':
      return { method: 'GET', path: `/policy/tenants/${segment(command.tenant)}/keys`, print: keysLines };
    case 'keys-create':
      return {
        method: 'POST',
        path: `/policy/tenants/${segment(command.tenant)}/keys`,
        body: { name: command.name, ...expiryOf(command.expires, nowMs), ...reason },
        print: (answer) => newKeyLines(answer, 'created'),
      };
    case 'keys-revoke': {
      const { tenant, id } = splitKeyId(command.keyId);
      return {
        method: 'POST',
        path: `/policy/tenants/${segment(tenant)}/keys/${segment(id)}/revoke`,
        body: reason,
        print: () => [`key ${command.keyId} revoked; every region refuses it once the policy reaches it (one gossip interval)`],
      };
    }
    case 'keys-rotate': {
      const { tenant, id } = splitKeyId(command.keyId);
      const body = {
        ...(command.graceMs === undefined ? {} : { graceMs: command.graceMs }),
        ...(command.name === undefined ? {} : { name: command.name }),
        ...expiryOf(command.expires, nowMs),
        ...reason,
      };
      return { method: 'POST', path: `/policy/tenants/${segment(tenant)}/keys/${segment(id)}/rotate`, body, print: (answer) => newKeyLines(answer, 'rotated') };
    }
    case 'usage': {
      const query = new URLSearchParams({ consistency: command.quorum ? 'quorum' : 'local', ...(command.user === undefined ? {} : { user: command.user }) });
      return { method: 'GET', path: `/usage/tenants/${segment(command.tenant)}?${query.toString()}`, print: usageLines };
    }
    case 'adjust':
      return { method: 'POST', path: '/usage/adjustments', body: { ...command.body, ...reason }, print: adjustmentLines };
    default:
      throw new Error(`no request for ${command.kind}`);
  }
}

/** `<tenant>:<8 hex>`: tenant ids may hold `:`, so the digits are cut from the end. */
function splitKeyId(keyId: string): { readonly tenant: string; readonly id: string } {
  const split = keyId.lastIndexOf(':');
  return split <= 0 ? { tenant: keyId, id: '' } : { tenant: keyId.slice(0, split), id: keyId.slice(split + 1) };
}

function expiryOf(when: When | undefined, nowMs: number): { expiresAtMs?: number } {
  if (when === undefined) return {};
  return { expiresAtMs: when.kind === 'in' ? nowMs + when.ms : when.ms };
}

async function subjectJson(text: string | undefined, file: string | undefined): Promise<Record<string, unknown> | string> {
  let source = text;
  if (file !== undefined) {
    try {
      source = await readFile(file, 'utf8');
    } catch (error) {
      return `cannot read ${file}: ${(error as Error).message}`;
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(source ?? '');
  } catch (error) {
    return `${file ?? 'the JSON argument'} is not JSON: ${(error as Error).message}`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${file ?? 'the JSON argument'} must hold a JSON object`;
  return value as Record<string, unknown>;
}

type Answer = { readonly kind: 'answer'; readonly status: number; readonly body: unknown } | { readonly kind: 'unreachable'; readonly detail: string };

async function send(target: AdminTarget, request: Request): Promise<Answer> {
  const write = request.method !== 'GET';
  try {
    const response = await fetch(`${target.url}${request.path}`, {
      method: request.method,
      headers: { authorization: `Bearer ${target.token}`, ...(write ? { 'content-type': 'application/json' } : {}) },
      ...(write ? { body: JSON.stringify(request.body ?? {}) } : {}),
      signal: AbortSignal.timeout(adminRequestTimeoutMs),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's page, say): printed as it is.
    }
    return { kind: 'answer', status: response.status, body };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { kind: 'unreachable', detail: cause ?? (error as Error).message };
  }
}
