#!/usr/bin/env python3
"""Calls carpool.v1.Carpool/Complete from Python and prints the answer as one JSON line.

It proves that the public contract works for a client in another language, built from the
.proto file alone: the proto is compiled at run time with grpc_tools.protoc into a temporary
directory (nothing generated is checked in), and the API key travels as `x-api-key` metadata.

Output on stdout, one line, exit status 0:

  {"request_id": ..., "message": <message_json parsed>, "usage": {...}, "served_region": ...}

On a non-OK status, exit status 1 and:

  {"error": {"code": "RESOURCE_EXHAUSTED", "details": ..., "pushback_ms": "1500" or null}}

Needs python3-grpcio and python3-grpc-tools (Debian), or grpcio and grpcio-tools (pip).
"""

import argparse
import importlib
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_FILE = PROTO_ROOT / "carpool" / "v1" / "carpool.proto"


def compile_proto(out_dir):
    """Generates carpool/v1/carpool_pb2*.py under out_dir and returns the two modules."""
    # grpc_tools ships the well-known types; the contract imports none today, but a later
    # version may, so their include path is passed as protoc's own main() would.
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_FILE),
    ])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    sys.path.insert(0, str(out_dir))
    return importlib.import_module("carpool.v1.carpool_pb2"), importlib.import_module("carpool.v1.carpool_pb2_grpc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of a carpool region")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--request-json", required=True, help="the Messages API request body")
    parser.add_argument("--anthropic-version", default="")
    parser.add_argument("--user", default="")
    parser.add_argument("--timeout-s", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="carpool-proto-") as out_dir:
        pb2, pb2_grpc = compile_proto(out_dir)
        request = pb2.CompleteRequest(
            request_id=args.request_id,
            request_json=args.request_json.encode("utf-8"),
            anthropic_version=args.anthropic_version,
            user=args.user,
        )
        with grpc.insecure_channel(args.target) as channel:
            stub = pb2_grpc.CarpoolStub(channel)
            try:
                response, call = stub.Complete.with_call(
                    request, metadata=[("x-api-key", args.api_key)], timeout=args.timeout_s
                )
            except grpc.RpcError as error:
                trailers = dict(error.trailing_metadata() or ())
                print(json.dumps({"error": {
                    "code": error.code().name,
                    "details": error.details(),
                    "pushback_ms": trailers.get("grpc-retry-pushback-ms"),
                }}))
                return 1
            print(json.dumps({
                "request_id": response.request_id,
                "message": json.loads(response.message_json.decode("utf-8")),
                "usage": {
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                    "cache_creation_input_tokens": response.usage.cache_creation_input_tokens,
                    "cache_read_input_tokens": response.usage.cache_read_input_tokens,
                },
                "served_region": response.served_region,
            }))
            return 0


if __name__ == "__main__":
    sys.exit(main())
