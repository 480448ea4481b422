import { Client, credentials as grpcCredentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { err, ok, type Result } from '../core/result.js';
import { loadCarpoolProto } from '../net/grpc/carpool-proto.js';
import type { WireCreateApiKeyRequest, WireCreateApiKeyResponse } from '../net/grpc/carpool-wire.js';

/**
 * The one carpool.v1.Admin call the launcher makes: CreateApiKey, which mints a key for a tenant
 * and adds its digest to the replicated policy. The typed client (src/net/grpc/carpool-client.ts)
 * serves the tenant-facing Carpool service only, so this goes through a raw grpc-js client with
 * the contract's own method definition.
 */
export interface MintedApiKey {
  readonly apiKey: string;
  readonly keyId: string;
}

export function createApiKey(target: string, adminToken: string, tenant: string, timeoutMs: number): Promise<Result<MintedApiKey, string>> {
  const method = loadCarpoolProto().admin.CreateApiKey;
  const client = new Client(target, grpcCredentials.createInsecure());
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${adminToken}`);
  const request: WireCreateApiKeyRequest = { tenant, name: 'local-mesh', expires_at_ms: 0, reason: 'minted by carpool local at start' };
  return new Promise((resolve) => {
    client.makeUnaryRequest<WireCreateApiKeyRequest, WireCreateApiKeyResponse>(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      { deadline: Date.now() + timeoutMs },
      (error, response) => {
        client.close();
        if (error !== null) resolve(err(`CreateApiKey for tenant ${tenant} at ${target}: ${grpcStatus[error.code] ?? error.code} ${error.details}`));
        else if (response === undefined) resolve(err(`CreateApiKey for tenant ${tenant} at ${target}: an OK status without a response`));
        else resolve(ok({ apiKey: response.api_key, keyId: response.key_id }));
      },
    );
  });
}
