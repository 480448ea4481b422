// Proves the Forward service's decoders: every account feedback (subscription windows included)
// and result survives the wire unchanged, and mutated feedback JSON or out-of-range fields decode to an error value, never a
// throw or a value the pool would misread.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AccountId, RegionId, RequestId, TenantId } from '../../../src/core/ids.js';
import type { ForwardResult } from '../../../src/net/grpc/forward-handler.js';
import {
  decodeFeedback,
  decodeForwardReply,
  decodeForwardRequest,
  encodeForwardRequest,
  encodeForwardResult,
  type WireForwardRequest,
  type WireForwardResult,
} from '../../../src/net/grpc/forward-wire.js';
import type { AccountFeedback, RateLimitWindow, UnifiedLimits, UnifiedWindow } from '../../../src/pool/account-feedback.js';
import { checkProperty } from '../../support/property.js';

const utf8 = new TextEncoder();
const count = fc.nat({ max: 10_000_000 });
const window: fc.Arbitrary<RateLimitWindow | undefined> = fc.option(
  fc.record({ limit: fc.option(count, { nil: undefined }), remaining: fc.option(count, { nil: undefined }), resetAtMs: fc.option(count, { nil: undefined }) }),
  { nil: undefined },
);
const status = fc.option(fc.constantFrom('allowed' as const, 'allowed_warning' as const, 'rejected' as const), { nil: undefined });
const unifiedWindow: fc.Arbitrary<UnifiedWindow | undefined> = fc.option(
  fc.record({
    status,
    utilization: fc.option(fc.double({ min: 0, max: 10, noNaN: true }), { nil: undefined }),
    resetAtMs: fc.option(count, { nil: undefined }),
  }),
  { nil: undefined },
);
const unified: fc.Arbitrary<UnifiedLimits | undefined> = fc.option(
  fc.record({ status, resetAtMs: fc.option(count, { nil: undefined }), windows: fc.record({ 'five-hour': unifiedWindow, 'seven-day': unifiedWindow }) }),
  { nil: undefined },
);
const rateLimits = fc.record({ requests: window, tokens: window, inputTokens: window, outputTokens: window, unified });
const feedback: fc.Arbitrary<AccountFeedback> = fc.oneof(
  rateLimits.map((r) => ({ kind: 'success' as const, rateLimits: r })),
  fc.record({ retryAfterMs: fc.option(count, { nil: undefined }), rateLimits }).map((f) => ({ kind: 'rate-limited' as const, ...f })),
  fc.constant({ kind: 'overloaded' as const }),
  fc.constantFrom(401 as const, 402 as const, 403 as const).map((status) => ({ kind: 'auth-failed' as const, status })),
  fc.integer({ min: 500, max: 599 }).map((status) => ({ kind: 'server-error' as const, status })),
  fc.integer({ min: 400, max: 499 }).map((status) => ({ kind: 'client-error' as const, status })),
  fc.string({ maxLength: 40 }).map((detail) => ({ kind: 'network' as const, detail })),
);

/** Drops undefined fields, as JSON does, for the comparison. */
const normal = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('forward wire', () => {
  it('carries every feedback and result unchanged', () => {
    checkProperty(
      fc.property(feedback, count, count, fc.boolean(), fc.boolean(), (fb, input, output, replayed, estimated) => {
        const result: ForwardResult = {
          outcome: estimated ? 'cancelled' : 'ok',
          usage: { input, output, cacheWrite: 0, cacheRead: 3 },
          feedback: fb,
          messageJson: utf8.encode('{"type":"message"}'),
          upstreamRequestId: 'req_1',
          status: 0,
          errorType: '',
          detail: '',
          cancelled: estimated,
          estimated,
          replayed,
          settledElsewhere: !replayed,
          servedRegion: 'eu-west' as RegionId,
        };
        const decoded = decodeForwardReply(encodeForwardResult(result));
        expect(decoded.ok).toBe(true);
        if (decoded.ok && decoded.value.kind === 'result') expect(normal(decoded.value.result)).toEqual(normal(result));
      }),
    );
  });

  it('refuses mutated feedback without throwing', () => {
    checkProperty(
      fc.property(feedback, fc.nat(), fc.string({ maxLength: 3 }), (fb, at, insert) => {
        const text = JSON.stringify(fb);
        const cut = at % (text.length + 1);
        const mutated = text.slice(0, cut) + insert + text.slice(cut + 1);
        const decoded = decodeFeedback(utf8.encode(mutated));
        // Either a refusal, or a well-formed feedback of a known kind.
        if (decoded !== undefined)
          expect(['success', 'rate-limited', 'overloaded', 'auth-failed', 'server-error', 'client-error', 'network']).toContain(decoded.kind);
      }),
      300,
    );
  });

  it('refuses results out of range, naming the field', () => {
    const good = encodeForwardResult({
      outcome: 'ok',
      usage: { input: 1, output: 1, cacheWrite: 0, cacheRead: 0 },
      feedback: { kind: 'overloaded' },
      messageJson: undefined,
      upstreamRequestId: undefined,
      status: 0,
      errorType: '',
      detail: '',
      cancelled: false,
      estimated: false,
      replayed: false,
      settledElsewhere: false,
      servedRegion: 'eu-west' as RegionId,
    }).result as WireForwardResult;
    const bad = (change: Partial<WireForwardResult>): string | undefined => {
      const decoded = decodeForwardReply({ result: { ...good, ...change } });
      return decoded.ok ? undefined : decoded.error.field;
    };
    expect(bad({ outcome: 'exploded' })).toBe('result.outcome');
    expect(bad({ usage: { input_tokens: -1, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } })).toBe('result.usage');
    expect(bad({ feedback_json: utf8.encode('{"kind":"auth-failed","status":500}') })).toBe('result.feedback_json');
    // Subscription windows the header parser could not have produced.
    const limited = (unified: unknown): string => JSON.stringify({ kind: 'rate-limited', rateLimits: { unified } });
    for (const unified of [
      { status: 'throttled', windows: {} },
      { resetAtMs: -1, windows: {} },
      { windows: { 'five-hour': { utilization: 10.5 } } },
      { windows: { 'five-hour': { utilization: -0.1 } } },
      { windows: { 'one-day': { status: 'allowed' } } },
      { windows: { 'seven-day': { resetAtMs: 1.5 } } },
      { status: 'allowed' },
      'rejected',
    ]) {
      expect(bad({ feedback_json: utf8.encode(limited(unified)) })).toBe('result.feedback_json');
    }
    expect(bad({ feedback_json: utf8.encode(limited({ status: 'rejected', windows: { 'seven-day': { utilization: 1 } } })) })).toBeUndefined();
    expect(bad({ served_region: '' })).toBe('result.served_region');
    expect(bad({ status: 700 })).toBe('result.status');
    expect(decodeForwardReply({}).ok).toBe(false);
  });

  it('reads a request from a member that sends no abort_on_cancel as draining', () => {
    const request = {
      requestId: 'r1' as RequestId,
      accountId: 'a1' as AccountId,
      tenant: 't1' as TenantId,
      requestJson: utf8.encode('{}'),
      anthropicVersion: undefined,
      anthropicBeta: undefined,
      stream: true,
      originRegion: 'us-east' as RegionId,
      abortOnCancel: true,
    };
    const wire = encodeForwardRequest(request);
    expect(decodeForwardRequest(wire)).toEqual({ ok: true, value: request });
    const older: Record<string, unknown> = { ...wire };
    delete older.abort_on_cancel;
    const decoded = decodeForwardRequest(older as unknown as WireForwardRequest);
    expect(decoded.ok && decoded.value.abortOnCancel).toBe(false);
  });
});
