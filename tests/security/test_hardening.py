"""Input limits (depth, strings, step counts, tags), per-principal throttling (429 + Retry-After, ARM's
x-ms-ratelimit-remaining headers) and secrets kept out of the server log."""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_http import body as template_body, tpl_url
from tests.conftest import RESOURCES_API, SUBSCRIPTION, Server, free_port
from tests.identity.helpers import cli, token_for

V = "2025-10-01"
P = {"api-version": V}


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("mutate,code,status", [
    (lambda b: b["properties"].update(extra=nested(70)), "InvalidRequestContent", 400),
    (lambda b: b["properties"]["customize"][0].update(inline=["x" * (65 * 1024)]), "InvalidRequestContent", 400),
    (lambda b: b["properties"].update(customize=[copy.deepcopy(b["properties"]["customize"][0])] * 101),
     "ValidationFailed", 400),
    (lambda b: b["properties"].update(distribute=[copy.deepcopy(b["properties"]["distribute"][0])] * 101),
     "ValidationFailed", 400),
    (lambda b: b.update(tags={f"t{i}": "v" for i in range(51)}), "ValidationFailed", 400),
    (lambda b: b.update(tags={"k" * 513: "v"}), "ValidationFailed", 400),
    (lambda b: b.update(tags={"k": "v" * 257}), "ValidationFailed", 400),
    (lambda b: b.update(tags={"pad": "x" * (5 * 1024 * 1024)}), "RequestEntityTooLarge", 413),
])
def test_input_limits_store_nothing(server: Server, mutate, code: str, status: int) -> None:  # noqa: ANN001
    body = template_body()
    mutate(body)
    group = f"rg-lim-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    url = tpl_url(group, "t")
    with server.http() as http:
        r = http.put(url, params=P, json=body)
        assert r.status_code == status, r.text[:500]
        assert r.json()["error"]["code"] == code
        assert http.get(url, params=P).status_code == 404


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("vmforge-limited") / "data"
    srv = Server(d, free_port(), ["--rate-limit-reads", "5", "--rate-limit-writes", "2", "--log-level", "debug"])
    srv.start()
    yield srv
    srv.stop()


def test_reads_and_writes_are_throttled_per_principal(limited: Server) -> None:
    group = f"rg-{uuid.uuid4().hex[:6]}"
    # The group is made by another principal, so that the admin's write budget below is all the templates'.
    owner = cli(limited, "principal", "create", "group-maker", "--role", "Contributor", "--scope",
                f"/subscriptions/{SUBSCRIPTION}")
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context(), headers={
            "Authorization": "Bearer " + token_for(limited, owner["appId"], owner["password"])}) as maker:
        r = maker.put(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}", params={"api-version": RESOURCES_API},
                      json={"location": "westus"})
        assert r.status_code == 201, r.text
    with limited.http() as http:
        remaining = []
        for _ in range(5):
            r = http.get(tpl_url(group, "none"), params=P)
            assert r.status_code == 404
            remaining.append(int(r.headers["x-ms-ratelimit-remaining-subscription-reads"]))
        assert remaining == [4, 3, 2, 1, 0]
        r = http.get(tpl_url(group, "none"), params=P)
        assert r.status_code == 429 and r.json()["error"]["code"] == "SubscriptionRequestsThrottled"
        assert int(r.headers["Retry-After"]) >= 1
        for i in range(2):
            r = http.put(tpl_url(group, f"w{i}"), params=P, json=template_body())
            assert r.status_code == 201 and "x-ms-ratelimit-remaining-subscription-writes" in r.headers
        r = http.put(tpl_url(group, "w3"), params=P, json=template_body())
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 1
        # Another subscription has its own budget; another principal has its own too.
        other = tpl_url(group, "x", sub="77777777-1111-2222-3333-444444444444")
        assert http.get(other, params=P).status_code == 404
    sp = cli(limited, "principal", "create", "other", "--role", "Reader", "--scope", "/")
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context(),
                      headers={"Authorization": "Bearer " + token_for(limited, sp["appId"], sp["password"])}) as h2:
        assert h2.get(tpl_url(group, "none"), params=P).status_code == 404


def test_rate_limiter_refills() -> None:
    from vmforge.errors import TooManyRequests
    from vmforge.identity.ratelimit import RateLimiter

    now = [0.0]
    lim = RateLimiter(3600, 0, clock=lambda: now[0])  # one per second
    for _ in range(3600):
        lim.take("p", "s", "reads")
    with pytest.raises(TooManyRequests) as e:
        lim.take("p", "s", "reads")
    assert e.value.headers["Retry-After"] == "1"
    now[0] += 1.0
    assert lim.take("p", "s", "reads") == 0
    assert lim.take("p", "s", "writes") is None  # 0: no limit


def test_secrets_never_reach_the_server_log(limited: Server) -> None:
    sp = cli(limited, "principal", "create", "logcheck")
    token = token_for(limited, sp["appId"], sp["password"])
    sas = "sv=2024-01-01&sig=SASSIGNATURE123&se=2030"
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context()) as http:
        http.get(f"/subscriptions/{SUBSCRIPTION}/x?{sas}", headers={"Authorization": "Bearer " + token})
        http.post(f"/{cli_tenant(limited)}/oauth2/v2.0/token?client_secret={sp['password']}",
                  data={"grant_type": "client_credentials", "client_id": sp["appId"],
                        "client_secret": sp["password"], "scope": "https://management.azure.com/.default"})
    time.sleep(0.5)
    log = Path(limited.log_path).read_text()
    assert "/x?" in log  # the access log is on
    for secret in (sp["password"], token, "SASSIGNATURE123", token.split(".")[1]):
        assert secret not in log


def cli_tenant(srv: Server) -> str:
    from tests.identity.helpers import tenant

    return tenant(srv)


def test_redacting_filter_unit() -> None:
    from vmforge.identity.logredact import RedactingFilter

    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s secret %s", ("eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2ln",
                            "client_secret=hunter2"), None)
    assert RedactingFilter().filter(rec)
    assert "hunter2" not in rec.getMessage() and "eyJhbGci" not in rec.getMessage()
