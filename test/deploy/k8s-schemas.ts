import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { LimitRange } from 'kubernetes-models/v1/LimitRange';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ResourceQuota } from 'kubernetes-models/v1/ResourceQuota';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

/**
 * Checks an object against the Kubernetes OpenAPI schemas (the kubernetes-models package) or the
 * Prometheus Operator's CRD schema (@kubernetes-models/prometheus-operator), and, beyond them,
 * refuses fields the schema does not define.
 *
 * Why the extra step: the packaged validators are JSON Schema without `additionalProperties:
 * false`, so a misspelt field (`readinesProbe`) passes them, while the API server (kubectl's
 * default `--validate=strict`) refuses it, and a field that is silently dropped is a probe or a
 * limit that never applies. The validators are compiled code that reads each field the schema
 * defines, so the object is handed to them behind a Proxy that records every property read at
 * every path: an own property of an object that the validator never read is not in the schema.
 * An object whose keys the validator enumerates (a map such as labels or ConfigMap data) may hold
 * any key; an object it read nothing of is schema-less (a free-form field) and is not judged.
 */

interface ModelClass {
  readonly apiVersion: string;
  readonly kind: string;
  readonly prototype: { validate(): void };
}

const models: readonly ModelClass[] = [
  ConfigMap,
  LimitRange,
  Namespace,
  NetworkPolicy,
  PodDisruptionBudget,
  ResourceQuota,
  Secret,
  Service,
  ServiceAccount,
  ServiceMonitor,
  StatefulSet,
];

const modelOf = new Map(models.map((model) => [`${model.apiVersion}/${model.kind}`, model]));

/** The problems of one object: schema violations and fields no schema defines; empty when it is valid. */
export function schemaProblems(object: { readonly apiVersion?: unknown; readonly kind?: unknown }): string[] {
  const model = modelOf.get(`${String(object.apiVersion)}/${String(object.kind)}`);
  if (model === undefined) return [`no schema for ${String(object.apiVersion)} ${String(object.kind)}`];
  const trace = { read: new Map<string, Set<string>>(), enumerated: new Set<string>() };
  const problems: string[] = [];
  try {
    // The model's validate() runs the compiled schema on `this`: here the recording proxy.
    model.prototype.validate.call(recording(object, '', trace));
  } catch (error) {
    problems.push((error as Error).message);
  }
  return [...problems, ...unknownFields(object, '', trace)];
}

interface Trace {
  /** Per object path, the properties the validator read. */
  readonly read: Map<string, Set<string>>;
  /** Object paths whose keys the validator listed: maps, any key allowed. */
  readonly enumerated: Set<string>;
}

function recording(value: unknown, path: string, trace: Trace): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const note = (key: string | symbol): void => {
    if (typeof key !== 'string') return;
    let keys = trace.read.get(path);
    if (keys === undefined) trace.read.set(path, (keys = new Set()));
    keys.add(key);
  };
  return new Proxy(value, {
    get(target, key, receiver) {
      note(key);
      const child: unknown = Reflect.get(target, key, receiver);
      return typeof key === 'string' ? recording(child, `${path}/${key}`, trace) : child;
    },
    has(target, key) {
      note(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      trace.enumerated.add(path);
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(value: unknown, path: string, trace: Trace): string[] {
  if (typeof value !== 'object' || value === null) return [];
  if (Array.isArray(value)) return value.flatMap((item, i) => unknownFields(item, `${path}/${i}`, trace));
  const read = trace.read.get(path);
  const judged = !trace.enumerated.has(path) && read !== undefined && read.size > 0;
  const problems: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (judged && !read.has(key)) problems.push(`data${path}/${key} is not a field of the schema`);
    else problems.push(...unknownFields(child, `${path}/${key}`, trace));
  }
  return problems;
}
