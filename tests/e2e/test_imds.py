"""The metadata service end to end: a user-assigned identity made through the ARM routes, a template whose
build VM names it, a customizer that asks 169.254.169.254 for tokens the way Azure scripts do, and the API
accepting the token it got. One TCG boot; the missing-identity case boots nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SUBSCRIPTION, Server, imagebuilder_client
from tests.e2e.test_build import add_source, imports, log_of, start_server, template, vhd  # noqa: F401

pytestmark = pytest.mark.slow
RG_V, MSI_V = "2021-04-01", "2023-01-31"
OTHER = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, imports: Path) -> Iterator[Server]:  # noqa: F811
    s = start_server(tmp_path_factory.mktemp("imds"), imports)
    make_group(s, "sources")
    add_source(s, imports)
    yield s
    s.stop()


def make_group(srv: Server, group: str) -> None:
    with srv.http() as h:
        r = h.put(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}", params={"api-version": RG_V},
                  json={"location": "westus"})
        assert r.status_code in (200, 201), r.text


def make_identity(srv: Server, group: str, name: str) -> dict:
    make_group(srv, group)
    with srv.http() as h:
        r = h.put(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/"
                  f"userAssignedIdentities/{name}", params={"api-version": MSI_V}, json={"location": "westus"})
        assert r.status_code in (200, 201), r.text
        return r.json()


def token_script(client_id: str) -> str:
    """Python in the guest (the test image has no curl). The token is printed reversed: the run log redacts
    JWTs, as it should, and the test needs this one back to show that the API accepts it."""
    return f"""python3 - <<'EOF'
import json, urllib.error, urllib.request
def ask(cid):
    url = ("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
           "&resource=https://management.azure.com/&client_id=" + cid)
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers={{"Metadata": "true"}}), timeout=30)
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
status, body = ask("{client_id}")
assert status == 200, (status, body)
print("NAMED", status, body["client_id"], body["expires_in"], body["resource"])
print("REVERSED-TOKEN", body["access_token"][::-1])
print("OTHER", *ask("{OTHER}"))
EOF"""


def test_customizer_gets_a_token_the_api_accepts(srv: Server) -> None:
    group, name = f"rg-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    ident = make_identity(srv, group, "builder")
    client_id = ident["properties"]["clientId"]
    body = template([{"type": "Shell", "name": "imds", "inline": [token_script(client_id)]}], [vhd()],
                    vmProfile={"userAssignedIdentities": [ident["id"]]})
    client = imagebuilder_client(srv)
    client._config.polling_interval = 1
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, name, body).result()
    try:
        ops.begin_run(group, name).result()
    except Exception:  # noqa: BLE001 — the run's status is asserted below
        pass
    log = log_of(srv, group, name)
    status = ops.get(group, name).last_run_status
    assert status.run_state == "Succeeded", (status.message, log[-3000:])
    lines = {}  # the guest's output lines, after the log's "[time] [source] " prefix
    for line in log.splitlines():
        for key in ("NAMED", "REVERSED-TOKEN", "OTHER"):
            if f"] {key} " in line:
                lines[key] = line[line.index(f"] {key} ") + 2:].strip()
    assert set(lines) == {"NAMED", "REVERSED-TOKEN", "OTHER"}, log[-3000:]
    assert lines["NAMED"] == f"NAMED 200 {client_id} 3600 https://management.azure.com/"
    assert lines["OTHER"] == ("OTHER 400 " + str({"error": "invalid_request", "error_description": "Identity not found"}))
    token = lines["REVERSED-TOKEN"].split(" ", 1)[1][::-1]
    assert "eyJ" not in log  # the log itself holds no JWT
    import httpx

    with httpx.Client(base_url=srv.url, verify=srv.ssl_context(), timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as h:
        r = h.get(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}", params={"api-version": RG_V})
    assert r.status_code in (200, 403), r.text  # authenticated; authorized by the identity's (no) roles
    if r.status_code == 403:
        err = r.json()["error"]
        assert err["code"] == "AuthorizationFailed" and client_id in err["message"], err


def test_an_identity_gone_since_the_put_fails_the_run_before_boot(srv: Server) -> None:
    group, name = f"rg-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    ident = make_identity(srv, group, "doomed")
    body = template([{"type": "Shell", "name": "x", "inline": ["true"]}], [vhd()],
                    vmProfile={"userAssignedIdentities": [ident["id"]]})
    client = imagebuilder_client(srv)
    client._config.polling_interval = 1
    ops = client.virtual_machine_image_templates
    ops.begin_create_or_update(group, name, body).result()
    with srv.http() as h:
        r = h.delete(ident["id"], params={"api-version": MSI_V})
        assert r.status_code in (200, 204), r.text
    try:
        ops.begin_run(group, name).result()
    except Exception:  # noqa: BLE001
        pass
    status = ops.get(group, name).last_run_status
    assert status.run_state == "Failed" and ident["id"] in status.message and "does not exist" in status.message
    log = log_of(srv, group, name)
    assert "starting QEMU" not in log, log[-2000:]
    assert json.dumps(status.message)  # a plain string, no traceback
