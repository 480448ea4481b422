// Proves the operator's observability files against a real node process that served completions:
// deploy/prometheus/alerts.yml passes promtool check rules and its unit tests
// (deploy/prometheus/alerts.test.yml fire every alert on series past its threshold and none just
// under it), every metric a rule reads is one the node exports, and promtool's linter accepts the
// node's scrape; deploy/grafana/carpool-mesh.json is a well-formed dashboard whose every query
// names metrics the node exports or recording rules alerts.yml defines.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/local/local-child.js';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { SoloNode, soloAdminToken } from '../support/solo-node.js';

/** promtool comes with Debian's prometheus package; .ci/run installs it, so CI always runs these. */
const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
if (!hasPromtool) console.warn('observability.test.ts: the promtool tests are skipped: promtool is missing (apt-get install prometheus)');
const rulesDir = join(packageRoot, 'deploy', 'prometheus');
const dashboardPath = join(packageRoot, 'deploy', 'grafana', 'carpool-mesh.json');
const utf8 = new TextEncoder();

/** promtool's output and exit code (it exits non-zero on any problem). */
async function promtool(args: readonly string[], stdin?: string): Promise<{ readonly code: number; readonly output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { cwd: rulesDir, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, output }));
    child.stdin.end(stdin ?? '');
  });
}

/** The metric families a query text reads: every `carpool_…` identifier, a histogram's series named by their family. */
function metricsIn(text: string): string[] {
  const names = new Set<string>();
  for (const match of text.matchAll(/\bcarpool_[a-z0-9_]+/g)) names.add(match[0].replace(/_(bucket|sum|count)$/, ''));
  return [...names].sort();
}

/** Families the node's scrape declares. */
function exportedFamilies(): Set<string> {
  return new Set([...scrape.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1] as string));
}

let solo: SoloNode | undefined;
let scrape = '';

beforeAll(async () => {
  solo = await SoloNode.create();
  solo.writeConfig();
  expect(await solo.start()).toBe('serving');
  await solo.applyPolicy();
  const client = new CarpoolClient({ target: solo.grpcTarget, apiKey: solo.apiKey });
  try {
    for (let i = 0; i < 3; i++) {
      const body = { model: 'claude-sonnet-4-6', max_tokens: 32, messages: [{ role: 'user', content: `scrape me ${i}` }] };
      const answer = await client.complete({
        requestId: `scrape-${i}`,
        requestJson: utf8.encode(JSON.stringify(body)),
        anthropicVersion: '',
        anthropicBeta: '',
        user: '',
      });
      expect(answer.ok).toBe(true);
    }
  } finally {
    client.close();
  }
  const response = await fetch(`${solo.adminUrl}/metrics`, { headers: { authorization: `Bearer ${soloAdminToken}` } });
  expect(response.status).toBe(200);
  scrape = await response.text();
}, 60_000);

afterAll(async () => {
  await solo?.close();
});

describe('the Prometheus rules', () => {
  it('read only metrics a real node exports', () => {
    const exported = exportedFamilies();
    const read = metricsIn(readFileSync(join(rulesDir, 'alerts.yml'), 'utf8'));
    expect(read.length).toBeGreaterThan(10);
    for (const name of read) expect(exported.has(name), `${name} is exported`).toBe(true);
  });
});

describe.skipIf(!hasPromtool)('the Prometheus rules under promtool', () => {
  it('pass promtool check rules', async () => {
    const checked = await promtool(['check', 'rules', 'alerts.yml']);
    expect(checked.output).toContain('SUCCESS');
    expect(checked.code).toBe(0);
  });

  it("pass promtool's unit tests, which fire every alert and none under its threshold", async () => {
    const tested = await promtool(['test', 'rules', 'alerts.test.yml']);
    expect(tested.output).toContain('SUCCESS');
    expect(tested.code).toBe(0);
    // Every alert of the rules has a test that fires it.
    const rules = readFileSync(join(rulesDir, 'alerts.yml'), 'utf8');
    const tests = readFileSync(join(rulesDir, 'alerts.test.yml'), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((match) => match[1]);
    expect(alerts.length).toBeGreaterThan(10);
    for (const alert of alerts) expect(tests, `a test fires ${alert}`).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it("pass promtool's lint of a real node's scrape (prom-client's own default metrics aside)", async () => {
    const checked = await promtool(['check', 'metrics'], scrape);
    const findings = checked.output.split('\n').filter((line) => line.trim() !== '');
    // prom-client names three gauges `nodejs_active_*_total`; ours must be clean.
    expect(findings.filter((line) => !/^nodejs_active_(handles|requests|resources)_total /.test(line))).toEqual([]);
    expect(findings.length).toBeLessThanOrEqual(3);
  });
});

describe('the Grafana dashboard', () => {
  interface Panel {
    readonly id: number;
    readonly type: string;
    readonly title: string;
    readonly gridPos: { readonly x: number; readonly w: number };
    readonly targets?: readonly { readonly expr: string }[];
  }
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };

  it('is well formed: unique panel ids, within 24 columns, every graph with a query, a region variable', () => {
    expect(dashboard.uid).toBe('carpool-mesh');
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type !== 'row') expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(['datasource', 'region']);
  });

  it('queries only metrics a real node exports and recording rules alerts.yml defines', () => {
    const exported = exportedFamilies();
    const rules = readFileSync(join(rulesDir, 'alerts.yml'), 'utf8');
    const recorded = new Set([...rules.matchAll(/- record: (\S+)/g)].map((match) => match[1] as string));
    const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
    for (const name of metricsIn(queries.join('\n'))) expect(exported.has(name), `${name} is exported`).toBe(true);
    const used = queries.flatMap((query) => [...query.matchAll(/\bcarpool:[a-z0-9_:]+/g)].map((match) => match[0]));
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(recorded.has(name), `${name} is a recording rule`).toBe(true);
  });
});
