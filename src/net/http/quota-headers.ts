import type { LimitUsage } from '../grpc/carpool-handler.js';

/**
 * The client's own remaining quota as response headers, one group per metric its tenant (or its
 * user within the tenant) is limited on:
 *
 *   carpool-ratelimit-<metric>-limit       the limit, in the metric's units per window
 *   carpool-ratelimit-<metric>-remaining   what is left now, this request's estimate already taken
 *   carpool-ratelimit-<metric>-reset       when the window turns (RFC 3339, UTC, whole seconds)
 *   carpool-ratelimit-<metric>-window      minute, hour, hour5, day, week or day30, and `sliding`
 *                                          when the limit slides
 *
 * `<metric>` is the policy's metric with `_` as `-`: `requests`, `input-tokens`, `output-tokens`,
 * `weighted-tokens`. When several limits bind one metric (per minute and per day; the tenant's and
 * the user's), the group shows the one with the least remaining, the one a client meets first.
 * The values are this node's merged view, as admission saw it. They are the carpool's limits of the
 * tenant, never the upstream account's: no `anthropic-ratelimit-*` header of an upstream reaches
 * a client, since the front door builds every response itself.
 */
export const quotaHeaderPrefix = 'carpool-ratelimit-';

const headerSafeMetric = /^[a-z0-9_]{1,48}$/;

export function quotaHeadersOf(limits: readonly LimitUsage[]): Record<string, string> {
  const binding = new Map<string, LimitUsage>();
  for (const row of limits) {
    if (!headerSafeMetric.test(row.metric)) continue;
    const held = binding.get(row.metric);
    if (held === undefined || row.remaining < held.remaining || (row.remaining === held.remaining && row.resetsAtMs > held.resetsAtMs))
      binding.set(row.metric, row);
  }
  const headers: Record<string, string> = {};
  for (const [metric, row] of binding) {
    const name = `${quotaHeaderPrefix}${metric.replaceAll('_', '-')}`;
    headers[`${name}-limit`] = String(row.limit);
    headers[`${name}-remaining`] = String(row.remaining);
    headers[`${name}-reset`] = rfc3339Seconds(row.resetsAtMs);
    headers[`${name}-window`] = row.sliding ? `${row.window} sliding` : row.window;
  }
  return headers;
}

function rfc3339Seconds(ms: number): string {
  return `${new Date(Math.ceil(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}
