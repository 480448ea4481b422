import { Client, credentials, Metadata, type MethodDefinition, status } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/**
 * One grpc.health.v1 Check against a node's gRPC endpoint: what a container's HEALTHCHECK and a
 * Kubernetes probe run (`carpool health`, src/cli.ts). The answer is the serving status's name
 * (`SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`), or the call's failure (`UNAVAILABLE` when nothing
 * listens, `DEADLINE_EXCEEDED` past `timeoutMs`, `NOT_FOUND` for a service the node does not
 * register). A node answers NOT_SERVING until it has restored its state and joined its mesh.
 */
export async function checkHealth(target: string, service: string, timeoutMs: number): Promise<string> {
  const check = healthService.Check as MethodDefinition<{ service: string }, { status: string | number }>;
  const client = new Client(target, credentials.createInsecure());
  try {
    return await new Promise<string>((resolve) => {
      client.makeUnaryRequest(
        check.path,
        check.requestSerialize,
        check.responseDeserialize,
        { service },
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, response) => resolve(error !== null ? (status[error.code] ?? String(error.code)) : String(response?.status ?? 'UNKNOWN')),
      );
    });
  } finally {
    client.close();
  }
}
