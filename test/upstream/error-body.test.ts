// Proves error bodies give the API's error type and message when they are API errors, and a
// bounded one-line message otherwise (HTML pages, text, truncated JSON).
import { describe, expect, it } from 'vitest';
import { upstreamErrorMessageCharsMax } from '../../src/core/limits.js';
import { parseErrorBody } from '../../src/upstream/error-body.js';

describe('parseErrorBody', () => {
  it('reads an API error body', () => {
    const body = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: 'req_1' });
    expect(parseErrorBody(body)).toEqual({ errorType: 'overloaded_error', message: 'Overloaded' });
  });

  it('keeps the type when the message is missing', () => {
    expect(parseErrorBody('{"type":"error","error":{"type":"api_error"}}')).toEqual({ errorType: 'api_error', message: '' });
  });

  it('gives no type for an HTML page, and its text on one line', () => {
    const parsed = parseErrorBody('<html>\r\n<body>\n\t<h1>502 Bad Gateway</h1>\u0000</body></html>');
    expect(parsed.errorType).toBeUndefined();
    expect(parsed.message).toBe('<html> <body> <h1>502 Bad Gateway</h1> </body></html>');
  });

  it('gives no type for truncated JSON or JSON of another shape', () => {
    expect(parseErrorBody('{"type":"error","error":{"type":"overl').errorType).toBeUndefined();
    expect(parseErrorBody('{"error":"nope"}')).toEqual({ errorType: undefined, message: '{"error":"nope"}' });
    expect(parseErrorBody('').message).toBe('');
  });

  it('cuts a long message to its bound', () => {
    const parsed = parseErrorBody(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'x'.repeat(10_000) } }));
    expect(parsed.message.length).toBe(upstreamErrorMessageCharsMax);
    expect(parseErrorBody('y'.repeat(10_000)).message.length).toBe(upstreamErrorMessageCharsMax);
  });
});
