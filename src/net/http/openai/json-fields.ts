/**
 * Reading JSON that came from elsewhere (a client's body, an upstream's message or event): a
 * value is an object of fields only if it is a non-null, non-array object, and bytes or text are
 * parsed first. Malformed UTF-8 is refused rather than replaced, so nothing is read other than
 * as it was sent.
 */
export type Fields = Readonly<Record<string, unknown>>;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `input` as an object of fields: parsed from bytes or text, or taken as it is; undefined otherwise. */
export function fieldsOf(input: unknown): Fields | undefined {
  if (isFields(input) && !(input instanceof Uint8Array)) return input;
  let text: string;
  if (typeof input === 'string') text = input;
  else if (input instanceof Uint8Array) {
    try {
      text = strictUtf8.decode(input);
    } catch {
      return undefined;
    }
  } else return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return isFields(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `value` is absent in JSON's sense: missing or null. */
export function isAbsent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

/**
 * The first key of `fields` that is not in `known` and holds a value, or undefined. A key set to
 * null says nothing (clients that write every field of their own model send many), so leaving it
 * out drops nothing.
 */
export function unknownKey(fields: Fields, known: readonly string[]): string | undefined {
  for (const key of Object.keys(fields)) if (!known.includes(key) && !isAbsent(fields[key])) return key;
  return undefined;
}

export function unknownKeyMessage(param: string, key: string): string {
  return `'${param}' has '${key}', which this endpoint does not translate to the Anthropic Messages API; leave it out.`;
}

/** A short description of a value for an error message: its JSON, cut after 40 characters. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return json.length <= 40 ? json : `${json.slice(0, 37)}...`;
}
