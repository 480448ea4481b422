import type { HlcStamp } from '../../core/hlc.js';
import { type AccountId, isValidId, type NodeId, type RegionId } from '../../core/ids.js';
import { healthDetailLengthMax, healthRowsPerFrameMax, idLengthMax } from '../../core/limits.js';
import type { DisableReason } from '../../pool/account-health.js';
import { type HealthRecord, type PauseCause, pauseCauses, type SharedHealth } from '../../pool/health-register.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited, wireVarint } from './proto-writer.js';

/**
 * `HealthDelta` (proto/carpool/v1/mesh.proto): records of the accounts' shared health register
 * (src/pool/health-register.ts), each a `HealthRow`:
 *
 *   1 account  2 kind (1 available, 2 paused, 3 disabled)  3 cause (pauseCauses index + 1)
 *   4 until_ms  5 reason (1 auth-failed, 2 credential)  6 status  7 detail (UTF-8)
 *   8 wall_ms  9 logical  10 node  11 region
 *
 * Decoding is strict: a row missing its account, stamp or writer, or whose fields contradict its
 * kind, fails the frame (a peer that sends one is broken, and guessing would spread the damage).
 */
const kindCodes = { available: 1, paused: 2, disabled: 3 } as const;
const reasonCodes = { 'auth-failed': 1, credential: 2 } as const;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
/** A detail's bytes: at most four per character. */
const detailBytesMax = healthDetailLengthMax * 4;

export function writeHealthDelta(writer: ProtoWriter, records: readonly HealthRecord[]): void {
  for (const record of records) writer.message(1, (row) => writeRow(row, record));
}

function writeRow(writer: ProtoWriter, record: HealthRecord): void {
  const { health, stamp } = record;
  writer.string(1, record.account);
  writer.varintField(2, kindCodes[health.kind]);
  if (health.kind === 'paused') {
    writer.varintField(3, pauseCauses.indexOf(health.cause) + 1);
    writer.varintField(4, health.untilMs);
  } else if (health.kind === 'disabled') {
    const { reason } = health;
    writer.varintField(5, reasonCodes[reason.kind]);
    if (reason.kind === 'auth-failed') writer.varintField(6, reason.status);
    else writer.bytesField(7, utf8.encode(reason.detail.slice(0, healthDetailLengthMax)));
  }
  writer.varintField(8, stamp.wallMs);
  writer.varintField(9, stamp.logical);
  writer.string(10, stamp.node);
  writer.string(11, record.region);
}

export function readHealthDelta(reader: ProtoReader): HealthRecord[] {
  const records: HealthRecord[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field !== 1) {
      reader.skipField(wireType);
      continue;
    }
    reader.expectWireType(wireType, wireLengthDelimited, 'HealthDelta.rows');
    if (records.length >= healthRowsPerFrameMax) fail('too-many', `more than ${healthRowsPerFrameMax} health rows`);
    records.push(readRow(reader.lengthDelimited()));
  }
  return records;
}

interface RawRow {
  account?: string;
  kind: number;
  cause: number;
  untilMs: number;
  reason: number;
  status: number;
  detail?: string;
  wallMs: number;
  logical: number;
  node?: string;
  region?: string;
}

function readRow(reader: ProtoReader): HealthRecord {
  const raw: RawRow = { kind: 0, cause: 0, untilMs: 0, reason: 0, status: 0, wallMs: 0, logical: 0 };
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
      case 10:
      case 11: {
        reader.expectWireType(wireType, wireLengthDelimited, 'HealthRow id');
        const id = reader.ascii(idLengthMax);
        if (field === 1) raw.account = id;
        else if (field === 10) raw.node = id;
        else raw.region = id;
        break;
      }
      case 7:
        reader.expectWireType(wireType, wireLengthDelimited, 'HealthRow.detail');
        try {
          raw.detail = utf8Strict.decode(reader.bytes(detailBytesMax));
        } catch {
          fail('bad-string', 'HealthRow.detail is not UTF-8');
        }
        break;
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 8:
      case 9: {
        reader.expectWireType(wireType, wireVarint, 'HealthRow number');
        const value = reader.varint();
        const name = ({ 2: 'kind', 3: 'cause', 4: 'untilMs', 5: 'reason', 6: 'status', 8: 'wallMs', 9: 'logical' } as const)[field];
        raw[name] = value;
        break;
      }
      default:
        reader.skipField(wireType);
    }
  }
  return checkRow(raw);
}

function checkRow(raw: RawRow): HealthRecord {
  for (const id of [raw.account, raw.node, raw.region])
    if (id === undefined || !isValidId(id)) fail('bad-string', 'a health row needs an account, a node and a region');
  const stamp: HlcStamp = { wallMs: raw.wallMs, logical: raw.logical, node: raw.node as NodeId };
  return { account: raw.account as AccountId, health: healthOf(raw), stamp, region: raw.region as RegionId };
}

function healthOf(raw: RawRow): SharedHealth {
  switch (raw.kind) {
    case kindCodes.available:
      return { kind: 'available' };
    case kindCodes.paused: {
      const cause: PauseCause | undefined = pauseCauses[raw.cause - 1];
      if (cause === undefined) return fail('out-of-range', 'a paused health row needs a known cause');
      return { kind: 'paused', cause, untilMs: raw.untilMs };
    }
    case kindCodes.disabled:
      return { kind: 'disabled', reason: reasonOf(raw) };
    default:
      return fail('out-of-range', 'unknown health row kind');
  }
}

function reasonOf(raw: RawRow): DisableReason {
  if (raw.reason === reasonCodes['auth-failed']) {
    if (raw.status !== 401 && raw.status !== 402 && raw.status !== 403) return fail('out-of-range', 'an auth-failed row needs status 401, 402 or 403');
    return { kind: 'auth-failed', status: raw.status };
  }
  if (raw.reason === reasonCodes.credential) {
    if (raw.detail === undefined || raw.detail.length > healthDetailLengthMax) return fail('bad-string', 'a credential row needs a short detail');
    return { kind: 'credential', detail: raw.detail };
  }
  return fail('out-of-range', 'unknown disable reason');
}
