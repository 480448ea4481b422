// Proves the container image's recipe and entrypoint without a Docker engine (there is none here).
// deploy/Dockerfile keeps its rules (two stages on Node 20 slim, the runtime stage non-root with
// /data a volume, a health check through `carpool health` on the exposed gRPC port, every COPY
// source present and not excluded by deploy/Dockerfile.dockerignore), and what the image runs
// works as plain processes laid out as the image lays them out (/app: dist/ compiled by the build's
// own command, proto/, node_modules, package.json): `node dist/cli.js node --config FILE` with
// NODE_ENV=production serves, its health check answers NOT_SERVING or nothing until it does and
// SERVING once it does, it writes nothing outside its data directory, and it stops cleanly on
// SIGTERM; the health command fails on a port where nothing listens and refuses bad flags.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/local/local-child.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';

const run = promisify(execFile);
const dockerfile = readFileSync(join(packageRoot, 'deploy', 'Dockerfile'), 'utf8');
const ignored = readFileSync(join(packageRoot, 'deploy', 'Dockerfile.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

/** Dockerfile instructions, continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const runtimeStage = instructions.slice(instructions.findLastIndex((line) => line.startsWith('FROM ')));

describe('deploy/Dockerfile', () => {
  it('builds in two stages on Node 20 slim and runs the compiled dist/ as a non-root user', () => {
    const froms = instructions.filter((line) => line.startsWith('FROM '));
    expect(froms).toHaveLength(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:20-[a-z]+-slim AS \w+$/);
    expect(runtimeStage.find((line) => line.startsWith('USER '))).toBe('USER node');
    const user = runtimeStage.findIndex((line) => line.startsWith('USER '));
    expect(user).toBeLessThan(runtimeStage.findIndex((line) => line.startsWith('ENTRYPOINT ')));
    expect(runtimeStage).toContain('ENTRYPOINT ["node", "dist/cli.js"]');
    expect(runtimeStage).toContain('VOLUME ["/data"]');
    expect(runtimeStage.filter((line) => line.startsWith('COPY ')).every((line) => line.includes('--from=build'))).toBe(true);
  });

  it('checks health with `carpool health` on the gRPC port it exposes', () => {
    const health = runtimeStage.find((line) => line.startsWith('HEALTHCHECK '));
    expect(health).toMatch(/CMD \["node", "dist\/cli\.js", "health", "--target", "127\.0\.0\.1:(\d+)"/);
    const port = /127\.0\.0\.1:(\d+)/.exec(health ?? '')?.[1];
    const exposed = runtimeStage
      .find((line) => line.startsWith('EXPOSE '))
      ?.split(/\s+/)
      .slice(1);
    expect(exposed).toContain(port);
  });

  it('copies only what exists and what the ignore file lets into the context', () => {
    for (const must of ['node_modules', 'dist', '.git', '.carpool']) expect(ignored).toContain(must);
    const sources = instructions
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
      .flatMap((line) =>
        line
          .split(/\s+/)
          .slice(1, -1)
          .filter((part) => !part.startsWith('--')),
      );
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) {
      expect(existsSync(join(packageRoot, source)), `${source} exists`).toBe(true);
      expect(ignored, `${source} is in the context`).not.toContain(source);
    }
  });
});

describe('the image entrypoint, as plain processes', () => {
  const app = mkdtempSync(join(tmpdir(), 'carpool-image-'));
  const ports = { mesh: 0, admin: 0, grpc: 0 };
  let node: ChildProcess | undefined;
  let output = '';

  /** `node dist/cli.js health …` in the image's layout: its exit code and what it printed. */
  async function health(args: readonly string[]): Promise<{ readonly code: number; readonly out: string }> {
    try {
      const { stdout } = await run(process.execPath, ['dist/cli.js', 'health', ...args], { cwd: app, env: { ...process.env, NODE_ENV: 'production' } });
      return { code: 0, out: stdout.trim() };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, out: `${failed.stdout ?? ''}${failed.stderr ?? ''}`.trim() };
    }
  }

  beforeAll(async () => {
    // The build stage's own command, into the image's layout.
    await run(process.execPath, [
      join(packageRoot, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(packageRoot, 'tsconfig.build.json'),
      '--outDir',
      join(app, 'dist'),
    ]);
    symlinkSync(join(packageRoot, 'proto'), join(app, 'proto'));
    symlinkSync(join(packageRoot, 'node_modules'), join(app, 'node_modules'));
    writeFileSync(join(app, 'package.json'), readFileSync(join(packageRoot, 'package.json')));
    mkdirSync(join(app, 'data'));
    ports.mesh = await freePort();
    ports.admin = await freePort();
    ports.grpc = await freePort();
    const config = {
      node: 'image-1',
      region: 'image',
      listen: { host: '127.0.0.1', port: ports.mesh },
      admin: { host: '127.0.0.1', port: ports.admin },
      members: [{ id: 'image-1', region: 'image', url: `ws://127.0.0.1:${ports.mesh}` }],
      grpc: { host: '127.0.0.1', port: ports.grpc },
      adminTokenFile: 'admin.token',
      upstream: { baseUrl: 'http://127.0.0.1:1', accounts: {} },
      dataDir: join(app, 'data'),
    };
    writeFileSync(join(app, 'node.json'), JSON.stringify(config));
    writeFileSync(join(app, 'admin.token'), 'image-test-admin-token-0123456789', { mode: 0o600 });
  }, 120_000);

  afterAll(() => {
    if (node !== undefined && node.exitCode === null) node.kill('SIGKILL');
    rmSync(app, { recursive: true, force: true });
  });

  it('serves, answers its health check SERVING once it does, writes only to its data directory, and stops on SIGTERM', async () => {
    const before = await health(['--target', `127.0.0.1:${ports.grpc}`, '--timeout-ms', '500']);
    expect(before).toEqual({ code: 1, out: 'UNAVAILABLE' });
    node = spawn(process.execPath, ['dist/cli.js', 'node', '--config', 'node.json'], {
      cwd: app,
      env: { ...process.env, NODE_ENV: 'production', CARPOOL_MESH_SECRET: 'image-test-mesh-secret-0123456789' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    node.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    node.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => node?.once('exit', (code) => resolve(code)));
    let answer = before;
    // Bounded: 60 checks, 250 ms apart.
    for (let i = 0; i < 60 && answer.code !== 0; i++) {
      await sleep(250);
      answer = await health(['--target', `127.0.0.1:${ports.grpc}`, '--timeout-ms', '1000']);
      if (answer.code !== 0) expect(['UNAVAILABLE', 'NOT_SERVING']).toContain(answer.out);
    }
    expect(answer, output).toEqual({ code: 0, out: 'SERVING' });
    expect(await health(['--target', `127.0.0.1:${ports.grpc}`, '--service', 'carpool.v1.Carpool'])).toEqual({ code: 0, out: 'SERVING' });
    node.kill('SIGTERM');
    expect(await exited).toBe(0);
    // A read-only root filesystem is enough: the node wrote its store in data/ and nothing beside its config.
    expect(readdirSync(app).sort()).toEqual(['admin.token', 'data', 'dist', 'node.json', 'node_modules', 'package.json', 'proto']);
    expect(readdirSync(join(app, 'data')).length).toBeGreaterThan(0);
  }, 60_000);

  it('fails where nothing listens, and refuses bad flags', async () => {
    expect(await health(['--target', '127.0.0.1:1', '--timeout-ms', '500'])).toEqual({ code: 1, out: 'UNAVAILABLE' });
    expect((await health(['--colour', 'red'])).code).toBe(2);
    expect((await health(['--timeout-ms', '0'])).code).toBe(2);
  });
});
