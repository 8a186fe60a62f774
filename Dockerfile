# One image for every role: `wallet core` (the default), `wallet edge`, `wallet db upgrade`, `wallet serve`.
FROM python:3.11-slim AS build
WORKDIR /src
# dependencies first, in a layer of their own: a change to the code does not rebuild them
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['otel']))" > requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels/deps -r requirements.txt
# then the code; the gRPC code is generated from protos/ while the wheel is built
COPY setup.py README.md ./
COPY protos ./protos
COPY wallet_core ./wallet_core
COPY wallet_cli ./wallet_cli
COPY edge_http ./edge_http
COPY clients ./clients
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/app .

FROM python:3.11-slim
RUN groupadd --gid 10001 wallet && useradd --create-home --uid 10001 --gid 10001 wallet
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-cache-dir --no-index /wheels/deps/*.whl && rm -rf /wheels/deps
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-cache-dir --no-deps /wheels/app/*.whl && rm -rf /wheels/app
USER 10001:10001
WORKDIR /home/wallet
ENV PYTHONUNBUFFERED=1 WALLET_LOG_FORMAT=json
# gRPC, the betflex edge, the core's Prometheus metrics
EXPOSE 50051 8080 9464
# the core's gRPC health; the edge overrides it with its /healthz (docker-compose.yml)
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "wallet_core.probe", "grpc", "127.0.0.1:50051"]
ENTRYPOINT ["wallet"]
# production: the core alone, on PostgreSQL (WALLET_DATABASE_URL) with its tokens (WALLET_GRPC_TOKENS)
CMD ["core", "--grpc", "0.0.0.0:50051", "--metrics", "0.0.0.0:9464"]
