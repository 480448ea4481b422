import { err, ok, type Result } from '../core/result.js';

/**
 * What goes out on an upstream call: the account's credential, the API's version headers and
 * the JSON body, built into the method, path and headers the HTTP client sends.
 *
 *   POST {baseUrl}/v1/messages
 *   x-api-key: sk-ant-...            (api-key credentials)
 *   authorization: Bearer ...        (oauth credentials)
 *   anthropic-version: 2023-06-01    (or the caller's)
 *   anthropic-beta: ...              (only when the caller sends one)
 *   content-type: application/json
 *   accept: application/json | text/event-stream
 *
 * Credentials are secrets: nothing here or in the client puts one into an error, a log line or
 * a thrown message, and `redact` scrubs them from text that came back from the network.
 */
export type Credential = { readonly kind: 'api-key'; readonly key: string } | { readonly kind: 'oauth'; readonly token: string };

/** Where an account's calls go, and as whom. */
export interface UpstreamTarget {
  /** `https://api.anthropic.com`, or a proxy or emulator; a path prefix is kept. */
  readonly baseUrl: string;
  readonly credential: Credential;
}

export interface UpstreamRequest {
  /** The Messages API body; the client sets `stream` itself for `complete` and `stream`. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The caller's `anthropic-version`, passed through; `defaultAnthropicVersion` otherwise. */
  readonly anthropicVersion?: string;
  /** The caller's `anthropic-beta` list, passed through as sent. */
  readonly anthropicBeta?: string;
}

export const defaultAnthropicVersion = '2023-06-01';
export const messagesPath = '/v1/messages';

export interface BuiltRequest {
  readonly origin: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface InvalidRequest {
  readonly kind: 'invalid-request';
  readonly detail: string;
}

/**
 * Header values must be visible ASCII (and spaces, inside a value) or the HTTP client throws,
 * and its message could then carry the value; so they are checked here first, and the error
 * names the header only.
 */
const tokenValue = /^[\x21-\x7e]+$/;
const listValue = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

export function buildRequest(target: UpstreamTarget, request: UpstreamRequest, stream: boolean): Result<BuiltRequest, InvalidRequest> {
  const call = buildCall(target, messagesPath, stream ? 'text/event-stream' : 'application/json', request.anthropicVersion, request.anthropicBeta);
  if (!call.ok) return call;
  let body: string;
  try {
    body = bodyJson(request.body, stream);
  } catch (error) {
    return err({ kind: 'invalid-request', detail: `the body does not serialise: ${error instanceof Error ? error.message : 'unknown error'}` });
  }
  // Fields named, not spread: a spread followed by a field is a slow path on this hot call.
  return ok({ origin: call.value.origin, path: call.value.path, headers: call.value.headers, body });
}

/** Where an upstream call goes and the headers it carries, without its body. */
export type BuiltCall = Omit<BuiltRequest, 'body'>;

/**
 * The origin, the path (`apiPath` under the base URL's own path) and the headers of a call to
 * `target`: the credential's header, `anthropic-version` (the caller's, or the default),
 * `anthropic-beta` when the caller sent one, JSON in and `accept` out. Every call to the API
 * (messages, count_tokens) is built here, so the checks on what may go into a header live once.
 */
export function buildCall(
  target: UpstreamTarget,
  apiPath: string,
  accept: string,
  anthropicVersion: string | undefined,
  anthropicBeta: string | undefined,
): Result<BuiltCall, InvalidRequest> {
  const base = parseBaseUrl(target.baseUrl);
  if (!base.ok) return base;
  const secret = secretOf(target.credential);
  if (!tokenValue.test(secret)) return err({ kind: 'invalid-request', detail: `the ${target.credential.kind} credential is empty or not printable ASCII` });
  const version = anthropicVersion ?? defaultAnthropicVersion;
  if (!listValue.test(version)) return err({ kind: 'invalid-request', detail: 'anthropic-version is empty or not printable ASCII' });
  if (anthropicBeta !== undefined && !listValue.test(anthropicBeta)) {
    return err({ kind: 'invalid-request', detail: 'anthropic-beta is empty or not printable ASCII' });
  }
  const headers: Record<string, string> = { 'content-type': 'application/json', accept, 'anthropic-version': version };
  if (anthropicBeta !== undefined) headers['anthropic-beta'] = anthropicBeta;
  if (target.credential.kind === 'api-key') headers['x-api-key'] = secret;
  else headers.authorization = `Bearer ${secret}`;
  return ok({ origin: base.value.origin, path: base.value.basePath + apiPath, headers });
}

interface ParsedBase {
  readonly baseUrl: string;
  readonly origin: string;
  /** The base URL's own path without trailing slashes: the API's paths go under it. */
  readonly basePath: string;
}

/**
 * The last base URL that parsed. A node's calls go to one origin or a few, and parsing a URL costs
 * about a microsecond; one entry keeps this bounded without an eviction policy.
 */
let lastBase: ParsedBase | undefined;

function parseBaseUrl(baseUrl: string): Result<ParsedBase, InvalidRequest> {
  if (lastBase !== undefined && lastBase.baseUrl === baseUrl) return ok(lastBase);
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return err({ kind: 'invalid-request', detail: 'the target base URL does not parse' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return err({ kind: 'invalid-request', detail: 'the target base URL is not http or https' });
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    return err({ kind: 'invalid-request', detail: 'the target base URL has user info, a query or a fragment' });
  }
  lastBase = { baseUrl, origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') };
  return ok(lastBase);
}

/**
 * The body with `stream` set, exactly as `JSON.stringify({ ...body, stream })` writes it. The
 * spread copy costs more than the serialising (JSON.stringify takes a slow path on the copy), so
 * a plain object is written as it is when that gives the same text: with `stream` appended when
 * it has none, unchanged when its own `stream` already has the value. Anything else (a toJSON, an
 * accessor or a non-enumerable `stream`, a class instance, a body that does not serialise) takes
 * the copy, which also throws the error a caller would otherwise see.
 */
function bodyJson(body: Readonly<Record<string, unknown>>, stream: boolean): string {
  if (typeof body === 'object' && body !== null) {
    const prototype: unknown = Object.getPrototypeOf(body);
    if ((prototype === Object.prototype || prototype === null) && !('toJSON' in body)) {
      const own = Object.getOwnPropertyDescriptor(body, 'stream');
      try {
        if (own === undefined) {
          const json = JSON.stringify(body);
          return json === '{}' ? `{"stream":${stream}}` : `${json.slice(0, -1)},"stream":${stream}}`;
        }
        if (own.enumerable === true && own.value === stream) return JSON.stringify(body);
      } catch {
        // Serialised again below, for the error the spread copy gives.
      }
    }
  }
  return JSON.stringify({ ...body, stream });
}

export function secretOf(credential: Credential): string {
  return credential.kind === 'api-key' ? credential.key : credential.token;
}

/**
 * `text` with every occurrence of the credential's secret replaced. Error texts from the network
 * (a proxy's page that echoes request headers, a library message) pass through this before they
 * reach an error value.
 */
export function redact(text: string, credential: Credential): string {
  const secret = secretOf(credential);
  return secret === '' ? text : text.split(secret).join('[redacted]');
}
