/**
 * Expected failures travel as values. Every error type is a discriminated union with a `kind`
 * field, so callers switch over it exhaustively and one table can later map kinds to gRPC and
 * HTTP statuses.
 */
export type Result<T, E> = Ok<T> | Err<E>;

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Err<E> {
  readonly ok: false;
  readonly error: E;
}

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}

/** The shared success value for operations that return nothing; it allocates nothing. */
export const OK_VOID: Ok<undefined> = Object.freeze({ ok: true, value: undefined });
