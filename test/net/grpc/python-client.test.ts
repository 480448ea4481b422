// Proves the contract serves a client in another language, Python.
// A Python client compiled from carpool.proto at run time calls Complete with an API key and gets
// the response, or the status with its pushback, exactly as the Node client does.
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { err, ok } from '../../../src/core/result.js';
import type { CarpoolCall, CompleteRequest } from '../../../src/net/grpc/carpool-handler.js';
import { cannedUsage, fakeCarpoolHandler, fromUtf8, type Running, startLoopback, testApiKey, utf8 } from './fake-carpool-handler.js';

const script = fileURLToPath(new URL('../../python/complete_client.py', import.meta.url));

/**
 * The first interpreter that has grpcio and grpc_tools. Debian's python3-grpcio and
 * python3-grpc-tools install for /usr/bin/python3, which is not the `python3` on the PATH when a
 * version manager (pyenv) shadows it, so both are tried; CARPOOL_PYTHON overrides.
 */
function findPython(): string | undefined {
  const candidates = [process.env.CARPOOL_PYTHON, 'python3', '/usr/bin/python3'].filter(
    (candidate): candidate is string => candidate !== undefined && candidate !== '',
  );
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['-c', 'import grpc, grpc_tools.protoc'], { stdio: 'ignore', timeout: 10_000 });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

const python = findPython();
const skipReason = 'python3 with the grpc and grpc_tools modules is missing (apt-get install python3-grpcio python3-grpc-tools)';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function runClient(port: number, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      python!,
      [script, '--target', `127.0.0.1:${port}`, '--api-key', testApiKey, ...args],
      { timeout: 15_000, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let running: Running | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe('Python client', () => {
  if (python === undefined) console.warn(`python-client.test.ts skipped: ${skipReason}`);

  it.skipIf(python === undefined)('calls Complete with an API key and prints the response as JSON', async () => {
    const handler = fakeCarpoolHandler({
      complete: (call) =>
        Promise.resolve(
          ok({
            requestId: call.request.requestId,
            messageJson: utf8.encode(
              JSON.stringify({
                type: 'message',
                content: [{ type: 'text', text: 'hé ✓' }],
                echo: JSON.parse(fromUtf8.decode(call.request.requestJson)) as unknown,
              }),
            ),
            usage: cannedUsage,
            servedRegion: 'ap-south',
          }),
        ),
    });
    running = await startLoopback({ carpool: handler });
    const body = '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"ping ✓"}]}';
    const run = await runClient(running.port, ['--request-id', 'py-1', '--request-json', body, '--user', 'dora']);

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      request_id: 'py-1',
      message: { type: 'message', content: [{ type: 'text', text: 'hé ✓' }], echo: JSON.parse(body) as unknown },
      usage: { input_tokens: 11, output_tokens: 22, cache_creation_input_tokens: 33, cache_read_input_tokens: 44 },
      served_region: 'ap-south',
    });
    const seen = handler.calls[0]!.call as CarpoolCall<CompleteRequest>;
    expect(seen.credentials.apiKey).toBe(testApiKey);
    expect(seen.request.user).toBe('dora');
    expect(fromUtf8.decode(seen.request.requestJson)).toBe(body);
  });

  it.skipIf(python === undefined)('sees a quota rejection as RESOURCE_EXHAUSTED with its pushback', async () => {
    const handler = fakeCarpoolHandler({
      complete: () =>
        Promise.resolve(err({ kind: 'rejected', rejection: { kind: 'quota', metric: 'requests', limit: 10, window: 'minute', retryAfterMs: 60_000 } })),
    });
    running = await startLoopback({ carpool: handler });
    const run = await runClient(running.port, ['--request-id', 'py-2', '--request-json', '{}']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({
      error: { code: 'RESOURCE_EXHAUSTED', details: 'quota reached: requests is limited to 10 per minute; retry in 1 min', pushback_ms: '60000' },
    });
  });
});
