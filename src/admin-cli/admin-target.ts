import { readFile } from 'node:fs/promises';
import { err, ok, type Result } from '../core/result.js';
import { isProcessAlive, readLocalState } from '../local/local-state.js';

/**
 * Where `carpool admin` sends its requests and with which token: `--url` (or CARPOOL_ADMIN_URL)
 * and `--token` / `--token-file` (or CARPOOL_ADMIN_TOKEN_FILE) when given; otherwise a region of
 * the running local mesh, whose state file (`npm start` writes it, mode 0600) holds the admin
 * token and the endpoints. A message that says what to do otherwise.
 */
export interface AdminTarget {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  readonly token: string;
  /** What the output calls the endpoint: the region, or the URL. */
  readonly label: string;
}

/** What a command line says about its target (`carpool admin`, `carpool usage`). */
export interface TargetArgs {
  readonly url: string | undefined;
  readonly region: string | undefined;
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly stateFile: string;
}

export async function resolveAdminTarget(args: TargetArgs, env: NodeJS.ProcessEnv): Promise<Result<AdminTarget, string>> {
  const url = args.url ?? (args.region === undefined ? env.CARPOOL_ADMIN_URL : undefined);
  const tokenFile = args.tokenFile ?? (args.token === undefined ? env.CARPOOL_ADMIN_TOKEN_FILE : undefined);
  let token = args.token;
  if (token === undefined && tokenFile !== undefined) {
    try {
      token = (await readFile(tokenFile, 'utf8')).trim();
    } catch (error) {
      return err(`cannot read the token file ${tokenFile}: ${(error as Error).message}`);
    }
    if (token.length === 0) return err(`the token file ${tokenFile} is empty`);
  }
  if (url !== undefined && token !== undefined) return ok({ url: url.replace(/\/$/, ''), token, label: url });
  const read = await readLocalState(args.stateFile);
  if (!read.ok)
    return err(
      url === undefined
        ? `${read.error}; or give --url and --token-file`
        : `--url needs --token or --token-file, or a state file with the token (${read.error})`,
    );
  const state = read.value;
  if (url !== undefined) return ok({ url: url.replace(/\/$/, ''), token: token ?? state.adminToken, label: url });
  if (!isProcessAlive(state.pid))
    return err(`the local mesh that wrote ${args.stateFile} (pid ${state.pid}) is not running: start it with npm start, or give --url`);
  const region = args.region === undefined ? state.regions[0] : state.regions.find((r) => r.region === args.region);
  if (region === undefined)
    return err(`unknown region "${args.region ?? ''}"; the local mesh has ${state.regions.map((r) => r.region).join(', ') || 'no regions'}`);
  return ok({ url: region.admin, token: token ?? state.adminToken, label: region.region });
}
