// Proves buildRequest writes the body exactly as `JSON.stringify({ ...body, stream })` would for
// every shape of body (its shortcut for plain objects included), and that parsing base URLs once
// never gives one call another call's origin or path, nor lets a bad URL through.
import { describe, expect, it } from 'vitest';
import { buildRequest, type UpstreamTarget } from '../../src/upstream/upstream-request.js';

const credential = { kind: 'api-key', key: 'sk-ant-request' } as const;
const target: UpstreamTarget = { baseUrl: 'https://api.example.com', credential };

function bodyOf(body: Readonly<Record<string, unknown>>, stream: boolean): string | undefined {
  const built = buildRequest(target, { body }, stream);
  return built.ok ? built.value.body : undefined;
}

class WithToJson {
  readonly model = 'm';
  toJSON(): unknown {
    return { replaced: true };
  }
}

describe('buildRequest body', () => {
  const nullPrototype = Object.assign(Object.create(null) as Record<string, unknown>, { model: 'm', max_tokens: 8 });
  const hiddenStream = Object.defineProperty({ model: 'm' }, 'stream', { value: true, enumerable: false });
  const accessorStream = Object.defineProperty({ model: 'm' }, 'stream', { get: () => false, enumerable: true });
  const shapes: [string, Readonly<Record<string, unknown>>][] = [
    ['an empty object', {}],
    ['a body without stream', { model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'Hi "there"\n' }] }],
    ['a body with stream: false', { model: 'm', stream: false, max_tokens: 8 }],
    ['a body with stream: true', { model: 'm', stream: true, max_tokens: 8 }],
    ['a body with stream: null', { stream: null, model: 'm' }],
    ['a body with integer keys', { b: 1, 2: 'two', a: 2, 1: 'one' }],
    ['a body with undefined and function values', { model: 'm', skipped: undefined, fn: () => 1 }],
    ['a null-prototype body', nullPrototype],
    ['a body with a non-enumerable stream', hiddenStream],
    ['a body with an accessor stream', accessorStream],
    ['a body with its own toJSON', { model: 'm', toJSON: () => ({ own: true }) }],
    ['a class instance with toJSON', new WithToJson() as unknown as Readonly<Record<string, unknown>>],
  ];
  for (const [name, body] of shapes) {
    it(`writes ${name} as the spread copy would`, () => {
      for (const stream of [false, true]) expect(bodyOf(body, stream)).toBe(JSON.stringify({ ...body, stream }));
    });
  }

  it('reports a body that does not serialise with the error the spread copy gives', () => {
    const cyclic: Record<string, unknown> = { model: 'm' };
    cyclic.self = cyclic;
    let expected = '';
    try {
      JSON.stringify({ ...cyclic, stream: false });
    } catch (error) {
      expected = `the body does not serialise: ${(error as Error).message}`;
    }
    expect(buildRequest(target, { body: cyclic }, false)).toEqual({ ok: false, error: { kind: 'invalid-request', detail: expected } });
    expect(buildRequest(target, { body: { big: 1n } }, false)).toMatchObject({ ok: false, error: { kind: 'invalid-request' } });
  });
});

describe('buildRequest base URL', () => {
  it('gives each call the origin and path of its own base URL, whatever came before', () => {
    const request = { body: { model: 'm' } };
    const sequence: [string, string, string][] = [
      ['https://api.example.com', 'https://api.example.com', '/v1/messages'],
      ['https://api.example.com', 'https://api.example.com', '/v1/messages'],
      ['http://127.0.0.1:8080/proxy/', 'http://127.0.0.1:8080', '/proxy/v1/messages'],
      ['https://api.example.com', 'https://api.example.com', '/v1/messages'],
      ['http://127.0.0.1:8080/proxy/', 'http://127.0.0.1:8080', '/proxy/v1/messages'],
    ];
    for (const [baseUrl, origin, path] of sequence) {
      expect(buildRequest({ baseUrl, credential }, request, false)).toMatchObject({ ok: true, value: { origin, path } });
    }
  });

  it('refuses a bad base URL right after a good one', () => {
    const request = { body: { model: 'm' } };
    expect(buildRequest(target, request, false).ok).toBe(true);
    for (const baseUrl of ['not a url', 'ftp://api.example.com', 'https://user:pw@api.example.com', 'https://api.example.com/?q=1']) {
      expect(buildRequest({ baseUrl, credential }, request, false)).toMatchObject({ ok: false, error: { kind: 'invalid-request' } });
      expect(buildRequest(target, request, false).ok).toBe(true);
    }
  });
});
