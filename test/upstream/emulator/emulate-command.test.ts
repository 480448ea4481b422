// Proves `carpool emulate` starts, prints its URL and keys on one line, serves them, and exits 0
// on SIGTERM; and that a bad accounts file or flag exits 2 with a message naming the fault.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { within } from '../../support/wait.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'carpool-emulate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  readonly child: ChildProcess;
  readonly output: () => { stdout: string; stderr: string };
  readonly exited: Promise<number | null>;
}

function run(args: readonly string[]): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'emulate', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => ({ stdout, stderr }), exited };
}

async function firstLine(r: Run): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (!r.output().stdout.includes('\n')) {
    if (r.child.exitCode !== null) throw new Error(`exited early: ${JSON.stringify(r.output())}`);
    if (Date.now() > deadline) throw new Error(`no output: ${JSON.stringify(r.output())}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return r.output().stdout.split('\n')[0]!;
}

describe('carpool emulate', () => {
  it('prints its URL and keys, serves them, and exits 0 on SIGTERM', async () => {
    const r = run(['--port', '0', '--accounts', '2', '--seed', '3']);
    try {
      const line = await firstLine(r);
      const match = /^emulator listening on (http:\/\/127\.0\.0\.1:\d+) keys (\S+)$/.exec(line);
      expect(match, line).not.toBeNull();
      const [url, keys] = [match![1]!, match![2]!.split(',')];
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatch(/^sk-ant-emu-0-/);
      const response = await fetch(`${url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': keys[1]!, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(response.status).toBe(200);
      r.child.kill('SIGTERM');
      expect(await within(r.exited, 'the emulator to exit', 10_000)).toBe(0);
      expect(r.output().stdout).toContain('emulator stopped');
    } finally {
      if (r.child.exitCode === null) r.child.kill('SIGKILL');
    }
  });

  it('exits 2 naming the bad field of an accounts file', async () => {
    const path = join(dir, 'accounts.json');
    writeFileSync(path, JSON.stringify({ accounts: [{ key: 'sk-ant-api03-good-key', requestsPerMinute: -5 }] }));
    const r = run(['--accounts', path]);
    expect(await within(r.exited, 'the emulator to refuse', 15_000)).toBe(2);
    expect(r.output().stderr).toContain('accounts[0].requestsPerMinute');
  });

  it('exits 2 with the usage on a bad flag', async () => {
    const r = run(['--accounts', '2', '--ttft-ms', 'soon']);
    expect(await within(r.exited, 'the emulator to refuse', 15_000)).toBe(2);
    expect(r.output().stderr).toContain('--ttft-ms takes a number');
    expect(r.output().stderr).toContain('usage: carpool');
  });
});
