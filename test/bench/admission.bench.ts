// The admission benchmark (`npm run bench -- admission`): what one core decides per second on the
// request path. Eventual quota decisions (alone, and with the reservation they lead to), the
// per-(IP, user) GCRA limiter, and request authentication (signed requests and plain API keys),
// each printed with units beside a baseline measured in the same run.
//
// Every figure is a single-threaded loop bounded both in iterations and in time (see
// `opsPerSecond`), so a slow machine finishes instead of stalling; the rate is then taken over the
// iterations that did run.
import { createHash, createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import { apiKeyHashHex, formatApiKey } from '../../src/admission/api-key.js';
import { GcraLimiter, type RateKey, rateKey } from '../../src/admission/gcra.js';
import { chargedKey, chargedKeyIn, checkEventual } from '../../src/admission/quota.js';
import { EscrowBook } from '../../src/admission/escrow.js';
import { type QuotaDecision, QuotaGate, type QuotaSubject, type RoundStarter } from '../../src/admission/quota-gate.js';
import { type AuthRequest, RequestAuthenticator } from '../../src/admission/request-auth.js';
import { type SignatureFields, type SignedContent, signRequest } from '../../src/admission/request-signature.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, asTenantId, type RequestId, type TenantId, type UserId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { windowAt } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { defaultTokenWeights, type LimitRule, type Tenant } from '../../src/mesh/policy/policy-schema.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { parseNodeConfig } from '../../src/node/node-config.js';
import { freePort } from '../support/cluster.js';
import { until } from '../support/wait.js';
import { type BenchContext, median, report } from './harness.js';

const t0 = Date.UTC(2026, 10, 26, 10, 0, 5);

/** Iterations between clock reads in `opsPerSecond`: small next to any sample, large next to a clock read. */
const chunkSize = 4_096;

/**
 * Runs `chunk(from, to)` over consecutive ranges of `chunkSize` iterations until `count`
 * iterations are done or `timeMsMax` has passed, and returns iterations per second. The loop body
 * lives inside `chunk`, so the per-iteration work is not behind a call the JIT cannot inline.
 */
function opsPerSecond(count: number, timeMsMax: number, chunk: (from: number, to: number) => void): number {
  const start = process.hrtime.bigint();
  let done = 0;
  let elapsedMs = 0;
  while (done < count && elapsedMs < timeMsMax) {
    const to = Math.min(count, done + chunkSize);
    chunk(done, to);
    done = to;
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return (done / elapsedMs) * 1000;
}

function fmt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A tally as a share, with the number of requests it is over (fewer than asked if the time bound hit). */
function share(tally: Tally): string {
  return `${((100 * tally.passed) / tally.tried).toFixed(1)}% of ${fmt(tally.tried)}`;
}

/** Per-sample bounds: iterations and milliseconds. */
function bounds(ctx: BenchContext, full: number, quick: number): { count: number; timeMsMax: number } {
  return ctx.quick ? { count: quick, timeMsMax: 250 } : { count: full, timeMsMax: 2_000 };
}

/** What the last sample of a figure did: iterations run, and how many of them passed. */
interface Tally {
  tried: number;
  passed: number;
}

// ─── Section 1: eventual quota decisions ────────────────────────────────────────────────────────

const dailyTokens: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 50_000_000, mode: 'eventual' };
const perMinuteRequests: LimitRule = { metric: 'requests', window: 'minute', sliding: true, limit: 600, mode: 'eventual' };
const eventualRules: readonly LimitRule[] = [dailyTokens, perMinuteRequests];
const eventualTenants = 10_000;
/** Replicas whose entries the merged view holds: a five-region mesh. */
const eventualReplicas = 5;

interface EventualState {
  readonly counter: WindowedCounter;
  /** Per tenant, the usage the plain-Map baseline compares against. */
  readonly dailyUsed: Map<string, number>;
  readonly minuteUsed: Map<string, number>;
}

/**
 * A node's merged view after a busy day: every tenant has weighted tokens in today's window and
 * requests in the last minute's sub-buckets, from all five replicas. About one tenant in ten is
 * over its daily limit and a few are over the per-minute one, so decisions take both branches.
 */
function buildEventualState(subjects: readonly string[]): EventualState {
  const random = new SeededRandom(11);
  const day = windowAt('day', t0);
  const sec10Now = windowAt('sec10', t0).index;
  const dailyUsed = new Map<string, number>();
  const minuteUsed = new Map<string, number>();
  const replicas = Array.from({ length: eventualReplicas }, (_, r) => new WindowedCounter(asReplicaId(`region-${r}/node-1`)));
  for (const subject of subjects) {
    const tokens = random.int(Math.floor((dailyTokens.limit * 1.1) / eventualReplicas));
    for (const replica of replicas) replica.increment(counterKey('tenant', subject, 'weighted_tokens', day), tokens);
    dailyUsed.set(subject, tokens * eventualReplicas);
    let requests = 0;
    for (let b = 0; b < 6; b++) {
      const perReplica = random.int(24);
      const key = counterKey('tenant', subject, 'requests', { unit: 'sec10', index: sec10Now - b });
      for (const replica of replicas) replica.increment(key, perReplica);
      requests += perReplica * eventualReplicas;
    }
    minuteUsed.set(subject, requests);
  }
  const counter = replicas[0]!;
  for (const replica of replicas.slice(1)) counter.join(replica.takeDelta());
  counter.takeDelta();
  return { counter, dailyUsed, minuteUsed };
}

/**
 * A copy of a built view, made by joining its full state into a fresh counter of the same replica
 * (as after a restart): cheaper than building again, and each sample that writes starts equal.
 */
function copyView(view: WindowedCounter): WindowedCounter {
  const copy = new WindowedCounter(view.self);
  copy.join(view.state());
  return copy;
}

/**
 * `checkEventual` over a 10,000-tenant view with a daily weighted-token rule and a sliding
 * per-minute request rule; then the same decision followed by what an admitted request does
 * next: reserve its token estimate on the daily key, count the request in its sub-bucket, and
 * settle the reservation made 1,024 requests earlier with that request's actual usage.
 */
export function eventualDecisions(ctx: BenchContext): void {
  const { count, timeMsMax } = bounds(ctx, 2_000_000, 300_000);
  const random = new SeededRandom(12);
  const subjects = Array.from({ length: eventualTenants }, (_, t) => `tenant-${t}`);
  const tenantIds = subjects.map(asTenantId);
  const order = Uint32Array.from({ length: count }, () => random.int(eventualTenants));
  const estimates = Uint32Array.from({ length: count }, () => 500 + random.int(8_000));
  const usedOf = Uint32Array.from(estimates, (estimate) => random.int(estimate + 1));
  // One simulated millisecond per 1,000 decisions: a node admitting a million requests a second.
  const nowAt = (i: number): number => t0 + Math.floor(i / 1_000);
  const { counter: view, dailyUsed, minuteUsed } = buildEventualState(subjects);

  let tokens = 0;
  const amount = (metric: string): number => (metric === 'requests' ? 1 : tokens);

  // Deciding writes nothing, so every sample reads the same view.
  const decided: Tally = { tried: 0, passed: 0 };
  const decisionOnly = median(ctx.runs, () => {
    decided.tried = 0;
    decided.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      decided.tried += to - from;
      for (let i = from; i < to; i++) {
        tokens = estimates[i]!;
        if (checkEventual(view, 'tenant', subjects[order[i]!]!, eventualRules, amount, nowAt(i)).ok) decided.passed++;
      }
    });
  });

  // Request ids cycle through a pool larger than the table remembers settled ids, so a reused id
  // is never mistaken for a late duplicate.
  const idPool = Array.from({ length: Math.min(count, 1 << 20) }, (_, i) => `node-1/${i}` as RequestId);
  const inFlight = 1_024;
  let reserveFailures = 0;
  const reserved: Tally = { tried: 0, passed: 0 };
  const withReservation = median(ctx.runs, () => {
    const counter = copyView(view);
    const table = new ReservationTable(counter);
    const open: (RequestId | undefined)[] = new Array<RequestId | undefined>(inFlight).fill(undefined);
    const openUsed = new Float64Array(inFlight);
    reserved.tried = 0;
    reserved.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      reserved.tried += to - from;
      for (let i = from; i < to; i++) {
        const t = order[i]!;
        const subject = subjects[t]!;
        const nowMs = nowAt(i);
        tokens = estimates[i]!;
        const ring = i % inFlight;
        const settling = open[ring];
        if (settling !== undefined) {
          table.settle(settling, openUsed[ring]!);
          open[ring] = undefined;
        }
        if (!checkEventual(counter, 'tenant', subject, eventualRules, amount, nowMs).ok) continue;
        const requestId = idPool[i % idPool.length]!;
        // The counter's cached keys, as the quota gate charges them.
        const reservation = table.reserve(requestId, tenantIds[t]!, [chargedKeyIn(counter, 'tenant', subject, dailyTokens, nowMs)], tokens, nowMs, 600_000);
        if (!reservation.ok) {
          reserveFailures++;
          continue;
        }
        counter.increment(chargedKeyIn(counter, 'tenant', subject, perMinuteRequests, nowMs), 1);
        open[ring] = requestId;
        openUsed[ring] = usedOf[i]!;
        reserved.passed++;
      }
    });
  });
  if (reserveFailures > 0) throw new Error(`eventual bench: ${reserveFailures} reservations refused; the figure would not be a success path`);

  // Baseline: the least a decision can do, one plain Map lookup and one comparison per rule.
  const plain: Tally = { tried: 0, passed: 0 };
  const baseline = median(ctx.runs, () => {
    plain.tried = 0;
    plain.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      plain.tried += to - from;
      for (let i = from; i < to; i++) {
        const subject = subjects[order[i]!]!;
        if ((dailyUsed.get(subject) ?? 0) + estimates[i]! <= dailyTokens.limit && (minuteUsed.get(subject) ?? 0) + 1 <= perMinuteRequests.limit) {
          plain.passed++;
        }
      }
    });
  });

  const baselineText = (ours: Tally): string =>
    `plain Map<string, number> lookup + compare per rule, same requests ${fmt(baseline)} decisions/s; admitted: ours ${share(ours)}, plain ${share(plain)}`;
  console.log(
    `eventual quota decisions, ${fmt(eventualTenants)} tenants × (daily weighted_tokens + sliding per-minute requests), ${eventualReplicas} replicas in the view:`,
  );
  report('  eventual decision only', decisionOnly, 'decisions/s', '>= 1,000,000 decisions/s', decisionOnly >= 1_000_000, { baseline: baselineText(decided) });
  report(`  eventual decision + reserve + settle (${fmt(inFlight)} in flight)`, withReservation, 'decisions/s', 'reported', true, {
    baseline: baselineText(reserved),
  });
}

// ─── Section 2: the per-(IP, user) GCRA limiter ─────────────────────────────────────────────────

/**
 * `GcraLimiter.take` over 100,000 (IP, user) keys at 10 requests/s with a burst of 20, under a
 * skewed load (a few keys send most requests, so they are limited) arriving at one million
 * requests per simulated second.
 */
export function gcraDecisions(ctx: BenchContext): void {
  const { count, timeMsMax } = bounds(ctx, 4_000_000, 500_000);
  const keyCount = 100_000;
  const config = { rate: 10, periodMs: 1_000, burst: 20 } as const;
  const keys: RateKey[] = [];
  for (let k = 0; k < keyCount; k++) {
    const made = rateKey(`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`, `user-${k % 997}` as UserId);
    if (!made.ok) throw new Error(`gcra bench: bad rate key ${k}`);
    keys.push(made.value);
  }
  const random = new SeededRandom(21);
  const order = Uint32Array.from({ length: count }, () => Math.floor(keyCount * random.float() ** 3));
  const nowAt = (i: number): number => t0 + Math.floor(i / 1_000);

  const taken: Tally = { tried: 0, passed: 0 };
  const ours = median(ctx.runs, () => {
    const limiter = new GcraLimiter<RateKey>(config);
    // Every key already tracked, so the figure is over a full working set, not a filling map.
    for (const key of keys) limiter.take(key, t0 - 60_000);
    taken.tried = 0;
    taken.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      taken.tried += to - from;
      for (let i = from; i < to; i++) if (limiter.take(keys[order[i]!]!, nowAt(i)).allowed) taken.passed++;
    });
  });

  // Baseline: the same arithmetic on a float TAT in a plain Map, no exact ticks, key bound or heap.
  const intervalMs = config.periodMs / config.rate;
  const aheadMsMax = intervalMs * config.burst;
  const plain: Tally = { tried: 0, passed: 0 };
  const baseline = median(ctx.runs, () => {
    const tats = new Map<string, number>(keys.map((key) => [key, 0]));
    plain.tried = 0;
    plain.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      plain.tried += to - from;
      for (let i = from; i < to; i++) {
        const key = keys[order[i]!]!;
        const now = nowAt(i);
        const next = Math.max(tats.get(key) ?? 0, now) + intervalMs;
        if (next - now <= aheadMsMax) {
          tats.set(key, next);
          plain.passed++;
        }
      }
    });
  });
  report(`GCRA limiter, ${fmt(keyCount)} (IP, user) keys, skewed load`, ours, 'decisions/s', 'reported', true, {
    baseline: `plain Map<string, number> get/set of a float TAT ${fmt(baseline)} decisions/s; allowed: ours ${share(taken)}, plain ${share(plain)}`,
  });
}

// ─── Section 3: request authentication ──────────────────────────────────────────────────────────

const authTenantCount = 1_000;
const secretAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A request body of the size of a short chat completion call. */
function requestBody(): Uint8Array {
  const messages = Array.from({ length: 4 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: 'lorem ipsum dolor sit amet '.repeat(4) }));
  return new TextEncoder().encode(JSON.stringify({ model: 'claude', max_tokens: 1_024, messages }));
}

/**
 * `RequestAuthenticator.authenticate` on signed requests (format checks, timestamp, key id
 * lookup, body digest, HMAC, nonce) over 1,000 tenants, each request with a fresh nonce; and on
 * requests carrying only an API key (parse, SHA-256, constant-time compare with the tenant's
 * stored digests). Real HMAC and SHA-256 from node:crypto, as the node wires them.
 */
export function requestAuthentication(ctx: BenchContext): void {
  const { count, timeMsMax } = bounds(ctx, 100_000, 20_000);
  const crypto = nodeAuthCrypto;
  const random = new SeededRandom(31);
  const secret = (): string => Array.from({ length: 40 }, () => secretAlphabet[random.int(secretAlphabet.length)]!).join('');
  const apiKeys: string[] = [];
  const tenants = new Map<TenantId, Tenant>();
  for (let t = 0; t < authTenantCount; t++) {
    const id = asTenantId(`tenant-${t}`);
    // Two keys per tenant, as during a rotation: a key-only request compares with both.
    const keys = [formatApiKey(id, secret()), formatApiKey(id, secret())];
    apiKeys.push(keys[0]!);
    tenants.set(id, {
      id,
      tier: 'paid',
      apiKeys: keys.map((key, i) => ({ hash: apiKeyHashHex(crypto, key), name: `bench-${i}`, createdAtMs: 0 })),
      requireSignature: false,
      concurrencyMax: 64,
      weights: defaultTokenWeights,
      limits: [],
      userLimits: [],
      userConcurrencyMax: 64,
    });
  }
  const lookupTenant = (id: TenantId): Tenant | undefined => tenants.get(id);
  const content: SignedContent = { method: 'POST', path: '/carpool.v1.Carpool/Complete', body: requestBody() };
  const nowMs = t0;

  // Signed requests, signed by the client code ahead of time; each nonce is used once per sample.
  const signedRequests: AuthRequest[] = [];
  const baselineInputs: { keyHash: Buffer; canonical: string }[] = [];
  const bodyHashHex = createHash('sha256').update(content.body).digest('hex');
  for (let i = 0; i < count; i++) {
    const apiKey = apiKeys[i % authTenantCount]!;
    const nonce = `bench-nonce-${String(i).padStart(10, '0')}`;
    const signature: SignatureFields = signRequest(crypto, apiKey, content, nowMs - (i % 5_000), nonce);
    signedRequests.push({ ...content, signature });
    baselineInputs.push({
      keyHash: createHash('sha256').update(apiKey).digest(),
      canonical: `${content.method}\n${content.path}\n${signature.timestamp}\n${signature.nonce}\n${bodyHashHex}`,
    });
  }

  // A fresh authenticator per sample, so every nonce is new to it.
  const verified: Tally = { tried: 0, passed: 0 };
  const signedRate = median(ctx.runs, () => {
    const auth = new RequestAuthenticator(crypto, lookupTenant);
    verified.tried = 0;
    verified.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      verified.tried += to - from;
      for (let i = from; i < to; i++) if (auth.authenticate(signedRequests[i]!, nowMs).ok) verified.passed++;
    });
  });
  if (verified.passed !== verified.tried) {
    throw new Error(`auth bench: ${verified.tried - verified.passed} signed requests refused; the figure would include failures`);
  }
  let macBytes = 0;
  const hmacRate = median(ctx.runs, () => {
    macBytes = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      for (let i = from; i < to; i++) {
        const input = baselineInputs[i]!;
        macBytes += createHmac('sha256', input.keyHash).update(input.canonical).digest().length;
      }
    });
  });
  if (macBytes === 0) throw new Error('auth bench: the HMAC baseline did no work');

  const keyRequests: AuthRequest[] = apiKeys.map((apiKey) => ({ ...content, apiKey }));
  const accepted: Tally = { tried: 0, passed: 0 };
  const keyRate = median(ctx.runs, () => {
    const auth = new RequestAuthenticator(crypto, lookupTenant);
    accepted.tried = 0;
    accepted.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      accepted.tried += to - from;
      for (let i = from; i < to; i++) if (auth.authenticate(keyRequests[i % keyRequests.length]!, nowMs).ok) accepted.passed++;
    });
  });
  if (accepted.passed !== accepted.tried) {
    throw new Error(`auth bench: ${accepted.tried - accepted.passed} API keys refused; the figure would include failures`);
  }
  let digestBytes = 0;
  const sha256Rate = median(ctx.runs, () => {
    digestBytes = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      for (let i = from; i < to; i++)
        digestBytes += createHash('sha256')
          .update(apiKeys[i % apiKeys.length]!)
          .digest().length;
    });
  });
  if (digestBytes === 0) throw new Error('auth bench: the SHA-256 baseline did no work');

  console.log(`request authentication, ${fmt(authTenantCount)} tenants × 2 keys, ${fmt(content.body.length)}-byte body:`);
  report('  signed request verifications', signedRate, 'verifications/s', 'reported', true, {
    baseline: `raw createHmac('sha256') over the same canonical string ${fmt(hmacRate)} HMACs/s (the verifier also hashes the body)`,
  });
  report('  API-key authentications (hash + constant-time compare with 2 digests)', keyRate, 'authentications/s', 'reported', true, {
    baseline: `raw createHash('sha256') of the same key ${fmt(sha256Rate)} digests/s`,
  });
}

// ─── Section 4: the escrow local path ───────────────────────────────────────────────────────────

const escrowDaily: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000_000_000_000, mode: 'escrow' };
const escrowTenants = 10_000;
/** Rights each tenant's escrow holds before the loop: far more than every sample spends. */
const escrowRightsPerTenant = 10_000_000_000;

/** A round starter for a gate that must never need a round: calling it fails the benchmark. */
const noRounds: RoundStarter = {
  startRound: () => {
    throw new Error('escrow bench: the gate started a round; the granted rights did not cover every request, so the figure would not be local');
  },
};

/**
 * `QuotaGate.admit` for tenants with one escrow daily weighted-token rule whose rights this node
 * holds already (granted up front, as after a claim round), so every decision spends local rights
 * and none waits for a round: the gate's escrow path, then its reservation. Measured as admit
 * alone (each chunk settled after its clock stopped) and as admit + settle. Baselines from the
 * same run: the eventual decision on the same requests, and each of the two books the escrow
 * path writes (escrow rights, reservations) driven alone, which is where its time goes.
 */
export function escrowDecisions(ctx: BenchContext): void {
  // Five figures of seven samples each: samples are kept short (at most a second, and in quick
  // mode a few thousand requests) so the section stays within half a minute even in full mode.
  const sampleBounds = bounds(ctx, 200_000, 8_192);
  const count = sampleBounds.count;
  const timeMsMax = Math.min(sampleBounds.timeMsMax, 1_000);
  const random = new SeededRandom(41);
  const nowMs = t0;
  const tenantIds = Array.from({ length: escrowTenants }, (_, t) => asTenantId(`tenant-${t}`));
  const subjects = tenantIds.map((tenant): readonly QuotaSubject[] => [{ scope: 'tenant', subject: tenant, rules: [escrowDaily] }]);
  const order = Uint32Array.from({ length: count }, () => random.int(escrowTenants));
  const estimates = Uint32Array.from({ length: count }, () => 500 + random.int(8_000));
  const usedOf = Uint32Array.from(estimates, (estimate) => random.int(estimate + 1));
  const replica = asReplicaId('region-0/node-1');

  // One gate for every sample, its escrow holding every tenant's rights for today (granting them
  // takes longer than a quick sample). The gate refuses an id it settled already, so each sample
  // makes its own ids before its clock starts.
  const gateCounter = new WindowedCounter(replica);
  const gateEscrow = new EscrowBook(replica, gateCounter);
  for (const tenant of tenantIds) {
    if (!gateEscrow.grant(chargedKey('tenant', tenant, escrowDaily, nowMs), escrowRightsPerTenant))
      throw new Error('escrow bench: the escrow book refused a grant');
  }
  const gate = new QuotaGate(gateCounter, new ReservationTable(gateCounter), gateEscrow, noRounds, 3);
  let sample = 0;
  let requestIds: RequestId[] = [];
  const nextSample = (): void => {
    sample++;
    requestIds = Array.from({ length: count }, (_, i) => `node-1/${sample}-${i}` as RequestId);
  };

  // One amounts map and one usage map, refilled per request: the gate reads them during the call.
  const amounts = new Map<string, number>();
  const used = new Map<string, number>();
  let refused = 0;
  const tally: Tally = { tried: 0, passed: 0 };
  const done = (decision: QuotaDecision): void => {
    if (decision.ok) tally.passed++;
    else refused++;
  };
  const admit = (i: number): void => {
    const t = order[i]!;
    amounts.set('weighted_tokens', estimates[i]!);
    gate.admit({ requestId: requestIds[i]!, tenant: tenantIds[t]!, subjects: subjects[t]!, amounts, leaseMs: 60_000 }, nowMs + Math.floor(i / 1_000), done);
  };
  const settle = (i: number): void => {
    used.set('weighted_tokens', usedOf[i]!);
    gate.settle(requestIds[i]!, used);
  };

  // Admit alone: the clock runs over each chunk of admissions, then stops while the chunk settles
  // (settling is what keeps the reservation table within its bound, not part of the decision).
  const admitOnly = median(ctx.runs, () => {
    nextSample();
    tally.tried = 0;
    tally.passed = 0;
    let elapsedNs = 0n;
    const wallStart = process.hrtime.bigint();
    const wallNsMax = BigInt(timeMsMax) * 1_000_000n;
    while (tally.tried < count && process.hrtime.bigint() - wallStart < wallNsMax) {
      const from = tally.tried;
      const to = Math.min(count, from + chunkSize);
      const start = process.hrtime.bigint();
      for (let i = from; i < to; i++) admit(i);
      elapsedNs += process.hrtime.bigint() - start;
      for (let i = from; i < to; i++) settle(i);
      tally.tried = to;
    }
    return (tally.tried / Number(elapsedNs)) * 1e9;
  });
  const admitted = { ...tally };

  const admitSettle = median(ctx.runs, () => {
    nextSample();
    tally.tried = 0;
    tally.passed = 0;
    return opsPerSecond(count, timeMsMax, (from, to) => {
      tally.tried += to - from;
      for (let i = from; i < to; i++) {
        admit(i);
        settle(i);
      }
    });
  });
  if (gate.stats.claimRounds !== 0 || gate.stats.strictRounds !== 0) throw new Error('escrow bench: a decision went to a round');
  if (refused > 0) throw new Error(`escrow bench: ${refused} requests refused; the figure would not be the admission path`);

  // Baselines, same run. The eventual decision alone on the same tenants and requests (a view
  // whose today's window holds each tenant's usage): the least a local decision does. And the two
  // books the escrow path goes through, each alone on the same keys and requests: the escrow
  // book's spend + refund and the reservation table's reserve + settle.
  const counter = new WindowedCounter(replica);
  const dailyKeys = tenantIds.map((tenant) => chargedKey('tenant', tenant, escrowDaily, nowMs));
  for (const key of dailyKeys) counter.increment(key, 1 + random.int(1_000_000));
  const eventualDaily: readonly LimitRule[] = [{ ...escrowDaily, mode: 'eventual' }];
  let tokens = 0;
  const amount = (): number => tokens;
  const eventual = median(ctx.runs, () =>
    opsPerSecond(count, timeMsMax, (from, to) => {
      for (let i = from; i < to; i++) {
        tokens = estimates[i]!;
        if (!checkEventual(counter, 'tenant', tenantIds[order[i]!]!, eventualDaily, amount, nowMs).ok) refused++;
      }
    }),
  );
  if (refused > 0) throw new Error('escrow bench: the eventual baseline refused a request');
  const escrow = new EscrowBook(replica, counter);
  for (const key of dailyKeys) escrow.grant(key, escrowRightsPerTenant);
  const books = median(ctx.runs, () => {
    return opsPerSecond(count, timeMsMax, (from, to) => {
      for (let i = from; i < to; i++) {
        const key = dailyKeys[order[i]!]!;
        if (!escrow.spend([key], [estimates[i]!])) refused++;
        escrow.refund(key, estimates[i]! - usedOf[i]!);
      }
    });
  });
  const table = median(ctx.runs, () => {
    nextSample();
    const reservations = new ReservationTable(counter);
    return opsPerSecond(count, timeMsMax, (from, to) => {
      for (let i = from; i < to; i++) {
        const t = order[i]!;
        if (!reservations.reserve(requestIds[i]!, tenantIds[t]!, [dailyKeys[t]!], estimates[i]!, nowMs, 60_000).ok) refused++;
        reservations.settle(requestIds[i]!, usedOf[i]!);
      }
    });
  });
  if (refused > 0) throw new Error('escrow bench: a book refused a request in its baseline');

  const baseline =
    `checkEventual alone on one daily rule ${fmt(eventual)} decisions/s; alone on the same requests, EscrowBook spend + refund ${fmt(books)}/s, ` +
    `ReservationTable reserve + settle ${fmt(table)}/s; admitted ${share(admitted)}, no rounds`;
  console.log(`escrow local path, ${fmt(escrowTenants)} tenants × one escrow daily weighted_tokens rule, rights granted up front:`);
  // The decision itself is the rights check and spend, the counterpart of the eventual section's
  // checkEventual; the gate's admit adds the reservation books and demand counting around it.
  report('  escrow decision (local rights check + spend, with its refund)', books, 'decisions/s', '>= 1,000,000 decisions/s', books >= 1_000_000, { baseline });
  report('  escrow admit through the gate (decision + reserve + demand)', admitOnly, 'admissions/s', 'reported', true, { baseline });
  report('  escrow admit + settle (refund unused rights)', admitSettle, 'admissions/s', 'reported', true, { baseline });
}

// ─── Section 5: strict admissions on loopback ───────────────────────────────────────────────────

const strictMeshSize = 3;
const strictSecret = 'admission-bench-mesh-secret';
/** Requests kept in flight at the measured node: enough to fill a round while the last one runs. */
const strictInFlight = 2_000;
/** Requests in flight for the light-load latency: rounds carry a few each instead of a full batch. */
const strictLightInFlight = 16;
/** A strict daily limit that never binds: the figure is the admission path, not refusals. */
const strictDaily: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000_000_000_000, mode: 'strict' };
const eventualDailyLoose: LimitRule = { ...strictDaily, mode: 'eventual' };

/** A tenant of the validated policy shape with `limits`. */
function benchTenant(id: TenantId, limits: readonly LimitRule[]): Tenant {
  return {
    id,
    tier: 'paid',
    apiKeys: [],
    requireSignature: false,
    concurrencyMax: 100_000,
    weights: defaultTokenWeights,
    limits,
    userLimits: [],
    userConcurrencyMax: 100_000,
  };
}

/** What one wave of concurrent admissions did. */
interface WaveResult {
  readonly admitted: number;
  readonly refused: number;
  readonly elapsedMs: number;
  /** Per admitted request, from `admit` to its decision. */
  readonly latenciesMs: Float64Array;
}

/**
 * Fires up to `count` admissions at `runtime`, keeping `inFlight` open at a time, until all are
 * decided or `timeMsMax` has passed (then it stops starting new ones and waits for the open ones).
 * Each admitted request is settled at once with half its estimate, as a finished call would be.
 */
async function admitWave(runtime: MeshRuntime, tenant: Tenant, prefix: string, count: number, inFlight: number, timeMsMax: number): Promise<WaveResult> {
  const subjects: readonly QuotaSubject[] = [{ scope: 'tenant', subject: tenant.id, rules: tenant.limits }];
  const latenciesMs = new Float64Array(count);
  let started = 0;
  let admitted = 0;
  let refused = 0;
  const start = performance.now();
  const one = async (): Promise<void> => {
    while (started < count && performance.now() - start < timeMsMax) {
      const i = started++;
      const requestId = `${prefix}-${i}` as RequestId;
      const estimate = 1_000 + (i % 4_000);
      const sent = performance.now();
      const decision = await runtime.admit({ requestId, tenant: tenant.id, subjects, amounts: new Map([['weighted_tokens', estimate]]), leaseMs: 60_000 });
      if (!decision.ok) {
        refused++;
        continue;
      }
      latenciesMs[admitted++] = performance.now() - sent;
      runtime.settle(requestId, new Map([['weighted_tokens', estimate >> 1]]));
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, one));
  return { admitted, refused, elapsedMs: performance.now() - start, latenciesMs: latenciesMs.subarray(0, admitted).sort() };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Median round trip of a WebSocket ping between two loopback sockets on this event loop. */
async function wsPingRttMs(pings: number): Promise<number> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('error', reject);
    });
    const rtts: number[] = [];
    for (let i = 0; i < pings; i++) {
      const sent = performance.now();
      await new Promise<void>((resolve) => {
        client.once('pong', () => resolve());
        client.ping();
      });
      rtts.push(performance.now() - sent);
    }
    return rtts.sort((a, b) => a - b)[Math.floor(rtts.length / 2)]!;
  } finally {
    client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Three `MeshRuntime`s in this process on loopback WebSockets; one tenant with a strict daily
 * weighted-token limit (never binding) put into one node's policy and awaited at all three. Then
 * concurrent `admit` calls at node 0, `strictInFlight` open at a time: every request joins its
 * tenant's next quorum round (group commit), so the figure is admissions/s at one node, the
 * rounds they took, and each admission's latency, in milliseconds and in loopback round trips.
 * The round trip is measured in the same run twice over: a lone strict request (one round, which
 * is two quorum round trips: write, then read) and a WebSocket ping on a separate loopback pair.
 * Baseline: as many requests through an eventual rule on the same runtime.
 *
 * All three nodes and the load share this one thread: the figure is what one core sustains for
 * the whole mesh, not one node with a core of its own. At full load the latency is mostly
 * queueing (requests in flight ÷ rate, printed beside it); the light-load line shows the rounds.
 */
export async function strictAdmissions(ctx: BenchContext): Promise<void> {
  const count = ctx.quick ? 20_000 : 100_000;
  const timeMsMax = ctx.quick ? 3_000 : 15_000;
  const ports: number[] = [];
  for (let i = 0; i < strictMeshSize; i++) ports.push(await freePort());
  const members = ports.map((port, i) => ({ id: `bench-n${i}`, region: `region-${i}`, url: `ws://127.0.0.1:${port}` }));
  const runtimes: MeshRuntime[] = [];
  try {
    for (let i = 0; i < strictMeshSize; i++) {
      const config = parseNodeConfig({
        node: `bench-n${i}`,
        region: `region-${i}`,
        listen: { host: '127.0.0.1', port: ports[i] },
        members,
        secret: strictSecret,
      });
      if (!config.ok) throw new Error(`strict bench: bad node config: ${config.error.field}: ${config.error.reason}`);
      runtimes.push(await MeshRuntime.start({ config: config.value, secret: new TextEncoder().encode(strictSecret) }));
    }
    const node = runtimes[0]!;
    await until(() => runtimes.every((r) => r.node.peerViews(Date.now()).every((p) => p.connected)), 'strict bench: the mesh to connect', 20_000);

    const strictTenant = benchTenant(asTenantId('bench-strict'), [strictDaily]);
    const eventualTenant = benchTenant(asTenantId('bench-eventual'), [eventualDailyLoose]);
    for (const tenant of [strictTenant, eventualTenant]) {
      const put = node.policy.upsertTenant(tenant);
      if (!put.ok) throw new Error(`strict bench: the policy refused tenant ${tenant.id}: ${put.error.reason}`);
    }
    await until(
      () => runtimes.every((r) => r.policy.tenant(strictTenant.id) !== undefined && r.policy.tenant(eventualTenant.id) !== undefined),
      'strict bench: every node to see the tenants',
      20_000,
    );

    // Lone requests, one at a time: the first ones wait while the fresh nodes recover (a recovering
    // node serves no quorum reads), so rounds are timed only once one has been admitted.
    const lone = (i: number): Promise<WaveResult> => admitWave(node, strictTenant, `lone-${i}`, 1, 1, 10_000);
    const recoveryDeadline = Date.now() + 20_000;
    for (let i = 0; node.gate.stats.admitted === 0 && Date.now() < recoveryDeadline; i++) await lone(i);
    if (node.gate.stats.admitted === 0) throw new Error('strict bench: the mesh admitted no strict request within 20 s');
    const loneMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const result = await lone(1_000 + i);
      if (result.admitted === 1) loneMs.push(result.latenciesMs[0]!);
    }
    const loneRoundMs = loneMs.sort((a, b) => a - b)[Math.floor(loneMs.length / 2)] ?? NaN;
    const pingMs = await wsPingRttMs(50);

    // The measured wave, then the eventual baseline of the same size on the same node.
    const before = { ...node.gate.stats };
    const strict = await admitWave(node, strictTenant, 'strict', count, strictInFlight, timeMsMax);
    const rounds = node.gate.stats.strictRounds - before.strictRounds;
    const batched = node.gate.stats.strictBatched - before.strictBatched;
    const eventual = await admitWave(node, eventualTenant, 'eventual', strict.admitted + strict.refused, strictInFlight, timeMsMax);
    if (strict.refused > 0) throw new Error(`strict bench: ${strict.refused} strict requests refused under a limit that never binds`);
    if (eventual.refused > 0) throw new Error(`strict bench: ${eventual.refused} eventual requests refused under a limit that never binds`);

    // Light load: latency when rounds are not full, a few requests riding each.
    const light = await admitWave(node, strictTenant, 'light', ctx.quick ? 1_000 : 5_000, strictLightInFlight, timeMsMax);
    if (light.refused > 0) throw new Error(`strict bench: ${light.refused} strict requests refused under a limit that never binds`);

    const strictRate = (strict.admitted / strict.elapsedMs) * 1_000;
    const eventualRate = (eventual.admitted / eventual.elapsedMs) * 1_000;
    const p50 = percentile(strict.latenciesMs, 0.5);
    const p99 = percentile(strict.latenciesMs, 0.99);
    const ms = (value: number): string => value.toFixed(value < 10 ? 2 : 1);
    console.log(`strict quorum admissions, ${strictMeshSize} in-process nodes on loopback WebSockets, one tenant, ${fmt(strictInFlight)} in flight at node 0:`);
    report('  strict admissions at one node (batched rounds)', strictRate, 'admissions/s', '>= 10,000 admissions/s', strictRate >= 10_000, {
      baseline: `the same node through an eventual rule, same count and concurrency ${fmt(eventualRate)} admissions/s (p50 ${ms(percentile(eventual.latenciesMs, 0.5))} ms)`,
    });
    console.log(
      `    ${fmt(strict.admitted)} admitted in ${fmt(strict.elapsedMs)} ms over ${fmt(rounds)} rounds, mean batch ${(batched / Math.max(1, rounds)).toFixed(1)} requests`,
    );
    console.log(
      `    latency p50 ${ms(p50)} ms, p99 ${ms(p99)} ms (queueing alone: ${fmt(strictInFlight)} in flight ÷ rate = ${ms((strictInFlight / strictRate) * 1_000)} ms); ` +
        `in loopback round trips (WebSocket ping ${ms(pingMs)} ms): p50 ${(p50 / pingMs).toFixed(1)}, p99 ${(p99 / pingMs).toFixed(1)}`,
    );
    console.log(
      `    a lone strict request (one round = write + read, two quorum round trips) ${ms(loneRoundMs)} ms; p50 ${(p50 / loneRoundMs).toFixed(1)} and p99 ${(p99 / loneRoundMs).toFixed(1)} lone rounds`,
    );
    const lightP50 = percentile(light.latenciesMs, 0.5);
    const lightP99 = percentile(light.latenciesMs, 0.99);
    console.log(
      `    light load (${strictLightInFlight} in flight): ${fmt((light.admitted / light.elapsedMs) * 1_000)} admissions/s, p50 ${ms(lightP50)} ms (${(lightP50 / pingMs).toFixed(1)} round trips, ` +
        `${(lightP50 / loneRoundMs).toFixed(1)} lone rounds), p99 ${ms(lightP99)} ms (${(lightP99 / pingMs).toFixed(1)} round trips)`,
    );
  } finally {
    await Promise.all(runtimes.map((runtime) => runtime.stop()));
  }
}

// ─── The suite ──────────────────────────────────────────────────────────────────────────────────

/** One section of the suite: prints its own figures through `report`. */
export type AdmissionSection = (ctx: BenchContext) => void | Promise<void>;

export async function admissionBench(ctx: BenchContext): Promise<void> {
  console.log(`admission benchmark: one core, medians of ${ctx.runs} runs${ctx.quick ? ' (quick mode)' : ''}`);
  const sections: readonly AdmissionSection[] = [eventualDecisions, gcraDecisions, requestAuthentication, escrowDecisions, strictAdmissions];
  for (const section of sections) await section(ctx);
}
