"""Request throttling with token buckets (a burst of ``limit``, refilled continuously at ``limit`` per window).

- :class:`RateLimiter`: per principal and subscription, as ARM does it — one bucket for reads and one for
  writes, ``limit`` per hour. Over the limit: ``TooManyRequests`` (429 with ``Retry-After``).
- :class:`TokenThrottle`: the token endpoint's guard against secret guessing and floods. Failed sign-ins are
  counted per (client id, source address) and per source address, never per client id alone: a flood against
  one client id from one address must not lock that client out of another address that knows its secret
  (lockout as denial of service). Every request, failed or not, is also counted per address, more generously.

0 turns a limit off.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable, Hashable

from vmforge.errors import TooManyRequests

MAX_KEYS = 100_000


class TokenBuckets:
    """Buckets by key. Memory is bounded: past ``max_keys``, full buckets (the same as absent ones) go first,
    then the longest untouched, so a flood of new keys cannot reset a busy key's bucket."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, last update); oldest first
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _level(self, key: Hashable, now: float) -> float:
        tokens, last = self._buckets.pop(key, (float(self.limit), now))
        return min(float(self.limit), tokens + (now - last) * self.limit / self.window)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)  # re-inserted: the dict stays ordered by last update
        if len(self._buckets) > self.max_keys:
            rate = self.limit / self.window
            for k in [k for k, (t, last) in self._buckets.items() if t + (now - last) * rate >= self.limit]:
                del self._buckets[k]
            while len(self._buckets) > self.max_keys * 9 // 10:  # headroom: the scan above stays rare
                del self._buckets[next(iter(self._buckets))]

    def take(self, key: Hashable) -> tuple[int | None, int]:
        """Spend one token: ``(whole tokens left, 0)``, or ``(0, seconds to wait)`` when the bucket is empty
        (nothing is spent then). ``(None, 0)`` when the limit is off."""
        if self.limit <= 0:
            return None, 0
        now = self._clock()
        with self._lock:
            tokens = self._level(key, now)
            if tokens < 1.0:
                self._store(key, tokens, now)
                return 0, max(1, math.ceil((1.0 - tokens) * self.window / self.limit))
            self._store(key, tokens - 1.0, now)
            return int(tokens - 1.0), 0

    def give_back(self, key: Hashable) -> None:
        """Return a token taken by ``take`` (a reservation that turned out not to be needed)."""
        if self.limit <= 0:
            return
        now = self._clock()
        with self._lock:
            self._store(key, min(float(self.limit), self._level(key, now) + 1.0), now)


class RateLimiter:
    def __init__(self, reads_per_hour: int, writes_per_hour: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"reads": reads_per_hour, "writes": writes_per_hour}
        self._buckets = {kind: TokenBuckets(limit, 3600.0, clock) for kind, limit in self.limits.items()}

    def take(self, principal: str, subscription: str, kind: str) -> int | None:
        """Spend one request of ``kind`` ("reads" or "writes"); return how many remain (None when unlimited),
        or raise ``TooManyRequests`` with the seconds to wait."""
        left, wait = self._buckets[kind].take((principal, subscription.lower()))
        if wait:
            raise TooManyRequests(
                f"The number of {'read' if kind == 'reads' else 'write'} requests for subscription "
                f"'{subscription}' exceeded the limit of {self.limits[kind]} per hour. Retry after {wait} seconds.",
                code="SubscriptionRequestsThrottled",
                headers={"Retry-After": str(wait), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"})
        return left


def address_key(address: str) -> str:
    """What one source counts as: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64, so a
    per-address limit on single IPv6 addresses would be no limit). IPv4-mapped IPv6 is its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:128]  # not an IP (a test client, a Unix socket): the name itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttled(Exception):
    """A token request refused before its secret was checked."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(retry_after, reason)
        self.retry_after = retry_after
        self.reason = reason  # "failures" (too many failed sign-ins) or "requests" (too many requests)


class TokenThrottle:
    """The token endpoint's budgets, each ``limit`` per ``window`` seconds.

    ``admit`` runs before the secret is checked — otherwise a throttled guesser would still learn when a guess
    was right — and reserves one failure in both failure buckets; ``succeeded`` hands them back, so only
    failures stay counted."""

    def __init__(self, failures_per_client_address: int = 10, failures_per_address: int = 60,
                 requests_per_address: int = 1200, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.client_failures = TokenBuckets(failures_per_client_address, window, clock)
        self.address_failures = TokenBuckets(failures_per_address, window, clock)
        self.address_requests = TokenBuckets(requests_per_address, window, clock)

    @staticmethod
    def _keys(client_id: str, address: str) -> tuple[str, tuple[str, str]]:
        addr = address_key(address)
        return addr, (client_id[:128].lower(), addr)

    def admit(self, client_id: str, address: str) -> None:
        """Count a request and reserve a failure; raise ``Throttled`` when a budget is spent."""
        addr, pair = self._keys(client_id, address)
        _, wait = self.address_requests.take(addr)
        if wait:
            raise Throttled(wait, "requests")
        _, wait = self.address_failures.take(addr)
        if wait:
            raise Throttled(wait, "failures")
        _, wait = self.client_failures.take(pair)
        if wait:
            self.address_failures.give_back(addr)
            raise Throttled(wait, "failures")

    def succeeded(self, client_id: str, address: str) -> None:
        """The secret was right: the reserved failures are handed back."""
        addr, pair = self._keys(client_id, address)
        self.address_failures.give_back(addr)
        self.client_failures.give_back(pair)
