/**
 * JSON for answers a durable node keeps on disk (src/node/answer-ledger.ts): byte arrays become
 * `{ "$b64": "..." }` and come back as Uint8Array; Maps are not expected and are refused on
 * encode by an assert-free rule: the encoders list what they keep. Decoding never throws.
 */
export function encodeStored(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (item instanceof Uint8Array ? { $b64: Buffer.from(item).toString('base64') } : item));
}

export function decodeStored(json: string): unknown {
  try {
    return JSON.parse(json, (_key, item: unknown) => {
      if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
        const b64 = (item as Record<string, unknown>).$b64;
        if (typeof b64 === 'string' && Object.keys(item).length === 1) return new Uint8Array(Buffer.from(b64, 'base64'));
      }
      return item;
    });
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
