// Bounded waits on a local mesh whose nodes were killed: until the launcher restarted them, and
// until each reports SERVING on gRPC health (it reaches a majority and its store takes writes).
import type { LocalMesh } from '../../src/local/local-mesh.js';
import { healthOf } from '../support/grpc-health.js';
import { sleep } from '../support/wait.js';

/** Longest wait for a killed node to be back and report SERVING. */
export const restartServingTimeoutMs = 40_000;

/**
 * Waits until the launcher restarted each of `regions` since `before` (their restart counts
 * then); a message naming the first that was not back by `deadline`.
 */
export async function waitRestarted(mesh: LocalMesh, before: ReadonlyMap<string, number>, deadline: number): Promise<string | undefined> {
  for (const [region, restarts] of before) {
    while (mesh.restartsOf(region) <= restarts) {
      if (Date.now() > deadline) return `${region} was not back within the wait: ${mesh.outputOf(region)}`;
      await sleep(50);
    }
  }
  return undefined;
}

/** Waits until every region's gRPC health reports SERVING; a message when one does not by `deadline`. */
export async function waitAllServing(mesh: LocalMesh, deadline: number): Promise<string | undefined> {
  for (const region of mesh.regions) {
    let status = '';
    while ((status = await healthOf(region.grpc, '')) !== 'SERVING') {
      if (Date.now() > deadline) return `${region.region} reports ${status}, not SERVING: ${mesh.outputOf(region.region)}`;
      await sleep(100);
    }
  }
  return undefined;
}

/** SIGKILL to each victim at once, then the waits above; how long until all served again. */
export async function killAndWait(mesh: LocalMesh, victims: readonly string[]): Promise<{ tookMs: number; backMs: number; problem: string | undefined }> {
  const killedMs = Date.now();
  const before = new Map(victims.map((region) => [region, mesh.restartsOf(region)]));
  for (const region of victims) {
    const pid = mesh.pidOf(region);
    if (pid === undefined) return { tookMs: 0, backMs: 0, problem: `${region} had no process to kill` };
    process.kill(pid, 'SIGKILL');
  }
  const deadline = killedMs + restartServingTimeoutMs;
  const notBack = await waitRestarted(mesh, before, deadline);
  const backMs = Date.now() - killedMs;
  const problem = notBack ?? (await waitAllServing(mesh, deadline));
  return { tookMs: Date.now() - killedMs, backMs, problem };
}
