// Proves the request-id claims over real MeshNodes on the in-memory network.
// One claim of an id is granted mesh-wide and every later one, at any node, is refused naming the
// holder; concurrent claims at several nodes grant at most one; a withdrawn claim frees the id; a
// node cut off from the majority refuses with no-quorum and holds nothing afterwards; claims an
// hour apart still meet.
import { describe, expect, it } from 'vitest';
import { type ClaimOutcome, RequestClaims } from '../../src/admission/request-claims.js';
import { SeededRandom } from '../../src/core/random.js';
import { windowAt, windowEndMs } from '../../src/crdt/window.js';
import { GateMesh } from '../support/gate-mesh.js';

interface ClaimMesh {
  readonly mesh: GateMesh;
  readonly claims: RequestClaims[];
  /** Claims `subject` at node `index` now; the outcome lands in the returned array. */
  claim(index: number, subject: string): ClaimOutcome[];
}

function claimMesh(count: number, seed: number): ClaimMesh {
  const mesh = new GateMesh(count, seed);
  const claims = mesh.nodes.map((node, i) => new RequestClaims(node.counter, node.mesh, new SeededRandom(seed * 31 + i)));
  // The claims' retry timers run beside the gates' (as the node runtime ticks both).
  const step = mesh.step.bind(mesh);
  mesh.step = (stepMs = 5) => {
    step(stepMs);
    for (const claim of claims) if (claim.nextTickMs(mesh.nowMs) <= mesh.nowMs) claim.tick(mesh.nowMs);
  };
  // Let the links authenticate before anything is claimed.
  mesh.run(200);
  return {
    mesh,
    claims,
    claim(index, subject) {
      const outcomes: ClaimOutcome[] = [];
      (claims[index] as RequestClaims).claim(subject, mesh.nowMs, (outcome) => outcomes.push(outcome));
      return outcomes;
    },
  };
}

const settled = (outcomes: readonly ClaimOutcome[][]): boolean => outcomes.every((list) => list.length > 0);

describe('request claims', () => {
  it('grants the first claim of an id and refuses every later one, at any node, naming the holder', () => {
    const m = claimMesh(3, 1);
    const first = m.claim(0, 'id-a');
    expect(m.mesh.runUntil(() => first.length > 0, 2_000)).toBe(true);
    expect(first).toEqual([expect.objectContaining({ kind: 'granted' })]);
    for (const index of [1, 2]) {
      const later = m.claim(index, 'id-a');
      expect(m.mesh.runUntil(() => later.length > 0, 2_000)).toBe(true);
      expect(later).toEqual([{ kind: 'held-elsewhere', holder: m.mesh.nodes[0]!.counter.self }]);
    }
    // The holder itself is told at once, without a round, that the claim is its own.
    const again = m.claim(0, 'id-a');
    expect(again).toEqual([{ kind: 'held-here' }]);
    // Another id is independent.
    const other = m.claim(2, 'id-b');
    expect(m.mesh.runUntil(() => other.length > 0, 2_000)).toBe(true);
    expect(other[0]?.kind).toBe('granted');
  });

  it('grants at most one of concurrent claims of one id at every node, over many seeds', () => {
    let grantedOnce = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const m = claimMesh(3, seed);
      const outcomes = [0, 1, 2].map((index) => m.claim(index, `race-${seed}`));
      expect(m.mesh.runUntil(() => settled(outcomes), 3_000)).toBe(true);
      const granted = outcomes.flat().filter((outcome) => outcome.kind === 'granted');
      expect(granted.length).toBeLessThanOrEqual(1);
      if (granted.length === 1) grantedOnce++;
      // Refused claimers withdrew: once gossip settles, only the granted claim is active anywhere.
      m.mesh.run(500);
      const late = m.claim(
        outcomes.findIndex((list) => list[0]?.kind !== 'granted'),
        `race-${seed}`,
      );
      expect(m.mesh.runUntil(() => late.length > 0, 2_000)).toBe(true);
      expect(late[0]?.kind).toBe(granted.length === 1 ? 'held-elsewhere' : 'granted');
    }
    // Races are decided (one retry after a jittered delay), not refused all round.
    expect(grantedOnce).toBeGreaterThan(35);
  });

  it('frees a withdrawn claim for a retry at another node', () => {
    const m = claimMesh(3, 2);
    const first = m.claim(0, 'withdrawn');
    expect(m.mesh.runUntil(() => first.length > 0, 2_000)).toBe(true);
    const granted = first[0];
    if (granted?.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(granted)}`);
    m.claims[0]!.withdraw(granted.claim);
    m.claims[0]!.withdraw(granted.claim); // idempotent
    // The withdrawal travels with the next gossip round, like any counter change.
    m.mesh.run(200);
    const retry = m.claim(1, 'withdrawn');
    expect(m.mesh.runUntil(() => retry.length > 0, 2_000)).toBe(true);
    expect(retry[0]?.kind).toBe('granted');
    expect(m.claims[0]!.stats.withdrawn).toBe(1);
  });

  it('refuses with no-quorum at a node cut off from the majority, which then holds nothing', () => {
    const m = claimMesh(3, 3);
    m.mesh.network.cut(0, 1);
    m.mesh.network.cut(0, 2);
    const cut = m.claim(0, 'partitioned');
    expect(m.mesh.runUntil(() => cut.length > 0, 5_000)).toBe(true);
    expect(cut[0]?.kind).toBe('no-quorum');
    // The majority side can claim the id, and the healed node then sees the holder.
    const majority = m.claim(1, 'partitioned');
    expect(m.mesh.runUntil(() => majority.length > 0, 2_000)).toBe(true);
    expect(majority[0]?.kind).toBe('granted');
    m.mesh.network.healAll();
    m.mesh.run(500);
    const healed = m.claim(0, 'partitioned');
    expect(m.mesh.runUntil(() => healed.length > 0, 2_000)).toBe(true);
    expect(healed[0]?.kind).toBe('held-elsewhere');
  });

  it('keeps a claim made in the last second of an hour readable for at least an hour', () => {
    const m = claimMesh(3, 4);
    // Move to one second before the end of an hour.
    const hourEndMs = windowEndMs(windowAt('hour', m.mesh.nowMs));
    m.mesh.run(hourEndMs - 1_000 - m.mesh.nowMs, 50);
    const first = m.claim(0, 'hour-edge');
    expect(m.mesh.runUntil(() => first.length > 0, 2_000)).toBe(true);
    expect(first[0]?.kind).toBe('granted');
    // 59 minutes later, past the next hour's start, with the counters' expiry running.
    for (let t = 0; t < 59 * 60_000; t += 60_000) {
      m.mesh.run(60_000, 1_000);
      for (const node of m.mesh.nodes) node.counter.expire(m.mesh.nowMs);
    }
    const later = m.claim(2, 'hour-edge');
    expect(m.mesh.runUntil(() => later.length > 0, 2_000)).toBe(true);
    expect(later[0]?.kind).toBe('held-elsewhere');
  });
});
