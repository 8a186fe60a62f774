"""A container health check: `python -m wallet_core.probe grpc HOST:PORT` or `... http URL`.

`grpc` asks the standard gRPC health service of a core (plaintext) for the overall status;
`http` expects a 2xx from the URL (the edge's /healthz). Exit status 0 when healthy, 1 when not,
with one line saying why; used by the Dockerfile's HEALTHCHECK and docker-compose.yml.
"""

from __future__ import annotations

import sys
import urllib.request

TIMEOUT = 3.0


def grpc_healthy(target: str) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            # types-grpcio-health-checking declares the stub without its methods
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)  # type: ignore[attr-defined]
        except grpc.RpcError as error:
            return False, f"{target}: {error.code().name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {status}"


def http_healthy(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # (a URL we are given)
            return 200 <= response.status < 300, f"{url}: {response.status}"
    except OSError as error:
        return False, f"{url}: {error}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grpc", "http"):
        print("usage: python -m wallet_core.probe grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    healthy, detail = (grpc_healthy if argv[0] == "grpc" else http_healthy)(argv[1])
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
