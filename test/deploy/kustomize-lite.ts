import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * A renderer of the small part of kustomize that deploy/k8s/ uses, for tests on a machine without
 * the kustomize binary (or kubectl). It is strict: a kustomization field, generator option, patch
 * form or object kind it does not implement is an error naming it, never skipped, so a manifest
 * cannot lean on a feature whose effect the tests did not see.
 *
 * What it renders, in kustomize's order (resources, generators, then the transformers: patches,
 * namespace, labels):
 *   resources           files of YAML documents inside the kustomization's folder, or folders
 *                       holding a kustomization (anywhere: `../../base`), each rendered first;
 *   configMapGenerator  `{ name, files: ["key=path" | "path"] }`, files inside the folder, only
 *                       with `generatorOptions: { disableNameSuffixHash: true }` (the content
 *                       hash kustomize appends to names, and the reference rewriting that goes
 *                       with it, are not implemented);
 *   patches             `{ path }`: a strategic-merge patch naming its target by apiVersion, kind
 *                       and name; maps merge and scalars replace; a list, a null or a `$patch`
 *                       directive in it is an error (their merge rules are not implemented);
 *   namespace           set on every namespaced object (kinds in `namespacedKinds`); a Namespace
 *                       object must carry that very name;
 *   labels              `[{ pairs }]`: added to every object's metadata.labels only
 *                       (`includeSelectors` and `includeTemplates` are not implemented).
 * Two objects with the same apiVersion, kind, namespace and name are an error, as in kustomize.
 *
 * YAML is read as YAML 1.1, as Kubernetes' own decoder does: `0440` is an octal file mode.
 */

/** A Kubernetes object as rendered. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Readonly<Record<string, string>> } & Record<string, unknown>;
  readonly [field: string]: unknown;
}

const kustomizationFields = ['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'generatorOptions', 'configMapGenerator', 'patches'];

/** Kinds kustomize treats as namespaced that the renderer knows; any other kind but Namespace is refused. */
export const namespacedKinds = new Set([
  'ConfigMap',
  'LimitRange',
  'NetworkPolicy',
  'PodDisruptionBudget',
  'ResourceQuota',
  'Secret',
  'Service',
  'ServiceAccount',
  'ServiceMonitor',
  'StatefulSet',
]);

export class KustomizeLiteError extends Error {}

function fail(where: string, message: string): never {
  throw new KustomizeLiteError(`${where}: ${message}`);
}

/** Renders the kustomization in `dir` (its kustomization.yaml) to its objects. */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) fail(dir, 'no kustomization.yaml (kustomization.yml and Kustomization are not read)');
  const documents = readYamlDocuments(file);
  if (documents.length !== 1 || !isMap(documents[0])) fail(file, 'must hold one YAML map');
  const k = documents[0];
  for (const field of Object.keys(k)) if (!kustomizationFields.includes(field)) fail(file, `field ${field} is not rendered by kustomize-lite`);
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') {
    fail(file, 'must be apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization');
  }
  const objects: K8sObject[] = [];
  for (const entry of listOf(k.resources, `${file}: resources`)) objects.push(...readResource(dir, entry, file));
  objects.push(...generateConfigMaps(dir, k, file));
  refuseDuplicates(objects, file);
  const patched = listOf(k.patches, `${file}: patches`).reduce<K8sObject[]>((all, patch) => applyPatch(dir, all, patch, file), objects);
  const namespaced = k.namespace === undefined ? patched : setNamespace(patched, k.namespace, file);
  return k.labels === undefined ? namespaced : addLabels(namespaced, k.labels, file);
}

/** Every document of a YAML file (empty ones dropped), as plain data. */
export function readYamlDocuments(file: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' });
  const values: unknown[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) fail(file, `is not valid YAML: ${document.errors[0]?.message}`);
    const value: unknown = document.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

function readResource(dir: string, entry: unknown, file: string): K8sObject[] {
  if (typeof entry !== 'string' || entry.length === 0) fail(file, 'a resource must be a path');
  const path = resolve(dir, entry);
  if (!existsSync(path)) fail(file, `resource ${entry} does not exist`);
  if (statSync(path).isDirectory()) return renderKustomization(path);
  insideRoot(dir, path, file, 'resource');
  return readYamlDocuments(path).map((document, i) => asObject(document, `${path} document ${i + 1}`));
}

function asObject(value: unknown, where: string): K8sObject {
  if (!isMap(value)) fail(where, 'is not a YAML map');
  if (typeof value.apiVersion !== 'string' || typeof value.kind !== 'string') fail(where, 'needs apiVersion and kind');
  if (!isMap(value.metadata) || typeof value.metadata.name !== 'string' || value.metadata.name === '') fail(where, 'needs metadata.name');
  if (value.kind !== 'Namespace' && !namespacedKinds.has(value.kind)) fail(where, `kind ${value.kind} is not known to kustomize-lite`);
  return value as unknown as K8sObject;
}

/** Kustomize's load restrictor: files a kustomization reads lie inside its folder. */
function insideRoot(dir: string, path: string, file: string, what: string): void {
  const inside = relative(resolve(dir), path);
  if (inside.startsWith('..') || isAbsolute(inside)) fail(file, `${what} ${path} lies outside the kustomization's folder`);
}

function generateConfigMaps(dir: string, k: Record<string, unknown>, file: string): K8sObject[] {
  const generators = listOf(k.configMapGenerator, `${file}: configMapGenerator`);
  if (k.generatorOptions !== undefined) {
    const options = k.generatorOptions;
    if (!isMap(options) || Object.keys(options).some((key) => key !== 'disableNameSuffixHash')) {
      fail(file, 'generatorOptions: only disableNameSuffixHash is rendered');
    }
  }
  if (generators.length === 0) return [];
  if (!isMap(k.generatorOptions) || k.generatorOptions.disableNameSuffixHash !== true) {
    fail(file, 'configMapGenerator needs generatorOptions.disableNameSuffixHash: true (name hashes are not rendered)');
  }
  return generators.map((generator, i) => {
    const where = `${file}: configMapGenerator[${i}]`;
    if (!isMap(generator)) fail(where, 'must be a map');
    for (const key of Object.keys(generator)) if (key !== 'name' && key !== 'files') fail(where, `field ${key} is not rendered by kustomize-lite`);
    if (typeof generator.name !== 'string' || generator.name === '') fail(where, 'needs a name');
    const data: Record<string, string> = {};
    for (const spec of listOf(generator.files, `${where}.files`)) {
      if (typeof spec !== 'string') fail(where, 'a file must be "key=path" or "path"');
      const [key, path] = spec.includes('=') ? [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)] : [basename(spec), spec];
      const full = resolve(dir, path);
      insideRoot(dir, full, where, 'file');
      if (key in data) fail(where, `key ${key} is given twice`);
      data[key] = readFileSync(full, 'utf8');
    }
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data };
  });
}

function idOf(object: K8sObject): string {
  return `${object.apiVersion}/${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

function refuseDuplicates(objects: readonly K8sObject[], file: string): void {
  const seen = new Set<string>();
  for (const object of objects) {
    const id = idOf(object);
    if (seen.has(id)) fail(file, `${id} is defined twice`);
    seen.add(id);
  }
}

function applyPatch(dir: string, objects: K8sObject[], entry: unknown, file: string): K8sObject[] {
  if (!isMap(entry) || Object.keys(entry).length !== 1 || typeof entry.path !== 'string') {
    fail(file, 'a patch must be { path: FILE } (inline patches and targets are not rendered)');
  }
  const path = resolve(dir, entry.path);
  insideRoot(dir, path, file, 'patch');
  const documents = readYamlDocuments(path);
  if (documents.length !== 1) fail(path, 'a patch file must hold one document');
  const patch = asObject(documents[0], path);
  const targets = objects.filter((o) => o.apiVersion === patch.apiVersion && o.kind === patch.kind && o.metadata.name === patch.metadata.name);
  if (targets.length !== 1) fail(path, `matches ${targets.length} objects (one wanted): ${patch.apiVersion} ${patch.kind} ${patch.metadata.name}`);
  return objects.map((o) => (o === targets[0] ? (mergeMap(o, patch, path) as unknown as K8sObject) : o));
}

/** A strategic merge of maps and scalars; lists, nulls and directives are refused. */
function mergeMap(base: Record<string, unknown>, patch: Record<string, unknown>, where: string): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) fail(where, `directive ${key} is not rendered`);
    if (value === null) fail(where, `${key}: null (a deletion) is not rendered`);
    if (Array.isArray(value)) fail(where, `${key}: a list's strategic merge is not rendered`);
    const current = merged[key];
    merged[key] = isMap(value) && isMap(current) ? mergeMap(current, value, `${where} ${key}`) : value;
  }
  return merged;
}

function setNamespace(objects: readonly K8sObject[], namespace: unknown, file: string): K8sObject[] {
  if (typeof namespace !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) fail(file, 'namespace must be a DNS label');
  return objects.map((object) => {
    if (object.kind === 'Namespace') {
      if (object.metadata.name !== namespace) fail(file, `the Namespace ${object.metadata.name} is not the namespace ${namespace}`);
      return object;
    }
    return { ...object, metadata: { ...object.metadata, namespace } };
  });
}

function addLabels(objects: readonly K8sObject[], labels: unknown, file: string): K8sObject[] {
  const pairs: Record<string, string> = {};
  for (const entry of listOf(labels, `${file}: labels`)) {
    if (!isMap(entry) || Object.keys(entry).some((key) => key !== 'pairs') || !isMap(entry.pairs)) {
      fail(file, 'labels: only { pairs } is rendered (includeSelectors, includeTemplates and fields are not)');
    }
    for (const [key, value] of Object.entries(entry.pairs)) {
      if (typeof value !== 'string') fail(file, `label ${key} must be a string`);
      pairs[key] = value;
    }
  }
  return objects.map((object) => ({ ...object, metadata: { ...object.metadata, labels: { ...object.metadata.labels, ...pairs } } }));
}

function listOf(value: unknown, where: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(where, 'must be a list');
  return value as unknown[];
}

export function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
