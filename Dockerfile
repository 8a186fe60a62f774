# One image for every role: `wallet core`, `wallet edge`, `wallet db upgrade`, `wallet serve`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY protos ./protos
COPY wallet_core ./wallet_core
COPY edge_http ./edge_http
COPY clients ./clients
# the gRPC code is generated from protos/ while the wheel is built
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 wallet
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER wallet
WORKDIR /home/wallet
ENV PYTHONUNBUFFERED=1
EXPOSE 50051 8080
ENTRYPOINT ["wallet"]
CMD ["serve", "--http", "0.0.0.0:8080", "--grpc", "0.0.0.0:50051"]
