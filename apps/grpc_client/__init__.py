"""grpc-client: HTTP service that sends the router's records to the grpc-server."""
