import type { Clock } from '../../core/clock.js';
import type { AccountId } from '../../core/ids.js';
import type { Result } from '../../core/result.js';
import { networkFeedback } from '../../upstream/classify-feedback.js';
import type { CallOptions, StreamOptions } from '../../upstream/upstream-client.js';
import type { UpstreamRequest, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { Completion, StreamCompletion, UpstreamError } from '../../upstream/upstream-result.js';
import type { AccountCallClient } from '../account-caller.js';
import type { RefreshOutcome } from './account-credentials.js';

/**
 * The upstream client as the home node's calls see it (the account caller's and the forward
 * executor's, so forwarded calls too): the same `complete` and `stream`, plus one repair. A call
 * on a renewable OAuth account answered 401 with the API's "OAuth token has expired" body
 *
 *   {"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired. Please obtain a new token or refresh your existing token."}}
 *
 * renews the credential (joining a renewal in flight, ./account-credentials.ts) and is sent once
 * more with the new token, within what is left of its deadline. The pool hears only how that
 * second call went. Safe for streams as for unary calls: a 401 comes before any event, so the
 * caller has been sent nothing yet.
 *
 * Otherwise:
 *   - a second 401 after the retry is returned as it is (the pool disables the account, as for
 *     any refused credential);
 *   - a renewal that was refused has disabled the account already: the 401 is returned;
 *   - a renewal that failed for a passing reason (token endpoint down) returns the 401 with
 *     network feedback instead of auth-failed, so the pool cools the account down rather than
 *     disabling it while the refresher keeps trying;
 *   - any other target (an API key, a bare token, a target not made by the credentials) goes
 *     straight to the inner client.
 */
export interface CredentialSource {
  accountOf(target: UpstreamTarget): AccountId | undefined;
  renewable(accountId: AccountId): boolean;
  refresh(accountId: AccountId, staleToken?: string): Promise<RefreshOutcome>;
}

export class CredentialedClientStats {
  /** Calls answered "token expired" and sent again after a renewal. */
  retried = 0;
}

export class CredentialedClient implements AccountCallClient {
  readonly stats = new CredentialedClientStats();

  constructor(
    private readonly inner: AccountCallClient,
    private readonly credentials: CredentialSource,
    private readonly clock: Clock,
  ) {}

  complete(target: UpstreamTarget, request: UpstreamRequest, options: CallOptions = {}): Promise<Result<Completion, UpstreamError>> {
    return this.call(target, options, (snapshot, callOptions) => this.inner.complete(snapshot, request, callOptions));
  }

  stream(target: UpstreamTarget, request: UpstreamRequest, options: StreamOptions): Promise<Result<StreamCompletion, UpstreamError>> {
    return this.call(target, options, (snapshot, callOptions) => this.inner.stream(snapshot, request, callOptions));
  }

  private async call<T, O extends CallOptions>(
    target: UpstreamTarget,
    options: O,
    send: (target: UpstreamTarget, options: O) => Promise<Result<T, UpstreamError>>,
  ): Promise<Result<T, UpstreamError>> {
    const accountId = this.credentials.accountOf(target);
    if (accountId === undefined || !this.credentials.renewable(accountId)) return send(target, options);
    // One read of the live credential: the call and its error handling agree on the token sent.
    const first = { baseUrl: target.baseUrl, credential: target.credential };
    const startedMs = this.clock.nowMs();
    const result = await send(first, options);
    if (result.ok || result.error.kind !== 'http-status' || !isExpiredToken(result.error) || options.signal?.aborted === true) return result;
    const expired = result.error;
    const sent = first.credential.kind === 'oauth' ? first.credential.token : undefined;
    const renewed = await this.credentials.refresh(accountId, sent);
    if (renewed.kind === 'failed')
      return { ok: false, error: { ...expired, feedback: networkFeedback(`the credential could not be renewed: ${renewed.detail}`) } };
    if (renewed.kind !== 'renewed') return result;
    const retryOptions = withDeadlineLeft(options, this.clock.nowMs() - startedMs);
    if (retryOptions === undefined) return result;
    this.stats.retried++;
    return send({ baseUrl: target.baseUrl, credential: target.credential }, retryOptions);
  }
}

/** The API's answer to an expired OAuth access token: 401 `authentication_error` saying so. */
export function isExpiredToken(error: UpstreamError): boolean {
  return error.kind === 'http-status' && error.status === 401 && error.errorType === 'authentication_error' && /expired/i.test(error.message);
}

/** The options with the deadline shortened by what the first call took; undefined when none is left. */
function withDeadlineLeft<O extends CallOptions>(options: O, elapsedMs: number): O | undefined {
  const deadlineMs = options.timeouts?.deadlineMs;
  if (deadlineMs === undefined) return options;
  const leftMs = deadlineMs - elapsedMs;
  if (leftMs < 1) return undefined;
  return { ...options, timeouts: { ...options.timeouts, deadlineMs: leftMs } };
}
