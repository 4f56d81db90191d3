"""Property-based tests from Microsoft's own swagger (2022-07-01 and 2025-10-01) against a running server:
no 5xx, and every response conforms to the swagger (status code, content type, body schema, headers).

Bounded for CI: per operation and version, schemathesis's coverage phase (its deterministic boundary and
negative cases) and ``VMFORGE_FUZZ_EXAMPLES`` fuzzed cases (default 16). At the default that is 2,187 cases in
all (480 fuzzed, 1,707 from the coverage phase; ``-s`` prints the count). Each operation's test fails if it
executed fewer cases than planned. ``scripts/fuzz-api`` runs a larger campaign.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.conftest import RESOURCES_API, SPEC_MISSING, Server, missing_dependency
from tests.security.swagger import bundled

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
except ImportError as e:  # a dev dependency (pyproject's [dev]); missing_dependency below decides skip or fail
    schemathesis = None
    MISSING = f"schemathesis is not installed ({e}); pip install -e '.[dev]'"
else:
    MISSING = None

EXAMPLES = int(os.environ.get("VMFORGE_FUZZ_EXAMPLES", "16"))
# content_type_conformance wants application/json even on a bodiless 204 (Swagger 2's ``produces`` covers
# every response); ``json_body_content_type`` below checks it wherever there is a body.
CHECKS_OFF = ("content_type_conformance", "positive_data_acceptance", "negative_data_rejection", "missing_required_header",
              "unsupported_method", "ignored_auth", "use_after_free", "ensure_resource_availability")


def _schema(version: str):  # noqa: ANN202
    doc = bundled(version)
    if doc is None:
        return None
    return schemathesis.openapi.from_dict(doc)


def json_body_content_type(ctx, response, case) -> bool | None:  # noqa: ANN001
    """Every response that has a body is JSON."""
    if response.content and not response.headers.get("content-type", [""])[0].startswith("application/json"):
        raise AssertionError(f"a {response.status_code} body is not application/json")
    return None


if schemathesis is not None:
    json_body_content_type = schemathesis.check(json_body_content_type)


def _excluded() -> list:
    from schemathesis import checks as all_checks

    return [getattr(all_checks, n) for n in CHECKS_OFF if hasattr(all_checks, n)]


S2022 = _schema("2022-07-01") if schemathesis is not None else None
S2025 = _schema("2025-10-01") if schemathesis is not None else None


_SESSIONS: dict[str, object] = {}
TOTAL: Counter[str] = Counter()  # cases executed in this session, by phase


def _session(server: Server):  # noqa: ANN202
    """One keep-alive session per server (a TLS handshake per case would dominate the run)."""
    import requests

    if server.url not in _SESSIONS:
        s = requests.Session()
        s.verify = server.cert
        s.headers["Authorization"] = f"Bearer {server.token}"
        _SESSIONS[server.url] = s
    return _SESSIONS[server.url]


@pytest.fixture(scope="module", autouse=True)
def _report_total() -> Iterator[None]:
    yield
    print(f"\nschemathesis cases: {sum(TOTAL.values())} ({dict(TOTAL)})")


@pytest.fixture
def executed() -> Iterator[Counter[str]]:
    """The cases one operation's test executed, by phase. Set up once per operation (hypothesis calls the
    test body once per case), checked after its last case: at least ``EXAMPLES`` fuzzed cases and at least
    one coverage-phase case must have reached the server."""
    counts: Counter[str] = Counter()
    yield counts
    assert counts["fuzzing"] >= EXAMPLES, f"planned {EXAMPLES} fuzzed cases, executed {dict(counts)}"
    assert counts["coverage"] >= 1, f"the coverage phase executed no case: {dict(counts)}"


_GROUPS: set[tuple[str, str, str]] = set()  # (server, subscription, group) made for the cases


def _ensure_case_group(case, server: Server) -> None:  # noqa: ANN001
    """Templates live in a group that exists: make the case's group first (when ARM would accept its name), so
    that the case reaches the template checks instead of stopping at 404 ResourceGroupNotFound. A name ARM
    refuses is left to the server to refuse."""
    from vmforge.errors import ArmError
    from vmforge.service.ids import check_group

    params = case.path_parameters or {}
    sub, group = params.get("subscriptionId"), params.get("resourceGroupName")
    if not isinstance(sub, str) or not isinstance(group, str) or not sub or "/" in sub + group:
        return
    try:
        check_group(group)
    except ArmError:
        return
    key = (server.url, sub.lower(), group.lower())
    if key not in _GROUPS:
        r = _session(server).put(f"{server.url}/subscriptions/{quote(sub, safe='')}/resourceGroups/"
                                 f"{quote(group, safe='')}", params={"api-version": RESOURCES_API},
                                 json={"location": "westus"}, verify=server.cert, timeout=30)
        if r.status_code in (200, 201):
            _GROUPS.add(key)


def _run(case, server: Server, executed: Counter[str]) -> None:  # noqa: ANN001
    phase = case.meta.phase.name if case.meta is not None else None
    phase = getattr(phase, "value", phase)
    executed[phase] += 1
    TOTAL[phase] += 1
    _ensure_case_group(case, server)
    case.call_and_validate(base_url=server.url, session=_session(server), verify=server.cert, timeout=30,
                           excluded_checks=_excluded(),
                           additional_checks=[json_body_content_type])


if S2022 is not None:
    @S2022.parametrize()
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def test_swagger_2022_07_01(case, server: Server, executed: Counter[str]) -> None:  # noqa: ANN001
        _run(case, server, executed)
else:
    def test_swagger_2022_07_01() -> None:
        missing_dependency(MISSING or f"Microsoft's 2022-07-01 swagger is not available. {SPEC_MISSING}")

if S2025 is not None:
    @S2025.parametrize()
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def test_swagger_2025_10_01(case, server: Server, executed: Counter[str]) -> None:  # noqa: ANN001
        _run(case, server, executed)
else:
    def test_swagger_2025_10_01() -> None:
        missing_dependency(MISSING or f"Microsoft's 2025-10-01 swagger is not available. {SPEC_MISSING}")
