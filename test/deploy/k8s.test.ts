// Proves deploy/k8s/ renders to valid Kubernetes objects whose node configs the node accepts.
// There is no cluster and no kustomize binary here: test/deploy/kustomize-lite.ts renders the
// overlays (one-region, three-regions) with the subset of kustomize they use and refuses any
// other feature; every object, and every example Secret, is checked against the Kubernetes and
// Prometheus Operator schemas with unknown fields refused (test/deploy/k8s-schemas.ts). Each pod
// of each region gets its node config through the node's own loader (loadNodeConfig), with
// POD_NAME and the Secrets' files and variables as the manifests provide them, and the config
// agrees with the manifests: member id = pod name, members = every rendered pod by its stable DNS
// name, and the mesh, admin, gRPC and HTTP ports equal the container ports, the Services', the
// NetworkPolicy's, the probes' and the scrape's. The rules of test/deploy/k8s-checks.ts hold
// (security context, drain time, disruption budget, quota, no secret in a ConfigMap), and each
// kind of check is shown to fail on a deliberately broken copy.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IResourceQuota } from 'kubernetes-models/v1/ResourceQuota';
import type { IService } from 'kubernetes-models/v1/Service';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/local/local-child.js';
import {
  configMapSecretProblems,
  type Deployment,
  loadPodConfigs,
  namespaceProblems,
  nodeContainer,
  podConfigProblems,
  podSpecProblems,
  quotaProblems,
  statefulSets,
  wiringProblems,
} from './k8s-checks.js';
import { schemaProblems } from './k8s-schemas.js';
import { isMap, type K8sObject, KustomizeLiteError, readYamlDocuments, renderKustomization } from './kustomize-lite.js';

const k8sDir = join(packageRoot, 'deploy', 'k8s');
const namespace = 'carpool';
const overlays = ['one-region', 'three-regions'] as const;
const regions = { 'one-region': ['us-east'], 'three-regions': ['us-east', 'eu-west', 'ap-south'] } as const;
const exampleSecrets = readYamlDocuments(join(k8sDir, 'example-secrets.yaml')) as K8sObject[];

function deploymentOf(overlay: (typeof overlays)[number]): Deployment {
  return { namespace, objects: renderKustomization(join(k8sDir, 'overlays', overlay)), secrets: exampleSecrets };
}

const scratch = mkdtempSync(join(tmpdir(), 'carpool-k8s-'));
let scratchRuns = 0;
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh folder for one load of every pod's files. */
function podRoot(): string {
  return join(scratch, `run-${scratchRuns++}`);
}

/** Every problem of a deployment: the pods' configs as loaded by the node, and every rule. */
async function allProblems(deployment: Deployment): Promise<string[]> {
  const { pods, problems } = await loadPodConfigs(deployment, podRoot());
  return [
    ...problems,
    ...podConfigProblems(deployment, pods),
    ...wiringProblems(deployment),
    ...podSpecProblems(deployment),
    ...quotaProblems(deployment),
    ...configMapSecretProblems(deployment),
    ...namespaceProblems(deployment),
  ];
}

function writeFiles(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

describe('kustomize-lite', () => {
  const base = {
    'base/kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [objects.yaml]\n',
    'base/objects.yaml': [
      'apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {a: "1"}}\nspec: {ports: [{port: 1}]}',
      'apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {pods: "1", requests.cpu: "1"}}',
    ].join('\n---\n'),
    'overlay/ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n',
    'overlay/patch.yaml': 'apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {pods: "5"}}\n',
    'overlay/a.json': '{"x": 1}\n',
    'overlay/b.txt': 'mode 0440\n',
  };
  const overlay = [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'namespace: ns',
    'labels: [{pairs: {team: t}}]',
    'resources: [ns.yaml, ../base]',
    'patches: [{path: patch.yaml}]',
    'generatorOptions: {disableNameSuffixHash: true}',
    'configMapGenerator: [{name: c, files: [key.json=a.json, b.txt]}]',
  ].join('\n');

  function render(files: Record<string, string>): K8sObject[] {
    const root = mkdtempSync(join(scratch, 'kustomize-'));
    writeFiles(root, { ...base, 'overlay/kustomization.yaml': overlay, ...files });
    return renderKustomization(join(root, 'overlay'));
  }

  it('renders resources, generated ConfigMaps, a patch, the namespace and labels as kustomize does', () => {
    expect(render({})).toEqual([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns', labels: { team: 't' } } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', namespace: 'ns', labels: { a: '1', team: 't' } }, spec: { ports: [{ port: 1 }] } },
      {
        apiVersion: 'v1',
        kind: 'ResourceQuota',
        metadata: { name: 'q', namespace: 'ns', labels: { team: 't' } },
        spec: { hard: { pods: '5', 'requests.cpu': '1' } },
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'c', namespace: 'ns', labels: { team: 't' } },
        data: { 'key.json': '{"x": 1}\n', 'b.txt': 'mode 0440\n' },
      },
    ]);
  });

  it('refuses every kustomize feature it does not render, and what kustomize refuses', () => {
    const refusals: [Record<string, string>, RegExp][] = [
      [{ 'overlay/kustomization.yaml': `${overlay}\nimages: [{name: x, newTag: "2"}]` }, /field images is not rendered/],
      [{ 'overlay/kustomization.yaml': `${overlay}\ncommonLabels: {a: b}` }, /field commonLabels is not rendered/],
      [{ 'overlay/kustomization.yaml': overlay.replace('generatorOptions: {disableNameSuffixHash: true}', '') }, /disableNameSuffixHash: true/],
      [{ 'overlay/kustomization.yaml': overlay.replace('{pairs: {team: t}}', '{pairs: {team: t}, includeSelectors: true}') }, /only \{ pairs \}/],
      [{ 'overlay/patch.yaml': 'apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {scopes: [x]}\n' }, /a list's strategic merge/],
      [{ 'overlay/patch.yaml': 'apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: other}\nspec: {}\n' }, /matches 0 objects/],
      [{ 'overlay/kustomization.yaml': overlay.replace('b.txt]', '../base/objects.yaml]') }, /outside the kustomization's folder/],
      [
        { 'overlay/kustomization.yaml': overlay.replace('[ns.yaml, ../base]', '[ns.yaml, ../base, ../base/objects.yaml]') },
        /outside the kustomization's folder/,
      ],
      [{ 'overlay/ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n' }, /is not the namespace ns/],
      [{ 'overlay/ns.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n' }, /kind Deployment is not known/],
      [{ 'overlay/ns.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n' }, /v1\/Service\/\/s is defined twice/],
    ];
    for (const [files, message] of refusals) {
      expect(() => render(files)).toThrow(KustomizeLiteError);
      expect(() => render(files)).toThrow(message);
    }
  });
});

describe('deploy/k8s: the Kubernetes schemas', () => {
  it('accepts every object of each overlay and every example Secret, unknown fields refused', () => {
    for (const overlay of overlays) {
      const { objects } = deploymentOf(overlay);
      for (const object of objects)
        expect([`${object.kind} ${object.metadata.name}`, schemaProblems(object)]).toEqual([`${object.kind} ${object.metadata.name}`, []]);
    }
    for (const secret of exampleSecrets) expect(schemaProblems(secret)).toEqual([]);
    const kinds = new Set(deploymentOf('three-regions').objects.map((o) => o.kind));
    const expected = [
      'ConfigMap',
      'LimitRange',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'ResourceQuota',
      'Service',
      'ServiceAccount',
      'ServiceMonitor',
    ];
    expect([...kinds].sort()).toEqual([...expected, 'StatefulSet'].sort());
  });

  it('refuses a misspelt field, a wrong type and a bad quantity, in core kinds and in the CRD', () => {
    const { objects } = deploymentOf('one-region');
    const set = structuredClone(statefulSets({ namespace, objects, secrets: [] })[0]!);
    const container = nodeContainer(set) as unknown as Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    expect(schemaProblems(set)).toEqual(['data/spec/template/spec/containers/0/readinesProbe is not a field of the schema']);
    delete container.readinesProbe;
    (set.spec as unknown as Record<string, unknown>).replicas = '3';
    nodeContainer(set).resources!.limits!.cpu = '2 cores';
    expect(schemaProblems(set).join()).toMatch(/spec\/replicas must be integer.*limits\/cpu must match format "quantity"/);
    const monitor = structuredClone(objects.find((o) => o.kind === 'ServiceMonitor')) as unknown as IServiceMonitor;
    const endpoint = monitor.spec.endpoints[0] as unknown as Record<string, unknown>;
    endpoint.relabellings = endpoint.relabelings;
    expect(schemaProblems(monitor)).toEqual(['data/spec/endpoints/0/relabellings is not a field of the schema']);
    expect(schemaProblems({ apiVersion: 'apps/v1', kind: 'Deployment' })).toEqual(['no schema for apps/v1 Deployment']);
  });
});

describe.each(overlays)('deploy/k8s/overlays/%s', (overlay) => {
  const deployment = deploymentOf(overlay);

  it("gives every pod a config the node's own loader accepts, agreeing with the manifests", async () => {
    const { pods, problems } = await loadPodConfigs(deployment, podRoot());
    expect(problems).toEqual([]);
    expect(pods.map((p) => p.pod)).toEqual(regions[overlay].flatMap((region) => [0, 1, 2].map((i) => `carpool-${region}-${i}`)));
    for (const { pod, loaded } of pods) expect([pod, loaded.config.node, loaded.config.members.length]).toEqual([pod, pod, pods.length]);
    expect(podConfigProblems(deployment, pods)).toEqual([]);
  });

  it('wires the Services, the NetworkPolicy and the probes to the container ports', () => {
    expect(wiringProblems(deployment)).toEqual([]);
  });

  it('keeps the security, drain, disruption budget and resource rules, within the quota', () => {
    expect(podSpecProblems(deployment)).toEqual([]);
    expect(quotaProblems(deployment)).toEqual([]);
    expect(namespaceProblems(deployment)).toEqual([]);
  });

  it('keeps every secret out of the ConfigMaps and out of the render', () => {
    expect(configMapSecretProblems(deployment)).toEqual([]);
  });
});

describe('deploy/k8s: the checks fail on a broken copy', () => {
  const three = deploymentOf('three-regions');

  function broken(mutate: (objects: K8sObject[]) => void): Deployment {
    const objects = structuredClone(three.objects) as K8sObject[];
    mutate(objects);
    return { ...three, objects };
  }
  const find = <T>(objects: K8sObject[], kind: string, name: string): T => objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as T;
  const config = (objects: K8sObject[], region: string): IConfigMap => find<IConfigMap>(objects, 'ConfigMap', `carpool-${region}-config`);
  const editConfig = (objects: K8sObject[], region: string, edit: (json: Record<string, unknown>) => void): void => {
    const data = config(objects, region).data!;
    const json = JSON.parse(data['node.json']!) as Record<string, unknown>;
    edit(json);
    data['node.json'] = JSON.stringify(json);
  };

  it('sees a mesh port that differs between the headless Service, the NetworkPolicy, the config and the container', async () => {
    const service = broken((o) => (find<IService>(o, 'Service', 'carpool-mesh').spec!.ports![0]!.port = 7402));
    expect(wiringProblems(service).join('\n')).toMatch(/headless Service's mesh port 7402 is not the container's/);
    const policy = broken((o) => (find<INetworkPolicy>(o, 'NetworkPolicy', 'carpool-mesh').spec!.ingress![0]!.ports![0]!.port = 7402));
    expect(wiringProblems(policy).join('\n')).toMatch(/no ingress rule lets peers reach the mesh port 7401/);
    const container = broken((o) => (nodeContainer(statefulSets({ ...three, objects: o })[1]!).ports![0]!.containerPort = 7402));
    expect(await allProblems(container)).toEqual(
      expect.arrayContaining([
        "carpool-eu-west-0: the config's mesh port 7401 is not the container port 7402",
        expect.stringMatching(
          /^carpool-us-east-0: member carpool-eu-west-0's url ws:\/\/carpool-eu-west-0\.carpool-mesh\.carpool\.svc\.cluster\.local:7401 is not/,
        ),
      ]),
    );
  });

  it('sees the mesh port opened beyond mesh pods and the admin port beyond monitoring', () => {
    const open = broken((o) => delete find<INetworkPolicy>(o, 'NetworkPolicy', 'carpool-mesh').spec!.ingress![0]!.from);
    expect(wiringProblems(open).join('\n')).toMatch(/opens the mesh port to more than mesh pods/);
    const admin = broken((o) => find<INetworkPolicy>(o, 'NetworkPolicy', 'carpool-mesh').spec!.ingress![1]!.ports!.push({ protocol: 'TCP', port: 8401 }));
    expect(wiringProblems(admin).join('\n')).toMatch(/opens the admin port beyond the monitoring namespace/);
  });

  it('sees a secret in a ConfigMap, a Secret in the render, and a Secret that does not exist', async () => {
    const inline = broken((o) => editConfig(o, 'eu-west', (json) => (json.adminToken = 'an-inline-admin-token-0123')));
    expect(configMapSecretProblems(inline)).toEqual(['ConfigMap carpool-eu-west-config node.json: "adminToken" is a secret given inline']);
    const copied = broken((o) => (config(o, 'us-east').data!.extra = 'PLACEHOLDER-mesh-secret-replace-me'));
    expect(configMapSecretProblems(copied)).toEqual(['ConfigMap carpool-us-east-config extra holds the value of a Secret']);
    const rendered = broken((o) => o.push(exampleSecrets[0]!));
    expect(configMapSecretProblems(rendered)).toEqual(['the overlay renders a Secret: `kubectl apply -k` would overwrite the real one']);
    const missing = { ...three, secrets: exampleSecrets.filter((s) => s.metadata.name !== 'carpool-metrics-token') };
    expect((await allProblems(missing)).join('\n')).toMatch(/reads the Secret carpool-metrics-token, which does not exist/);
  });

  it('sees readiness off the gRPC health, liveness on it, a root user, a short grace, a stray budget, a small quota', () => {
    const problemsOf = (mutate: (objects: K8sObject[]) => void): string =>
      [...podSpecProblems(broken(mutate)), ...wiringProblems(broken(mutate)), ...quotaProblems(broken(mutate))].join('\n');
    const container = (o: K8sObject[]): ReturnType<typeof nodeContainer> => nodeContainer(statefulSets({ ...three, objects: o })[0]!);
    expect(problemsOf((o) => (container(o).readinessProbe = { tcpSocket: { port: 9401 } }))).toMatch(/readiness is not the node's grpc.health.v1 status/);
    expect(problemsOf((o) => (container(o).livenessProbe = { grpc: { port: 9401 } }))).toMatch(/liveness must not follow quorum/);
    expect(problemsOf((o) => (statefulSets({ ...three, objects: o })[0]!.spec!.template.spec!.securityContext!.runAsUser = 0))).toMatch(
      /numeric non-root user/,
    );
    expect(problemsOf((o) => (statefulSets({ ...three, objects: o })[0]!.spec!.template.spec!.terminationGracePeriodSeconds = 30))).toMatch(
      /under the 40 s the drain needs/,
    );
    expect(problemsOf((o) => (statefulSets({ ...three, objects: o })[1]!.spec!.template.spec!.volumes![1]!.name = 'tmpx'))).toMatch(
      /mount \/tmp names no volume \(tmp\)/,
    );
    const budget = (o: K8sObject[]): IPodDisruptionBudget => find<IPodDisruptionBudget>(o, 'PodDisruptionBudget', 'carpool-eu-west');
    expect(problemsOf((o) => (budget(o).spec!.selector!.matchLabels!['carpool-mesh/region'] = 'us-east'))).toMatch(
      /carpool-us-east: 2 PodDisruptionBudgets select its pods[^]*carpool-eu-west: 0 PodDisruptionBudgets/,
    );
    const quota = (o: K8sObject[]): IResourceQuota => find<IResourceQuota>(o, 'ResourceQuota', 'carpool-mesh');
    expect(problemsOf((o) => (quota(o).spec!.hard!['limits.cpu'] = '8'))).toMatch(/the ResourceQuota's limits.cpu 8 is under the 18 the nodes need/);
  });

  it("sees members that miss a pod, a member id not from the pod name, and a scrape the node's Host check refuses", async () => {
    const fewer = broken((o) =>
      editConfig(o, 'ap-south', (json) => (json.members = (json.members as { id: string }[]).filter((m) => m.id !== 'carpool-us-east-2'))),
    );
    expect((await allProblems(fewer)).join('\n')).toMatch(/carpool-ap-south-0: members .* are not the rendered pods/);
    const fixed = broken((o) => editConfig(o, 'us-east', (json) => (json.node = 'carpool-us-east-0')));
    expect(await allProblems(fixed)).toEqual([
      'carpool-us-east-1: its member id is carpool-us-east-0, not its pod name',
      'carpool-us-east-2: its member id is carpool-us-east-0, not its pod name',
    ]);
    const scrape = broken(
      (o) => (find<IServiceMonitor>(o, 'ServiceMonitor', 'carpool-mesh').spec.endpoints[0]!.relabelings![0]!.replacement = '$1.carpool-mesh.$2.svc:8401'),
    );
    expect((await allProblems(scrape)).join('\n')).toMatch(
      /carpool-us-east-0: Prometheus scrapes it as carpool-us-east-0\.carpool-mesh\.carpool\.svc:8401, a Host its admin endpoint refuses/,
    );
    const unset = broken((o) => (nodeContainer(statefulSets({ ...three, objects: o })[2]!).env = []));
    expect((await allProblems(unset)).join('\n')).toMatch(
      /carpool-ap-south-0: .*field node: takes the member id from the environment variable POD_NAME, which is not set/,
    );
  });
});

describe('deploy/k8s/regions', () => {
  it("holds each region as us-east's files with the region's name in place", () => {
    const dir = join(k8sDir, 'regions');
    const template = readdirSync(join(dir, 'us-east')).sort();
    expect(readdirSync(dir).sort()).toEqual(['ap-south', 'eu-west', 'us-east']);
    for (const region of readdirSync(dir)) {
      expect(readdirSync(join(dir, region)).sort()).toEqual(template);
      for (const file of template) {
        const expected = readFileSync(join(dir, 'us-east', file), 'utf8').replaceAll('us-east', region);
        expect([region, file, readFileSync(join(dir, region, file), 'utf8')]).toEqual([region, file, expected]);
      }
    }
    for (const [overlay, names] of Object.entries(regions)) {
      const objects = renderKustomization(join(k8sDir, 'overlays', overlay)).filter((o) => isMap(o) && o.kind === 'StatefulSet');
      expect(objects.map((o) => o.metadata.name)).toEqual(names.map((name) => `carpool-${name}`));
    }
  });
});
