/**
 * The launcher's status line per region, from the node's `GET /status`: requests per second (the
 * difference of the cumulative `gateway.requests` between two samples), queue depth, calls in
 * flight, and mesh peers connected. A node without the `gateway` section (an older build) or one
 * that does not answer prints `-` for what it lacks.
 *
 * When lines are printed (`StatusSchedule`): the launcher reads every region often (about once a
 * second), but prints a region's line only when something a reader acts on changed since its
 * last line (it stopped or started answering, it restarted, its connected peers changed, its
 * queue started or stopped holding requests), plus every region's line every `everyMs`
 * (`--status-every`, 30 s by default; 0 prints on change only). A busy mesh's rates and in-flight
 * counts move all the time; they show in the periodic lines rather than scrolling the endpoints
 * away. Pure: the caller fetches and passes the time.
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
  /** The node's replica id: a new one means the node restarted. */
  readonly replica: string | undefined;
}

export function unreachableSample(atMs: number): RegionSample {
  return {
    atMs,
    reachable: false,
    requests: undefined,
    queueDepth: undefined,
    inFlight: undefined,
    peersConnected: undefined,
    peersTotal: undefined,
    replica: undefined,
  };
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
    replica: typeof status.replica === 'string' ? status.replica : undefined,
  };
}

/** Requests per second between two samples, when both carry the count and time moved on. */
export function requestsPerSecond(previous: RegionSample | undefined, current: RegionSample): number | undefined {
  if (previous?.requests === undefined || current.requests === undefined) return undefined;
  // A restarted node counts from zero again: its count is not comparable with the last one's.
  if (previous.replica !== current.replica) return undefined;
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
  return `${name}  ${rateText} req/s  queue ${dash(current.queueDepth)}  in flight ${dash(current.inFlight)}  peers ${peersOf(current)}`;
}

/**
 * What changed between a region's last printed sample and the current one that is worth a line
 * of its own, in words (`peers were 2/2`); undefined when nothing did.
 */
export function statusChange(printed: RegionSample | undefined, current: RegionSample): string | undefined {
  if (printed === undefined) return 'first status';
  if (printed.reachable !== current.reachable) return current.reachable ? 'answering again' : 'stopped answering';
  if (!current.reachable) return undefined;
  const reasons: string[] = [];
  if (printed.replica !== undefined && current.replica !== undefined && printed.replica !== current.replica) reasons.push('restarted');
  if (printed.peersConnected !== current.peersConnected || printed.peersTotal !== current.peersTotal) reasons.push(`peers were ${peersOf(printed)}`);
  const wasQueued = (printed.queueDepth ?? 0) > 0;
  const isQueued = (current.queueDepth ?? 0) > 0;
  if (wasQueued !== isQueued) reasons.push(isQueued ? 'requests queue' : 'queue empty');
  return reasons.length === 0 ? undefined : reasons.join(', ');
}

/**
 * Decides which status lines to print, given every region's sample at each poll; see the top of
 * this file. The first poll prints every region.
 */
export class StatusSchedule {
  private readonly printed = new Map<string, RegionSample>();
  /** The last reachable sample printed per region, the base of the next rate. */
  private readonly rateBase = new Map<string, RegionSample>();
  private lastAllMs: number | undefined;
  private readonly nameWidth: number;

  /** `everyMs` 0: print on change only. */
  constructor(
    private readonly regions: readonly string[],
    private readonly everyMs: number,
  ) {
    this.nameWidth = Math.max(0, ...regions.map((region) => region.length));
  }

  /** The lines to print now; `samples` in the order of the regions. */
  lines(nowMs: number, samples: readonly RegionSample[]): string[] {
    const all = this.lastAllMs === undefined || (this.everyMs > 0 && nowMs - this.lastAllMs >= this.everyMs);
    if (all) this.lastAllMs = nowMs;
    const lines: string[] = [];
    for (const [i, region] of this.regions.entries()) {
      const sample = samples[i];
      if (sample === undefined) continue;
      const change = statusChange(this.printed.get(region), sample);
      if (!all && change === undefined) continue;
      const line = formatRegionStatus(region, this.nameWidth, this.rateBase.get(region), sample);
      lines.push(change === undefined || change === 'first status' ? line : `${line}  (${change})`);
      this.printed.set(region, sample);
      if (sample.reachable) this.rateBase.set(region, sample);
    }
    return lines;
  }
}

function peersOf(sample: RegionSample): string {
  return sample.peersTotal === undefined ? '-' : `${sample.peersConnected ?? 0}/${sample.peersTotal}`;
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
