// Proves the gateway's request checks name the offending field for each mistake in the contract.
// They refuse a body or max_tokens past their named bounds and accept what the contract allows; the
// input estimate bounds the emulator's token count for plain and multi-byte text.
import { describe, expect, it } from 'vitest';
import { gatewayMaxTokensMax, gatewayRequestJsonBytesMax } from '../../../src/core/limits.js';
import type { CompleteRequest } from '../../../src/net/grpc/carpool-handler.js';
import { inputTokensUpperBound } from '../../../src/node/gateway/request-amounts.js';
import { parseCompleteRequest, parseCountTokensRequest } from '../../../src/node/gateway/request-validation.js';
import { layOutPrompt } from '../../../src/upstream/emulator/prompt-segments.js';
import { validateCountTokensRequest } from '../../../src/upstream/emulator/request-validation.js';

const utf8 = new TextEncoder();
const body = { model: 'claude-sonnet-4-6', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] };

function request(overrides: Partial<CompleteRequest> & { readonly json?: unknown } = {}): CompleteRequest {
  const { json, ...rest } = overrides;
  return { requestId: 'req-1', requestJson: utf8.encode(JSON.stringify(json ?? body)), anthropicVersion: '', anthropicBeta: '', user: '', ...rest };
}

function fieldOf(candidate: CompleteRequest): string | undefined {
  const parsed = parseCompleteRequest(candidate);
  return parsed.ok ? undefined : parsed.error.field;
}

describe('parseCompleteRequest', () => {
  it('accepts a valid request and reads what admission needs', () => {
    const parsed = parseCompleteRequest(request({ requestId: 'A-z.0_9:x', user: 'bob', anthropicBeta: 'tools-2024, files' }));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value).toMatchObject({ requestId: 'A-z.0_9:x', maxTokens: 32, user: 'bob', anthropicVersion: undefined, anthropicBeta: 'tools-2024, files' });
    expect(parsed.value.inputTokensEstimate).toBe(inputTokensUpperBound(request().requestJson.length));
  });

  it('names the field of each mistake', () => {
    expect(fieldOf(request({ requestId: '' }))).toBe('request_id');
    expect(fieldOf(request({ requestId: 'x'.repeat(65) }))).toBe('request_id');
    expect(fieldOf(request({ requestId: 'a/b' }))).toBe('request_id');
    expect(fieldOf(request({ requestJson: new Uint8Array(0) }))).toBe('request_json');
    expect(fieldOf(request({ requestJson: Uint8Array.of(0x7b, 0xff, 0x7d) }))).toBe('request_json');
    expect(fieldOf(request({ requestJson: utf8.encode('[1,2]') }))).toBe('request_json');
    expect(fieldOf(request({ requestJson: utf8.encode('{"model":') }))).toBe('request_json');
    expect(fieldOf(request({ json: { ...body, model: 7 } }))).toBe('request_json.model');
    expect(fieldOf(request({ json: { ...body, max_tokens: 0 } }))).toBe('request_json.max_tokens');
    expect(fieldOf(request({ json: { ...body, max_tokens: 1.5 } }))).toBe('request_json.max_tokens');
    expect(fieldOf(request({ json: { model: body.model, messages: body.messages } }))).toBe('request_json.max_tokens');
    expect(fieldOf(request({ json: { ...body, messages: [] } }))).toBe('request_json.messages');
    expect(fieldOf(request({ user: 'has space' }))).toBe('user');
    expect(fieldOf(request({ anthropicVersion: 'bad\nversion' }))).toBe('anthropic_version');
    // Deeply nested input is refused by field, not a crash of the parser.
    expect(fieldOf(request({ requestJson: utf8.encode(`${'['.repeat(200_000)}${']'.repeat(200_000)}`) }))).toBe('request_json');
  });

  it('refuses max_tokens and a body past their bounds, naming the bound, and takes them at the bound', () => {
    const reasonOf = (candidate: CompleteRequest): string => {
      const parsed = parseCompleteRequest(candidate);
      return parsed.ok ? '' : `${parsed.error.field}: ${parsed.error.reason}`;
    };
    expect(reasonOf(request({ json: { ...body, max_tokens: 1e9 } }))).toBe(
      `request_json.max_tokens: is 1000000000, over the bound of ${gatewayMaxTokensMax} (the largest output window of current models)`,
    );
    expect(parseCompleteRequest(request({ json: { ...body, max_tokens: gatewayMaxTokensMax } })).ok).toBe(true);
    const padded = (bytes: number): CompleteRequest => {
      const json = JSON.stringify({ ...body, system: '' });
      return request({ requestJson: utf8.encode(json.replace('"system":""', `"system":"${'x'.repeat(bytes - json.length)}"`)) });
    };
    expect(padded(gatewayRequestJsonBytesMax).requestJson.length).toBe(gatewayRequestJsonBytesMax);
    expect(parseCompleteRequest(padded(gatewayRequestJsonBytesMax)).ok).toBe(true);
    expect(reasonOf(padded(10 * 1024 * 1024))).toBe(
      `request_json: is ${10 * 1024 * 1024} bytes, over the bound of ${gatewayRequestJsonBytesMax} bytes a request may carry`,
    );
  });

  it('checks count_tokens bodies for model and messages', () => {
    const ok = parseCountTokensRequest({
      requestJson: utf8.encode(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] })),
      anthropicVersion: '',
      anthropicBeta: '',
    });
    expect(ok.ok).toBe(true);
    const bad = parseCountTokensRequest({ requestJson: utf8.encode('{"model":"m"}'), anthropicVersion: '', anthropicBeta: '' });
    expect(bad.ok ? undefined : bad.error.field).toBe('request_json.messages');
  });

  it('estimates at least the tokens the emulator counts, for ASCII, CJK and punctuation-heavy text', () => {
    for (const content of ['Share a ride to the station at nine?', '相乗りで駅まで行きませんか', '!!!???...;;;:::'.repeat(20), 'word '.repeat(500)]) {
      const json = { model: 'claude-sonnet-4-6', max_tokens: 16, system: 'Be brief.', messages: [{ role: 'user', content }] };
      const bytes = utf8.encode(JSON.stringify(json)).length;
      const checked = validateCountTokensRequest(json);
      expect(checked.ok).toBe(true);
      if (!checked.ok) continue;
      expect(inputTokensUpperBound(bytes)).toBeGreaterThanOrEqual(layOutPrompt(checked.value).totalTokens);
    }
  });
});
