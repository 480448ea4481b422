// One network namespace per region node, each joined to the root namespace by a veth pair and to
// nothing else: a node reaches only its own link's root-side address, where the WAN proxies
// (wan-links.ts) listen for its links to the others, and the upstream's address, one for every
// region as api.anthropic.com is (an address of the root namespace's loopback, routed through each
// link). The root namespace (the launcher, the clients, `carpool audit`) reaches every node
// directly. Needs root and `ip`.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Every namespace and interface of a run starts with this, so a crashed run's are found and removed. */
export const netnsPrefix = 'cpwan';

export interface RegionNet {
  readonly namespace: string;
  /** The node's address inside its namespace. */
  readonly nodeHost: string;
  /** The root namespace's end of the node's link: the proxies and the emulator, as the node sees them. */
  readonly rootHost: string;
}

export interface WanNamespaces {
  readonly regions: readonly RegionNet[];
  /** The upstream's (the emulator's) address, reachable from every namespace and the root. */
  readonly upstreamHost: string;
  /** `ip netns exec NS`: runs a command in the region's namespace (it execs, so pids stay). */
  commandPrefix(region: number): readonly string[];
  remove(): Promise<void>;
}

/**
 * Why namespaces cannot be made here, or undefined when they can: it makes and removes a probe
 * namespace with a veth pair, as a container without the capability to would refuse.
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `${netnsPrefix}${process.pid}-probe`;
  const end = `cw${String(process.pid).slice(-7)}p`;
  try {
    await ip('netns', 'add', probe);
    await ip('link', 'add', end, 'type', 'veth', 'peer', 'name', `${end}n`, 'netns', probe);
    return undefined;
  } catch (error) {
    return `network namespaces cannot be made here: ${(error as Error).message}`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => undefined);
  }
}

/**
 * Makes `count` namespaces for this process. The subnets are 10.<a>.<region>.0/24 with `a` taken
 * from the process id, so two runs at once rarely collide; a collision fails loudly at `ip addr`.
 */
export async function makeNamespaces(count: number): Promise<WanNamespaces> {
  await removeStale();
  const tag = String(process.pid);
  const octet = 100 + (process.pid % 150);
  const regions: RegionNet[] = [];
  const made: string[] = [];
  const upstreamHost = `10.${octet}.250.1`;
  // Address labels are the device's name, a colon and at most 15 characters in all.
  const upstreamLabel = `lo:cw${tag.slice(-7)}`;
  let upstreamMade = false;
  const remove = async (): Promise<void> => {
    // Removing a namespace removes its veth end, and with it the root's end.
    await Promise.all(made.splice(0).map((namespace) => run('ip', ['netns', 'del', namespace]).catch(() => undefined)));
    if (upstreamMade) await run('ip', ['addr', 'del', `${upstreamHost}/32`, 'dev', 'lo']).catch(() => undefined);
    upstreamMade = false;
  };
  try {
    await ip('addr', 'add', `${upstreamHost}/32`, 'dev', 'lo', 'label', upstreamLabel);
    upstreamMade = true;
    for (let i = 0; i < count; i++) {
      const namespace = `${netnsPrefix}${tag}-${i}`;
      // Interface names are at most 15 characters.
      const rootEnd = `cw${tag.slice(-7)}r${i}`;
      const nodeEnd = `cw${tag.slice(-7)}n${i}`;
      const net: RegionNet = { namespace, nodeHost: `10.${octet}.${i}.2`, rootHost: `10.${octet}.${i}.1` };
      await ip('netns', 'add', namespace);
      made.push(namespace);
      await ip('link', 'add', rootEnd, 'type', 'veth', 'peer', 'name', nodeEnd);
      await ip('link', 'set', nodeEnd, 'netns', namespace);
      await ip('addr', 'add', `${net.rootHost}/24`, 'dev', rootEnd);
      await ip('link', 'set', rootEnd, 'up');
      await ip('-n', namespace, 'addr', 'add', `${net.nodeHost}/24`, 'dev', nodeEnd);
      await ip('-n', namespace, 'link', 'set', nodeEnd, 'up');
      await ip('-n', namespace, 'link', 'set', 'lo', 'up');
      await ip('-n', namespace, 'route', 'add', `${upstreamHost}/32`, 'via', net.rootHost);
      regions.push(net);
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    regions,
    upstreamHost,
    commandPrefix: (region) => ['ip', 'netns', 'exec', (regions[region] as RegionNet).namespace],
    remove,
  };
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (error) {
    throw new Error(`ip ${args.join(' ')} failed: ${(error as { stderr?: string }).stderr?.trim() ?? (error as Error).message}`);
  }
}

/** Removes the namespaces and upstream addresses of runs whose process is gone (killed before it could clean up). */
async function removeStale(): Promise<void> {
  const namespaces = await run('ip', ['netns', 'list']);
  const pattern = new RegExp(`^${netnsPrefix}(\\d+)-\\d+`);
  for (const line of namespaces.stdout.split('\n')) {
    const match = pattern.exec(line.trim());
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid !== process.pid && !isAlive(pid)) await run('ip', ['netns', 'del', match[0]]).catch(() => undefined);
  }
  const addresses = await run('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo']);
  for (const match of addresses.stdout.matchAll(/inet (\S+) .*lo:cw(\d+)/g)) {
    const pid = Number(match[2]);
    // The tag is the process id's last seven digits: a live process that ends so keeps its address.
    if (pid !== process.pid % 10_000_000 && !isAlive(pid)) await run('ip', ['addr', 'del', match[1] as string, 'dev', 'lo']).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
