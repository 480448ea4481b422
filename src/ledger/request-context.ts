import { type InterruptedRequest, metricOfReservation } from '../admission/quota-gate.js';
import type { LedgerRow } from './ledger-row.js';

/**
 * What the gateway tells the quota gate about a request it admits on a durable node (the gate's
 * `context`, kept with the open request): enough for the usage row of a request the node
 * interrupts by dying. JSON; a context that does not decode still yields a row, with what the
 * gate itself knows (tenant, request id, the estimate charged).
 */
export interface RequestContext {
  readonly user: string | null;
  readonly apiKeyId: string | null;
  readonly model: string;
  readonly stream: boolean;
  readonly admittedAtMs: number;
}

export function encodeRequestContext(context: RequestContext): string {
  return JSON.stringify([context.user, context.apiKeyId, context.model, context.stream, context.admittedAtMs]);
}

export function decodeRequestContext(json: string | undefined): RequestContext | undefined {
  if (json === undefined) return undefined;
  try {
    const raw = JSON.parse(json) as unknown;
    if (!Array.isArray(raw) || raw.length !== 5) return undefined;
    const [user, apiKeyId, model, stream, admittedAtMs] = raw as unknown[];
    if ((user !== null && typeof user !== 'string') || (apiKeyId !== null && typeof apiKeyId !== 'string')) return undefined;
    if (typeof model !== 'string' || typeof stream !== 'boolean' || typeof admittedAtMs !== 'number' || !Number.isFinite(admittedAtMs)) return undefined;
    return { user, apiKeyId, model, stream, admittedAtMs };
  } catch {
    return undefined;
  }
}

/**
 * The usage row of a request the node had admitted when it died: outcome `interrupted`,
 * `estimated`, the account unknown. Its tokens are what it stays charged: the reserved estimate
 * on keys of strict and escrow rules, nothing on keys of eventual rules, which were released
 * (src/admission/quota-gate.ts, "Durability"). A request all of whose keys were released shows
 * zero tokens; one with both kinds shows the estimate, which its strict and escrow keys hold (the
 * audit counts interrupted rows on those keys only). None for a request the node had not
 * admitted (withdrawn: it reached no upstream).
 */
export function interruptedRow(ended: InterruptedRequest, node: string, region: string, nowMs: number): LedgerRow | undefined {
  if (ended.settlements.length === 0) return undefined;
  const context = decodeRequestContext(ended.record.context);
  const releasedKeys = new Set(ended.released.map((r) => r.key.id));
  // Per metric: the estimate if some key of it stays charged, else nothing.
  const charged = (metric: string): number => {
    const reservation = ended.record.reservations.find((r) => metricOfReservation(r.requestId) === metric);
    if (reservation === undefined || reservation.keys.every((key) => releasedKeys.has(key.id))) return 0;
    return ended.settlements.find((s) => metricOfReservation(s.requestId) === metric)?.charged ?? 0;
  };
  const admittedAtMs = context?.admittedAtMs ?? Math.min(...ended.record.reservations.map((r) => r.reservedAtMs));
  return {
    requestId: ended.record.requestId,
    role: 'local',
    tenant: ended.record.tenant,
    user: context?.user ?? null,
    apiKeyId: context?.apiKeyId ?? null,
    account: null,
    originRegion: region,
    servedRegion: region,
    node,
    model: context?.model ?? '',
    stream: context?.stream ?? false,
    inputTokens: charged('input_tokens'),
    outputTokens: charged('output_tokens'),
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    weightedTokens: charged('weighted_tokens'),
    costMicros: null,
    outcome: 'interrupted',
    status: 'interrupted',
    estimated: true,
    clientLeft: true,
    drained: false,
    chargedAtMs: admittedAtMs,
    settledAtMs: nowMs,
    durationMs: Math.max(0, nowMs - admittedAtMs),
  };
}
