"""Property-based tests from Microsoft's own swagger (2022-07-01 and 2025-10-01) against a running server:
no 5xx, and every response conforms to the swagger (status code, content type, body schema, headers).

Bounded for CI (``VMFORGE_FUZZ_EXAMPLES`` per operation, default 16: ~500 cases in all);
``scripts/fuzz-api`` runs a larger campaign.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import Server
from tests.security.swagger import bundled

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

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


@schemathesis.check
def json_body_content_type(ctx, response, case) -> bool | None:  # noqa: ANN001
    """Every response that has a body is JSON."""
    if response.content and not response.headers.get("content-type", [""])[0].startswith("application/json"):
        raise AssertionError(f"a {response.status_code} body is not application/json")
    return None


def _excluded() -> list:
    from schemathesis import checks as all_checks

    return [getattr(all_checks, n) for n in CHECKS_OFF if hasattr(all_checks, n)]


S2022 = _schema("2022-07-01")
S2025 = _schema("2025-10-01")


_SESSIONS: dict[str, object] = {}
CALLS = [0]


def _session(server: Server):  # noqa: ANN202
    """One keep-alive session per server (a TLS handshake per case would dominate the run)."""
    import requests

    if server.url not in _SESSIONS:
        s = requests.Session()
        s.verify = server.cert
        s.headers["Authorization"] = f"Bearer {server.token}"
        _SESSIONS[server.url] = s
    return _SESSIONS[server.url]


def _run(case, server: Server) -> None:  # noqa: ANN001
    CALLS[0] += 1
    case.call_and_validate(base_url=server.url, session=_session(server), verify=server.cert, timeout=30,
                           excluded_checks=_excluded(),
                           additional_checks=[json_body_content_type])


if S2022 is not None:
    @S2022.parametrize()
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def test_swagger_2022_07_01(case, server: Server) -> None:  # noqa: ANN001
        _run(case, server)

if S2025 is not None:
    @S2025.parametrize()
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def test_swagger_2025_10_01(case, server: Server) -> None:  # noqa: ANN001
        _run(case, server)


def test_zz_fuzz_case_count() -> None:
    """Reports how many cases ran (``-s`` shows it)."""
    print(f"schemathesis cases: {CALLS[0]}")
