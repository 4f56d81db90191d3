"""``GET {template}/runs/{runId}/sbom`` without a build: a run that failed before any VM has no SBOM, and the 404
is an ARM error that says why; unknown runs are 404 too; the route is a read of the template (a Reader may,
a principal without a role may not). The 200 answer of a real build: tests/e2e/test_sbom_slow.py."""

from __future__ import annotations

import uuid

import pytest

from tests.api.test_http import body as template_body, tpl_url, wait_op
from tests.conftest import SUBSCRIPTION, Server
from tests.identity.helpers import client, principal

P = {"api-version": "2025-10-01"}


@pytest.fixture(scope="module")
def failed_run(server: Server) -> tuple[str, str]:
    """A template whose one run failed before any VM (the example's source does not exist here)."""
    group = f"rg-sbom-{uuid.uuid4().hex[:6]}"
    server.ensure_group(SUBSCRIPTION, group)
    url = tpl_url(group, "t")
    with server.http() as http:
        r = http.put(url, params=P, json=template_body())
        assert r.status_code == 201, r.text
        wait_op(http, r.headers["Azure-AsyncOperation"])
        r = http.get(url + "/runs/latest/sbom", params=P)  # no run yet
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound", r.text
        r = http.post(url + "/run", params=P)
        assert r.status_code == 202, r.text
        assert wait_op(http, r.headers["Azure-AsyncOperation"], timeout=60)["status"] == "Failed"
    return group, "t"


def assert_arm_404(r, *needles: str) -> dict:  # noqa: ANN001
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) >= {"code", "message"} and err["code"] == "ResourceNotFound"
    for n in needles:
        assert n in err["message"], err["message"]
    return err


def test_a_run_that_failed_early_has_no_sbom_and_says_why(server: Server, failed_run: tuple[str, str]) -> None:
    group, name = failed_run
    with server.http() as http:
        runs = http.get(tpl_url(group, name) + "/runs", params=P).json()["value"]
        assert len(runs) == 1 and runs[0]["runState"] == "Failed"
        for ref in (runs[0]["id"], "latest"):
            err = assert_arm_404(http.get(tpl_url(group, name) + f"/runs/{ref}/sbom", params=P),
                                 f"The run '{runs[0]['id']}' of image template '{name}' has no SBOM",
                                 "ended Failed")
            assert err["target"] == "sbom"


@pytest.mark.parametrize("ref", ["999999", "abc", "-1", "9" * 40])
def test_unknown_runs_are_404(server: Server, failed_run: tuple[str, str], ref: str) -> None:
    group, name = failed_run
    with server.http() as http:
        assert_arm_404(http.get(tpl_url(group, name) + f"/runs/{ref}/sbom", params=P), f"The run '{ref}'")
        assert_arm_404(http.get(tpl_url(group, "no-such-template") + "/runs/latest/sbom", params=P))


def test_sbom_is_a_read_of_the_template(server: Server, failed_run: tuple[str, str]) -> None:
    group, name = failed_run
    url = tpl_url(group, name) + "/runs/latest/sbom"
    reader = principal(server, "Reader", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}")
    with client(server, reader["token"]) as http:
        assert_arm_404(http.get(url, params=P), "has no SBOM")
    nobody = principal(server)
    with client(server, nobody["token"]) as http:
        r = http.get(url, params=P)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "AuthorizationFailed"
        assert "Microsoft.VirtualMachineImages/imageTemplates/read" in r.json()["error"]["message"]
    with client(server, None) as http:
        assert http.get(url, params=P).status_code == 401
