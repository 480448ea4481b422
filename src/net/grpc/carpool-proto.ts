import { fileURLToPath } from 'node:url';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { assert } from '../../core/assert.js';
import type {
  WireCompleteRequest,
  WireCompleteResponse,
  WireCountTokensRequest,
  WireCountTokensResponse,
  WireAdjustUsageRequest,
  WireAdjustUsageResponse,
  WireApiKeyInfo,
  WireCreateApiKeyRequest,
  WireCreateApiKeyResponse,
  WireEnableAccountRequest,
  WireEnableAccountResponse,
  WireGetAuditRequest,
  WireGetAuditResponse,
  WireGetPolicyRequest,
  WireGetUsageRequest,
  WireGetUsageResponse,
  WireListApiKeysRequest,
  WireListApiKeysResponse,
  WirePolicyJson,
  WirePutSubjectRequest,
  WireQueryUsageRequest,
  WireQueryUsageResponse,
  WireRemoveSubjectRequest,
  WireRemoveSubjectResponse,
  WireRevokeApiKeyRequest,
  WireRotateApiKeyRequest,
  WireRotateApiKeyResponse,
  WireStreamEvent,
} from './carpool-wire.js';
import type { WireForwardReply, WireForwardRequest } from './forward-wire.js';

/**
 * Loads the public contract, proto/carpool/v1/carpool.proto, at run time with @grpc/proto-loader,
 * for the server and the client alike, so both read the very file clients compile.
 *
 * The loader options, and why:
 *   keepCase  true: field names stay as in the .proto (`request_id`). proto-loader builds the
 *             descriptors that server reflection serves from the same parse, so camelCase here
 *             would make reflection advertise fields (`requestId`) the .proto does not have, and
 *             a grpcurl or Python client built from reflection would disagree with one built
 *             from the file. ./carpool-wire.ts translates to camelCase in one place.
 *   longs     Number: token counts and epoch milliseconds stay far below 2^53.
 *   enums     String: a name survives renumbering mistakes better than a number, and an unknown
 *             value still arrives as its number, which the decoder refuses by field.
 *   bytes     the default, Buffer (a Uint8Array), so JSON bodies are never re-encoded as base64.
 *   defaults  true: absent scalars read as their proto3 defaults ('' and 0), as in every other
 *             language's generated code.
 *   oneofs    true: a `StreamEvent` names its set case in `body`.
 */
export const carpoolProtoPath = fileURLToPath(new URL('../../../proto/carpool/v1/carpool.proto', import.meta.url));

/** The members-only service a node forwards calls through (not part of the public contract). */
export const forwardProtoPath = fileURLToPath(new URL('../../../proto/carpool/mesh/v1/forward.proto', import.meta.url));

export const forwardServiceName = 'carpool.mesh.v1.Forward';

export const carpoolProtoOptions: Options = Object.freeze({ keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });

/** The Carpool service's methods by their proto names, typed with the wire messages. */
export interface CarpoolServiceMethods {
  readonly Complete: MethodDefinition<WireCompleteRequest, WireCompleteResponse>;
  readonly StreamComplete: MethodDefinition<WireCompleteRequest, WireStreamEvent>;
  readonly CountTokens: MethodDefinition<WireCountTokensRequest, WireCountTokensResponse>;
  readonly GetUsage: MethodDefinition<WireGetUsageRequest, WireGetUsageResponse>;
}

export interface AdminServiceMethods {
  readonly GetPolicy: MethodDefinition<WireGetPolicyRequest, WirePolicyJson>;
  readonly GetPool: MethodDefinition<WireGetPolicyRequest, WirePolicyJson>;
  readonly PutTenant: MethodDefinition<WirePutSubjectRequest, WirePolicyJson>;
  readonly RemoveTenant: MethodDefinition<WireRemoveSubjectRequest, WireRemoveSubjectResponse>;
  readonly PutAccount: MethodDefinition<WirePutSubjectRequest, WirePolicyJson>;
  readonly RemoveAccount: MethodDefinition<WireRemoveSubjectRequest, WireRemoveSubjectResponse>;
  readonly CreateApiKey: MethodDefinition<WireCreateApiKeyRequest, WireCreateApiKeyResponse>;
  readonly ListApiKeys: MethodDefinition<WireListApiKeysRequest, WireListApiKeysResponse>;
  readonly RevokeApiKey: MethodDefinition<WireRevokeApiKeyRequest, WireApiKeyInfo>;
  readonly RotateApiKey: MethodDefinition<WireRotateApiKeyRequest, WireRotateApiKeyResponse>;
  readonly EnableAccount: MethodDefinition<WireEnableAccountRequest, WireEnableAccountResponse>;
  readonly AdjustUsage: MethodDefinition<WireAdjustUsageRequest, WireAdjustUsageResponse>;
  readonly GetAudit: MethodDefinition<WireGetAuditRequest, WireGetAuditResponse>;
  readonly QueryUsage: MethodDefinition<WireQueryUsageRequest, WireQueryUsageResponse>;
}

export interface ForwardServiceMethods {
  readonly Execute: MethodDefinition<WireForwardRequest, WireForwardReply>;
}

export interface CarpoolProto {
  /** Every loaded file: what server reflection describes. */
  readonly packageDefinition: PackageDefinition;
  readonly carpool: CarpoolServiceMethods & ServiceDefinition;
  readonly admin: AdminServiceMethods & ServiceDefinition;
}

const carpoolMethodNames = ['Complete', 'StreamComplete', 'CountTokens', 'GetUsage'] as const;
export const adminMethodNames = [
  'GetPolicy',
  'GetPool',
  'PutTenant',
  'RemoveTenant',
  'PutAccount',
  'RemoveAccount',
  'CreateApiKey',
  'ListApiKeys',
  'RevokeApiKey',
  'RotateApiKey',
  'EnableAccount',
  'AdjustUsage',
  'GetAudit',
  'QueryUsage',
] as const;

/**
 * Loads the contract, plus `extraPaths` (the server adds grpc.health.v1 so that reflection
 * describes it too). A contract without the expected services is a broken build, not an
 * operating condition, so it fails an assertion.
 */
export function loadCarpoolProto(path: string = carpoolProtoPath, extraPaths: readonly string[] = []): CarpoolProto {
  const packageDefinition = loadSync([path, ...extraPaths], { ...carpoolProtoOptions });
  return {
    packageDefinition,
    carpool: serviceOf(packageDefinition, 'carpool.v1.Carpool', carpoolMethodNames) as CarpoolServiceMethods & ServiceDefinition,
    admin: serviceOf(packageDefinition, 'carpool.v1.Admin', adminMethodNames) as AdminServiceMethods & ServiceDefinition,
  };
}

/** The Forward service of a definition loaded with `forwardProtoPath` among its files. */
export function forwardServiceOf(definition: PackageDefinition): ForwardServiceMethods & ServiceDefinition {
  return serviceOf(definition, forwardServiceName, ['Execute']) as ForwardServiceMethods & ServiceDefinition;
}

/** Loads the Forward service alone, for the origin's client. */
export function loadForwardService(): ForwardServiceMethods & ServiceDefinition {
  return forwardServiceOf(loadSync([forwardProtoPath], { ...carpoolProtoOptions }));
}

function serviceOf(definition: PackageDefinition, name: string, methods: readonly string[]): ServiceDefinition {
  const service = definition[name];
  assert(service !== undefined && !('format' in service), `the contract defines the service ${name}`);
  for (const method of methods) assert(method in service, `the service ${name} has the method ${method}`);
  return service;
}
