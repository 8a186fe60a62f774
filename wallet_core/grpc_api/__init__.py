"""The gRPC adapter: proto messages in and out, the error table, authentication, the server."""
