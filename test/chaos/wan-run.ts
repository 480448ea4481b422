// One WAN chaos run: three to five region nodes, each in its own network namespace, every link
// between two of them through a userspace proxy with the design's inter-region round trips
// (sim/scenario.ts), the emulator as every region's upstream. Mixed load from tenants in every
// consistency mode over gRPC and HTTP while a seeded schedule (wan-schedule.ts) partitions the
// mesh in every way the region count allows, makes links lossy and slow, and SIGKILLs nodes that
// the launcher restarts. At the end: the crash run's ledger rules (strict and escrow never over,
// one row per completed request), the eventual limit's overshoot beside its bound, and
// `carpool audit`. `npm run chaos` and the short wan-mesh.test.ts both run this.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalConfig, type LocalRegion, parseLocalConfig } from '../../src/local/local-config.js';
import { type LocalMesh, startLocalMesh } from '../../src/local/local-mesh.js';
import type { NodePlacement } from '../../src/local/local-plan.js';
import { regionNames, rttMatrixMs } from '../../sim/scenario.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';
import type { BindingLimit } from './chaos-config.js';
import { checkLedger, explainAudit, type LedgerFigures } from './chaos-checks.js';
import { ChaosLoad } from './chaos-load.js';
import { type AuditRun, callsCutByDeath, countsOf, failureCodesOf, readLedgers, runAudit } from './chaos-run.js';
import { waitAllServing } from './mesh-waits.js';
import { eventualOvershoot, type EventualLimit, type OvershootFigure } from './wan-books.js';
import { LinkProxy, type ProxyFigures, WanLinks } from './wan-links.js';
import { makeNamespaces, type WanNamespaces } from './wan-netns.js';
import { type WanFault, planWanFaults } from './wan-schedule.js';
import { FaultDriver } from './wan-faults.js';

export interface WanLimits {
  readonly strictPerMinute: number;
  readonly escrowPerMinute: number;
  readonly eventualPerMinute: number;
}

export interface WanRunOptions {
  readonly seed: number;
  /** 3 to 5: the first regions of the design's matrix. */
  readonly regions: number;
  /** How long the load and the faults last. */
  readonly faultsMs: number;
  /** Each partition, and the gap after it, lasts within [min, max] ms. */
  readonly partitionMs: readonly [number, number];
  readonly workers: number;
  readonly requestsMax: number;
  readonly limits: WanLimits;
  readonly log: (line: string) => void;
}

export interface LinkFigures extends ProxyFigures {
  readonly from: string;
  readonly to: string;
  readonly rttMs: number;
}

export interface WanSummary {
  readonly seed: number;
  readonly regions: readonly string[];
  readonly durationMs: number;
  readonly requests: ReturnType<typeof countsOf> & { readonly sent: number };
  readonly failureCodes: readonly (readonly [string, number])[];
  readonly ledger: LedgerFigures & { readonly rows: number };
  readonly faults: readonly string[];
  readonly kills: number;
  readonly restarts: number;
  readonly links: readonly LinkFigures[];
  readonly overshoot: readonly OvershootFigure[];
  readonly audit: AuditRun;
  readonly problems: readonly string[];
}

/** Gossip carries the last charges everywhere after the load: many intervals plus the longest link. */
const quietMs = 3_000;
/** Longest wait, after the faults heal, for every node to serve again. */
const servingAgainMs = 60_000;

export const wanTenants = ['riders', 'strict-co', 'escrow-co', 'eventual-co'] as const;

export function wanBindingLimits(limits: WanLimits): BindingLimit[] {
  return [
    { tenant: 'strict-co', mode: 'strict', metric: 'requests', window: 'minute', limit: limits.strictPerMinute },
    { tenant: 'escrow-co', mode: 'escrow', metric: 'requests', window: 'minute', limit: limits.escrowPerMinute },
  ];
}

export function wanEventualLimit(limits: WanLimits): EventualLimit {
  return { tenant: 'eventual-co', window: 'minute', limit: limits.eventualPerMinute };
}

/**
 * The mesh: the first `count` regions of the matrix. Accounts are homed in the first two, so the
 * others forward every call across a WAN link, and the first two forward some to each other.
 * The emulator listens on the upstream's address (wan-netns.ts), the one every node reaches.
 */
export async function wanMeshConfig(count: number, limits: WanLimits, upstreamHost: string): Promise<LocalConfig> {
  const names = regionNames.slice(0, count);
  const roomy = (metric: string, limit: number): unknown => ({ metric, window: 'day', limit, mode: 'eventual' });
  const tokenLimits = [roomy('input_tokens', 1_000_000_000), roomy('output_tokens', 1_000_000_000), roomy('weighted_tokens', 1_000_000_000)];
  const perMinute = (limit: number, mode: string): unknown => ({ metric: 'requests', window: 'minute', limit, mode });
  const tenant = (id: string, limit: unknown): unknown => ({ id, tier: 'paid', concurrencyMax: 64, limits: [limit, ...tokenLimits] });
  const parsed = parseLocalConfig({
    host: upstreamHost,
    regions: await Promise.all(
      names.map(async (name) => ({ name, meshPort: await freePort(), adminPort: await freePort(), grpcPort: await freePort(), httpPort: await freePort() })),
    ),
    emulator: {
      port: await freePort(),
      seed: 11,
      ttftMs: 20,
      tokensPerSecond: 300,
      accounts: [
        { id: 'acct-a1', homeRegion: names[0], concurrencyMax: 32 },
        { id: 'acct-a2', homeRegion: names[0], concurrencyMax: 32 },
        { id: 'acct-b', homeRegion: names[1], concurrencyMax: 32 },
      ],
    },
    tenants: [
      tenant('riders', roomy('requests', 100_000_000)),
      tenant('strict-co', perMinute(limits.strictPerMinute, 'strict')),
      tenant('escrow-co', perMinute(limits.escrowPerMinute, 'escrow')),
      tenant('eventual-co', perMinute(limits.eventualPerMinute, 'eventual')),
    ],
  });
  if (!parsed.ok) throw new Error(`the WAN mesh config does not parse: ${JSON.stringify(parsed.error)}`);
  return parsed.value;
}

/** The proxies of every directed pair and service, listening at the dialer's link. */
interface Routes {
  readonly proxies: { readonly from: number; readonly to: number; readonly service: 'mesh' | 'grpc'; readonly proxy: LinkProxy }[];
  readonly placement: NodePlacement;
}

async function routeThroughProxies(config: LocalConfig, namespaces: WanNamespaces, links: WanLinks): Promise<Routes> {
  const index = (region: LocalRegion): number => config.regions.indexOf(region);
  const proxies: Routes['proxies'][number][] = [];
  for (const [from, source] of namespaces.regions.entries()) {
    for (const [to, target] of namespaces.regions.entries()) {
      if (from === to) continue;
      const region = config.regions[to] as LocalRegion;
      for (const service of ['mesh', 'grpc'] as const) {
        const targetPort = service === 'mesh' ? region.meshPort : region.grpcPort;
        const proxy = new LinkProxy({ links, from, to, listenHost: source.rootHost, targetHost: target.nodeHost, targetPort });
        await proxy.listen();
        proxies.push({ from, to, service, proxy });
      }
    }
  }
  const portOf = (from: number, to: number, service: 'mesh' | 'grpc'): number =>
    (proxies.find((p) => p.from === from && p.to === to && p.service === service) as Routes['proxies'][number]).proxy.listenPort;
  const net = (region: LocalRegion): WanNamespaces['regions'][number] => namespaces.regions[index(region)] as WanNamespaces['regions'][number];
  return {
    proxies,
    placement: {
      commandPrefix: (region) => namespaces.commandPrefix(index(region)),
      hostOf: (region) => net(region).nodeHost,
      routeOf: (from, to) => ({
        url: `ws://${net(from).rootHost}:${portOf(index(from), index(to), 'mesh')}`,
        grpc: `${net(from).rootHost}:${portOf(index(from), index(to), 'grpc')}`,
      }),
      emulatorUrlFor: () => `http://${namespaces.upstreamHost}:${config.emulator.port}`,
    },
  };
}

export async function runWanChaos(options: WanRunOptions): Promise<WanSummary> {
  const startedMs = Date.now();
  const rttMs = (from: number, to: number): number => (rttMatrixMs[from] as readonly number[])[to] as number;
  const links = new WanLinks(options.regions, rttMs, options.seed);
  const namespaces = await makeNamespaces(options.regions);
  const stateDir = mkdtempSync(join(tmpdir(), 'carpool-wan-'));
  let routes: Routes | undefined;
  let mesh: LocalMesh | undefined;
  try {
    const config = await wanMeshConfig(options.regions, options.limits, namespaces.upstreamHost);
    const names = config.regions.map((region) => region.name);
    routes = await routeThroughProxies(config, namespaces, links);
    const started = await startLocalMesh(config, {
      stateDir,
      placement: routes.placement,
      restartPolicy: { delayMsInitial: 200, delayMsMax: 1_000, stableMs: 60_000 },
    });
    if (!started.ok) throw new Error(`the WAN mesh did not start: ${started.error}`);
    mesh = started.value;
    options.log(`mesh of ${names.join(', ')} up in ${seconds(Date.now() - startedMs)}, each node in its own namespace (state in ${stateDir})`);
    return await loadAndCheck(options, { config, names, links, mesh, routes, startedMs, rttMs });
  } finally {
    await mesh?.stop();
    await Promise.all(routes?.proxies.map(({ proxy }) => proxy.close()) ?? []);
    await namespaces.remove();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface RunContext {
  readonly config: LocalConfig;
  readonly names: readonly string[];
  readonly links: WanLinks;
  readonly mesh: LocalMesh;
  readonly routes: Routes;
  readonly startedMs: number;
  readonly rttMs: (from: number, to: number) => number;
}

async function loadAndCheck(options: WanRunOptions, context: RunContext): Promise<WanSummary> {
  const { mesh, names, links, startedMs } = context;
  const faults: WanFault[] = planWanFaults(options.seed, {
    regions: options.regions,
    faultsStartMs: 2_000,
    faultsEndMs: options.faultsMs - 2_000,
    partitionMs: options.partitionMs,
  });
  const load = new ChaosLoad({
    endpoints: mesh.regions.map((region) => ({ region: region.region, grpc: region.grpc, http: region.http })),
    apiKeys: mesh.apiKeys,
    tenants: wanTenants,
    seed: options.seed,
    workers: options.workers,
    idPrefix: `wan-${options.seed}`,
    requestsMax: options.requestsMax,
    callTimeoutMs: 15_000,
  });
  const driver = new FaultDriver({ links, mesh, names, rttMs: context.rttMs, log: options.log });
  try {
    load.start();
    await driver.run(faults, options.faultsMs);
    await load.stop();
    const problems: string[] = [];
    const notServing = await waitAllServing(mesh, Date.now() + servingAgainMs);
    if (notServing !== undefined) problems.push(`after the faults healed: ${notServing}`);
    await sleep(quietMs);
    const counts = load.counts();
    options.log(`load stopped: ${load.sent.length} requests (${counts.completed} completed, ${counts.refused} refused, ${counts.failed} failed)`);
    const rows = readLedgers(mesh);
    const verdict = checkLedger(load.sent, rows, wanBindingLimits(options.limits));
    const overshoot = eventualOvershoot(rows, wanEventualLimit(options.limits), (from, to) => driver.propagationDelayMs(from, to));
    for (const figure of overshoot) {
      if (figure.overshoot > figure.bound)
        problems.push(
          `${figure.tenant}'s eventual limit was overrun by ${figure.overshoot} in ${figure.window}, beyond its bound of ${figure.bound.toFixed(1)}`,
        );
    }
    const audited = await runAudit(mesh, startedMs);
    const explained =
      audited.lines === undefined
        ? { problems: [`carpool audit exited ${audited.exitCode} without a report: ${audited.output}`], note: 'no report' }
        : explainAudit(audited.lines, load.sent, rows, await callsCutByDeath(mesh));
    options.log(`carpool audit exited ${audited.exitCode}: ${explained.note}`);
    return {
      seed: options.seed,
      regions: names,
      durationMs: Date.now() - startedMs,
      requests: { sent: load.sent.length, ...countsOf(load.sent) },
      failureCodes: failureCodesOf(load.sent),
      ledger: { rows: rows.length, ...verdict.figures },
      faults: driver.applied,
      kills: driver.kills,
      restarts: names.reduce((sum, name) => sum + mesh.restartsOf(name), 0),
      links: linkFigures(context),
      overshoot,
      audit: { exitCode: audited.exitCode, note: explained.note, output: audited.lines === undefined ? audited.output : '' },
      problems: [...driver.problems, ...problems, ...verdict.problems, ...explained.problems],
    };
  } finally {
    driver.stop();
    await load.stop();
    load.close();
  }
}

/** Per directed link, both services together. */
function linkFigures(context: RunContext): LinkFigures[] {
  const figures: LinkFigures[] = [];
  for (const [from, fromName] of context.names.entries()) {
    for (const [to, toName] of context.names.entries()) {
      if (from === to) continue;
      const sum: LinkFigures = {
        from: fromName,
        to: toName,
        rttMs: context.rttMs(from, to),
        connections: 0,
        resets: 0,
        bytes: 0,
        heldChunks: 0,
        delayMsMin: -1,
        delayMsMax: 0,
      };
      for (const { proxy } of context.routes.proxies.filter((p) => p.from === from && p.to === to)) {
        const figures = proxy.figures;
        sum.connections += figures.connections;
        sum.resets += figures.resets;
        sum.bytes += figures.bytes;
        sum.heldChunks += figures.heldChunks;
        if (figures.delayMsMin >= 0) sum.delayMsMin = sum.delayMsMin < 0 ? figures.delayMsMin : Math.min(sum.delayMsMin, figures.delayMsMin);
        sum.delayMsMax = Math.max(sum.delayMsMax, figures.delayMsMax);
      }
      figures.push(sum);
    }
  }
  return figures;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
