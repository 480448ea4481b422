// Runs the real Claude Code (`@anthropic-ai/claude-code`, a dev dependency) against a base URL in
// print mode, offline and bounded in time, and returns what it reported.
//
// A run is `claude -p PROMPT --output-format json` with:
//   - HOME a fresh temporary folder (removed afterwards) and the working directory an empty folder
//     inside it, so no user settings, credentials, CLAUDE.md or git state of this machine leak in,
//     and the prompt Claude Code builds depends only on the run;
//   - an environment built from scratch, not inherited: only PATH and the locale pass through, so
//     an ANTHROPIC_API_KEY, ANTHROPIC_MODEL, CLAUDE_CONFIG_DIR or HTTPS_PROXY of the calling shell
//     cannot redirect the run;
//   - ANTHROPIC_BASE_URL, and the token as ANTHROPIC_AUTH_TOKEN (sent as `Authorization: Bearer`)
//     or ANTHROPIC_API_KEY (sent as `x-api-key`);
//   - CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, which turns off the auto-updater, telemetry,
//     error reporting and the start-up reachability checks (`HEAD /api/hello` on the base URL and
//     a connection to api.anthropic.com): traced with strace, a run then opens no connection but
//     the base URL's and resolves no name;
//   - CLAUDE_CODE_MAX_RETRIES (2 unless asked): Claude Code retries a failed call ten times with
//     backoff by default, two minutes against a 401, which would hide the cause behind the timeout.
// The process (and anything it starts) is killed at `timeoutMs`; its output is kept up to a bound.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ClaudeCodeOptions {
  readonly baseUrl: string;
  readonly token: string;
  /** How the token is sent: `bearer` (ANTHROPIC_AUTH_TOKEN, the default) or `api-key` (ANTHROPIC_API_KEY). */
  readonly auth?: 'bearer' | 'api-key';
  readonly prompt: string;
  /** `--model`; Claude Code's own default when left out. */
  readonly model?: string;
  /** Continues the session with this id (`--resume`); it must have run in the same `home`. */
  readonly resume?: string;
  /** A HOME kept by the caller (`claudeCodeHome()`) to run several turns of one session; a fresh one otherwise. */
  readonly home?: ClaudeCodeHome;
  /** CLAUDE_CODE_MAX_RETRIES; 2 by default. */
  readonly maxRetries?: number;
  /** 45 s by default. */
  readonly timeoutMs?: number;
  /** More variables for the run, on top of those above. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A temporary HOME (with an empty working directory) shared by several runs; `remove()` deletes it. */
export interface ClaudeCodeHome {
  readonly path: string;
  readonly workDir: string;
  remove(): void;
}

/** Claude Code's own usage totals for the run: every call it made, summed. */
export interface ClaudeCodeUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheCreationInputTokens: number;
  readonly cacheReadInputTokens: number;
}

/** The JSON report `--output-format json` prints, with the fields tests read named. */
export interface ClaudeCodeReport {
  readonly isError: boolean;
  /** The final answer's text (or the error Claude Code reports). */
  readonly result: string;
  readonly sessionId: string;
  readonly stopReason: string | null;
  readonly terminalReason: string | null;
  readonly numTurns: number;
  /** Claude Code's price of the run, from its own price list for the model it believes it used. */
  readonly totalCostUsd: number;
  readonly durationMs: number;
  readonly durationApiMs: number;
  /** The status of the API error that ended the run, null when none did. */
  readonly apiErrorStatus: number | null;
  readonly usage: ClaudeCodeUsage;
  /** The models Claude Code called, by name. */
  readonly models: readonly string[];
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface ClaudeCodeResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** Wall time from spawn to exit. */
  readonly elapsedMs: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The parsed report; undefined when stdout held none (a crash, a timeout). */
  readonly report: ClaudeCodeReport | undefined;
}

const timeoutMsDefault = 45_000;
const maxRetriesDefault = 2;
/** Output kept per stream: a report is a few kilobytes; anything past this is a runaway. */
const outputBytesMax = 4 * 1024 * 1024;
/** The placeholder the package ships in place of the binary is a short shell script. */
const binaryBytesMin = 1024 * 1024;

/**
 * The path of the native `claude` binary: the one the package's postinstall put in place, or, if
 * the postinstall did not run (`npm ci --ignore-scripts`), the platform package it copies it from.
 */
export function claudeCodeBinary(): string | undefined {
  const require = createRequire(import.meta.url);
  let packageDir: string;
  try {
    packageDir = dirname(require.resolve('@anthropic-ai/claude-code/package.json'));
  } catch {
    return undefined;
  }
  const candidates = [join(packageDir, 'bin', 'claude.exe')];
  const platform = `${process.platform}-${process.arch}`;
  for (const variant of [platform, `${platform}-musl`]) {
    try {
      const dir = dirname(createRequire(join(packageDir, 'package.json')).resolve(`@anthropic-ai/claude-code-${variant}/package.json`));
      candidates.push(join(dir, 'claude'));
    } catch {
      // Not installed for this platform variant.
    }
  }
  return candidates.find((path) => existsSync(path) && statSync(path).size >= binaryBytesMin);
}

let availability: { readonly binary: string; readonly version: string } | { readonly reason: string } | undefined;

/**
 * The binary and its version, or why Claude Code cannot run on this machine (checked once, by
 * running `claude --version`). Tests skip on the reason, which names the fix.
 */
export function claudeCodeAvailability(): { readonly binary: string; readonly version: string } | { readonly reason: string } {
  if (availability !== undefined) return availability;
  const binary = claudeCodeBinary();
  if (binary === undefined) {
    availability = { reason: 'the claude binary is not installed (npm ci installs @anthropic-ai/claude-code and its native package for this platform)' };
    return availability;
  }
  const home = mkdtempSync(join(tmpdir(), 'carpool-claude-version-'));
  try {
    const probe = spawnSync(binary, ['--version'], { env: { PATH: process.env.PATH ?? '', HOME: home }, encoding: 'utf8', timeout: 15_000 });
    const version = /^(\S+) \(Claude Code\)/.exec(probe.stdout)?.[1];
    availability =
      probe.status === 0 && version !== undefined
        ? { binary, version }
        : {
            reason: `${binary} --version failed (status ${String(probe.status)}${probe.error ? `, ${probe.error.message}` : ''}): ${probe.stderr.slice(0, 500)}`,
          };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  return availability;
}

export function claudeCodeHome(): ClaudeCodeHome {
  const path = mkdtempSync(join(tmpdir(), 'carpool-claude-home-'));
  const workDir = join(path, 'work');
  mkdirSync(workDir);
  return { path, workDir, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs Claude Code once; throws only when it cannot run at all (see `claudeCodeAvailability`). */
export async function runClaudeCode(options: ClaudeCodeOptions): Promise<ClaudeCodeResult> {
  const available = claudeCodeAvailability();
  if ('reason' in available) throw new Error(`Claude Code cannot run: ${available.reason}`);
  const home = options.home ?? claudeCodeHome();
  try {
    const args = ['-p', options.prompt, '--output-format', 'json'];
    if (options.model !== undefined) args.push('--model', options.model);
    if (options.resume !== undefined) args.push('--resume', options.resume);
    return await spawnBounded(available.binary, args, home, runEnv(options, home), options.timeoutMs ?? timeoutMsDefault);
  } finally {
    if (options.home === undefined) home.remove();
  }
}

function runEnv(options: ClaudeCodeOptions, home: ClaudeCodeHome): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home.path,
    TMPDIR: home.path,
    ANTHROPIC_BASE_URL: options.baseUrl,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    CLAUDE_CODE_MAX_RETRIES: String(options.maxRetries ?? maxRetriesDefault),
  };
  for (const name of ['LANG', 'LC_ALL']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env[(options.auth ?? 'bearer') === 'bearer' ? 'ANTHROPIC_AUTH_TOKEN' : 'ANTHROPIC_API_KEY'] = options.token;
  return { ...env, ...options.env };
}

function spawnBounded(
  binary: string,
  args: readonly string[],
  home: ClaudeCodeHome,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<ClaudeCodeResult> {
  const startedMs = Date.now();
  // Its own process group, so that a timeout kills whatever it started as well.
  const child = spawn(binary, args, { cwd: home.workDir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stdout = new BoundedText();
  const stderr = new BoundedText();
  child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, timeoutMs);
  return new Promise((resolve) => {
    child.once('error', (error) => stderr.add(Buffer.from(`spawn failed: ${error.message}\n`)));
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      // Whatever it started in the background (a language server, say) goes with it.
      killGroup(child.pid);
      const out = stdout.text();
      resolve({ exitCode, signal, timedOut, elapsedMs: Date.now() - startedMs, stdout: out, stderr: stderr.text(), report: parseReport(out) });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

class BoundedText {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  add(chunk: Buffer): void {
    if (this.bytes >= outputBytesMax) return;
    const kept = chunk.subarray(0, outputBytesMax - this.bytes);
    this.chunks.push(kept);
    this.bytes += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The report of `--output-format json`: one JSON object, `"type": "result"`. */
export function parseReport(stdout: string): ClaudeCodeReport | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout.trim());
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || (raw as { type?: unknown }).type !== 'result') return undefined;
  const json = raw as Record<string, unknown>;
  const usage = (typeof json.usage === 'object' && json.usage !== null ? json.usage : {}) as Record<string, unknown>;
  const count = (value: unknown): number => (typeof value === 'number' ? value : 0);
  return {
    isError: json.is_error === true,
    result: typeof json.result === 'string' ? json.result : '',
    sessionId: typeof json.session_id === 'string' ? json.session_id : '',
    stopReason: typeof json.stop_reason === 'string' ? json.stop_reason : null,
    terminalReason: typeof json.terminal_reason === 'string' ? json.terminal_reason : null,
    numTurns: count(json.num_turns),
    totalCostUsd: count(json.total_cost_usd),
    durationMs: count(json.duration_ms),
    durationApiMs: count(json.duration_api_ms),
    apiErrorStatus: typeof json.api_error_status === 'number' ? json.api_error_status : null,
    usage: {
      inputTokens: count(usage.input_tokens),
      outputTokens: count(usage.output_tokens),
      cacheCreationInputTokens: count(usage.cache_creation_input_tokens),
      cacheReadInputTokens: count(usage.cache_read_input_tokens),
    },
    models: typeof json.modelUsage === 'object' && json.modelUsage !== null ? Object.keys(json.modelUsage) : [],
    raw: json,
  };
}
