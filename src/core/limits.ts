import { assert } from './assert.js';

/**
 * Every bound in the system, by name. A queue, map, cache, table or loop that can grow is capped
 * by one of these; code that hits a cap drops explicitly, returns a typed error and counts it.
 * Names end in their unit and `Max` (or `Min`), as the style guide asks.
 */

/** Length of an id (replica, tenant, user, account, IP subject) in characters; ids are ASCII. */
export const idLengthMax = 64;

/** Length of a counter scope or metric name: short lowercase identifiers from a fixed vocabulary. */
export const nameLengthMax = 32;

/**
 * Distinct replicas one counter state will track. Replicas are mesh members (and their
 * incarnations); the mesh configuration stays well below this.
 */
export const replicasMax = 256;

/** Live keys in one windowed counter map unless its owner asks for fewer. */
export const counterKeysMax = 4_000_000;

/** Largest amount a single counter entry may reach: doubles hold integers exactly up to here. */
export const counterValueMax = Number.MAX_SAFE_INTEGER;

/**
 * Largest batch version of one replica incarnation: versions are stored in 32 bits. At one batch
 * per 50 ms gossip interval that lasts six years; a replica restarts under a new incarnation
 * long before.
 */
export const counterVersionMax = 0xffff_ffff;

/**
 * How long a window is kept after it ends before it is expired. It must exceed the worst clock
 * skew between nodes plus the longest delay a delta can take to arrive, or a late delta for a
 * window one node has expired would be dropped while another still counts it.
 */
export const windowExpiryHorizonMs = 15 * 60_000;

/** Largest frame accepted from the wire (bytes); also the `maxPayload` of the transport. */
export const frameBytesMax = 4 * 1024 * 1024;

/** Entries (key × replica pairs) in one decoded counter delta frame. */
export const frameEntriesMax = 262_144;

/** Keys in the key table of one frame. */
export const frameKeysMax = 262_144;

/** Strings (scopes, subjects, metrics) in the string table of one frame. */
export const frameStringsMax = 262_144;

/** Distinct windows in the window table of one frame. */
export const frameWindowsMax = 4_096;

/** Cells of a rights matrix (bounded counter) in one frame. */
export const frameRightsCellsMax = 262_144;

// Relations between bounds that the code relies on.
assert(idLengthMax >= nameLengthMax, 'ids must be able to hold names');
assert(replicasMax <= 0xffff, 'replica indexes must fit the wire tables');
assert(frameEntriesMax <= frameBytesMax, 'every entry takes at least one byte on the wire');
assert(frameKeysMax <= frameEntriesMax, 'a key table entry exists only for entries');
assert(windowExpiryHorizonMs >= 60_000, 'the expiry horizon must cover clock skew and gossip delay');

// ---- Mesh (replication over WebSockets) ----

/** Configured mesh members (nodes across all regions). */
export const meshMembersMax = 64;

/** Bytes a link may have queued in its socket before droppable frames (deltas) are dropped. */
export const linkSendQueueBytesMax = 8 * 1024 * 1024;

/** Unacknowledged delta batches kept per peer for resending; past it the peer is repaired by digest. */
export const unackedBatchesMax = 256;

/** Inbound frames queued between ticks per link; past it frames are dropped and repaired by digest. */
export const inboundFramesMax = 4_096;

/** Entries per counter delta frame when a repair or full state is split into chunks. */
export const repairChunkEntriesMax = 100_000;

/** Frames a link may queue before its handshake completes; more close it as unauthenticated. */
export const handshakeFramesMax = 64;

/** Initiator nonces remembered to refuse replayed handshakes. */
export const handshakeNoncesMax = 4_096;

/** Links (open or handshaking) a node holds at once; more are refused. */
export const linksMax = 4 * meshMembersMax;

/** How long a link may take to authenticate (hello, challenge, proof) before it is closed. */
export const handshakeTimeoutMs = 5_000;

/** How often a mesh node expires the counter windows past `windowExpiryHorizonMs`. */
export const counterExpiryIntervalMs = 5_000;

/**
 * A delta batch unacknowledged for this many gossip intervals is sent again (a peer's ack takes
 * a round trip plus its next tick), and never sooner than `deltaAckTimeoutMsMin`.
 */
export const deltaAckTimeoutGossipIntervals = 4;
export const deltaAckTimeoutMsMin = 250;

/** Longest error detail a bad policy sync message carries: details go to logs. */
export const policySyncErrorDetailLengthMax = 200;

/**
 * Strict quorum rounds one node runs at once. Rounds are grouped per tenant (one in flight per
 * tenant and node, every request that arrived meanwhile joins the next), so this bounds the
 * tenants with strict requests in flight at one node, not the requests.
 */
export const quorumRoundsOpenMax = 4_096;

/**
 * How long a strict round may wait for its write and read quorums before its requests are
 * refused as `no-quorum`. Two round trips across the widest region pair take about 450 ms.
 */
export const quorumRoundTimeoutMs = 1_500;

/**
 * Recovery probes one node relays at once for peers that cannot reach each other (a bridge
 * partition; src/mesh/quorum.ts): a prober keeps one relay in flight per peer it lacks, so this
 * covers every pair of members; more are dropped, and the prober asks again after its timeout.
 */
export const quorumRelaysOpenMax = meshMembersMax * meshMembersMax;

/** Keys one strict round writes or reads: the charged windows of one batch of requests. */
export const quorumRoundKeysMax = 4_096;

/**
 * Rights-matrix cells (plus one per row) one RightsDelta frame carries: at most about ten bytes
 * a cell, well inside a frame, and far below the decoder's `frameRightsCellsMax`.
 */
export const rightsCellsPerFrameMax = 65_536;
assert(rightsCellsPerFrameMax <= frameRightsCellsMax, 'a rights chunk must pass the decoder');

// ---- Policy document (Yjs) ----

/**
 * Tenants in the policy document. The whole document travels in one sync step 2 frame to a new
 * peer, so tenants (about 250 bytes each) and accounts must fit `frameBytesMax` together; a
 * larger policy needs a chunked sync first.
 */
export const policyTenantsMax = 10_000;

/** Upstream accounts in the policy document (about 120 bytes each). */
export const policyAccountsMax = 2_000;

/**
 * Accounts' shared health records (src/pool/health-register.ts) a node keeps: the policy's
 * accounts, and as many again for records heard before the policy that names their account
 * (a record may outrun the policy update that adds the account). Past it the oldest go first.
 */
export const healthRecordsMax = 2 * policyAccountsMax;

/** A pause longer than the one the health register holds by less than this is not written again. */
export const sharedPauseNewsMs = 1_000;

/** The retry hint of a forwarded call its home turned away while the account's one probe is out. */
export const probeOutRetryAfterMs = 1_000;

/** Health records per mesh frame: each is at most a few hundred bytes, so a chunk stays far inside a frame. */
export const healthRowsPerFrameMax = 500;

/** Characters of an account's disable reason carried in a health record: a line for an operator. */
export const healthDetailLengthMax = 200;

/**
 * How far ahead of the local clock a peer's hybrid-clock stamp may be and still move the local
 * clock (src/core/hlc.ts): a minute covers any sane skew, and a peer with a clock gone wrong
 * cannot make every later local write lose to its writes.
 */
export const hlcAheadMsMax = 60_000;

/** Local policy updates kept for broadcast before they are merged into one. */
export const policyLocalUpdatesMax = 1_024;

/** Policy sync step 1 is sent every this many digest rounds (and whenever a link opens). */
export const policySyncEveryDigestRounds = 10;

/** API keys per tenant that may authenticate (not revoked, not expired). */
export const tenantKeysMax = 16;

/**
 * Key records per tenant, revoked and expired ones included: they stay listed (and keep a revoked
 * key refused even where a peer of an older schema still lists its digest) until a new key needs
 * the room, when the oldest inactive record goes first.
 */
export const tenantKeyRecordsMax = 64;

/** Characters in a key's name (`carpool admin keys create --name`). */
export const apiKeyNameLengthMax = 64;

/** Latest expiry a key may be given, from its creation: about five years. */
export const apiKeyLifetimeMsMax = 5 * 366 * 24 * 3_600_000;

/** Longest a rotated-out key keeps working after its successor was made. */
export const apiKeyRotationGraceMsMax = 30 * 24 * 3_600_000;

/**
 * Entries the replicated audit log keeps (src/mesh/policy/audit-schema.ts); each append trims the
 * oldest beyond it. Appends made at the same moment on several nodes may exceed it by one entry
 * per writer until the next append. About 300 bytes each, so the log stays well inside a frame.
 */
export const auditEntriesMax = 1_000;

/** Characters of an audit entry's `reason`, `actor`, `target` and each `detail` text value. */
export const auditTextLengthMax = 512;

/** Fields in an audit entry's `detail`. */
export const auditDetailFieldsMax = 16;

/** Named admin tokens a node's configuration may hold (`adminTokens`). */
export const adminTokensMax = 32;

/** Entries of `admin.allowedHosts` and of `admin.allowedOrigins` each. */
export const adminAllowedHostsMax = 32;

/** Largest amount one usage adjustment may charge or credit. */
export const usageAdjustmentAmountMax = 1_000_000_000_000;

/**
 * Ledger rows an export holds at once: it reads the ledger in time slices of at most this many
 * rows (counted first) and writes each slice out, waiting for the client to take it, before it
 * reads the next. A row is some 500 bytes as text, so a slice is about 1 MB however large the
 * export. A single millisecond holding more rows than this is read whole (it cannot be split).
 */
export const usageExportSliceRowsMax = 2_000;

/** Counter keys one read of GET /counters/read names; a URL of that many keys stays under 16 KB. */
export const adminCounterReadKeysMax = 100;

/**
 * Counter keys one `carpool audit` reads (per subject, limit and window in its time range): a
 * range with sliding limits (10-second sub-buckets) over many hours would otherwise mean a
 * quorum round per 100 of tens of thousands of keys.
 */
export const auditCounterKeysMax = 20_000;

/** Limits per tenant or account. */
export const limitsPerSubjectMax = 32;

assert(tenantKeysMax <= tenantKeyRecordsMax, 'every key that may authenticate has a record');
assert(meshMembersMax <= replicasMax, 'every member incarnation must fit the counter replica bound');
assert(repairChunkEntriesMax <= frameEntriesMax, 'a repair chunk must fit one frame');

// ---- Admission ----

/**
 * Characters in the secret part of an API key (`cp_<tenant>_<secret>`, see
 * src/admission/api-key.ts). Secrets are base62, so 32 characters carry about 190 bits: far past
 * guessing, even though the server keeps only an unsalted SHA-256 of the key.
 */
export const apiKeySecretLengthMin = 32;

/** Longest accepted secret; bounds the key so a huge header is refused before it is hashed. */
export const apiKeySecretLengthMax = 128;

/** Longest accepted API key: the `cp_` prefix, a tenant id, the `_` separator and a secret. */
export const apiKeyLengthMax = 'cp_'.length + idLengthMax + '_'.length + apiKeySecretLengthMax;

/**
 * How far a signed request's timestamp may lie from the node's clock, either way. It must cover
 * client clock error plus transit; every nonce is remembered for about this long, so it also sets
 * the size of the nonce cache at a given signed request rate.
 */
export const signatureSkewMsMax = 300_000;

/** Characters in a signed request's nonce (printable ASCII without spaces). */
export const signatureNonceLengthMin = 16;
export const signatureNonceLengthMax = 64;

/** Characters in the method of a signed request (`POST`, `GET`, ...). */
export const signedMethodLengthMax = 16;

/** Characters in the path (request target) of a signed request. */
export const signedPathLengthMax = 2_048;

/**
 * Nonces a node remembers for signed requests. A nonce stays until its request's timestamp falls
 * out of the skew window (300 s after it was sent, for a client with a true clock), so this caps
 * the sustained signed request rate per node at about entries / 300 s: some 830 requests a
 * second here, in about 45 MB (some 180 bytes an entry). When the cache is full of live nonces,
 * new signed requests are refused rather than a nonce forgotten (see
 * src/admission/nonce-window.ts), so size it above the expected peak.
 */
export const nonceCacheEntriesMax = 250_000;

/**
 * Aged-out nonces one signed request forgets, at most. After an idle spell or a forward clock
 * step the whole cache can age out at once, and forgetting 250,000 entries in one call would
 * stall the event loop for a fifth of a second; a few per call spreads that out. It must exceed
 * one, the most a call adds, so a backlog of aged-out entries always drains.
 */
export const nonceEvictionsPerCallMax = 64;

/** The retry hint of a signed request refused because the nonce cache is full of live nonces: they leave as they age. */
export const nonceCacheFullRetryAfterMs = 1_000;

assert(apiKeySecretLengthMin <= apiKeySecretLengthMax, 'the secret length range must not be empty');
assert(signatureNonceLengthMin >= 16, 'random nonces shorter than 16 characters could collide between honest requests');
assert(signatureNonceLengthMin <= signatureNonceLengthMax, 'the nonce length range must not be empty');
assert(signatureSkewMsMax >= 1_000, 'a skew window under a second would refuse honest clients');
assert(nonceCacheEntriesMax > 0, 'the nonce cache must hold something');
assert(nonceEvictionsPerCallMax >= 2, 'forgetting must outpace remembering, one nonce a call');

// ---- Admission: limiter and shedding ----

/**
 * Keys one rate limiter (src/admission/gcra.ts) tracks at once. A key is live only while its
 * theoretical arrival time lies ahead of the clock, at most `periodMs × burst / rate` after its
 * last admitted request (a few seconds for request limiters), so this is about the number of
 * distinct clients active within that span, per node. At some 200 bytes a key (map entry, key
 * string, heap slot) one limiter stays near 50 MiB. When it is full of live keys, new keys are
 * refused rather than a throttled key forgotten.
 */
export const limiterKeysMax = 262_144;

/**
 * Stale entries a limiter's idle heap may hold beyond twice its live keys before it is rebuilt;
 * the heap therefore never exceeds `2 × limiterKeysMax + limiterHeapSlackMax` entries.
 */
export const limiterHeapSlackMax = 1_024;

/** Largest limiter rate, in cells per period. */
export const limiterRateMax = 1_000_000;

/** Longest limiter period: one day. Longer budgets are quotas (windowed counters), not rates. */
export const limiterPeriodMsMax = 86_400_000;

/** Largest limiter burst, in cells. */
export const limiterBurstMax = 1_000_000;

/**
 * Characters in a client IP address as text. The longest IPv6 text with an IPv4 tail is 45
 * characters; a zone id (`%eth0`) adds an interface name of at most 15.
 */
export const clientIpLengthMax = 64;

/** Characters in a per-(client IP, user) limiter key: `<ip length>/<ip>/<user>`. */
export const rateKeyLengthMax = 2 + '/'.length + clientIpLengthMax + '/'.length + idLengthMax;

/** Shortest retry hint a shed request gets: a sooner retry would meet the same queue. */
export const shedRetryAfterMsMin = 250;

/** Longest retry hint a shed request gets: past it, a client would rather see an error. */
export const shedRetryAfterMsMax = 30_000;

// The limiter computes in ticks of 1/rate ms; its largest intermediate is about
// 2 × periodMs × burst + rate, which must stay an exact integer in a double.
assert(2 * limiterPeriodMsMax * limiterBurstMax + limiterRateMax <= Number.MAX_SAFE_INTEGER, 'limiter arithmetic must stay exact');
assert(limiterKeysMax > 0 && limiterHeapSlackMax > 0, 'a limiter must hold at least one key');
assert(clientIpLengthMax < 100, 'the rate key spends two digits on the IP length');
assert(shedRetryAfterMsMin >= 1 && shedRetryAfterMsMin <= shedRetryAfterMsMax, 'the shed retry range must not be empty');

// ---- Admission: reservations ----

/** Open reservations one node holds (requests admitted and not yet settled). */
export const reservationsOpenMax = 100_000;

/**
 * Settled request ids remembered for idempotency. A retry arriving after its id was forgotten
 * is treated as a new request; at 1,000 settlements/s this remembers the last 10 minutes.
 */
export const reservationsSettledRememberedMax = 600_000;

/**
 * Longest lease a reservation may carry. A request's own lease is sized to its call (see
 * `reservationSettleMarginMs`); this bounds it, and so how long a node that dies holds what it
 * reserved. It covers the longest call there is: the waits before dispatch, the upstream
 * deadline and the settle margin (asserted in the gateway section).
 */
export const reservationLeaseMsMax = 60 * 60_000;

/**
 * What a reservation's lease allows past its call's upstream deadline: for the result to come
 * back (over a forward's hop too) and be settled. A request's lease is its upstream deadline plus
 * this, so a node that dies holds its in-flight reservations about as long as their calls could
 * have run, not `reservationLeaseMsMax`. A strict round's reservation is taken before the call,
 * so this also covers the round (asserted in the forwarding section).
 */
export const reservationSettleMarginMs = 60_000;

/**
 * Lease entries of settled reservations the table's expiry list may hold beyond twice its open
 * ones before it is compacted (settled leases are dropped lazily); the list therefore never
 * exceeds `2 × reservationsOpenMax + reservationLeaseSlackMax` entries.
 */
export const reservationLeaseSlackMax = 1_024;

/**
 * The retry hint of a request the quota gate refused for capacity (its tables full) or for a
 * strict round or claim that found no quorum: about two round trips across the widest region pair.
 */
export const quotaRetryAfterMs = 1_000;

// ---- Admission: concurrency ----

/**
 * Requests one node's concurrency limiter (src/admission/concurrency.ts) holds at once: every
 * request admitted and not yet finished on this node. At some 150 bytes a request (map entry, id
 * string, permit) that is about 15 MB. When it is full, new requests are refused as the node's
 * capacity, never by forgetting a held request, which would let its tenant past its cap.
 */
export const concurrencyHeldMax = 100_000;

/**
 * Tenant and user keys the concurrency limiter tracks at once. A key lives only while a request
 * holds it, and a request holds at most two (its tenant and its user), so the limiter can never
 * use more than twice `concurrencyHeldMax`; that is the default, and an owner may ask for fewer.
 */
export const concurrencyKeysMax = 2 * concurrencyHeldMax;

/**
 * The retry hint of a request refused for its tenant's or user's in-flight cap. The limiter
 * cannot know when a held request will finish, so the hint is a constant: about the length of a
 * short completion, since a sooner retry would mostly meet the same full slots. HTTP's
 * Retry-After counts whole seconds, so a shorter hint would be rounded up to this anyway.
 */
export const concurrencyRetryAfterMs = 1_000;

assert(concurrencyHeldMax > 0, 'the concurrency limiter must hold at least one request');
assert(concurrencyKeysMax >= 2 && concurrencyKeysMax <= 2 * concurrencyHeldMax, 'every key is held by a request, and a request holds at most two');
assert(concurrencyRetryAfterMs >= 1, 'a hint of zero would invite an immediate retry into the same full slots');

// ---- Admission: escrow and strict ----

/**
 * Escrowed limit windows one node keeps books for (src/admission/escrow.ts): one bounded counter
 * each, a few rows of a few cells, about 1 KB with five regions. Windows that ended more than
 * the counter expiry horizon ago are dropped.
 */
export const escrowKeysMax = 100_000;

/** Replicas one rebalance moves a window's rights to at most: the ones furthest below share. */
export const escrowRebalanceRecipientsMax = 4;

/** How often a node moves escrow rights toward demand. */
export const escrowRebalanceIntervalMs = 250;

/**
 * Requests one strict round carries for one tenant (group commit). More wait for the next round
 * rather than grow a round's frames without bound.
 */
export const strictBatchMax = 1_024;

/**
 * Delay before a strict request refused under contention is retried, drawn uniformly from this
 * range: long enough for the refunds of the other nodes' refused batches to arrive by gossip
 * (one gossip interval plus a cross-region one-way delay), random so that nodes that refused
 * each other do not meet again in lockstep.
 */
export const strictRetryDelayMsMin = 50;
export const strictRetryDelayMsMax = 250;

/** Requests waiting for a strict round or an escrow claim at one node; more are shed. */
export const quotaWaitingMax = 100_000;

// ---- Request-id claims (src/admission/request-claims.ts) ----

/** Claims one round carries (group commit); more wait for the next round. */
export const claimBatchMax = 1_024;

/** Claims waiting for a round at one node; more are shed with a retry hint. */
export const claimsWaitingMax = 100_000;

/**
 * The window a claim is written in: one hour, the window after the current one, so the claim
 * stays readable for at least an hour (see request-claims.ts). Claims at most this far apart
 * always meet; beyond it the id may run again.
 */
export const claimHorizonMsMin = 60 * 60_000;

/** Retry hint after a claim round that found no quorum: about two round trips across the widest region pair. */
export const claimRetryAfterMs = 1_000;

// ---- Counter key cache ----

/**
 * Counter keys one windowed counter caches for its read path (src/crdt/counter-key-cache.ts):
 * the keys of the windows admission decisions read, so a decision neither builds nor validates
 * a key. It holds the hot keys of some 15,000 subjects with a daily and a sliding per-minute
 * rule each. A key costs some 150 bytes (the key, its id string, its window) and a subject's row
 * some 210 more (rows are bounded by this number too), so a full cache takes about 25 MB, and
 * 45 MB at worst, when every subject has a single key. When full, the oldest subject is dropped
 * and counted.
 */
export const counterKeyCacheKeysMax = 131_072;

/**
 * Distinct (scope, metric, window unit) triples the key cache tells apart: scopes and metrics
 * come from the policy's rules, a few dozen in all. Past this the cache starts over (counted).
 */
export const counterKeyCacheSeriesTypesMax = 4_096;

/**
 * Series one subject keeps in the key cache: a subject's rules (`limitsPerSubjectMax`) in the
 * scopes an escrow rule reads (the limit, its claims, its demand), rounded up. A subject that uses
 * more drops its oldest series to make a new one.
 */
export const counterKeyCacheSeriesPerSubjectMax = 128;
assert(counterKeyCacheSeriesPerSubjectMax >= 3 * limitsPerSubjectMax, "a subject's escrow rules, claims and demand fit its series");

// ---- Durable store and usage ledger (src/ledger/) ----

/** Ledger rows one usage query lists, newest first; the totals and groups cover every matching row. */
export const usageQueryRowsMax = 10_000;

/**
 * Groups one usage query returns. Grouping by user or key can produce as many groups as there are
 * users; past this the answer says it left groups out (`groupsTruncated`) instead of growing.
 */
export const usageQueryGroupsMax = 10_000;

/** Fields one usage query may group by (tenant, user, key, model, account, day, hour, a window). */
export const usageQueryGroupFieldsMax = 8;

/** How long ledger rows stay rows before they roll up into daily aggregates, unless configured. */
export const ledgerRetentionMsDefault = 90 * 24 * 3_600_000;

/** The shortest retention a store accepts: rows roll up by whole days, so a shorter age buys nothing. */
export const ledgerRetentionMsMin = 24 * 3_600_000;

/**
 * Ledger rows one `rollUp` call moves into the daily aggregates: some 20 ms of the event loop on
 * the 2-core machine (`npm run bench -- ledger`). A caller repeats until a call returns fewer,
 * yielding between calls; at 500 settlements a second a day's rows take a call every 4 seconds.
 */
export const ledgerRollUpRowsMax = 2_000;

/**
 * Counter entries read per step when a store loads a node's state: one JSON string of some 80
 * bytes an entry, so a chunk is about 4 MB however many keys the node holds.
 */
export const storeLoadChunkEntriesMax = 50_000;

/**
 * The page size of a new store file. Every commit writes each page it touched to the log whole:
 * the table's last page and one page of each index, a dozen pages for one settled request. At
 * 1 KiB instead of SQLite's 4 KiB the log grows by a third as much per commit (8 KB instead of
 * 24 KB, so a quarter of the checkpoints and catch-ups) while commits and scans cost the same or
 * less (measured on the ledger table with its indexes and 300,000 rows).
 */
export const storePageBytes = 1024;

/** The smallest disk bound a store accepts: the schema alone takes some 100 KiB. */
export const storeBytesMin = 1024 * 1024;

/**
 * Bytes of write-ahead log a store lets stand. Past it, once its checkpoint thread has copied the
 * log, the store copies the last few commits itself so the log starts over (a pause of two fsyncs
 * on the event loop, src/ledger/store-checkpointer.ts); a log started over is cut back to this
 * size (SQLite's `journal_size_limit`). At 500 settlements a second, one pause every 5 seconds.
 */
export const storeWalBytesKeptMax = 64 * 1024 * 1024;

/**
 * How often a store's checkpoint thread copies the write-ahead log back into the database file
 * (src/ledger/store-checkpointer.ts). At 500 settlements a second the log grows some 20 MB a
 * second (every commit writes whole pages of the table and each index), so a second between
 * checkpoints keeps it near that size.
 */
export const storeCheckpointEveryMs = 1_000;

/**
 * The log size past which a commit checkpoints inline, on the event loop: only when the
 * checkpoint thread has fallen behind or failed, so disk use stays bounded whatever it does.
 */
export const storeWalBytesMax = 512 * 1024 * 1024;

/**
 * Longest a store's statement waits for SQLite's lock on its file. Only a checkpoint thread of a
 * store closed a moment before in the same process can hold it (while it ends with a last
 * checkpoint); past the wait the statement fails as `locked`.
 */
export const storeBusyWaitMsMax = 2_000;

/** Commits between two looks at the log's size (one stat call). */
export const storeWalCheckEveryCommits = 256;

assert(ledgerRetentionMsMin <= ledgerRetentionMsDefault, 'the default retention is one a store accepts');
assert(storeWalBytesKeptMax < storeWalBytesMax, 'the log kept after a checkpoint is below the size that forces one');

// ---- Upstream ----

/**
 * Longest line a server-sent event stream may send (src/upstream/sse-parser.ts). Anthropic's
 * events are single JSON lines of at most a few kilobytes, a `message_start` with a long prompt
 * echo included; a megabyte is far beyond any of them, and a broken upstream that never ends a
 * line is cut off there instead of growing memory.
 */
export const sseLineBytesMax = 1024 * 1024;

/** Largest event (all its `data` lines together) a stream may send. */
export const sseEventBytesMax = 4 * 1024 * 1024;

assert(sseLineBytesMax <= sseEventBytesMax, 'an event holds at least one whole line');

/** Content blocks one upstream message may carry (text, tool use, thinking). */
export const upstreamContentBlocksMax = 1_024;

/**
 * Characters of content one streamed message may accumulate: far above the largest output any
 * model produces (tens of thousands of tokens, a few characters each), low enough that a broken
 * upstream that never stops cannot exhaust memory.
 */
export const upstreamMessageCharsMax = 16 * 1024 * 1024;

// ---- Upstream emulator ----

/**
 * Largest request body the Messages API emulator (src/upstream/emulator) reads: the real API's own
 * limit for a Messages request, 32 MB. A larger body is answered 413 while it is read, so no more
 * than this is ever buffered.
 */
export const emulatorRequestBytesMax = 32 * 1024 * 1024;

/** Largest body of an emulator control request (a fault plan): a fault takes a hundred bytes. */
export const emulatorControlBytesMax = 1024 * 1024;

/**
 * Accounts (keys) one emulator serves. Rate-limit buckets and statistics are kept per configured
 * key only, never per presented key, so this bounds both tables; a pool of thousands is far more
 * than any test or benchmark drives.
 */
export const emulatorAccountsMax = 4_096;

/**
 * Message responses (streamed or not, stalled ones included) the emulator runs at once. Past it a
 * request is answered 529 `overloaded_error`, which is how the real API sheds load, so a runaway
 * client meets a realistic error instead of exhausting the process.
 */
export const emulatorResponsesInFlightMax = 8_192;

/**
 * Prompt-cache prefixes one emulator remembers (an LRU over all accounts). An entry is a short key
 * and an expiry, some 150 bytes, so a full cache takes about 10 MB.
 */
export const emulatorCacheEntriesMax = 65_536;

/** Faults queued at once, from the account configuration and the control endpoint together. */
export const emulatorFaultsMax = 1_024;

/** Largest `max_tokens` a request may ask for: the largest output window of current models. */
export const emulatorMaxTokensMax = 128_000;

/**
 * Tokens the emulator generates for one message at most, whatever `max_tokens` allows: it bounds
 * the generation loop and the events of one stream.
 */
export const emulatorOutputTokensMax = 16_384;

/** Messages in one request: the real API's limit. */
export const emulatorMessagesMax = 100_000;

/** Blocks marked `cache_control` in one request (top-level marker included): the real API's limit. */
export const emulatorCacheBreakpointsMax = 4;

/** Stop sequences in one request; each is searched for after every generated token. */
export const emulatorStopSequencesMax = 64;

/**
 * RFC 3339 reset stamps the emulator keeps formatted: one slot per whole second, the slot chosen
 * by the second modulo this bound. A bucket that is not overdrawn refills within a minute, so the
 * resets every answer reports fall within 61 seconds and never evict one another.
 */
export const emulatorResetStampsMax = 64;

/**
 * Access tokens an OAuth account of the emulator remembers: the newest ones it issued, live or
 * expired. Older ones are forgotten and answered as unknown (401 "Invalid authentication
 * credentials") rather than expired. A refresher issues one per period, so a client holding a
 * token that many refreshes old has long since been told to refresh; the table stays bounded by
 * this times emulatorAccountsMax.
 */
export const emulatorAccessTokensPerAccountMax = 8;

/**
 * Retired refresh tokens an account remembers, so that a reused one is refused (`invalid_grant`)
 * *and* counted against its account in the stats; older ones are refused just the same, counted
 * only in the emulator-wide figure.
 */
export const emulatorRetiredRefreshTokensPerAccountMax = 8;

/** Largest body of a token request: a refresh token and a client id take a few hundred bytes. */
export const emulatorTokenRequestBytesMax = 16 * 1024;

assert(emulatorControlBytesMax <= emulatorRequestBytesMax, 'a control request is no larger than a message request');
assert(emulatorOutputTokensMax <= emulatorMaxTokensMax, 'generation never exceeds what max_tokens may allow');
assert(emulatorResetStampsMax > 61, 'the reset stamps of one minute fit the stamp slots');
assert(emulatorAccessTokensPerAccountMax >= 2, 'an account keeps its previous access token alive beside the new one, as the real API does');
assert(emulatorTokenRequestBytesMax <= emulatorControlBytesMax, 'a token request is no larger than a control request');

// ---- Upstream client ----

/**
 * Connections the upstream client keeps to one origin. An HTTP/1.1 connection carries one call
 * at a time and a stream holds it to its end, so this caps the node's concurrent calls to one
 * origin (api.anthropic.com serves every account); calls past it wait in the pool's queue, whose
 * length `upstreamCallsInFlightMax` bounds. A node holds 5,000 streams at once (about 25 KB
 * each, `npm run bench -- gateway`), so this leaves room above that.
 */
export const upstreamConnectionsPerOriginMax = 8_192;

/** Origins one client keeps a pool for: the API, perhaps a regional proxy, the emulator in tests. */
export const upstreamOriginsMax = 16;

/** Calls one client runs or queues at once; more are refused as `unavailable`, never queued unbounded. */
export const upstreamCallsInFlightMax = 16_384;

/**
 * How long an idle keep-alive connection is kept for the next call. A POST is not retried when a
 * reused connection turns out closed by the server, so this stays well under the idle timeouts of
 * the load balancers in front of the API (a minute or more); a server's `Keep-Alive` hint may
 * lower it, never raise it.
 */
export const upstreamKeepAliveTimeoutMs = 10_000;

/** Time to open a TCP and TLS connection; a healthy region connects in tens of milliseconds. */
export const upstreamConnectTimeoutMs = 10_000;

/**
 * Time to the response headers of a non-streaming call. The API sends them only once the whole
 * message is generated; ten minutes is the longest non-streaming call it accepts.
 */
export const upstreamCompleteHeadersTimeoutMs = 600_000;

/** Time to the response headers of a stream: they come before generation starts, after queueing. */
export const upstreamStreamHeadersTimeoutMs = 60_000;

/**
 * Longest silence between two chunks of a response body. The API sends `ping` events while the
 * model works, so a minute without a byte is a stalled connection, not a slow model.
 */
export const upstreamIdleTimeoutMs = 60_000;

/**
 * Longest a call may run, from dispatch to its final usage. With the waits before dispatch and
 * the settle margin it fits the longest lease a reservation carries (asserted in the gateway
 * section), so a reservation never expires under a call that is still running.
 */
export const upstreamDeadlineMs = 55 * 60_000;

/**
 * Silence tolerated after `message_stop` while the rest of the body is read so that its
 * connection can be reused. The message is complete by then; an upstream that keeps the body
 * open is cut off quickly rather than holding the call for a full idle timeout.
 */
export const upstreamAfterStopIdleMs = 1_000;

// ---- OAuth credentials (src/node/credentials/) ----

/** How long before an access token's expiry its refresh starts, unless `upstream.oauth.refreshLeadMs` says otherwise. */
export const oauthRefreshLeadMsDefault = 5 * 60_000;

/** Bounds of `upstream.oauth.refreshLeadMs`: tests use about a second; a day is longer than any token lives. */
export const oauthRefreshLeadMsMin = 100;
export const oauthRefreshLeadMsMax = 24 * 3_600_000;

/**
 * The first wait after a refresh that failed for a passing reason (the network, a 5xx, a 429),
 * doubled at each failure up to `oauthRefreshBackoffMsMax`: a token endpoint that is down gets a
 * request a minute per account, not a storm, and one that comes back is used within that minute.
 */
export const oauthRefreshBackoffMsMin = 500;
export const oauthRefreshBackoffMsMax = 60_000;

/** Longest one call to the token endpoint may take, connecting included. */
export const oauthTokenTimeoutMs = 15_000;

/** Largest token endpoint answer read; a real one is under 2 KiB. */
export const oauthTokenResponseBytesMax = 64 * 1024;

/** Largest OAuth credential (file, environment variable, admin body) read, and longest token in it. */
export const oauthCredentialBytesMax = 64 * 1024;
export const oauthTokenLengthMax = 8 * 1024;

assert(oauthRefreshBackoffMsMin <= oauthRefreshBackoffMsMax, 'the backoff starts at or below its cap');
assert(oauthTokenLengthMax * 2 < oauthCredentialBytesMax, 'a credential of two tokens fits its bound');

/** Response header bytes accepted; the API's headers are a few kilobytes. Past it: a bad response. */
export const upstreamResponseHeaderBytesMax = 32 * 1024;

/**
 * Body bytes of a non-streaming response. JSON escaping at most doubles the text of a message
 * and its blocks, so twice the streamed message bound holds any message a stream could carry.
 */
export const upstreamResponseBytesMax = 2 * upstreamMessageCharsMax;

/** Body bytes of an error response read for its type and message; the rest is discarded. */
export const upstreamErrorBodyBytesMax = 64 * 1024;

/** Characters of an upstream error message kept for the caller and logs. */
export const upstreamErrorMessageCharsMax = 1_024;

/**
 * Longest `retry-after` passed on to the pool. Subscription accounts report weekly limits, so a
 * week is the longest wait an honest upstream asks for; larger values are clamped to it.
 */
export const upstreamRetryAfterMsMax = 7 * 24 * 3_600_000;

/**
 * Largest subscription-window utilisation read from `anthropic-ratelimit-unified-*-utilization`.
 * The upstream reports a share of the window, 0 to 1, and a little above 1 once a window is
 * overrun; a value past ten times the window is no share at all but garbage, and reads as unknown.
 */
export const unifiedUtilizationMax = 10;

/** Characters of an upstream `request-id` kept; a longer or non-ASCII one is dropped. */
export const upstreamRequestIdLengthMax = 128;

/** How long `close()` waits for in-flight calls (draining streams included) before cutting them. */
export const upstreamCloseGraceMs = 30_000;

assert(upstreamCallsInFlightMax >= upstreamConnectionsPerOriginMax, 'the in-flight bound must let every connection be used');
assert(
  Math.max(upstreamConnectTimeoutMs, upstreamCompleteHeadersTimeoutMs, upstreamStreamHeadersTimeoutMs, upstreamIdleTimeoutMs) <= upstreamDeadlineMs,
  'every per-phase timeout fits inside the deadline',
);
assert(upstreamAfterStopIdleMs <= upstreamIdleTimeoutMs, 'the after-stop grace is a shortened idle timeout');
assert(upstreamErrorBodyBytesMax <= upstreamResponseBytesMax, 'an error body is a response body');

// ---- Account pool ----

/**
 * Tenants one account may be dedicated to (VIP isolation, `Account.dedicatedTenants`). Dedication
 * is for a handful of large customers; at 65 bytes an id the field adds at most about 0.5 KB to an
 * account, so 2,000 accounts still fit the one-frame sync of the policy document.
 */
export const accountDedicatedTenantsMax = 8;

/**
 * Requests queued for a permit of one account. A queue longer than a few rounds of a large
 * account's concurrency only adds latency that a retry on another node would not: past it the
 * request is refused at once (and counted), so the client's retry spreads the load.
 */
export const permitWaitersPerAccountMax = 1_024;

/**
 * Requests one node keeps waiting for account permits, all accounts together, plus outcomes
 * (grants, expiries, evictions) decided but not yet taken by the runtime: an outcome holds its
 * place until taken, so a runtime that stops draining cannot grow the outbox without bound.
 */
export const permitWaitersMax = 16_384;

/**
 * Permits held at once across all accounts on one node. Account concurrency caps are counts the
 * policy does not bound, so this is the table's own cap; like `concurrencyHeldMax`, far above a
 * node's real capacity.
 */
export const permitsHeldMax = 100_000;

/**
 * Stale entries (cancelled or granted waiters) the waiters' deadline heap may hold beyond twice
 * the live waiters before it is rebuilt; bounds the heap at `2 × permitWaitersMax + this`.
 */
export const permitDeadlineHeapSlackMax = 1_024;

/**
 * The retry hint when every eligible account is at its concurrency cap and the request may not
 * wait: about one short completion, the soonest a permit is likely to free.
 */
export const accountBusyRetryAfterMs = 1_000;

/**
 * The smallest retry hint of a `no-account` refusal. The only accounts left may be free right
 * now, but this request already failed on them; a sooner retry would meet the same failure.
 */
export const noAccountRetryAfterMsMin = 1_000;

/**
 * Account switches one request may make after a retryable failure (so at most this plus one
 * upstream attempts). Each switch adds a full upstream round trip to the client's latency; three
 * survive a throttled, an overloaded and a revoked account in a row.
 */
export const accountSwitchesMax = 3;

/**
 * A 429 whose wait is at most this long is a short throttle (a burst or acceleration limit):
 * the account is paused for exactly that wait. A longer one is a window exhaustion.
 */
export const throttleShortMsMax = 5_000;

/** The pause after a 429 whose headers say nothing about when to come back. */
export const rateLimitCooldownMsDefault = 10_000;

/**
 * The longest pause a 429 can cause. Subscription (oauth) accounts have 5-hour windows, which
 * this covers; a weekly window or a bogus reset stamp (a skewed upstream clock) costs one probe
 * call every 6 hours instead of sidelining the account for days.
 */
export const rateLimitCooldownMsMax = 6 * 3_600_000;

/** The first backoff after a 529 (overloaded); it doubles with each 529 in a row. */
export const overloadBackoffMsBase = 1_000;

/** The longest backoff after 529s in a row: the upstream's overload episodes last about a minute. */
export const overloadBackoffMsMax = 60_000;

/** Server errors or network failures in a row (no success between) that open an account's circuit. */
export const circuitFailuresMax = 3;

/** How long an opened circuit stays open before a single probe call may go; doubles per failed probe. */
export const circuitOpenMsBase = 5_000;

/** The longest an opened circuit stays open before the next probe. */
export const circuitOpenMsMax = 120_000;

/**
 * How long a half-open account waits for its probe's outcome before letting another probe go:
 * about the longest ordinary completion. A runtime that lost the probe's feedback thus cannot
 * keep the account out for good.
 */
export const circuitProbeTimeoutMs = 120_000;

/**
 * Nesting levels of a request body walked to derive a prompt-prefix session key. Message content
 * nests four or five levels deep (tool results inside content blocks); a body nested deeper
 * gets no session key rather than a deep recursion.
 */
export const sessionKeyDepthMax = 32;

/**
 * Characters of the cached prompt prefix hashed into a session key. Requests whose prefixes
 * agree this far share most of their prompt cache anyway, so pinning them together is what
 * affinity wants, and hashing stays cheap for a megabyte-long prompt.
 */
export const sessionKeyPrefixCharsMax = 256 * 1024;

assert(accountDedicatedTenantsMax >= 1, 'an account must be able to serve one dedicated tenant');
assert(permitWaitersPerAccountMax <= permitWaitersMax, 'one account queue must fit the total');
assert(throttleShortMsMax < rateLimitCooldownMsMax, 'a short throttle is shorter than the longest cooldown');
assert(rateLimitCooldownMsDefault <= rateLimitCooldownMsMax, 'the default cooldown is within the cap');
assert(overloadBackoffMsBase >= 1 && overloadBackoffMsBase <= overloadBackoffMsMax, 'the overload backoff range must not be empty');
assert(circuitOpenMsBase >= 1 && circuitOpenMsBase <= circuitOpenMsMax, 'the circuit open range must not be empty');
assert(circuitFailuresMax >= 1, 'a circuit opens after at least one failure');

// ---- Account caller ----

/**
 * Calls one account caller (src/node/account-caller.ts) may have parked on a pool permit at
 * once. Every parked call is a waiter of the pool's permit table, so the table's total bound is
 * also the caller's; a caller sharing its pool with another party gets fewer, never more.
 */
export const accountCallerWaitsMax = permitWaitersMax;

/**
 * Pool picks one call may make. Every pick ends with the picked account attempted, skipped (no
 * upstream target, or its queue slot evicted) or the call finished, and the pool never offers an
 * account this call already attempted or skipped; so a call cannot pick more often than there
 * are accounts, plus the last pick that finds none.
 */
export const accountCallTurnsMax = policyAccountsMax + 1;

/**
 * Stale deadlines (of calls granted, cancelled or evicted before their deadline) the caller's
 * wake-up heap may hold beyond twice its parked calls before it is rebuilt.
 */
export const accountCallerDeadlineHeapSlackMax = 1_024;

/** Listeners a node runtime notifies after its account pool changed (account callers, status hooks). */
export const poolChangeListenersMax = 16;

assert(accountCallerWaitsMax <= permitWaitersMax, "the caller's parked calls fit the pool's queues");
assert(accountCallTurnsMax > accountSwitchesMax, 'a call can make every attempt its switches allow');

// ---- gRPC surface ----

/**
 * Bytes a gRPC message may carry besides its largest payload: the request id, version and beta
 * headers, user, usage and served region of the messages in proto/carpool/v1/carpool.proto.
 * Those fields are short text; 64 KiB leaves room for a long `anthropic_beta` list.
 */
export const grpcEnvelopeBytesMax = 64 * 1024;

/**
 * Largest message the gRPC endpoint (src/net/grpc/grpc-server.ts) accepts: a `request_json` as
 * large as the Messages API itself takes (32 MB) plus its envelope. A larger request is refused
 * by grpc-js with RESOURCE_EXHAUSTED before any handler sees it, so no more is ever buffered for
 * one call.
 */
export const grpcReceiveMessageBytesMax = 32 * 1024 * 1024 + grpcEnvelopeBytesMax;

/** Largest message the endpoint sends: a whole non-streamed message (its bound) plus envelope. */
export const grpcSendMessageBytesMax = upstreamResponseBytesMax + grpcEnvelopeBytesMax;

/**
 * Interval of the server's keepalive pings on an idle connection. A client that vanished without
 * a FIN (a NAT dropped it, a laptop slept) otherwise holds its streams and their queue slots
 * until TCP gives up, which takes many minutes; a minute is what load balancers tolerate too.
 */
export const grpcKeepaliveTimeMs = 60_000;

/** How long a keepalive ping may go unanswered before the connection is closed. */
export const grpcKeepaliveTimeoutMs = 20_000;

/**
 * Streams (calls) one HTTP/2 connection may run at once (SETTINGS_MAX_CONCURRENT_STREAMS). One
 * client, a relay in front of many users say, gets many calls per connection but cannot open an
 * unbounded number; it then opens more connections or waits, which the client library does.
 */
export const grpcStreamsPerConnectionMax = 1_000;

/** An idle connection (no call for this long) is closed with GOAWAY; the client reconnects. */
export const grpcConnectionIdleMsMax = 5 * 60_000;

/**
 * Calls one endpoint runs at once over all connections. The scheduler bounds what reaches the
 * pool; this is the backstop in front of it, since each call holds a decoded request of up to
 * `grpcReceiveMessageBytesMax`. Past it a call is refused UNAVAILABLE with a retry hint.
 */
export const grpcCallsInFlightMax = 16_384;

/** The retry hint of a call refused at `grpcCallsInFlightMax`: about one short completion. */
export const grpcCallsInFlightRetryAfterMs = 1_000;

/**
 * Events one stream may have written and not yet flushed to the connection. grpc-js streams are
 * Node object-mode writables whose high-water mark is 16 objects; the stream sink waits for
 * `drain` whenever a write reports the buffer full, and checks that the mark is no higher than
 * this, so a slow client holds at most this many events (each at most `sseEventBytesMax`) plus the
 * HTTP/2 flow-control windows.
 */
export const grpcStreamEventsBufferedMax = 16;

/**
 * Characters of a status message sent to a client (`grpc-message`). An upstream error message is
 * already cut to `upstreamErrorMessageCharsMax`; this leaves room for the prefix naming it.
 */
export const grpcStatusMessageCharsMax = 2_048;

assert(grpcReceiveMessageBytesMax > grpcEnvelopeBytesMax, 'a request has room for its payload');
assert(sseEventBytesMax + grpcEnvelopeBytesMax <= grpcSendMessageBytesMax, 'every stream event the upstream may send fits one message');
assert(grpcKeepaliveTimeoutMs < grpcKeepaliveTimeMs, 'a ping is given up on before the next one is due');
assert(grpcStatusMessageCharsMax >= upstreamErrorMessageCharsMax + 128, 'an upstream message fits a status message with its prefix');
assert(grpcStreamEventsBufferedMax >= 1 && grpcCallsInFlightMax >= grpcStreamsPerConnectionMax, 'the endpoint can run one full connection');

// ---- Gateway ----

/**
 * Requests one priority tier of a node's admission queue (src/schedule/tier-queue.ts) holds
 * waiting for a call slot. Shedding (src/admission/shedder.ts) refuses requests well before this
 * under normal thresholds; the bound is what holds when the thresholds are set too loose.
 */
export const tierQueueDepthMax = 4_096;

/** Requests waiting in all tiers of a node's admission queue together. */
export const tierQueueTotalDepthMax = 8_192;

/**
 * Calls a node runs against the upstream at once, over all tenants: what the admission queue
 * lets through. A draining stream whose client left no longer holds one of these (it still holds
 * its account's permit), so the upstream client's own bound covers the difference.
 */
export const gatewayCallsInFlightMax = 8_192;

/**
 * The most one request counts for fairness in the admission queue, in weighted tokens: a request
 * estimated above it advances its tenant's virtual counter by this much only. It is the `U` of
 * the queue's fairness bound (src/schedule/tier-queue.ts): two backlogged tenants of one tier and
 * level are never more than 2U apart in the work they started.
 */
export const tierQueueQuantumTokens = 16_384;

/**
 * Tenants whose virtual counters an admission queue keeps: every tenant with queued work, and as
 * many recently served ones as fit, least recently served forgotten first (a forgotten tenant
 * comes back at the lowest counter of its tier, as a newcomer does).
 */
export const tierQueueCountersMax = 16_384;

/** Models one degrade rule maps to cheaper ones. */
export const degradeModelMapMax = 32;

/** Longest a request waits in the admission queue before it is refused as shed. */
export const tierQueueWaitMsMax = 60_000;

/** The retry hint of a request refused because the admission queue is full. */
export const tierQueueFullRetryAfterMs = 1_000;

/** Longest a call waits for an account's permit once it left the admission queue. */
export const gatewayAccountWaitMsMax = 30_000;

/**
 * Largest `request_json` the gateway takes; a larger one is refused INVALID_ARGUMENT naming this
 * bound. The input estimate counts a byte of the body as a token (src/node/gateway/
 * request-amounts.ts), so the body's size is its reservation: 8 MiB holds the text of the longest
 * context window (a million tokens at about four bytes each) twice over, and a larger body is a
 * mistake or an attempt to reserve a tenant's whole window. The Messages API itself takes 32 MB,
 * which the gRPC endpoint's message bound still admits, so that such a body reaches this check
 * and gets a status that names the bound rather than grpc-js's own RESOURCE_EXHAUSTED.
 */
export const gatewayRequestJsonBytesMax = 8 * 1024 * 1024;

/**
 * Largest `max_tokens` the gateway takes: the largest output window of current models, as the
 * emulator enforces. A larger one could never be produced and would only inflate the reservation,
 * so it is refused INVALID_ARGUMENT naming this bound instead of as an over-quota request.
 */
export const gatewayMaxTokensMax = emulatorMaxTokensMax;

/**
 * How long an upstream call may run past its client's gRPC deadline (a node's default; tests
 * shrink it). A call already dispatched is not aborted when its client goes away (the tenant's
 * `onClientCancel: drain`): it runs to its result so it is charged what the upstream produced
 * and its answer is kept for a retry. This grace lets a call that is producing tokens finish; a
 * call still running at the deadline plus the grace (a stalled upstream) is cut and settled with
 * the usage seen, so it holds its reservation and its account's permit no longer than that.
 * Calls without a client deadline keep the upstream timeouts alone.
 */
export const upstreamDrainGraceMs = 30_000;

/**
 * Answers a node keeps of the completions it served, by (tenant, request id), so that a client
 * retrying an id gets the answer it may have missed (its deadline passed, its connection broke)
 * instead of a second upstream call (src/node/gateway/answer-store.ts). Past a bound the oldest
 * go first, counted; a retry of an id whose answer went is told so, and is still never run again.
 */
export const answerStoreEntriesMax = 65_536;

/** All answers the store keeps together (message JSON and stream events). */
export const answerStoreBytesMax = 64 * 1024 * 1024;

/** Largest single answer kept; a larger one is remembered as done without its answer. */
export const answerStoreAnswerBytesMax = 1024 * 1024;

/**
 * How long an answer is kept: a client retries within minutes of giving up, and an answer much
 * older than that is rarely what anyone waits for.
 */
export const answerStoreTtlMs = 30 * 60_000;

/**
 * The retry hint of a streamed request whose id is still running at this node (a retry that
 * arrived before the first answer ended): about the length of a short completion.
 */
export const requestRunningRetryAfterMs = 1_000;

/** Longest a count_tokens call to the upstream may wait for its headers, and then between body chunks. */
export const countTokensTimeoutMs = 10_000;

/** Largest count_tokens answer read: `{"input_tokens": n}`, or an error body. */
export const countTokensResponseBytesMax = 64 * 1024;

/** Tenants whose last-minute token tally a node keeps (GetUsage's `last_minute`); the oldest goes first. */
export const recentUsageTenantsMax = policyTenantsMax;

/** Upstream accounts a node's configuration may hold credentials for. */
export const upstreamCredentialsMax = policyAccountsMax;

assert(tierQueueDepthMax <= tierQueueTotalDepthMax, 'one tier can fill to its bound');
assert(gatewayCallsInFlightMax <= upstreamCallsInFlightMax, 'the calls the queue lets through fit the upstream client');
assert(
  gatewayRequestJsonBytesMax + grpcEnvelopeBytesMax <= grpcReceiveMessageBytesMax,
  'a body over the gateway bound still reaches the gateway, which names the bound',
);
assert(
  answerStoreAnswerBytesMax <= answerStoreBytesMax && grpcCallsInFlightMax <= answerStoreEntriesMax,
  'the store holds every running request and one full answer',
);
assert(upstreamDrainGraceMs >= 1 && upstreamDrainGraceMs <= upstreamDeadlineMs, 'the drain grace fits inside the upstream deadline');
assert(
  tierQueueWaitMsMax + gatewayAccountWaitMsMax + upstreamDeadlineMs + reservationSettleMarginMs <= reservationLeaseMsMax,
  'the longest call, its waits and the settle margin fit the longest lease',
);
assert(tierQueueQuantumTokens >= 1 && tierQueueWaitMsMax >= 1, 'the queue serves and waits');

// ---- Forwarding to an account's home region ----

/** Widest gap between a forwarding member's timestamp and the home node's clock; older proofs are refused. */
export const forwardClockSkewMsMax = 60_000;

/**
 * Forwarded calls a home node remembers by (request id, account id), running or done, so a
 * repeated forward replays instead of calling the upstream again. The oldest done entry goes first.
 */
export const forwardLedgerEntriesMax = 65_536;

/**
 * How long a done forward is remembered: as long as a reservation may live, so a client retrying
 * within its request's lease is always answered from the ledger while the entry is still held.
 */
export const forwardLedgerTtlMs = reservationLeaseMsMax;

/** Largest answer (message JSON or a stream's events) kept for a replay; a larger one is replayed as usage only. */
export const forwardReplayBytesMax = 1024 * 1024;

/** All answers the ledger keeps together; past it the oldest go first. */
export const forwardLedgerBytesMax = 64 * 1024 * 1024;

/** Forwarded calls one home node runs at once; more are refused (the origin tries another account). */
export const forwardCallsInFlightMax = 4_096;

/**
 * Times an origin repeats a forward whose connection failed before any answer. The repeat carries
 * the same request id, so the home node's ledger makes it safe: it runs the call or replays it.
 */
export const forwardTransportRetriesMax = 1;

/**
 * Time a forward allows for the hop: the origin gives the forwarded call its upstream deadline
 * plus this as the gRPC deadline, and the home node bounds its upstream call by the gRPC deadline
 * minus this, so the home node's result (with the usage) reaches the origin before the origin
 * gives up on it.
 */
export const forwardHopMarginMs = 30_000;

/** Longest a forwarded call may take end to end: the upstream's own deadline and the hop. */
export const forwardDeadlineMs = upstreamDeadlineMs + forwardHopMarginMs;

/** Home-region members an origin holds gRPC channels to; one per member at most. */
export const forwardChannelsMax = meshMembersMax;

assert(
  forwardReplayBytesMax <= forwardLedgerBytesMax && forwardCallsInFlightMax <= forwardLedgerEntriesMax,
  'the ledger holds every running forward and one full answer',
);
assert(reservationSettleMarginMs >= forwardHopMarginMs + quorumRoundTimeoutMs, "the settle margin covers a forward's hop and a strict round");

/** How often a region node re-checks whether it reaches a majority, for its gRPC health status. */
export const gatewayHealthCheckEveryMs = 1_000;

// ---- HTTP front door (src/net/http/) ----

/**
 * Largest request body the HTTP front door reads; a node may configure less (`http.bodyBytesMax`).
 * The gateway's own bound on a Messages body, so a body the front door takes is never refused by
 * the gateway for its size, and one past it is 413 before a byte more is buffered.
 */
export const httpBodyBytesMax = gatewayRequestJsonBytesMax;

/**
 * Largest request head (request line and headers) accepted, Node's `maxHeaderSize`; past it Node
 * answers 431 and closes. Claude Code's and the SDKs' heads are about 1 KiB; a long
 * `anthropic-beta` list stays far below.
 */
export const httpHeaderBytesMax = 32 * 1024;

/** Longest a client may take to send its request head (slowloris), Node's `headersTimeout`. */
export const httpHeadersTimeoutMs = 10_000;

/** Longest a client may take to send its whole request, head and body (Node's `requestTimeout`); 408 then. */
export const httpRequestTimeoutMs = 60_000;

/** How long an idle keep-alive connection stays open after its last response. */
export const httpKeepAliveTimeoutMs = 30_000;

/**
 * Connections the front door holds open; a node may configure fewer (`http.connectionsMax`). At
 * the bound a new connection closes the one idle the longest; when none is idle it is refused
 * (closed at once). 5,000 held streams fit with room for the idle rest.
 */
export const httpConnectionsMax = 10_000;

/** Requests the front door runs at once; past it a request is refused 503 with a retry hint. */
export const httpCallsInFlightMax = 16_384;

/** The retry hint of a request refused at `httpCallsInFlightMax`, as for gRPC's bound. */
export const httpCallsInFlightRetryAfterMs = grpcCallsInFlightRetryAfterMs;

/** Models a node may list in `http.models` (GET /v1/models). */
export const httpModelsMax = 256;

assert(httpBodyBytesMax <= gatewayRequestJsonBytesMax, 'a body the front door reads is one the gateway judges by its content');
assert(grpcCallsInFlightMax + httpCallsInFlightMax <= answerStoreEntriesMax, 'the answer store holds every request running on both surfaces');
assert(httpHeadersTimeoutMs < httpRequestTimeoutMs, 'the head arrives within the time for the whole request');
