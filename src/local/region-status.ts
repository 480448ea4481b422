/**
 * The launcher's live status line per region, from the node's `GET /status`: requests per
 * second (the difference of the cumulative `gateway.requests` between two samples), queue depth,
 * calls in flight, and mesh peers connected. A node without the `gateway` section (an older
 * build) or one that does not answer prints `-` for what it lacks. Pure: the caller fetches and
 * passes the time.
 */
export interface RegionSample {
  readonly atMs: number;
  /** False when the status could not be read at all. */
  readonly reachable: boolean;
  readonly requests: number | undefined;
  readonly queueDepth: number | undefined;
  readonly inFlight: number | undefined;
  readonly peersConnected: number | undefined;
  readonly peersTotal: number | undefined;
}

export function unreachableSample(atMs: number): RegionSample {
  return { atMs, reachable: false, requests: undefined, queueDepth: undefined, inFlight: undefined, peersConnected: undefined, peersTotal: undefined };
}

/** Reads a `GET /status` body, taking only numbers it finds where they belong. */
export function sampleOf(body: unknown, atMs: number): RegionSample {
  const status = isRecord(body) ? body : {};
  const gateway = isRecord(status.gateway) ? status.gateway : {};
  const peers = Array.isArray(status.peers) ? (status.peers as unknown[]) : undefined;
  return {
    atMs,
    reachable: true,
    requests: countOf(gateway.requests),
    queueDepth: countOf(gateway.queueDepth),
    inFlight: countOf(gateway.inFlight),
    peersConnected: peers?.filter((peer) => isRecord(peer) && peer.connected === true).length,
    peersTotal: peers?.length,
  };
}

/** Requests per second between two samples, when both carry the count and time moved on. */
export function requestsPerSecond(previous: RegionSample | undefined, current: RegionSample): number | undefined {
  if (previous?.requests === undefined || current.requests === undefined) return undefined;
  const elapsedMs = current.atMs - previous.atMs;
  if (elapsedMs <= 0 || current.requests < previous.requests) return undefined;
  return ((current.requests - previous.requests) * 1000) / elapsedMs;
}

/** `us-east    2.5 req/s  queue 0  in flight 1  peers 2/2`, the name padded to `nameWidth`. */
export function formatRegionStatus(region: string, nameWidth: number, previous: RegionSample | undefined, current: RegionSample): string {
  const name = region.padEnd(nameWidth);
  if (!current.reachable) return `${name}  not answering on its admin endpoint`;
  const rate = requestsPerSecond(previous, current);
  const rateText = (rate === undefined ? '-' : rate.toFixed(1)).padStart(6);
  const peers = current.peersTotal === undefined ? '-' : `${current.peersConnected ?? 0}/${current.peersTotal}`;
  return `${name}  ${rateText} req/s  queue ${dash(current.queueDepth)}  in flight ${dash(current.inFlight)}  peers ${peers}`;
}

function dash(value: number | undefined): string {
  return value === undefined ? '-' : String(value);
}

function countOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
