"""redis-pub: HTTP service that publishes the router's records to Redis."""
