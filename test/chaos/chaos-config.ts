// The local mesh the crash tests run: three regions, the emulator, and one tenant per consistency
// mode. Shared by the short crash test in `npm test` and by `npm run chaos`.
import { type LocalConfig, parseLocalConfig } from '../../src/local/local-config.js';
import { freePort } from '../support/cluster.js';

export const chaosRegions = ['us-east', 'eu-west', 'ap-south'] as const;
export type ChaosRegion = (typeof chaosRegions)[number];

/** One tenant per mode; strict and escrow bind on requests per minute, so they bind again every minute of a run. */
export const chaosTenants = ['riders', 'strict-co', 'escrow-co'] as const;
export type ChaosTenant = (typeof chaosTenants)[number];

export interface BindingLimit {
  readonly tenant: string;
  readonly mode: 'strict' | 'escrow';
  readonly metric: 'requests';
  readonly window: 'minute';
  readonly limit: number;
}

export interface ChaosMeshShape {
  /** The strict tenant's requests per minute. */
  readonly strictPerMinute: number;
  /** The escrow tenant's requests per minute. */
  readonly escrowPerMinute: number;
  /** The emulator's pace: calls last long enough for a kill to catch some of them running. */
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
}

export function bindingLimits(shape: ChaosMeshShape): BindingLimit[] {
  return [
    { tenant: 'strict-co', mode: 'strict', metric: 'requests', window: 'minute', limit: shape.strictPerMinute },
    { tenant: 'escrow-co', mode: 'escrow', metric: 'requests', window: 'minute', limit: shape.escrowPerMinute },
  ];
}

/**
 * Ports come from the tests' range below the kernel's ephemeral ports (test/support/cluster.ts):
 * a killed node binds its ports again when it restarts, and a port from the ephemeral range could
 * meanwhile have become the local end of one of the many connections the load opens.
 *
 * ap-south has no account of its own, so every call made there is forwarded to us-east or
 * eu-west (an `origin` row there, a `home` row at the account's region); the other two serve
 * their own calls (`local` rows). Every tenant also has eventual daily limits on the token
 * metrics, so the audit compares tokens as well as requests.
 */
export async function chaosMeshConfig(shape: ChaosMeshShape): Promise<LocalConfig> {
  const roomy = (metric: string, limit: number): unknown => ({ metric, window: 'day', limit, mode: 'eventual' });
  const tokenLimits = [roomy('input_tokens', 1_000_000_000), roomy('output_tokens', 1_000_000_000), roomy('weighted_tokens', 1_000_000_000)];
  const binding = (limit: BindingLimit): unknown => ({ metric: limit.metric, window: limit.window, limit: limit.limit, mode: limit.mode });
  const [strict, escrow] = bindingLimits(shape);
  const parsed = parseLocalConfig({
    regions: await Promise.all(
      chaosRegions.map(async (name) => ({
        name,
        meshPort: await freePort(),
        adminPort: await freePort(),
        grpcPort: await freePort(),
        httpPort: await freePort(),
      })),
    ),
    emulator: {
      port: await freePort(),
      seed: 7,
      ttftMs: shape.ttftMs,
      tokensPerSecond: shape.tokensPerSecond,
      accounts: [
        { id: 'acct-east-1', homeRegion: 'us-east', concurrencyMax: 32 },
        { id: 'acct-east-2', homeRegion: 'us-east', concurrencyMax: 32 },
        { id: 'acct-west', homeRegion: 'eu-west', concurrencyMax: 32 },
      ],
    },
    tenants: [
      { id: 'riders', tier: 'paid', concurrencyMax: 64, limits: [roomy('requests', 100_000_000), ...tokenLimits] },
      { id: 'strict-co', tier: 'paid', concurrencyMax: 64, limits: [binding(strict as BindingLimit), ...tokenLimits] },
      { id: 'escrow-co', tier: 'paid', concurrencyMax: 64, limits: [binding(escrow as BindingLimit), ...tokenLimits] },
    ],
  });
  if (!parsed.ok) throw new Error(`the chaos mesh config does not parse: ${JSON.stringify(parsed.error)}`);
  return parsed.value;
}
