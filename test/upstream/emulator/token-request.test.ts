// Proves the token endpoint's body parser: JSON (as Claude Code and the relays send it) and form
// encoding are read alike, and every malformed request is refused with the RFC 6749 error code
// and a description naming what is wrong.
import { describe, expect, it } from 'vitest';
import { parseTokenRequest, tokenErrorBody } from '../../../src/upstream/emulator/token-request.js';

const json = 'application/json';
const form = 'application/x-www-form-urlencoded';
const good = { grant_type: 'refresh_token', refresh_token: 'sk-ant-ort01-abc', client_id: '9d1c250a-e61b-44d9-88ed-5944d1962f5e' };

describe('parseTokenRequest', () => {
  it('reads a JSON body and a form-encoded one alike', () => {
    const expected = { ok: true, value: { refreshToken: 'sk-ant-ort01-abc', clientId: good.client_id } };
    expect(parseTokenRequest(json, JSON.stringify(good))).toEqual(expected);
    expect(parseTokenRequest(`${json}; charset=utf-8`, JSON.stringify(good))).toEqual(expected);
    expect(parseTokenRequest(form, new URLSearchParams(good).toString())).toEqual(expected);
  });

  it('refuses a bad body with invalid_request and says why', () => {
    const refused = (contentType: string | undefined, body: string): { error: string; description: string } | undefined => {
      const parsed = parseTokenRequest(contentType, body);
      return parsed.ok ? undefined : parsed.error;
    };
    expect(refused(undefined, JSON.stringify(good))).toEqual({
      error: 'invalid_request',
      description: 'The content type must be application/json or application/x-www-form-urlencoded.',
    });
    expect(refused(json, '{not json')).toEqual({ error: 'invalid_request', description: 'The request body is not valid JSON.' });
    expect(refused(json, '[1]')).toEqual({ error: 'invalid_request', description: 'The request body must be a JSON object.' });
    expect(refused(json, JSON.stringify({ ...good, grant_type: undefined }))).toEqual({
      error: 'invalid_request',
      description: 'Missing required parameter: grant_type.',
    });
    expect(refused(json, JSON.stringify({ ...good, refresh_token: '' }))).toEqual({
      error: 'invalid_request',
      description: 'Missing required parameter: refresh_token.',
    });
    expect(refused(json, JSON.stringify({ ...good, refresh_token: 42 }))).toEqual({
      error: 'invalid_request',
      description: 'Parameter refresh_token must be a string.',
    });
    expect(refused(json, JSON.stringify({ ...good, client_id: undefined }))).toEqual({
      error: 'invalid_request',
      description: 'Missing required parameter: client_id.',
    });
    expect(refused(form, `${new URLSearchParams(good).toString()}&refresh_token=again`)).toEqual({
      error: 'invalid_request',
      description: 'Parameter refresh_token is included more than once.',
    });
  });

  it('refuses any other grant with unsupported_grant_type', () => {
    const parsed = parseTokenRequest(json, JSON.stringify({ ...good, grant_type: 'authorization_code' }));
    expect(parsed.ok ? undefined : parsed.error.error).toBe('unsupported_grant_type');
  });

  it('writes errors in the RFC 6749 shape', () => {
    expect(tokenErrorBody({ error: 'invalid_grant', description: 'Refresh token not found or invalid' })).toEqual({
      error: 'invalid_grant',
      error_description: 'Refresh token not found or invalid',
    });
  });
});
