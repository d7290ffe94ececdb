"""Rate limiting: GCRA, shared through Redis or kept in this process.

`policies` names the limits and the routes each covers, `gcra` is the math,
`MemoryLimiter` and `RedisLimiter` apply it, and `FallbackLimiter` decides
what happens while Redis is down. The HTTP side is handlers/ratelimit.py.
"""

from picshare.ratelimit.fallback import FallbackLimiter
from picshare.ratelimit.gcra import Decision, decide
from picshare.ratelimit.limiter import BackendError, RateLimiter
from picshare.ratelimit.memory import MemoryLimiter
from picshare.ratelimit.policies import Policies, Policy, RateClass
from picshare.ratelimit.redis_limiter import RedisLimiter

__all__ = [
    "BackendError",
    "Decision",
    "FallbackLimiter",
    "MemoryLimiter",
    "Policies",
    "Policy",
    "RateClass",
    "RateLimiter",
    "RedisLimiter",
    "decide",
]
