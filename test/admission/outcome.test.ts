// Proves every rejection kind and upstream status class has exactly one row in the status tables.
// Each row has the agreed statuses, and retry headers come with exactly the retryable kinds.
import { describe, expect, it } from 'vitest';
import {
  grpcStatusCodes,
  type Rejection,
  type RejectionKind,
  rejectionStatus,
  retryAfterMsOf,
  retryHeaders,
  retryHintHeaders,
  upstreamErrorStatus,
  upstreamStatusClass,
} from '../../src/admission/outcome.js';

/**
 * One sample per kind. The mapped type makes this fail to compile when a kind is added without a
 * sample, and the key comparison below fails at run time when the table and the kinds disagree.
 */
const samples: { readonly [K in RejectionKind]: Extract<Rejection, { kind: K }> } = {
  quota: { kind: 'quota', metric: 'weighted_tokens', limit: 1_000_000, window: 'day', retryAfterMs: 3_600_000 },
  rate: { kind: 'rate', retryAfterMs: 100 },
  concurrency: { kind: 'concurrency', retryAfterMs: 250 },
  unauthenticated: { kind: 'unauthenticated', reason: 'bad-signature' },
  shed: { kind: 'shed', retryAfterMs: 1_500 },
  'no-quorum': { kind: 'no-quorum', operation: 'admission', retryAfterMs: 1 },
  invalid: { kind: 'invalid', field: 'max_tokens', reason: 'must be positive' },
  'exceeds-limit': { kind: 'exceeds-limit', scope: 'tenant', metric: 'weighted_tokens', limit: 1_000, window: 'day', amount: 5_000 },
  'request-running': { kind: 'request-running', retryAfterMs: 1_000 },
  'request-done': { kind: 'request-done', reason: 'already completed' },
};

describe('rejectionStatus', () => {
  it('has one row per rejection kind, and no other', () => {
    expect(Object.keys(rejectionStatus).sort()).toEqual(Object.keys(samples).sort());
    for (const [kind, sample] of Object.entries(samples)) expect(sample.kind).toBe(kind);
  });

  it('maps each kind to the agreed gRPC status and HTTP status', () => {
    const table = Object.fromEntries(Object.entries(rejectionStatus).map(([kind, row]) => [kind, [row.grpc, row.http]]));
    expect(table).toEqual({
      quota: ['RESOURCE_EXHAUSTED', 429],
      rate: ['RESOURCE_EXHAUSTED', 429],
      concurrency: ['RESOURCE_EXHAUSTED', 429],
      unauthenticated: ['UNAUTHENTICATED', 401],
      shed: ['UNAVAILABLE', 503],
      'no-quorum': ['UNAVAILABLE', 503],
      invalid: ['INVALID_ARGUMENT', 400],
      'exceeds-limit': ['FAILED_PRECONDITION', 400],
      'request-running': ['ABORTED', 409],
      'request-done': ['ALREADY_EXISTS', 409],
    });
    expect(grpcStatusCodes.RESOURCE_EXHAUSTED).toBe(8);
    expect(grpcStatusCodes.UNAVAILABLE).toBe(14);
    expect(grpcStatusCodes.UNAUTHENTICATED).toBe(16);
    expect(grpcStatusCodes.INVALID_ARGUMENT).toBe(3);
  });

  it('calls retryable exactly the kinds that carry a retry hint', () => {
    for (const sample of Object.values(samples)) {
      expect(rejectionStatus[sample.kind].retryable).toBe(retryAfterMsOf(sample) !== undefined);
    }
    expect(
      Object.values(samples)
        .filter((sample) => !rejectionStatus[sample.kind].retryable)
        .map((sample) => sample.kind)
        .sort(),
    ).toEqual(['exceeds-limit', 'invalid', 'request-done', 'unauthenticated']);
  });
});

describe('retryHeaders', () => {
  it('gives pushback in milliseconds and Retry-After in whole seconds, both rounded up', () => {
    expect(retryHeaders(samples.rate)).toEqual({ 'grpc-retry-pushback-ms': '100', 'retry-after': '1' });
    expect(retryHeaders(samples.shed)).toEqual({ 'grpc-retry-pushback-ms': '1500', 'retry-after': '2' });
    expect(retryHeaders(samples.quota)).toEqual({ 'grpc-retry-pushback-ms': '3600000', 'retry-after': '3600' });
    expect(retryHeaders({ kind: 'concurrency', retryAfterMs: 2_000 })).toEqual({ 'grpc-retry-pushback-ms': '2000', 'retry-after': '2' });
    expect(retryHeaders({ kind: 'no-quorum', operation: 'admission', retryAfterMs: 0.2 })).toEqual({ 'grpc-retry-pushback-ms': '1', 'retry-after': '1' });
  });

  it('sends zero for a hint already past, and nothing for kinds a retry cannot cure', () => {
    expect(retryHeaders({ kind: 'rate', retryAfterMs: -40 })).toEqual({ 'grpc-retry-pushback-ms': '0', 'retry-after': '0' });
    expect(retryHeaders(samples.unauthenticated)).toEqual({});
    expect(retryHeaders(samples.invalid)).toEqual({});
  });

  it('gives every retryable kind both headers', () => {
    for (const sample of Object.values(samples)) {
      const headers = retryHeaders(sample);
      const expected = rejectionStatus[sample.kind].retryable ? ['grpc-retry-pushback-ms', 'retry-after'] : [];
      expect(Object.keys(headers).sort()).toEqual(expected);
    }
  });
});

describe('upstreamErrorStatus', () => {
  it('classifies upstream statuses: named rows first, then by hundred', () => {
    const classes = Object.fromEntries(
      [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504, 529, 200, 302, 0, 600, 429.5].map((status) => [status, upstreamStatusClass(status)]),
    );
    expect(classes).toEqual({
      400: 'bad-request',
      401: 'account-refused',
      402: 'account-refused',
      403: 'account-refused',
      404: 'not-found',
      409: 'bad-request',
      413: 'too-large',
      422: 'bad-request',
      429: 'rate-limited',
      500: 'server-error',
      502: 'server-error',
      503: 'server-error',
      504: 'timeout',
      529: 'overloaded',
      200: 'bad-gateway',
      302: 'bad-gateway',
      0: 'bad-gateway',
      600: 'bad-gateway',
      429.5: 'bad-gateway',
    });
  });

  it('maps each class to the agreed gRPC status and HTTP status', () => {
    const table = Object.fromEntries(Object.entries(upstreamErrorStatus).map(([kind, row]) => [kind, [row.grpc, row.http, row.retryable, row.passesMessage]]));
    expect(table).toEqual({
      'bad-request': ['INVALID_ARGUMENT', 400, false, true],
      'not-found': ['NOT_FOUND', 404, false, true],
      'too-large': ['INVALID_ARGUMENT', 413, false, true],
      'account-refused': ['UNAVAILABLE', 503, true, false],
      'rate-limited': ['RESOURCE_EXHAUSTED', 429, true, false],
      overloaded: ['UNAVAILABLE', 503, true, false],
      timeout: ['DEADLINE_EXCEEDED', 504, true, false],
      'server-error': ['UNAVAILABLE', 502, true, false],
      'bad-gateway': ['UNAVAILABLE', 502, true, false],
    });
  });

  it("never answers the account's trouble as the client's credentials", () => {
    for (const status of [401, 402, 403]) {
      const row = upstreamErrorStatus[upstreamStatusClass(status)];
      expect(row.grpc).not.toBe('UNAUTHENTICATED');
      expect(row.grpc).not.toBe('PERMISSION_DENIED');
      expect(row.http).not.toBe(401);
      expect(row.passesMessage).toBe(false);
    }
  });

  it('gives a reply to every row, for when the upstream message may not pass', () => {
    for (const row of Object.values(upstreamErrorStatus)) expect(row.reply.length).toBeGreaterThan(0);
  });
});

describe('retryHintHeaders', () => {
  it('rounds a bare hint the way retryHeaders rounds a rejection', () => {
    expect(retryHintHeaders(1_500)).toEqual(retryHeaders({ kind: 'shed', retryAfterMs: 1_500 }));
    expect(retryHintHeaders(0.2)).toEqual({ 'grpc-retry-pushback-ms': '1', 'retry-after': '1' });
    expect(retryHintHeaders(-5)).toEqual({ 'grpc-retry-pushback-ms': '0', 'retry-after': '0' });
    expect(() => retryHintHeaders(Number.POSITIVE_INFINITY)).toThrow(/finite/);
  });
});
