"""redis-sub: subscribes to the Redis path and stores each record."""
