// Proves id parsing accepts exactly printable ASCII ids of bounded length, else names the problem.
import { describe, expect, it } from 'vitest';
import { isValidName, parseReplicaId, parseTenantId } from '../../src/core/ids.js';
import { idLengthMax } from '../../src/core/limits.js';

describe('ids', () => {
  it('accepts printable ASCII ids', () => {
    const parsed = parseTenantId('acme-corp_01');
    expect(parsed).toEqual({ ok: true, value: 'acme-corp_01' });
    expect(parseReplicaId('us-east/node-1#3').ok).toBe(true);
  });

  it('rejects empty, long, spaced and non-ASCII ids with a reason', () => {
    for (const bad of ['', 'a'.repeat(idLengthMax + 1), 'has space', 'tab\there', 'ünïcode', 'nul\u0000']) {
      const parsed = parseTenantId(bad);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.error.reason).toContain('tenant id');
    }
    expect(parseTenantId('a'.repeat(idLengthMax)).ok).toBe(true);
  });

  it('accepts only lowercase identifier names', () => {
    expect(isValidName('weighted_tokens')).toBe(true);
    expect(isValidName('Tokens')).toBe(false);
    expect(isValidName('9lives')).toBe(false);
    expect(isValidName('')).toBe(false);
  });
});
