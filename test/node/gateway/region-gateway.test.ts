// Proves the node's gRPC endpoint lifecycle, from health answering SERVING to a graceful stop.
// Health answers SERVING once the gateway started, and stopping it lets a running stream finish
// within the grace, settles it in full, and leaves nothing running.
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamItem } from '../../../src/net/grpc/carpool-client.js';
import { healthOf } from '../../support/grpc-health.js';
import { until, within } from '../../support/wait.js';
import { closeAll, completion, startHarness, weighted } from './gateway-harness.js';

afterEach(closeAll);

describe('RegionGateway', () => {
  it('reports SERVING once started, for the endpoint and each service', async () => {
    const h = await startHarness();
    for (const service of ['', 'carpool.v1.Carpool', 'carpool.v1.Admin']) expect(await healthOf(h.port, service)).toBe('SERVING');
  });

  it('drains a running stream on stop and settles it in full', async () => {
    // 200 output tokens at 1,000 a second: the stream runs some 200 ms.
    const h = await startHarness({ emulator: { outputTokensMin: 200, outputTokensMax: 200, tokensPerSecond: 1_000 } });
    const items: StreamItem[] = [];
    const reading = (async () => {
      for await (const item of h.client('acme').streamComplete(completion({ maxTokens: 400 }))) items.push(item);
    })();
    await until(() => items.some((item) => item.kind === 'event' && item.event.type === 'content_block_delta'), 'the stream to start');
    await within(h.gateway.stop(5_000), 'the gateway to stop', 6_000);
    await within(reading, 'the stream to end', 1_000);
    expect(items.at(-1)?.kind).toBe('summary');
    expect(h.gateway.carpool.inFlight).toBe(0);
    expect(h.runtime.reservations.openCount).toBe(0);
    const upstream = h.emulatorUsage();
    expect(upstream.output).toBe(200);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    // A stopped endpoint takes no more calls.
    const refused = await h.client('acme').complete(completion(), { deadlineMs: Date.now() + 1_000 });
    expect(refused.ok).toBe(false);
  });
});
