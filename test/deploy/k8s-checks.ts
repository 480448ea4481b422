import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { ILimitRange } from 'kubernetes-models/v1/LimitRange';
import type { IResourceQuota } from 'kubernetes-models/v1/ResourceQuota';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { upstreamCloseGraceMs } from '../../src/core/limits.js';
import { allowedHostsOf } from '../../src/net/admin-http.js';
import { type LoadedNodeConfig, loadNodeConfig } from '../../src/node/run-node.js';
import { isMap, type K8sObject } from './kustomize-lite.js';

/**
 * The rules deploy/k8s/ must keep, as functions from a rendered overlay to a list of problems
 * (empty when it keeps them), so test/deploy/k8s.test.ts can assert both that the real manifests
 * keep every rule and that a broken copy is caught.
 */

/** A rendered overlay and the Secrets the cluster holds beside it (the examples, in tests). */
export interface Deployment {
  readonly namespace: string;
  readonly objects: readonly K8sObject[];
  readonly secrets: readonly K8sObject[];
}

/** The ports a node serves, by the container port names the manifests use. */
export const portNames = ['mesh', 'admin', 'grpc', 'http'] as const;
type PortName = (typeof portNames)[number];

export const image = 'carpool-mesh:0.1.0';
const regionLabel = 'carpool-mesh/region';
const meshLabel = 'app.kubernetes.io/name';

function ofKind<T>(deployment: Deployment, kind: string): T[] {
  return deployment.objects.filter((o) => o.kind === kind) as unknown as T[];
}

export function statefulSets(deployment: Deployment): IStatefulSet[] {
  return ofKind<IStatefulSet>(deployment, 'StatefulSet');
}

function named<T extends { metadata?: { name?: string } }>(items: readonly T[], name: string | undefined): T | undefined {
  return items.find((item) => item.metadata?.name === name);
}

export function nodeContainer(set: IStatefulSet): IContainer {
  const container = set.spec?.template.spec?.containers.find((c) => c.name === 'node');
  if (container === undefined) throw new Error(`${set.metadata?.name}: no container named node`);
  return container;
}

export function podNames(set: IStatefulSet): string[] {
  return Array.from({ length: set.spec?.replicas ?? 1 }, (_, i) => `${set.metadata?.name}-${i}`);
}

function podLabels(set: IStatefulSet): Record<string, string> {
  return set.spec?.template.metadata?.labels ?? {};
}

function containerPort(set: IStatefulSet, name: PortName): number | undefined {
  return nodeContainer(set).ports?.find((port) => port.name === name)?.containerPort;
}

/** Whether a matchLabels selector (the only form the manifests use) selects these labels. */
export function selects(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** A Kubernetes quantity as a number: cores for CPU, bytes for memory and storage. */
export function quantity(text: string | number | undefined): number {
  if (typeof text === 'number') return text;
  const match = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text ?? '');
  if (match === null) return Number.NaN;
  const scale: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (match[2] === undefined ? 1 : (scale[match[2]] ?? Number.NaN));
}

/** A Secret's values by key, from `stringData` or base64 `data`. */
export function secretValues(secret: K8sObject): Record<string, string> {
  const values: Record<string, string> = {};
  if (isMap(secret.data)) for (const [key, value] of Object.entries(secret.data)) values[key] = Buffer.from(String(value), 'base64').toString('utf8');
  if (isMap(secret.stringData)) for (const [key, value] of Object.entries(secret.stringData)) values[key] = String(value);
  return values;
}

function secretValue(deployment: Deployment, name: string | undefined, key: string, user: string): string | { problem: string } {
  const secret = deployment.secrets.find((s) => s.metadata.name === name);
  if (secret === undefined) return { problem: `${user} reads the Secret ${name}, which does not exist` };
  const value = secretValues(secret)[key];
  return value === undefined ? { problem: `${user} reads key ${key} of the Secret ${name}, which it lacks` } : value;
}

/**
 * A pod's view: its environment and the files of its ConfigMap, Secret and projected volumes,
 * written under `root` at their mount paths, as the kubelet would lay them out.
 */
export function podView(deployment: Deployment, set: IStatefulSet, pod: string, root: string): { env: Record<string, string>; problems: string[] } {
  const container = nodeContainer(set);
  const problems: string[] = [];
  const env: Record<string, string> = {};
  const read = (name: string | undefined, key: string, user: string): string | undefined => {
    const value = secretValue(deployment, name, key, user);
    if (typeof value === 'string') return value;
    problems.push(value.problem);
    return undefined;
  };
  for (const from of container.envFrom ?? []) {
    const secret = deployment.secrets.find((s) => s.metadata.name === from.secretRef?.name);
    if (from.configMapRef !== undefined || secret === undefined) problems.push(`${pod}: envFrom must name an existing Secret (${from.secretRef?.name})`);
    else Object.assign(env, secretValues(secret));
  }
  for (const variable of container.env ?? []) {
    const source = variable.valueFrom;
    if (source === undefined) env[variable.name] = variable.value ?? '';
    else if (source.fieldRef?.fieldPath === 'metadata.name') env[variable.name] = pod;
    else if (source.secretKeyRef !== undefined) {
      const value = read(source.secretKeyRef.name, source.secretKeyRef.key, `${pod} env ${variable.name}`);
      if (value !== undefined) env[variable.name] = value;
    } else problems.push(`${pod}: env ${variable.name} has a source the test does not model`);
  }
  for (const mount of container.volumeMounts ?? []) {
    const volume = set.spec?.template.spec?.volumes?.find((v) => v.name === mount.name);
    if (volume?.configMap !== undefined || volume?.secret !== undefined) problems.push(`${pod}: volume ${mount.name}: only projected volumes are modelled`);
    for (const source of volume?.projected?.sources ?? []) {
      for (const item of source.configMap?.items ?? []) {
        const map = deployment.objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === source.configMap?.name);
        const text = isMap(map?.data) ? map.data[item.key] : undefined;
        if (typeof text !== 'string') problems.push(`${pod}: ConfigMap ${source.configMap?.name} has no key ${item.key}`);
        else writeAt(join(root, mount.mountPath, item.path), text);
      }
      for (const item of source.secret?.items ?? []) {
        const value = read(source.secret?.name, item.key, `${pod} volume ${mount.name}`);
        if (value !== undefined) writeAt(join(root, mount.mountPath, item.path), value);
      }
      if ((source.configMap !== undefined && source.configMap.items === undefined) || (source.secret !== undefined && source.secret.items === undefined)) {
        problems.push(`${pod}: volume ${mount.name}: a source without items is not modelled`);
      }
    }
  }
  return { env, problems };
}

function writeAt(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** The config path a container's arguments give (`--config FILE`). */
export function configPathOf(container: IContainer): string | undefined {
  const args = container.args ?? [];
  const at = args.indexOf('--config');
  return at < 0 ? undefined : args[at + 1];
}

/** One pod's node config, loaded by the node's own loader from the pod's files and environment. */
export interface PodConfig {
  readonly set: IStatefulSet;
  readonly pod: string;
  readonly loaded: LoadedNodeConfig;
}

/** Loads every pod's config as the node would; problems for those that do not load. */
export async function loadPodConfigs(deployment: Deployment, root: string): Promise<{ pods: PodConfig[]; problems: string[] }> {
  const pods: PodConfig[] = [];
  const problems: string[] = [];
  for (const set of statefulSets(deployment)) {
    for (const pod of podNames(set)) {
      const podRoot = join(root, pod);
      const view = podView(deployment, set, pod, podRoot);
      problems.push(...view.problems);
      const configPath = configPathOf(nodeContainer(set));
      if (configPath === undefined) {
        problems.push(`${pod}: the container's args give no --config`);
        continue;
      }
      const loaded = await loadNodeConfig(join(podRoot, configPath), view.env);
      if (typeof loaded === 'string') problems.push(`${pod}: ${loaded}`);
      else pods.push({ set, pod, loaded });
    }
  }
  return { pods, problems };
}

/** A pod's config agrees with its StatefulSet, the other pods, the Services and the scrape. */
export function podConfigProblems(deployment: Deployment, pods: readonly PodConfig[]): string[] {
  const problems: string[] = [];
  const sets = statefulSets(deployment);
  const everyPod = new Map(sets.flatMap((set) => podNames(set).map((pod) => [pod, set] as const)));
  for (const { set, pod, loaded } of pods) {
    const config = loaded.config;
    const say = (what: string): number => problems.push(`${pod}: ${what}`);
    if (config.node !== pod) say(`its member id is ${config.node}, not its pod name`);
    if (config.region !== podLabels(set)[regionLabel]) say(`its region ${config.region} is not its StatefulSet's ${podLabels(set)[regionLabel]}`);
    const ports: Record<PortName, { host: string; port: number } | undefined> = {
      mesh: config.listen,
      admin: config.admin,
      grpc: config.grpc,
      http: config.http,
    };
    for (const name of portNames) {
      if (ports[name]?.port !== containerPort(set, name))
        say(`the config's ${name} port ${ports[name]?.port} is not the container port ${containerPort(set, name)}`);
      if (ports[name]?.host !== '0.0.0.0') say(`the ${name} endpoint listens on ${ports[name]?.host}, which other pods cannot reach`);
    }
    const ids = config.members.map((m) => m.id as string);
    if ([...everyPod.keys()].sort().join() !== [...ids].sort().join())
      say(`members ${ids.join(',')} are not the rendered pods ${[...everyPod.keys()].join(',')}`);
    for (const member of config.members) {
      const memberSet = everyPod.get(member.id);
      if (memberSet === undefined) continue;
      const host = `${member.id}.${memberSet.spec?.serviceName}.${deployment.namespace}.svc.cluster.local`;
      if (member.region !== podLabels(memberSet)[regionLabel])
        say(`member ${member.id} is in region ${member.region}, its pod in ${podLabels(memberSet)[regionLabel]}`);
      if (member.url !== `ws://${host}:${containerPort(memberSet, 'mesh')}`) say(`member ${member.id}'s url ${member.url} is not ws://${host}:<its mesh port>`);
      const grpc = config.memberGrpc?.get(member.id);
      if (grpc !== `${host}:${containerPort(memberSet, 'grpc')}`) say(`member ${member.id}'s grpc ${grpc} is not ${host}:<its gRPC port>`);
    }
    problems.push(...storageProblems(set, pod, loaded), ...scrapeProblems(deployment, pod, loaded));
    const accounts = config.upstream?.accounts.size ?? 0;
    if (loaded.credentials.size !== accounts) say(`${loaded.credentials.size} of ${accounts} account credentials resolved`);
  }
  return problems;
}

function storageProblems(set: IStatefulSet, pod: string, loaded: LoadedNodeConfig): string[] {
  const { dataDir, store } = loaded.config;
  const mount = nodeContainer(set).volumeMounts?.find((m) => m.mountPath === dataDir);
  const claim = set.spec?.volumeClaimTemplates?.find((c) => c.metadata?.name === mount?.name);
  if (dataDir === undefined || claim === undefined) return [`${pod}: dataDir ${dataDir} is not a volume of its own (volumeClaimTemplates)`];
  const size = quantity(claim.spec?.resources?.requests?.storage);
  if (store === undefined || !(store.maxBytes < size)) return [`${pod}: the store's bound ${store?.maxBytes} bytes does not fit its ${size}-byte volume`];
  return [];
}

/** Prometheus reaches /metrics: it is allowed in by Host, and its token is a viewer's. */
function scrapeProblems(deployment: Deployment, pod: string, loaded: LoadedNodeConfig): string[] {
  const problems: string[] = [];
  const admin = loaded.config.admin;
  if (admin === undefined) return [`${pod}: no admin endpoint, so no /metrics`];
  for (const monitor of ofKind<IServiceMonitor>(deployment, 'ServiceMonitor')) {
    for (const endpoint of monitor.spec.endpoints ?? []) {
      let address = `${pod}-ip:${admin.port}`;
      for (const rule of endpoint.relabelings ?? []) {
        if (rule.targetLabel !== '__address__') continue;
        const labels: Record<string, string> = { __meta_kubernetes_pod_name: pod, __meta_kubernetes_namespace: deployment.namespace };
        const joined = (rule.sourceLabels ?? []).map((label) => labels[label] ?? '').join(rule.separator ?? ';');
        const match = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`).exec(joined);
        if (match !== null) address = (rule.replacement ?? '$1').replace(/\$(\d)/g, (_, i: string) => match[Number(i)] ?? '');
      }
      if (!allowedHostsOf(admin.host, admin.port, admin.allowedHosts ?? []).has(address.toLowerCase())) {
        problems.push(`${pod}: Prometheus scrapes it as ${address}, a Host its admin endpoint refuses (admin.allowedHosts)`);
      }
      const credentials = endpoint.authorization?.credentials;
      const token = secretValue(deployment, credentials?.name, credentials?.key ?? '', `ServiceMonitor ${monitor.metadata?.name}`);
      if (typeof token !== 'string') problems.push(token.problem);
      else if (loaded.adminTokens.authenticate(token)?.role !== 'viewer') problems.push(`${pod}: the ServiceMonitor's token is not one of its viewer tokens`);
    }
  }
  return problems;
}

/** The Services, the NetworkPolicy and the probes agree with the container ports. */
export function wiringProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  const services = ofKind<IService>(deployment, 'Service');
  for (const set of statefulSets(deployment)) {
    const name = set.metadata?.name ?? '';
    const headless = named(services, set.spec?.serviceName);
    if (headless?.spec?.clusterIP !== 'None' || headless.spec.publishNotReadyAddresses !== true) {
      problems.push(`${name}: serviceName ${set.spec?.serviceName} is not a headless Service that publishes not-ready pods`);
    }
    const meshPort = headless?.spec?.ports?.find((p) => p.name === 'mesh');
    if (meshPort?.port !== containerPort(set, 'mesh')) problems.push(`${name}: the headless Service's mesh port ${meshPort?.port} is not the container's`);
    for (const service of services) {
      if (!selects(service.spec?.selector, podLabels(set))) problems.push(`${name}: Service ${service.metadata?.name} does not select its pods`);
      for (const port of service.spec?.ports ?? []) {
        const target = typeof port.targetPort === 'string' ? containerPort(set, port.targetPort as PortName) : port.targetPort;
        if (target === undefined || (service.spec?.clusterIP === 'None' && port.port !== target)) {
          problems.push(`${name}: Service ${service.metadata?.name} port ${port.name} reaches no container port of the same number`);
        }
      }
    }
    for (const [service, port] of [
      ['carpool-grpc', 'grpc'],
      ['carpool-http', 'http'],
    ] as const) {
      const exposed = named(services, service)?.spec?.ports?.find((p) => p.targetPort === port);
      if (exposed === undefined) problems.push(`${name}: Service ${service} does not expose the container's ${port} port`);
    }
    const container = nodeContainer(set);
    const readiness = container.readinessProbe?.grpc;
    if (readiness === undefined || readiness.port !== containerPort(set, 'grpc') || (readiness.service ?? '') !== '') {
      problems.push(`${name}: readiness is not the node's grpc.health.v1 status ("" service) on its gRPC port`);
    }
    // A lost quorum turns health NOT_SERVING: a liveness probe on it would restart a whole region.
    if (container.livenessProbe?.grpc !== undefined || container.startupProbe?.grpc !== undefined) problems.push(`${name}: liveness must not follow quorum`);
    if (container.livenessProbe === undefined || container.startupProbe === undefined) problems.push(`${name}: needs a liveness and a startup probe`);
  }
  return [...problems, ...networkPolicyProblems(deployment)];
}

function networkPolicyProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  const policies = ofKind<INetworkPolicy>(deployment, 'NetworkPolicy');
  for (const set of statefulSets(deployment)) {
    const name = set.metadata?.name ?? '';
    const labels = podLabels(set);
    const covering = policies.filter((p) => selects(p.spec?.podSelector?.matchLabels, labels) && (p.spec?.policyTypes ?? ['Ingress']).includes('Ingress'));
    if (covering.length === 0) problems.push(`${name}: no NetworkPolicy covers its pods`);
    const rules = covering.flatMap((p) => p.spec?.ingress ?? []);
    const rulesFor = (port: number | undefined): typeof rules => rules.filter((r) => r.ports === undefined || r.ports.some((p) => p.port === port));
    const meshRules = rulesFor(containerPort(set, 'mesh'));
    if (meshRules.length === 0) problems.push(`${name}: no ingress rule lets peers reach the mesh port ${containerPort(set, 'mesh')}`);
    for (const rule of meshRules) {
      const onlyMesh =
        (rule.from ?? []).length > 0 &&
        (rule.from ?? []).every((peer) => peer.namespaceSelector === undefined && peer.ipBlock === undefined && selects(peer.podSelector?.matchLabels, labels));
      if (!onlyMesh) problems.push(`${name}: an ingress rule opens the mesh port to more than mesh pods`);
    }
    const adminRules = rulesFor(containerPort(set, 'admin'));
    if (adminRules.length === 0) problems.push(`${name}: nothing may scrape the admin port`);
    for (const rule of adminRules) {
      const onlyMonitoring =
        (rule.from ?? []).length > 0 &&
        (rule.from ?? []).every((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring');
      if (!onlyMonitoring) problems.push(`${name}: an ingress rule opens the admin port beyond the monitoring namespace`);
    }
    for (const port of ['grpc', 'http'] as const)
      if (rulesFor(containerPort(set, port)).length === 0) problems.push(`${name}: no ingress rule admits the ${port} port`);
  }
  return problems;
}

/** Security, shutdown, storage and disruption rules of each StatefulSet. */
export function podSpecProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  const accounts = ofKind<K8sObject>(deployment, 'ServiceAccount');
  for (const set of statefulSets(deployment)) {
    const name = set.metadata?.name ?? '';
    const say = (what: string): number => problems.push(`${name}: ${what}`);
    const spec = set.spec;
    const pod = spec?.template.spec;
    const container = nodeContainer(set);
    if (spec?.podManagementPolicy !== 'Parallel') say('podManagementPolicy must be Parallel: no member is ready before a majority is up');
    if ((spec?.replicas ?? 1) < 3) say('fewer than 3 replicas');
    if (pod?.securityContext?.runAsNonRoot !== true || !((pod.securityContext.runAsUser ?? 0) > 0)) say('the pod must run as a numeric non-root user');
    if (pod?.securityContext?.seccompProfile?.type !== 'RuntimeDefault') say('the pod needs the RuntimeDefault seccomp profile');
    const security = container.securityContext;
    if (security?.readOnlyRootFilesystem !== true || security.allowPrivilegeEscalation !== false)
      say('the container needs a read-only root and no privilege escalation');
    if (!(security?.capabilities?.drop ?? []).includes('ALL') || (security?.capabilities?.add ?? []).length > 0)
      say('the container must drop ALL capabilities');
    if (pod?.automountServiceAccountToken !== false) say('the pod must not mount a service account token');
    const account = accounts.find((a) => a.metadata.name === pod?.serviceAccountName);
    if (account === undefined || account.automountServiceAccountToken !== false)
      say(`service account ${pod?.serviceAccountName} is missing or mounts its token`);
    if (container.image !== image) say(`image ${container.image} is not ${image}`);
    if (!(container.volumeMounts ?? []).some((m) => m.mountPath === '/tmp')) say('/tmp must be a volume under a read-only root');
    const volumes = [...(pod?.volumes ?? []), ...(spec?.volumeClaimTemplates ?? []).map((c) => c.metadata ?? {})].map((v) => v.name);
    for (const mount of container.volumeMounts ?? []) if (!volumes.includes(mount.name)) say(`mount ${mount.mountPath} names no volume (${mount.name})`);
    const preStopSeconds = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    const graceNeeded = preStopSeconds + upstreamCloseGraceMs / 1000 + 5;
    if ((pod?.terminationGracePeriodSeconds ?? 30) < graceNeeded) say(`terminationGracePeriodSeconds under the ${graceNeeded} s the drain needs`);
    problems.push(...resourceProblems(name, container), ...budgetProblems(deployment, set));
  }
  return problems;
}

function resourceProblems(name: string, container: IContainer): string[] {
  const problems: string[] = [];
  const { requests, limits } = container.resources ?? {};
  for (const what of ['cpu', 'memory']) {
    const request = quantity(requests?.[what]);
    const limit = quantity(limits?.[what]);
    if (!(request > 0 && limit >= request)) problems.push(`${name}: ${what} needs a request and a limit at least as large`);
  }
  const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(container.env?.find((v) => v.name === 'NODE_OPTIONS')?.value ?? '')?.[1]);
  if (!(heapMiB * 2 ** 20 < quantity(limits?.memory))) problems.push(`${name}: NODE_OPTIONS must bound the heap under the memory limit`);
  return problems;
}

function budgetProblems(deployment: Deployment, set: IStatefulSet): string[] {
  const budgets = ofKind<IPodDisruptionBudget>(deployment, 'PodDisruptionBudget').filter((b) => selects(b.spec?.selector?.matchLabels, podLabels(set)));
  const name = set.metadata?.name ?? '';
  if (budgets.length !== 1) return [`${name}: ${budgets.length} PodDisruptionBudgets select its pods (one wanted)`];
  const budget = budgets[0]!;
  const problems: string[] = [];
  if (budget.spec?.maxUnavailable !== 1) problems.push(`${name}: its PodDisruptionBudget must allow one pod away at a time`);
  for (const other of statefulSets(deployment)) {
    if (other !== set && selects(budget.spec?.selector?.matchLabels, podLabels(other)))
      problems.push(`${name}: its budget also selects ${other.metadata?.name}'s pods`);
  }
  if (!selects(set.spec?.selector.matchLabels, podLabels(set))) problems.push(`${name}: its selector does not select its own pod template`);
  return problems;
}

/** The namespace's quota holds every node, and the LimitRange lets each in. */
export function quotaProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  const quota = ofKind<IResourceQuota>(deployment, 'ResourceQuota');
  const ranges = ofKind<ILimitRange>(deployment, 'LimitRange');
  if (quota.length !== 1 || ranges.length !== 1) return ['one ResourceQuota and one LimitRange wanted'];
  const hard = quota[0]!.spec?.hard ?? {};
  const need: Record<string, number> = {
    'requests.cpu': 0,
    'limits.cpu': 0,
    'requests.memory': 0,
    'limits.memory': 0,
    pods: 0,
    persistentvolumeclaims: 0,
    'requests.storage': 0,
  };
  const max = ranges[0]!.spec?.limits.find((l) => l.type === 'Container')?.max ?? {};
  for (const set of statefulSets(deployment)) {
    const replicas = set.spec?.replicas ?? 1;
    const { requests, limits } = nodeContainer(set).resources ?? {};
    need['requests.cpu']! += replicas * quantity(requests?.cpu);
    need['limits.cpu']! += replicas * quantity(limits?.cpu);
    need['requests.memory']! += replicas * quantity(requests?.memory);
    need['limits.memory']! += replicas * quantity(limits?.memory);
    need.pods! += replicas;
    const claims = set.spec?.volumeClaimTemplates ?? [];
    need.persistentvolumeclaims! += replicas * claims.length;
    need['requests.storage']! += replicas * claims.reduce((sum, c) => sum + quantity(c.spec?.resources?.requests?.storage), 0);
    for (const what of ['cpu', 'memory']) {
      if (!(quantity(limits?.[what]) <= quantity(max[what]))) problems.push(`${set.metadata?.name}: its ${what} limit is over the LimitRange's max`);
    }
  }
  for (const [what, amount] of Object.entries(need)) {
    if (!(quantity(hard[what]) >= amount)) problems.push(`the ResourceQuota's ${what} ${hard[what]} is under the ${amount} the nodes need`);
  }
  return problems;
}

/** Field names that hold a secret's value when given inline. */
const secretFields = new Set(['secret', 'adminToken', 'token', 'key', 'password', 'credentials', 'accessToken', 'refreshToken', 'apiKey']);

/** No ConfigMap holds a secret: no inline secret field, no value of a Secret, no key-shaped text. */
export function configMapSecretProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  const values = deployment.secrets.flatMap((secret) => Object.values(secretValues(secret)));
  for (const map of ofKind<K8sObject>(deployment, 'ConfigMap')) {
    for (const [key, text] of Object.entries(isMap(map.data) ? map.data : {})) {
      const where = `ConfigMap ${map.metadata.name} ${key}`;
      if (typeof text !== 'string') continue;
      if (values.some((value) => text.includes(value))) problems.push(`${where} holds the value of a Secret`);
      if (/sk-ant-[A-Za-z0-9]/.test(text)) problems.push(`${where} holds an Anthropic key`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        continue;
      }
      problems.push(...inlineSecrets(parsed, where));
    }
  }
  if (deployment.objects.some((o) => o.kind === 'Secret')) problems.push('the overlay renders a Secret: `kubectl apply -k` would overwrite the real one');
  return problems;
}

function inlineSecrets(value: unknown, where: string): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => inlineSecrets(item, where));
  if (!isMap(value)) return [];
  return Object.entries(value).flatMap(([key, child]) =>
    secretFields.has(key) && typeof child === 'string' ? [`${where}: "${key}" is a secret given inline`] : inlineSecrets(child, where),
  );
}

/** Every namespaced object lands in the overlay's namespace, which is rendered with the restricted pod security profile. */
export function namespaceProblems(deployment: Deployment): string[] {
  const problems: string[] = [];
  for (const object of deployment.objects) {
    if (object.kind === 'Namespace') continue;
    if (object.metadata.namespace !== deployment.namespace) problems.push(`${object.kind} ${object.metadata.name} is in ${object.metadata.namespace}`);
  }
  const namespace = deployment.objects.find((o) => o.kind === 'Namespace' && o.metadata.name === deployment.namespace);
  if (namespace?.metadata.labels?.['pod-security.kubernetes.io/enforce'] !== 'restricted')
    problems.push(`the Namespace ${deployment.namespace} must enforce the restricted profile`);
  return problems;
}

export { meshLabel, regionLabel };
