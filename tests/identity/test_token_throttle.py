"""The token endpoint's throttle (failures per client id and address, per address; all requests per address)
and its constant-time answer for unknown and known client ids."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, free_port
from tests.identity.helpers import ARM, cli, tenant
from vmforge.identity.ratelimit import Throttled, TokenBuckets, TokenThrottle, address_key

LIMITS = {"VMFORGE_TOKEN_FAILURES_PER_CLIENT": "3", "VMFORGE_TOKEN_FAILURES_PER_ADDRESS": "6",
          "VMFORGE_TOKEN_REQUESTS_PER_ADDRESS": "12", "VMFORGE_TOKEN_THROTTLE_WINDOW": "3600"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_are_counted_per_client_and_address_and_per_address() -> None:
    clock = Clock()
    t = TokenThrottle(3, 5, 100, window=60, clock=clock)
    for _ in range(3):
        t.admit("app-a", "10.0.0.1")  # three failures (never handed back)
    with pytest.raises(Throttled) as e:
        t.admit("app-a", "10.0.0.1")
    assert e.value.reason == "failures" and e.value.retry_after == 20  # one failure back every 60/3 s
    t.admit("APP-A", "10.0.0.2")  # the same client from another address is not locked out
    t.succeeded("APP-A", "10.0.0.2")
    t.admit("app-b", "10.0.0.1")  # another client from the first address: its 4th and 5th failure
    t.admit("app-c", "10.0.0.1")
    with pytest.raises(Throttled):  # the address's own failure budget is spent, whatever the client id
        t.admit("app-d", "10.0.0.1")
    clock.now += 12  # 60/5 s: one failure back for the address, none yet for (app-a, address)
    with pytest.raises(Throttled):
        t.admit("app-a", "10.0.0.1")
    t.admit("app-e", "10.0.0.1")  # the refused attempt above gave its address token back


def test_successes_hand_their_reservation_back_and_requests_are_capped() -> None:
    clock = Clock()
    t = TokenThrottle(2, 2, 5, window=60, clock=clock)
    for _ in range(5):
        t.admit("app", "10.0.0.9")
        t.succeeded("app", "10.0.0.9")
    with pytest.raises(Throttled) as e:
        t.admit("app", "10.0.0.9")
    assert e.value.reason == "requests" and e.value.retry_after == 12
    t.admit("app", "10.0.0.10")


def test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("testclient") == "testclient"


def test_buckets_stay_bounded_without_resetting_busy_keys() -> None:
    clock = Clock()
    b = TokenBuckets(2, 3600, clock, max_keys=100)
    b.take("busy")
    b.take("busy")
    for i in range(1000):  # a flood of new keys, each touched once
        b.take(f"k{i}")
        if i % 50 == 0:
            b.take("busy")  # still refused, and still remembered
            assert b.take("busy")[1] > 0
    assert len(b._buckets) <= 100
    assert b.take("busy")[1] > 0


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("vmforge-token-throttle") / "data", free_port())
    saved = {k: os.environ.get(k) for k in LIMITS}
    os.environ.update(LIMITS)  # the server reads VMFORGE_* settings from its environment
    try:
        srv.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield srv
    srv.stop()


def client_from(srv: Server, address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.0.0.0/8 address reaches loopback)."""
    transport = httpx.HTTPTransport(verify=srv.ssl_context(), local_address=address)
    return httpx.Client(base_url=srv.url, transport=transport, timeout=30)


def ask(http: httpx.Client, srv: Server, app_id: str, secret: str) -> httpx.Response:
    return http.post(f"/{tenant(srv)}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": app_id, "client_secret": secret, "scope": ARM + ".default"})


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["error"] == "temporarily_unavailable" and body["error_codes"] and "Retry after" in \
        body["error_description"] and {"timestamp", "trace_id"} <= set(body)
    assert int(r.headers["Retry-After"]) >= 1


def test_failures_are_throttled_without_locking_out_other_addresses(throttled: Server) -> None:
    victim = cli(throttled, "principal", "create", "victim")
    other = cli(throttled, "principal", "create", "other")
    with client_from(throttled, "127.0.0.2") as attacker, client_from(throttled, "127.0.0.3") as owner:
        for _ in range(3):
            assert ask(attacker, throttled, victim["appId"], "guess").status_code == 401
        # Throttled before the secret is checked: even the right one is refused, so guessing learns nothing.
        assert_throttled(ask(attacker, throttled, victim["appId"], victim["password"]))
        # The victim, from its own address, still signs in.
        assert ask(owner, throttled, victim["appId"], victim["password"]).status_code == 200
        # Other client ids from the attacker's address: until the address's failures are spent.
        for _ in range(3):
            assert ask(attacker, throttled, str(uuid.uuid4()), "guess").status_code == 401
        assert_throttled(ask(attacker, throttled, other["appId"], other["password"]))
        assert ask(owner, throttled, other["appId"], other["password"]).status_code == 200


def test_a_flood_of_good_requests_is_capped_per_address(throttled: Server) -> None:
    sp = cli(throttled, "principal", "create", "busy")
    with client_from(throttled, "127.0.0.4") as flood, client_from(throttled, "127.0.0.5") as calm:
        codes = [ask(flood, throttled, sp["appId"], sp["password"]).status_code for _ in range(12)]
        assert codes == [200] * 12  # successes do not spend the failure budgets (3 and 6)
        assert_throttled(ask(flood, throttled, sp["appId"], sp["password"]))
        assert ask(calm, throttled, sp["appId"], sp["password"]).status_code == 200


def test_unknown_and_known_client_ids_cost_the_same(tmp_path: Path) -> None:
    """Medians of interleaved samples: a wrong secret for a known id and any secret for an unknown id take
    the same time (before, an unknown id cost two scrypts, a known one one: a ratio near 2)."""
    from vmforge.identity.store import IdentityStore
    from vmforge.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'vmforge.db'}")
    db.migrate()
    try:
        store = IdentityStore(db)
        known, _ = store.create_principal("timed")
        for _ in range(5):
            store.create_principal("padding")
        store.authenticate(known.app_id, "warm-up")
        known_t: list[float] = []
        unknown_t: list[float] = []
        for i in range(30):
            pairs = [(known_t, known.app_id), (unknown_t, str(uuid.uuid4()))]
            for samples, app_id in pairs if i % 2 else pairs[::-1]:
                t0 = time.perf_counter()
                assert store.authenticate(app_id, "not-the-secret") is None
                samples.append(time.perf_counter() - t0)
        ratio = statistics.median(unknown_t) / statistics.median(known_t)
        assert 0.7 < ratio < 1.4, (ratio, statistics.median(known_t), statistics.median(unknown_t))
    finally:
        db.dispose()
