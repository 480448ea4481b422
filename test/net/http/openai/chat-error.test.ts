// Proves the OpenAI error bodies: a translation refusal names its field and kind, a failure
// takes the type and code OpenAI uses for its HTTP status (or the code it is given), and an
// Anthropic error type maps to the status the Messages API gives it.
import { describe, expect, it } from 'vitest';
import { chatErrorBody, statusOfAnthropicError, translationErrorBody } from '../../../../src/net/http/openai/index.js';

describe('OpenAI error bodies', () => {
  it('renders a translation refusal as a 400 body naming the parameter', () => {
    expect(translationErrorBody({ kind: 'unsupported', param: 'n', message: "'n' is 2." })).toEqual({
      error: { message: "'n' is 2.", type: 'invalid_request_error', param: 'n', code: 'unsupported_parameter' },
    });
    expect(translationErrorBody({ kind: 'invalid', param: 'model', message: 'x' }).error.code).toBe('invalid_value');
  });

  it.each([
    [400, 'invalid_request_error', null],
    [401, 'authentication_error', 'invalid_api_key'],
    [403, 'permission_error', null],
    [404, 'invalid_request_error', 'not_found'],
    [413, 'invalid_request_error', 'request_too_large'],
    [429, 'rate_limit_error', 'rate_limit_exceeded'],
    [500, 'server_error', null],
    [502, 'server_error', null],
    [503, 'server_error', 'overloaded'],
    [529, 'server_error', 'overloaded'],
    [418, 'invalid_request_error', null],
  ])('gives status %i the type %s and code %s', (status, type, code) => {
    expect(chatErrorBody({ status, message: 'm' })).toEqual({ error: { message: 'm', type, param: null, code } });
  });

  it('takes a param and a code of the caller', () => {
    expect(chatErrorBody({ status: 429, message: 'm', code: 'insufficient_quota', param: 'max_tokens' }).error).toMatchObject({
      code: 'insufficient_quota',
      param: 'max_tokens',
    });
  });

  it('maps Anthropic error types to their statuses, an unknown one to 500', () => {
    expect(statusOfAnthropicError('overloaded_error')).toBe(529);
    expect(statusOfAnthropicError('rate_limit_error')).toBe(429);
    expect(statusOfAnthropicError('invalid_request_error')).toBe(400);
    expect(statusOfAnthropicError('something_new')).toBe(500);
    expect(statusOfAnthropicError(undefined)).toBe(500);
  });
});
