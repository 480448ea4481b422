import { createServer, type Server } from 'node:net';
import type { LocalConfig } from './local-config.js';

/**
 * The ports of a local mesh: every endpoint it will bind, named by its config field, a check that
 * they are all free before anything starts (so a clash is one clear message instead of a child's
 * stack trace), and, for tests, a copy of a config moved onto ports the system picked.
 */

export interface PlannedPort {
  readonly port: number;
  /** The config field that sets it, such as `regions[1].grpcPort`. */
  readonly field: string;
  /** What binds it, such as `eu-west gRPC`. */
  readonly what: string;
}

export function plannedPorts(config: LocalConfig): PlannedPort[] {
  const ports: PlannedPort[] = [{ port: config.emulator.port, field: 'emulator.port', what: 'the emulator' }];
  for (const [i, region] of config.regions.entries()) {
    ports.push({ port: region.meshPort, field: `regions[${i}].meshPort`, what: `${region.name} mesh` });
    ports.push({ port: region.adminPort, field: `regions[${i}].adminPort`, what: `${region.name} admin` });
    ports.push({ port: region.grpcPort, field: `regions[${i}].grpcPort`, what: `${region.name} gRPC` });
    ports.push({ port: region.httpPort, field: `regions[${i}].httpPort`, what: `${region.name} HTTP` });
  }
  return ports;
}

/** Undefined when every port can be bound on `host`; otherwise a message naming each one taken. */
export async function checkPortsFree(host: string, ports: readonly PlannedPort[]): Promise<string | undefined> {
  const problems: string[] = [];
  for (const planned of ports) {
    const problem = await tryBind(host, planned.port);
    if (problem !== undefined) problems.push(`port ${planned.port} (${planned.what}, field ${planned.field}) ${problem}`);
  }
  if (problems.length === 0) return undefined;
  return [...problems, 'Another local mesh (npm start) may still be running; stop it, or change the ports in a config file (npm start -- --config FILE).'].join(
    '\n',
  );
}

function tryBind(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      resolve(
        error.code === 'EADDRINUSE' ? 'is already in use' : error.code === 'EACCES' ? 'may not be bound by this user' : `cannot be bound: ${error.message}`,
      );
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/**
 * `count` distinct ports the system had free on `host` a moment ago. All are held open together
 * before any is released, so they differ from each other; another process could still take one
 * before the mesh binds it, which tests accept.
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
      servers.push(server);
    }
    return servers.map((server) => {
      const address = server.address();
      return typeof address === 'object' && address !== null ? address.port : 0;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** The same configuration with the emulator and every region on free ports: for tests. */
export async function withFreePorts(config: LocalConfig): Promise<LocalConfig> {
  const ports = await freePorts(1 + 4 * config.regions.length, config.host);
  const take = (): number => ports.shift() as number;
  return {
    ...config,
    emulator: { ...config.emulator, port: take() },
    regions: config.regions.map((region) => ({ ...region, meshPort: take(), adminPort: take(), grpcPort: take(), httpPort: take() })),
  };
}
