import type { ReplicaId } from '../../core/ids.js';
import { isValidId, isValidName } from '../../core/ids.js';
import { frameKeysMax, frameStringsMax, frameWindowsMax, idLengthMax, replicasMax } from '../../core/limits.js';
import { checkedCounterKey, type CounterKey } from '../../crdt/counter-key.js';
import { type Window, windowUnitCodes, windowUnitFromCode } from '../../crdt/window.js';
import { columnOf, fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited } from './proto-writer.js';

/**
 * The `KeyTable` message (see proto/carpool/v1/mesh.proto): each replica id, string, window and
 * key of a frame is written once and referred to by index. The builder assigns indexes in first
 * use order; the reader validates every string and index and rebuilds `CounterKey`s.
 */
export class KeyTableBuilder {
  private readonly replicas: string[] = [];
  private readonly replicaIndex = new Map<string, number>();
  private readonly strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  private readonly windowUnits: number[] = [];
  private readonly windowIndexes: number[] = [];
  /** Keyed by `index * 8 + unit code`, exact while window indexes stay below 2⁴⁹. */
  private readonly windowIndex = new Map<number, number>();
  private readonly keyScopes: number[] = [];
  private readonly keySubjects: number[] = [];
  private readonly keyMetrics: number[] = [];
  private readonly keyWindows: number[] = [];
  private readonly keyIndex = new Map<string, number>();

  get keyCount(): number {
    return this.keyScopes.length;
  }

  replica(id: ReplicaId): number {
    return intern(this.replicas, this.replicaIndex, id);
  }

  key(key: CounterKey): number {
    const known = this.keyIndex.get(key.id);
    if (known !== undefined) return known;
    const index = this.keyScopes.length;
    this.keyIndex.set(key.id, index);
    this.keyScopes.push(intern(this.strings, this.stringIndex, key.scope));
    this.keySubjects.push(intern(this.strings, this.stringIndex, key.subject));
    this.keyMetrics.push(intern(this.strings, this.stringIndex, key.metric));
    this.keyWindows.push(this.window(key.window));
    return index;
  }

  write(writer: ProtoWriter): void {
    for (const replica of this.replicas) writer.string(1, replica);
    for (const text of this.strings) writer.string(2, text);
    writer.packed(3, this.windowUnits);
    writer.packed(4, this.windowIndexes);
    writer.packedOrRuns(5, 9, this.keyScopes);
    writer.packed(6, this.keySubjects);
    writer.packedOrRuns(7, 10, this.keyMetrics);
    writer.packedOrRuns(8, 11, this.keyWindows);
  }

  private window(window: Window): number {
    const code = windowUnitCodes[window.unit];
    const id = window.index * 8 + code;
    const known = this.windowIndex.get(id);
    if (known !== undefined) return known;
    const index = this.windowUnits.length;
    this.windowIndex.set(id, index);
    this.windowUnits.push(code);
    this.windowIndexes.push(window.index);
    return index;
  }
}

function intern(values: string[], index: Map<string, number>, value: string): number {
  const known = index.get(value);
  if (known !== undefined) return known;
  index.set(value, values.length);
  values.push(value);
  return values.length - 1;
}

/** A decoded and validated key table. */
export interface KeyTable {
  readonly replicas: readonly ReplicaId[];
  readonly keys: readonly CounterKey[];
}

export function readKeyTable(reader: ProtoReader): KeyTable {
  const replicas: ReplicaId[] = [];
  const strings: string[] = [];
  const windowUnitCodesRead: number[] = [];
  const windowIndexes: number[] = [];
  const scopesDense: number[] = [];
  const scopesRuns: number[] = [];
  const keySubjects: number[] = [];
  const metricsDense: number[] = [];
  const metricsRuns: number[] = [];
  const windowsDense: number[] = [];
  const windowsRuns: number[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        reader.expectWireType(wireType, wireLengthDelimited, 'KeyTable.replicas');
        if (replicas.length >= replicasMax) fail('too-many', `more than ${replicasMax} replicas`);
        replicas.push(reader.ascii(idLengthMax) as ReplicaId);
        break;
      case 2:
        reader.expectWireType(wireType, wireLengthDelimited, 'KeyTable.strings');
        if (strings.length >= frameStringsMax) fail('too-many', `more than ${frameStringsMax} strings`);
        strings.push(reader.ascii(idLengthMax));
        break;
      case 3:
        reader.repeatedVarint(wireType, windowUnitCodesRead, frameWindowsMax);
        break;
      case 4:
        reader.repeatedVarint(wireType, windowIndexes, frameWindowsMax);
        break;
      case 5:
        reader.repeatedVarint(wireType, scopesDense, frameKeysMax);
        break;
      case 6:
        reader.repeatedVarint(wireType, keySubjects, frameKeysMax);
        break;
      case 7:
        reader.repeatedVarint(wireType, metricsDense, frameKeysMax);
        break;
      case 8:
        reader.repeatedVarint(wireType, windowsDense, frameKeysMax);
        break;
      case 9:
        reader.repeatedVarint(wireType, scopesRuns, 2 * frameKeysMax);
        break;
      case 10:
        reader.repeatedVarint(wireType, metricsRuns, 2 * frameKeysMax);
        break;
      case 11:
        reader.repeatedVarint(wireType, windowsRuns, 2 * frameKeysMax);
        break;
      default:
        reader.skipField(wireType);
    }
  }
  if (new Set(replicas).size !== replicas.length) fail('inconsistent', 'a replica id appears twice');
  for (const replica of replicas) if (!isValidId(replica)) fail('bad-string', 'invalid replica id');
  if (windowUnitCodesRead.length !== windowIndexes.length) fail('inconsistent', 'window columns differ in length');
  const windows: Window[] = windowUnitCodesRead.map((code, i) => {
    const unit = windowUnitFromCode(code);
    if (unit === undefined) return fail('out-of-range', `unknown window unit ${code}`);
    return { unit, index: windowIndexes[i] as number };
  });
  const keyScopes = columnOf(scopesDense, scopesRuns, frameKeysMax, 'KeyTable.key_scopes');
  const keyMetrics = columnOf(metricsDense, metricsRuns, frameKeysMax, 'KeyTable.key_metrics');
  const keyWindows = columnOf(windowsDense, windowsRuns, frameKeysMax, 'KeyTable.key_windows');
  const keyCount = keyScopes.length;
  if (keySubjects.length !== keyCount || keyMetrics.length !== keyCount || keyWindows.length !== keyCount) {
    fail('inconsistent', 'key columns differ in length');
  }
  const keys: CounterKey[] = new Array<CounterKey>(keyCount);
  const seen = new Set<string>();
  // Each table string is validated once, in the role a key first uses it in.
  const nameChecked = new Uint8Array(strings.length);
  const idChecked = new Uint8Array(strings.length);
  const checkName = (index: number): string => {
    const text = strings[index];
    if (text === undefined) return fail('out-of-range', 'key refers past the string table');
    if (nameChecked[index] === 0) {
      if (!isValidName(text)) fail('bad-string', 'scopes and metrics are lowercase names');
      nameChecked[index] = 1;
    }
    return text;
  };
  for (let i = 0; i < keyCount; i++) {
    const scope = checkName(keyScopes[i] as number);
    const metric = checkName(keyMetrics[i] as number);
    const subjectIndex = keySubjects[i] as number;
    const subject = strings[subjectIndex];
    const window = windows[keyWindows[i] as number];
    if (subject === undefined || window === undefined) fail('out-of-range', 'key refers past a table');
    if (idChecked[subjectIndex] === 0) {
      if (!isValidId(subject)) fail('bad-string', 'subjects are ids');
      idChecked[subjectIndex] = 1;
    }
    const key = checkedCounterKey(scope, subject, metric, window);
    if (seen.has(key.id)) fail('inconsistent', 'a key appears twice');
    seen.add(key.id);
    keys[i] = key;
  }
  return { replicas, keys };
}
