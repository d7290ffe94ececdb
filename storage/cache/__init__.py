"""Cache-aside with stampede protection: the `Cache` Protocol, in memory and in Redis.

The factory picks one implementation from the settings: `RedisCache` when
Redis is configured (shared by every process), else `MemoryCache`.
"""

from storage.cache.base import Cache, CacheMetrics
from storage.cache.memory import MemoryCache
from storage.cache.redis_cache import RedisCache

__all__ = ["Cache", "CacheMetrics", "MemoryCache", "RedisCache"]
