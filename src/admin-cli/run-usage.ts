import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { formatDurationMs } from '../core/duration-text.js';
import { type AdminTarget, resolveAdminTarget } from './admin-target.js';
import { adminRequestTimeoutMs } from './run-admin.js';
import { filterParams, type UsageArgs, type UsageCommand, usageUsage } from './usage-args.js';
import { ledgerLines } from './usage-format.js';

/**
 * `carpool usage query|export`: one node's usage ledger through its admin HTTP endpoint (GET
 * /usage/ledger, GET /usage/export). A query prints totals, groups and rows as text (or the JSON
 * with `--json`). An export copies the streamed rows to stdout or to `--out FILE` as they arrive,
 * at the pace the destination takes them, with a progress line on stderr every few seconds; a
 * file is written as `FILE.part` and renamed once the export is whole, so a broken export never
 * leaves a file that looks complete. Exit codes: 0 done; 1 the node refused, could not be
 * reached, or the export broke off; 2 the command line is at fault.
 */
export interface UsageIo {
  /** Lines of a query's answer: stdout. */
  readonly out: (line: string) => void;
  /** Errors and progress: stderr. */
  readonly err: (line: string) => void;
  /** Where an export without `--out` goes: stdout. */
  readonly stdout: Writable;
  readonly env: NodeJS.ProcessEnv;
  readonly nowMs: () => number;
  /** How often a long export says how far it got; `exportProgressEveryMs` by default. */
  readonly progressEveryMs?: number;
}

/** An export that sends nothing for this long is given up: the node or the network is stuck. */
export const exportIdleTimeoutMs = 60_000;

/** A long export's progress line comes this often. */
export const exportProgressEveryMs = 2_000;

export async function runUsage(args: UsageArgs, io: UsageIo): Promise<number> {
  if (args.help || args.command === undefined) {
    io.out(usageUsage);
    return args.help ? 0 : 2;
  }
  const target = await resolveAdminTarget(args, io.env);
  if (!target.ok) {
    io.err(`carpool usage: ${target.error}`);
    return 2;
  }
  return args.command.kind === 'query' ? query(args.command, target.value, io) : exportRows(args.command, target.value, io);
}

async function query(command: Extract<UsageCommand, { kind: 'query' }>, target: AdminTarget, io: UsageIo): Promise<number> {
  const params = filterParams(command.filter, io.nowMs());
  if (command.groupBy !== undefined) params.set('groupBy', command.groupBy);
  if (command.rows !== undefined) params.set('rows', String(command.rows));
  const path = `/usage/ledger?${params.toString()}`;
  let response: Response;
  let body: unknown;
  try {
    response = await fetch(`${target.url}${path}`, {
      headers: { authorization: `Bearer ${target.token}` },
      signal: AbortSignal.timeout(adminRequestTimeoutMs),
    });
    body = await jsonOrText(response);
  } catch (error) {
    io.err(`carpool usage: cannot reach ${target.label} (${target.url}): ${causeOf(error)}`);
    return 1;
  }
  if (response.status !== 200) {
    io.err(`carpool usage: GET ${path} at ${target.label}: ${refusalOf(response.status, body)}`);
    return 1;
  }
  if (command.json) io.out(JSON.stringify(body, null, 2));
  else for (const line of ledgerLines(body)) io.out(line);
  return 0;
}

async function exportRows(command: Extract<UsageCommand, { kind: 'export' }>, target: AdminTarget, io: UsageIo): Promise<number> {
  const params = filterParams(command.filter, io.nowMs());
  params.set('format', command.format);
  const path = `/usage/export?${params.toString()}`;
  const idle = new IdleTimer(exportIdleTimeoutMs);
  let response: Response;
  try {
    response = await fetch(`${target.url}${path}`, { headers: { authorization: `Bearer ${target.token}` }, signal: idle.signal });
  } catch (error) {
    idle.stop();
    io.err(`carpool usage: cannot reach ${target.label} (${target.url}): ${causeOf(error)}`);
    return 1;
  }
  if (response.status !== 200 || response.body === null) {
    idle.stop();
    io.err(`carpool usage: GET ${path} at ${target.label}: ${refusalOf(response.status, await jsonOrText(response).catch(() => ''))}`);
    return 1;
  }
  const node = response.headers.get('carpool-node') ?? target.label;
  const partial = command.out === undefined ? undefined : `${command.out}.part`;
  const destination: Writable | WriteStream = partial === undefined ? io.stdout : createWriteStream(partial, { mode: 0o600 });
  const counter = new RecordCounter(command.format);
  const started = io.nowMs();
  let said = started;
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      idle.touch();
      counter.add(chunk);
      if (!destination.write(chunk)) await once(destination, 'drain');
      const now = io.nowMs();
      if (now - said >= (io.progressEveryMs ?? exportProgressEveryMs)) {
        said = now;
        io.err(`carpool usage: ${counter.rows} rows (${megabytes(counter.bytes)}) from ${node} so far, ${formatDurationMs(now - started)}`);
      }
    }
    if (partial !== undefined) {
      (destination as WriteStream).end();
      await once(destination, 'close');
      await rename(partial, command.out as string);
    }
  } catch (error) {
    idle.stop();
    if (partial !== undefined) {
      (destination as WriteStream).destroy();
      await rm(partial, { force: true });
    }
    io.err(
      `carpool usage: the export from ${node} broke off after ${counter.rows} rows: ${causeOf(error)}${partial === undefined ? '' : '; nothing was written'}`,
    );
    return 1;
  }
  idle.stop();
  io.err(`carpool usage: exported ${counter.rows} rows (${megabytes(counter.bytes)}) from ${node}${command.out === undefined ? '' : ` to ${command.out}`}`);
  return 0;
}

/**
 * Counts the records of an export as its bytes go by: lines of JSON, or CSV records, whose quoted
 * fields may hold line breaks (so a newline inside quotes ends nothing). The CSV header is not a row.
 */
export class RecordCounter {
  bytes = 0;
  private records = 0;
  private quoted = false;

  constructor(private readonly format: 'csv' | 'jsonl') {}

  get rows(): number {
    return this.format === 'csv' ? Math.max(0, this.records - 1) : this.records;
  }

  add(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    const csv = this.format === 'csv';
    for (const byte of chunk) {
      if (csv && byte === 0x22) this.quoted = !this.quoted;
      else if (byte === 0x0a && !this.quoted) this.records++;
    }
  }
}

/** An abort signal that fires once `touch` has not been called for `timeoutMs`. */
class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(): NodeJS.Timeout {
    const timer = setTimeout(() => this.controller.abort(new Error(`nothing arrived for ${formatDurationMs(this.timeoutMs)}`)), this.timeoutMs);
    timer.unref();
    return timer;
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}

async function jsonOrText(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `HTTP 400: since: must be ...`, from the endpoint's `{error, field}`. */
export function refusalOf(status: number, body: unknown): string {
  const fields = typeof body === 'object' && body !== null ? (body as { error?: unknown; field?: unknown }) : {};
  const field = typeof fields.field === 'string' ? `${fields.field}: ` : '';
  const message = typeof fields.error === 'string' ? fields.error : typeof body === 'string' ? body.slice(0, 300) : JSON.stringify(body);
  return `HTTP ${status}: ${field}${message}`;
}

export function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError')) return 'timed out';
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
