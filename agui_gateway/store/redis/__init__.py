"""The Redis Streams store, for several gateway replicas sharing one Redis."""

from agui_gateway.store.redis.store import RedisStore

__all__ = ["RedisStore"]
