"""Per-principal, per-subscription request throttling as ARM does it: one token bucket for reads and one for
writes, refilled continuously at ``limit`` per hour with a burst of ``limit``. Over the limit: 429 with
``Retry-After``. 0 turns a limit off."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from vmforge.errors import TooManyRequests


class RateLimiter:
    def __init__(self, reads_per_hour: int, writes_per_hour: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"reads": reads_per_hour, "writes": writes_per_hour}
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, principal: str, subscription: str, kind: str) -> int | None:
        """Spend one request of ``kind`` ("reads" or "writes"); return how many remain (None when unlimited),
        or raise ``TooManyRequests`` with the seconds to wait."""
        limit = self.limits[kind]
        if limit <= 0:
            return None
        rate = limit / 3600.0
        key = (principal, subscription.lower(), kind)
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(limit), now))
            tokens = min(float(limit), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                raise TooManyRequests(
                    f"The number of {'read' if kind == 'reads' else 'write'} requests for subscription "
                    f"'{subscription}' exceeded the limit of {limit} per hour. Retry after {wait} seconds.",
                    code="SubscriptionRequestsThrottled",
                    headers={"Retry-After": str(wait), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"})
            tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return int(tokens)
