// The local mesh (`carpool local`, `npm start`) and its client, for end-to-end tests and tools.
export { type ClientArgs, clientUsage, parseClientArgs } from './client-args.js';
export { type ClientIo, runClient } from './local-client.js';
export {
  defaultLocalConfig,
  defaultLocalConfigJson,
  formatLocalConfigError,
  type LocalAccount,
  type LocalConfig,
  type LocalConfigError,
  type LocalEmulator,
  type LocalRegion,
  type LocalTenant,
  parseLocalConfig,
  parseLocalConfigText,
} from './local-config.js';
export { type LocalMesh, type LocalMeshRegion, startLocalMesh, type StartLocalMeshOptions } from './local-mesh.js';
export { freePorts, withFreePorts } from './local-ports.js';
export { defaultStateFile, type LocalState, readLocalState, type RegionEndpoints } from './local-state.js';
