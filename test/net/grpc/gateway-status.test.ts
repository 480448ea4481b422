// Proves every GatewayError kind gets its status from the outcome tables.
// So do the Admin service's refusals. The message names an invalid field, never an authentication
// reason or a withheld upstream message, and says a retry hint as a duration people read; pushback
// comes exactly when there is a retry hint.
import { describe, expect, it } from 'vitest';
import { grpcStatusCodes, type Rejection, type RejectionKind, rejectionStatus } from '../../../src/admission/outcome.js';
import { grpcStatusMessageCharsMax } from '../../../src/core/limits.js';
import type { GatewayError } from '../../../src/net/grpc/carpool-handler.js';
import { gatewayStatusOf } from '../../../src/net/grpc/gateway-status.js';

const rejections: { readonly [K in RejectionKind]: Extract<Rejection, { kind: K }> } = {
  quota: { kind: 'quota', metric: 'requests', limit: 100, window: 'minute', retryAfterMs: 42_000 },
  rate: { kind: 'rate', retryAfterMs: 10 },
  concurrency: { kind: 'concurrency', retryAfterMs: 1_000 },
  unauthenticated: { kind: 'unauthenticated', reason: 'unknown-tenant' },
  shed: { kind: 'shed', retryAfterMs: 250.5 },
  'no-quorum': { kind: 'no-quorum', operation: 'admission', retryAfterMs: 500 },
  invalid: { kind: 'invalid', field: 'messages[0].content', reason: 'must not be empty' },
  'exceeds-limit': { kind: 'exceeds-limit', scope: 'tenant', metric: 'weighted_tokens', limit: 1_000, window: 'day', amount: 5_000 },
  'request-running': { kind: 'request-running', retryAfterMs: 1_000 },
  'request-done': { kind: 'request-done', reason: 'this request id already completed; the answer is no longer kept' },
};

describe('gatewayStatusOf', () => {
  it('maps every rejection through rejectionStatus, with pushback exactly for the retryable kinds', () => {
    for (const rejection of Object.values(rejections)) {
      const status = gatewayStatusOf({ kind: 'rejected', rejection });
      expect(status.code).toBe(grpcStatusCodes[rejectionStatus[rejection.kind].grpc]);
      expect(status.pushbackMs !== undefined).toBe(rejectionStatus[rejection.kind].retryable);
    }
    expect(gatewayStatusOf({ kind: 'rejected', rejection: rejections.quota }).pushbackMs).toBe('42000');
    expect(gatewayStatusOf({ kind: 'rejected', rejection: rejections.shed }).pushbackMs).toBe('251');
  });

  it('speaks of a strict or escrowed limit only when admission needed the round, not for a QUORUM read', () => {
    expect(gatewayStatusOf({ kind: 'rejected', rejection: rejections['no-quorum'] }).details).toContain('strict');
    const read = gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'no-quorum', operation: 'read', retryAfterMs: 500 } });
    expect(read.details).toBe('too few regions answered the QUORUM read (a LOCAL read answers now); retry in 500 ms');
    expect(read.code).toBe(grpcStatusCodes.UNAVAILABLE);
  });

  it('tells a request that can never fit from one over quota, and says which limit and by how much', () => {
    const status = gatewayStatusOf({ kind: 'rejected', rejection: rejections['exceeds-limit'] });
    expect(status.code).toBe(grpcStatusCodes.FAILED_PRECONDITION);
    expect(status.details).toBe(
      "the request can never fit: its estimate of 5000 weighted_tokens is over the tenant's limit of 1000 per day; lower max_tokens or shorten the request",
    );
    expect(status.pushbackMs).toBeUndefined();
  });

  it('says nothing about why authentication failed', () => {
    const status = gatewayStatusOf({ kind: 'rejected', rejection: rejections.unauthenticated });
    expect(status).toEqual({ code: grpcStatusCodes.UNAUTHENTICATED, details: 'missing or unknown API key', pushbackMs: undefined });
  });

  it('names the field of an invalid request, from the handler or from admission, under INVALID_ARGUMENT', () => {
    expect(gatewayStatusOf({ kind: 'invalid', field: 'request_id', reason: 'too long' })).toEqual({
      code: grpcStatusCodes.INVALID_ARGUMENT,
      details: 'invalid request_id: too long',
      pushbackMs: undefined,
    });
    expect(gatewayStatusOf({ kind: 'rejected', rejection: rejections.invalid }).details).toBe('invalid messages[0].content: must not be empty');
  });

  it('maps upstream errors by status class, passing only messages about the request, and pushback only with a hint', () => {
    const upstream = (status: number, retryAfterMs?: number): GatewayError => ({
      kind: 'upstream',
      status,
      errorType: 'some_error',
      message: 'detail from upstream',
      retryAfterMs,
    });
    expect(gatewayStatusOf(upstream(429, 5_000))).toEqual({
      code: grpcStatusCodes.RESOURCE_EXHAUSTED,
      details: 'the upstream accounts are rate limited; retry in 5 s',
      pushbackMs: '5000',
    });
    expect(gatewayStatusOf(upstream(529))).toEqual({ code: grpcStatusCodes.UNAVAILABLE, details: 'the upstream is overloaded', pushbackMs: undefined });
    expect(gatewayStatusOf(upstream(400, 5_000))).toEqual({
      code: grpcStatusCodes.INVALID_ARGUMENT,
      details: 'upstream 400 some_error: detail from upstream',
      pushbackMs: undefined,
    });
    expect(gatewayStatusOf(upstream(500)).code).toBe(grpcStatusCodes.UNAVAILABLE);
    expect(gatewayStatusOf(upstream(403)).details).not.toContain('detail from upstream');
    expect(gatewayStatusOf({ kind: 'upstream', status: 404, errorType: undefined, message: '', retryAfterMs: undefined }).details).toBe('upstream 404');
  });

  it('cuts a long message to the bound', () => {
    const status = gatewayStatusOf({ kind: 'invalid', field: 'x', reason: 'y'.repeat(10_000) });
    expect(status.details).toHaveLength(grpcStatusMessageCharsMax);
    expect(status.details.endsWith('…')).toBe(true);
  });

  it('says when to retry as a duration, while the pushback stays exact milliseconds', () => {
    const quota = gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'quota', metric: 'requests', limit: 5, window: 'day', retryAfterMs: 1_218_008 } });
    expect(quota).toEqual({
      code: grpcStatusCodes.RESOURCE_EXHAUSTED,
      details: 'quota reached: requests is limited to 5 per day; retry in 20 min',
      pushbackMs: '1218008',
    });
    expect(gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'shed', retryAfterMs: 1_500 } }).details).toBe('the region is overloaded; retry in 1.5 s');
    expect(gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'no-quorum', operation: 'admission', retryAfterMs: 250 } }).details).toBe(
      'too few regions answered the quorum round a strict or escrowed limit needs; retry in 250 ms',
    );
    expect(gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'no-quorum', operation: 'credit', retryAfterMs: 2_000 } }).details).toBe(
      'too few regions answered the quorum round a credit needs; retry in 2 s',
    );
    for (const rejection of Object.values(rejections)) {
      expect(gatewayStatusOf({ kind: 'rejected', rejection }).details).not.toMatch(/\d{4,} ?ms/);
    }
  });

  it('words an admin token refusal for the admin surface, and maps the admin refusals', () => {
    expect(
      gatewayStatusOf({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: 'unknown-admin-token', credential: 'admin-token' } }).details,
    ).toBe('missing or unknown admin token');
    expect(gatewayStatusOf({ kind: 'forbidden', reason: 'the token grafana has the role viewer; this method needs admin' })).toEqual({
      code: grpcStatusCodes.PERMISSION_DENIED,
      details: 'the token grafana has the role viewer; this method needs admin',
      pushbackMs: undefined,
    });
    expect(gatewayStatusOf({ kind: 'not-found', field: 'tenant', reason: 'no tenant ghost in the policy' })).toEqual({
      code: grpcStatusCodes.NOT_FOUND,
      details: 'tenant: no tenant ghost in the policy',
      pushbackMs: undefined,
    });
  });
});
