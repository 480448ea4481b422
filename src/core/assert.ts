/**
 * Assertions are for programmer errors: states the code believes impossible. A failed assertion
 * throws an AssertionError that nothing in the cores catches, so the process stops loudly instead
 * of carrying a corrupt counter forward. Expected operating failures (bad frames, full maps, no
 * quorum) are never asserted: they are returned as `Result` values.
 */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch the type checker proves unreachable (exhaustive switches). */
export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}

/** A count or amount: a non-negative integer that a double holds exactly. */
export function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
