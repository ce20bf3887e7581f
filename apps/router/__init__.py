"""Router: validates case records and forwards each to the gRPC or Redis path."""
