"""gRPC server: stores the case records the grpc-client sends."""
