// The grpc.health.v1 status of one service of an endpoint (a port on loopback, or host:port), for
// lifecycle tests.
import { Client, credentials as grpcCredentials, Metadata, type MethodDefinition } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

export function healthOf(endpoint: number | string, service: string): Promise<string> {
  const check = healthService.Check as MethodDefinition<{ service: string }, { status: string }>;
  const client = new Client(typeof endpoint === 'number' ? `127.0.0.1:${endpoint}` : endpoint, grpcCredentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service }, new Metadata(), {}, (error, response) => {
      client.close();
      resolve(error === null ? (response?.status ?? 'none') : `error ${error.code}`);
    });
  });
}
