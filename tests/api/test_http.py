"""ARM protocol details that a client library hides: auth, api-version, body limits, LRO headers, path
case, conflicts, concurrency — checked on the wire with httpx."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import time
import uuid

import httpx
import pytest

from tests.conftest import SUBSCRIPTION, Server, free_port, load_example

V = "2025-10-01"


def body() -> dict:
    return copy.deepcopy(load_example(V, "CreateImageTemplateLinux")["parameters"]["parameters"])


def tpl_url(group: str, name: str, sub: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"


def wait_op(http: httpx.Client, url: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(url)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "InProgress":
            return r.json()
        time.sleep(0.1)
    raise AssertionError("operation did not finish")


def rg(srv: Server) -> str:
    """A new resource group on ``srv`` (templates are created only in a group that exists)."""
    name = f"rg-{uuid.uuid4().hex[:8]}"
    srv.ensure_group(SUBSCRIPTION, name)
    return name


def test_no_token_is_401_with_challenge(server: Server) -> None:
    with httpx.Client(base_url=server.url, verify=server.ssl_context()) as anon:
        r = anon.get(tpl_url("rg", "x"), params={"api-version": V})
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "AuthenticationFailed"
        r = anon.get(tpl_url("rg", "x"), params={"api-version": V}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
        r = anon.get("/providers/Microsoft.VirtualMachineImages/operations", params={"api-version": V})
        assert r.status_code == 401


def test_api_version_errors(server: Server) -> None:
    with server.http() as http:
        r = http.get(tpl_url("rg", "x"), params={"api-version": "2019-01-01"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "InvalidApiVersionParameter"
        assert "2025-10-01" in err["message"]
        r = http.get(tpl_url("rg", "x"))
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_body_errors_store_nothing(server: Server) -> None:
    group = rg(server)
    url = tpl_url(group, "b")
    with server.http() as http:
        r = http.put(url, params={"api-version": V}, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"
        r = http.put(url, params={"api-version": V}, content=json.dumps(body()), headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "UnsupportedMediaType"
        big = body()
        big["tags"] = {"pad": "x" * (5 * 1024 * 1024)}
        r = http.put(url, params={"api-version": V}, json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "RequestEntityTooLarge"
        r = http.put(url, params={"api-version": V}, json=[1, 2])
        assert r.status_code == 400
        assert set(r.json()["error"]) == {"code", "message", "target", "details"}
        assert http.get(url, params={"api-version": V}).status_code == 404


def test_put_lro_headers_and_operation_resource(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        r = http.put(tpl_url(group, "lro"), params={"api-version": V}, json=body())
        assert r.status_code == 201
        assert r.json()["properties"]["provisioningState"] == "Creating"
        op_url = r.headers["Azure-AsyncOperation"]
        assert op_url.startswith(server.url + f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/locations/westus/operations/")
        assert op_url.endswith(f"?api-version={V}")
        assert int(r.headers["Retry-After"]) >= 1
        op = wait_op(http, op_url)
        assert op["status"] == "Succeeded"
        assert set(op) >= {"id", "name", "status", "startTime", "endTime"}
        assert op["id"].endswith("/operations/" + op["name"])
        # An identical PUT is idempotent: 200.
        r = http.put(tpl_url(group, "lro"), params={"api-version": V}, json=body())
        assert r.status_code == 200
        assert r.json()["properties"]["provisioningState"] == "Succeeded"


def test_changed_put_is_refused_with_409(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        r = http.put(tpl_url(group, "c"), params={"api-version": V}, json=body())
        wait_op(http, r.headers["Azure-AsyncOperation"])
        changed = body()
        changed["properties"]["vmProfile"]["osDiskSizeGB"] = 128
        r = http.put(tpl_url(group, "c"), params={"api-version": V}, json=changed)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "Conflict"
        assert r.json()["error"]["message"] == "Update/Upgrade of image templates is currently not supported"
        got = http.get(tpl_url(group, "c"), params={"api-version": V}).json()
        assert got["properties"]["vmProfile"]["osDiskSizeGB"] == 64


def test_paths_are_case_insensitive_names_kept(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        r = http.put(tpl_url(group, "CaseName"), params={"api-version": V}, json=body())
        wait_op(http, r.headers["Azure-AsyncOperation"])
        weird = (f"/SUBSCRIPTIONS/{SUBSCRIPTION}/resourcegroups/{group.upper()}/PROVIDERS/"
                 "microsoft.virtualmachineimages/IMAGETEMPLATES/casename")
        r = http.get(weird, params={"api-version": V})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "CaseName"
        assert f"/resourceGroups/{group}/" in r.json()["id"]


def test_delete_location_protocol(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        r = http.put(tpl_url(group, "d"), params={"api-version": V}, json=body())
        wait_op(http, r.headers["Azure-AsyncOperation"])
        r = http.delete(tpl_url(group, "d"), params={"api-version": V})
        assert r.status_code == 202
        loc = r.headers["Location"]
        assert loc.startswith(server.url + "/subscriptions/")
        deadline = time.monotonic() + 10
        while True:
            r = http.get(loc)
            if r.status_code != 202:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert r.status_code == 204
        assert http.get(tpl_url(group, "d"), params={"api-version": V}).status_code == 404
        assert http.delete(tpl_url(group, "d"), params={"api-version": V}).status_code == 204


def test_concurrent_puts_of_one_name_make_one_template(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        def put(_: int) -> int:
            return http.put(tpl_url(group, "race"), params={"api-version": V}, json=body()).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(put, range(16)))
        assert codes.count(201) == 1, codes
        assert set(codes) <= {200, 201}
        listed = http.get(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/"
                          "Microsoft.VirtualMachineImages/imageTemplates", params={"api-version": V}).json()
        assert [t["name"] for t in listed["value"]] == ["race"]


def test_unknown_route_is_cloud_error(server: Server) -> None:
    with server.http() as http:
        r = http.get("/nothing/here", params={"api-version": V})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "NotFound"


def test_restart_keeps_everything(tmp_path) -> None:  # noqa: ANN001
    srv = Server(tmp_path / "data", free_port())
    srv.start()
    group = rg(srv)
    try:
        with srv.http() as http:
            r = http.put(tpl_url(group, "survivor"), params={"api-version": V}, json=body())
            wait_op(http, r.headers["Azure-AsyncOperation"])
            before = http.get(tpl_url(group, "survivor"), params={"api-version": V}).json()
        srv.stop()
        srv.start()
        with srv.http() as http:
            after = http.get(tpl_url(group, "survivor"), params={"api-version": V}).json()
        assert after == before
    finally:
        srv.stop()


def test_allow_template_updates(tmp_path) -> None:  # noqa: ANN001
    srv = Server(tmp_path / "data", free_port(), ["--allow-template-updates"])
    srv.start()
    group = rg(srv)
    try:
        with srv.http() as http:
            r = http.put(tpl_url(group, "u"), params={"api-version": V}, json=body())
            wait_op(http, r.headers["Azure-AsyncOperation"])
            changed = body()
            changed["properties"]["vmProfile"]["osDiskSizeGB"] = 128
            r = http.put(tpl_url(group, "u"), params={"api-version": V}, json=changed)
            assert r.status_code == 200
            assert r.json()["properties"]["provisioningState"] == "Updating"
            assert wait_op(http, r.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
            got = http.get(tpl_url(group, "u"), params={"api-version": V}).json()
            assert got["properties"]["vmProfile"]["osDiskSizeGB"] == 128
            assert got["properties"]["provisioningState"] == "Succeeded"
    finally:
        srv.stop()


def test_run_routes_refuse_odd_ids_with_404(server: Server) -> None:
    group = rg(server)
    with server.http() as http:
        r = http.put(tpl_url(group, "runs"), params={"api-version": V}, json=body())
        wait_op(http, r.headers["Azure-AsyncOperation"])
        for ref in ("99999999999999999999999", "abc", "-1", "latest"):
            r = http.get(tpl_url(group, "runs") + f"/runs/{ref}", params={"api-version": V})
            assert r.status_code == 404, (ref, r.text)
            assert r.json()["error"]["code"] == "ResourceNotFound"
        assert http.get(tpl_url(group, "runs") + "/runs", params={"api-version": V}).json() == {"value": []}


def test_operation_status_in_progress_says_when_to_poll_again(server: Server) -> None:
    """An operation still running answers with Retry-After (Azure's clients otherwise wait 30 s per poll); a
    finished one does not. The in-progress operation is written to the store directly, so the answer is read
    while it is certainly InProgress."""
    import uuid as _uuid
    from datetime import datetime, timezone

    import sqlalchemy as sa

    op_id = str(_uuid.uuid4()).upper()
    engine = sa.create_engine(f"sqlite:///{server.data_dir / 'vmforge.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO operations (id, subscription_key, location, kind, resource_id, status, "
                             "start_time) VALUES (:id, :sub, 'westus', 'run', '/x', 'InProgress', :now)"),
                     {"id": op_id, "sub": SUBSCRIPTION.lower(), "now": datetime.now(timezone.utc)})
    url = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.VirtualMachineImages/locations/westus/operations/{op_id}"
    with server.http() as http:
        r = http.get(url, params={"api-version": V})
        assert r.status_code == 200 and r.json()["status"] == "InProgress"
        assert r.headers["Retry-After"] == "1"
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE operations SET status = 'Succeeded' WHERE id = :id"), {"id": op_id})
        r = http.get(url, params={"api-version": V})
        assert r.json()["status"] == "Succeeded" and "Retry-After" not in r.headers
    engine.dispose()
