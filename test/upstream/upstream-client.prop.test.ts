// Proves a recorded SSE response served over a real socket, cut into chunks at random places
// (inside lines, inside multi-byte characters, between \r and \n), yields the same events, the
// same rebuilt message and the same usage as the response sent in one piece.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SseEvent } from '../../src/upstream/sse-parser.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { type LocalUpstream, recordedStream, sseHeaders, startUpstream, writePieces } from './local-upstream.js';

/**
 * fast-check's runner for an async property, with the replay command of test/support/property.ts
 * (which runs synchronous properties only).
 */
async function checkAsyncProperty<Ts>(property: fc.IAsyncProperty<Ts>, runs: number): Promise<void> {
  const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
  const path = process.env.FC_PATH;
  const numRuns = process.env.FC_RUNS === undefined ? runs : Number(process.env.FC_RUNS);
  const details = await fc.check(property, { numRuns, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) });
  if (details.failed) {
    const replay = `FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ''} npx vitest run`;
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\ncause: ${cause}\nreplay: ${replay} <this test file>`);
  }
}

const lf = recordedStream;
const crlf = new TextEncoder().encode(new TextDecoder().decode(recordedStream).replaceAll('\n', '\r\n'));

/** What the next response is made of; the runs are sequential, so one slot serves them all. */
let next: { readonly bytes: Uint8Array; readonly cuts: readonly number[] } = { bytes: lf, cuts: [] };
let server: LocalUpstream;
let client: UpstreamClient;
let target: UpstreamTarget;

beforeAll(async () => {
  server = await startUpstream(async (_req, res) => {
    res.writeHead(200, sseHeaders);
    await writePieces(res, next.bytes, next.cuts);
    res.end();
  });
  client = new UpstreamClient();
  target = { baseUrl: server.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-prop' } };
});

afterAll(async () => {
  await client.close(1_000);
  await server.close();
});

async function run(bytes: Uint8Array, cuts: readonly number[]): Promise<{ events: SseEvent[]; result: unknown }> {
  next = { bytes, cuts: [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b) };
  const events: SseEvent[] = [];
  const result = await client.stream(
    target,
    { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [] } },
    { onEvent: (event) => void events.push(event) },
  );
  return { events, result };
}

describe('UpstreamClient.stream chunking', () => {
  it('gives the same message and usage however the response is cut', async () => {
    const whole = await run(lf, []);
    expect(whole.result).toMatchObject({ ok: true, value: { usage: { input: 25, output: 42, cacheWrite: 100, cacheRead: 2000 } } });
    await checkAsyncProperty(
      fc.asyncProperty(fc.boolean(), fc.array(fc.nat(), { maxLength: 24 }), async (useCrlf, cuts) => {
        const cut = await run(useCrlf ? crlf : lf, cuts);
        expect(cut.result).toEqual(whole.result);
        expect(cut.events).toEqual(whole.events);
      }),
      60,
    );
  });
});
