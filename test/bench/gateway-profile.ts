// A summary of the V8 CPU profile (`--cpu-prof`) of a node run under tsx: the functions with the
// most self time, and the busy time charged to the nearest function of ours on each sampled
// stack (so a library's work counts against the src/ code that asked for it), by file:line.
//
// tsx compiles every .ts file with esbuild into one line (minified whitespace), so a profile's
// positions are columns of that line. They are mapped back by compiling the file again with the
// options tsx uses (node_modules/tsx/dist: target the running node, sourcemap, minifyWhitespace,
// keepNames) and reading the source map; without esbuild, or for a file changed since the
// profile was taken, the line may be off and the function name is what to go by.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

interface Esbuild {
  transformSync(code: string, options: Record<string, unknown>): { code: string; map: string };
}

/**
 * The profile process `pid` wrote into `dir` (`CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`)
 * for its main thread: the largest, since tsx's loader thread writes a small one too.
 */
export function mainThreadProfile(dir: string, pid: number): string | undefined {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile') && name.split('.')[3] === String(pid))
    .map((name) => join(dir, name));
  return files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

const base64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Generated column → source line (0-based) of each segment of the first generated line. */
function firstLineSegments(mappings: string): [number, number][] {
  const segments: [number, number][] = [];
  const firstLine = mappings.split(';')[0] ?? '';
  let column = 0;
  let sourceLine = 0;
  for (const segment of firstLine.split(',')) {
    if (segment === '') continue;
    const values: number[] = [];
    let shift = 0;
    let value = 0;
    for (const char of segment) {
      const digit = base64.indexOf(char);
      value += (digit & 31) << shift;
      if ((digit & 32) !== 0) shift += 5;
      else {
        values.push(value & 1 ? -(value >>> 1) : value >>> 1);
        value = 0;
        shift = 0;
      }
    }
    column += values[0] ?? 0;
    if (values.length >= 4) sourceLine += values[2]!;
    segments.push([column, sourceLine]);
  }
  return segments;
}

function lineMapper(esbuild: Esbuild | undefined): (frame: CallFrame) => string {
  const cache = new Map<string, [number, number][] | undefined>();
  return (frame) => {
    const short = frame.url.replace(/^file:\/\/.*?\/(node_modules|src|test)\//, '$1/');
    if (frame.url === '') return '';
    if (esbuild === undefined || !frame.url.startsWith('file://') || !frame.url.endsWith('.ts') || frame.lineNumber !== 0)
      return `${short}:${frame.lineNumber + 1}`;
    if (!cache.has(frame.url)) {
      try {
        const path = fileURLToPath(frame.url);
        const compiled = esbuild.transformSync(readFileSync(path, 'utf8'), {
          target: `node${process.versions.node}`,
          loader: 'ts',
          format: 'esm',
          sourcemap: 'external',
          minifyWhitespace: true,
          keepNames: true,
          sourcefile: path,
        });
        cache.set(frame.url, firstLineSegments((JSON.parse(compiled.map) as { mappings: string }).mappings));
      } catch {
        cache.set(frame.url, undefined);
      }
    }
    const segments = cache.get(frame.url);
    if (segments === undefined) return `${short}:?`;
    let line: number | undefined;
    for (const [column, sourceLine] of segments) {
      if (column > frame.columnNumber) break;
      line = sourceLine;
    }
    return `${short}:${line === undefined ? '?' : line + 1}`;
  };
}

/** `file:///…/src/`: frames of our own code (grpc-js has a `build/src/` too). */
const srcUrl = new URL('../../src/', import.meta.url).href;
/** `file:///…/dist/`: our own code as the tsc build runs it (GATEWAY_BENCH_COMPILED=1). */
const distUrl = new URL('../../dist/', import.meta.url).href;

/** The path of our own source file a frame runs (`node/mesh-runtime`), or undefined for anyone else's. */
function ownPath(url: string): string | undefined {
  const base = url.startsWith(srcUrl) ? srcUrl : url.startsWith(distUrl) ? distUrl : undefined;
  return base === undefined ? undefined : url.slice(base.length).replace(/\.(ts|js)$/, '');
}

/**
 * The part of the request path a file of ours belongs to, for the profile's breakdown by
 * component (issue 18 asks what the node costs beyond a bare proxy, and where). First match wins.
 */
const components: readonly (readonly [RegExp, string])[] = [
  [
    /^(admission\/(request-auth|api-key|auth-crypto|request-signature|nonce-window|admin-access)|node\/node-auth-crypto|net\/grpc\/metadata-credentials)$/,
    'auth',
  ],
  [/^admission\/(gcra|concurrency|shedder)$/, 'rate limits, concurrency, shedding'],
  [/^(admission\/|node\/gateway\/claim-subject$)/, 'admission (quotas, reservations, id claims)'],
  [/^crdt\//, 'counters (CRDT)'],
  [/^(mesh\/|engine\/|node\/mesh-runtime$)/, 'mesh runtime'],
  [/^(schedule\/|node\/gateway\/call-scheduler$)/, 'queue (tiers)'],
  [/^(pool\/|node\/account-caller$|node\/forward\/)/, 'pool, account calls, forward ledger'],
  [/^upstream\//, 'upstream client (ours, with the undici work it calls)'],
  [/^observe\//, 'metrics (ours, with prom-client)'],
  [/^net\//, 'gRPC / HTTP surface (ours, with the grpc-js or node:http work it calls)'],
  [/^(node\/gateway\/|node\/answer-ledger$)/, 'gateway (validation, answers, settlement)'],
  [/^ledger\//, 'usage ledger'],
];

function componentOf(path: string): string {
  for (const [pattern, name] of components) if (pattern.test(path)) return name;
  return `other src (${path.split('/')[0]})`;
}

/** Where a sample with no frame of ours on its stack goes: the library or runtime layer that ran it alone. */
function unownedComponentOf(layer: string): string {
  if (layer === 'grpc-js' || layer === 'node http2') return 'gRPC transport on its own (grpc-js, http2)';
  if (layer.startsWith('undici')) return 'upstream HTTP client on its own (undici)';
  if (layer === 'prom-client') return 'metrics (ours, with prom-client)';
  return `${layer} on its own`;
}

/** The layer a sampled frame's own time belongs to. */
function layerOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (ownPath(url) !== undefined) return 'our code (src/)';
  if (url.includes('@grpc/')) return 'grpc-js';
  if (url.includes('/undici/')) return 'undici';
  if (url.includes('prom-client')) return 'prom-client';
  if (url.startsWith('node:internal/http2')) return 'node http2';
  if (url.startsWith('node:')) return 'node core (streams, events, net, timers)';
  if (url.startsWith('wasm://')) return 'undici (llhttp wasm)';
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (url === '') return 'V8 builtins and native (JSON, crypto, writev, microtasks)';
  return 'other';
}

/**
 * Prints the summary of `path`, skipping the first `skipMs` of the profile (start-up, warm-up).
 * With `completions` (those the node served over the profiled time) the breakdown by component
 * is given per completion as well.
 */
export async function printProfileSummary(path: string, skipMs: number, top: number, completions?: number): Promise<void> {
  const esbuild = (await import('esbuild').catch(() => undefined)) as Esbuild | undefined;
  const where = lineMapper(esbuild);
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parents.set(child, n.id);
  const names = new Map<number, string>();
  const nameOf = (id: number): string => {
    let name = names.get(id);
    if (name === undefined) {
      const frame = nodes.get(id)!.callFrame;
      name = `${frame.functionName === '' ? '(anonymous)' : frame.functionName} ${where(frame)}`.trim();
      names.set(id, name);
    }
    return name;
  };
  const self = new Map<string, number>();
  const ours = new Map<string, number>();
  const layers = new Map<string, number>();
  const byComponent = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  let atUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i] ?? 0;
    if (atUs < skipMs * 1000) continue;
    const id = profile.samples[i]!;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const leaf = nodes.get(id)!.callFrame.functionName;
    if (leaf === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    self.set(nameOf(id), (self.get(nameOf(id)) ?? 0) + ms);
    const layer = layerOf(nodes.get(id)!.callFrame);
    layers.set(layer, (layers.get(layer) ?? 0) + ms);
    let owner = leaf === '(garbage collector)' || leaf === '(program)' ? leaf : undefined;
    let component = owner;
    // Bounded by the stack's depth: every step goes to the parent, and the root has none.
    for (let at: number | undefined = id; owner === undefined && at !== undefined; at = parents.get(at)) {
      const own = ownPath(nodes.get(at)!.callFrame.url);
      if (own !== undefined) {
        owner = nameOf(at);
        component = componentOf(own);
      }
    }
    owner ??= '(no src/ frame on the stack: grpc-js, undici or node internals on their own)';
    component ??= unownedComponentOf(layer);
    ours.set(owner, (ours.get(owner) ?? 0) + ms);
    byComponent.set(component, (byComponent.get(component) ?? 0) + ms);
  }
  const print = (title: string, table: Map<string, number>): void => {
    console.log(`    ${title}:`);
    for (const [name, ms] of [...table].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`      ${((ms / busyMs) * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${name}`);
    }
  };
  console.log(`  node CPU profile ${path}: ${(busyMs / 1000).toFixed(1)} s busy, ${(idleMs / 1000).toFixed(1)} s idle after the first ${skipMs / 1000} s`);
  print('self time by layer', layers);
  print('top self time', self);
  print('busy time by the nearest src/ function on the stack', ours);
  console.log(
    `    busy time by component (the nearest src/ file on the stack decides; work no file of ours called is its library's)${completions === undefined ? '' : `, per completion over ${completions} completions`}:`,
  );
  for (const [name, ms] of [...byComponent].sort((a, b) => b[1] - a[1])) {
    const perCompletion = completions === undefined || completions === 0 ? '' : `  ${((ms * 1000) / completions).toFixed(0).padStart(5)} µs`;
    console.log(`      ${((ms / busyMs) * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms${perCompletion}  ${name}`);
  }
}
