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

// ---- Policy document (Yjs) ----

/**
 * Tenants in the policy document. The whole document travels in one sync step 2 frame to a new
 * peer, so tenants (about 250 bytes each) and accounts must fit `frameBytesMax` together; a
 * larger policy needs a chunked sync first.
 */
export const policyTenantsMax = 10_000;

/** Upstream accounts in the policy document (about 120 bytes each). */
export const policyAccountsMax = 2_000;

/** Local policy updates kept for broadcast before they are merged into one. */
export const policyLocalUpdatesMax = 1_024;

/** Policy sync step 1 is sent every this many digest rounds (and whenever a link opens). */
export const policySyncEveryDigestRounds = 10;

/** API keys per tenant. */
export const tenantKeysMax = 16;

/** Limits per tenant or account. */
export const limitsPerSubjectMax = 32;

assert(meshMembersMax <= replicasMax, 'every member incarnation must fit the counter replica bound');
assert(repairChunkEntriesMax <= frameEntriesMax, 'a repair chunk must fit one frame');
