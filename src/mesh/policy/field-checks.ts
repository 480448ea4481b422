import { err, ok, type Err, type Result } from '../../core/result.js';

/**
 * The small checks every policy validator builds on (src/mesh/policy/policy-schema.ts and
 * src/mesh/policy/schedule-schema.ts), so that each names a bad field the same way.
 */
export interface PolicyError {
  readonly kind: 'invalid-policy';
  /** Path of the bad field, e.g. `tenants.acme.limits[2].window`. */
  readonly field: string;
  readonly reason: string;
}

export function invalid(field: string, reason: string): Err<PolicyError> {
  return err({ kind: 'invalid-policy', field, reason });
}

export type Fields = Readonly<Record<string, unknown>>;

export function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isOneOf<T extends string>(options: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (options as readonly string[]).includes(value);
}

/** Doubles carry a sign on zero; a stored `-0` would compare unequal to `0` in some places. */
export const unsignedZero = (value: number): number => (value === 0 ? 0 : value);

export function validateIntegerIn(value: unknown, field: string, min: number, max: number): Result<number, PolicyError> {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    return invalid(field, `must be an integer from ${min} to ${max}`);
  }
  return ok(unsignedZero(value));
}
