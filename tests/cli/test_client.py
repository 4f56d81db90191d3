"""The REST client: finding the server, following long-running operations, error rendering."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from vmforge.cli.client import Client, ClientError, Target
from vmforge.cli.output import Format, emit, print_error
from vmforge.cli.validate import involves_expression, parse_target


def mock_client(handler, sleeps: list[float] | None = None) -> Client:  # noqa: ANN001
    return Client("https://vmforge.test", "tok", sleep=(sleeps.append if sleeps is not None else lambda s: None),
                  transport=httpx.MockTransport(handler))


def test_connect_reads_server_json_and_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("VMFORGE_TOKEN", "VMFORGE_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)

    def fake_token(data_dir: Path) -> str:  # how tokens are minted is vmforge.auth's business
        return (data_dir / "admin.token").read_text().strip()
    monkeypatch.setattr("vmforge.cli.client.local_token", fake_token)
    (tmp_path / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9/", "ca_bundle": None,
                                                      "token_file": str(tmp_path / "admin.token"), "pid": 1}))
    with pytest.raises(ClientError) as e:
        Client.connect(data_dir=tmp_path)
    assert e.value.code == "NoToken"
    (tmp_path / "admin.token").write_text("secret\n")
    c = Client.connect(data_dir=tmp_path, target=Target(group="g"))
    assert (c.url, c.token, c.verify) == ("http://127.0.0.1:9", "secret", True)
    monkeypatch.setenv("VMFORGE_TOKEN", "from-env")
    assert Client.connect("https://elsewhere.test", data_dir=tmp_path).token == "from-env"
    with pytest.raises(ClientError) as e:
        Client.connect(data_dir=tmp_path / "none")
    assert e.value.code == "NoServer"


def test_wait_follows_azure_async_operation_with_retry_after() -> None:
    polls = iter([{"status": "InProgress"}, {"status": "InProgress"}, {"status": "Succeeded"}])
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        return httpx.Response(200, json=next(polls), headers={"Retry-After": "2"})

    c = mock_client(handler, sleeps)
    start = httpx.Response(201, headers={"Azure-AsyncOperation": "https://vmforge.test/op?api-version=x",
                                         "Retry-After": "3"})
    assert c.wait(start)["status"] == "Succeeded"
    assert sleeps == [3.0, 2.0]


def test_wait_raises_the_operation_error() -> None:
    body = {"status": "Failed", "error": {"code": "BuildEngineUnavailable", "message": "no engine"}}
    c = mock_client(lambda r: httpx.Response(200, json=body))
    with pytest.raises(ClientError) as e:
        c.wait(httpx.Response(202, headers={"Azure-AsyncOperation": "https://vmforge.test/op"}))
    assert (e.value.code, e.value.message) == ("BuildEngineUnavailable", "no engine")


def test_wait_follows_location() -> None:
    answers = iter([httpx.Response(202, headers={"Retry-After": "0"}), httpx.Response(204)])
    c = mock_client(lambda r: next(answers))
    assert c.wait(httpx.Response(202, headers={"Location": "https://vmforge.test/result"}))["status"] == "Succeeded"


def test_cloud_error_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"error": {"code": "ValidationFailed", "message": "2 errors", "details": [
        {"code": "InvalidType", "message": "must be an array", "target": "properties.customize[0].inline"},
        {"code": "X", "message": "no target"}]}}
    c = mock_client(lambda r: httpx.Response(400, json=body))
    with pytest.raises(ClientError) as e:
        c.request("PUT", "/x", json_body={})
    print_error(e.value)
    assert capsys.readouterr().err.splitlines() == [
        "error: ValidationFailed: 2 errors", "  properties.customize[0].inline: must be an array", "  no target"]
    c = mock_client(lambda r: httpx.Response(502, text="bad gateway"))
    with pytest.raises(ClientError) as e:
        c.request("GET", "/x")
    assert e.value.code == "HTTP502" and e.value.message == "bad gateway"


def test_list_all_follows_next_link() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "skip" in request.url.params:
            return httpx.Response(200, json={"value": [{"name": "b"}]})
        return httpx.Response(200, json={"value": [{"name": "a"}], "nextLink": "https://vmforge.test/l?skip=1"})
    assert [x["name"] for x in mock_client(handler).list_all("/l")] == ["a", "b"]


def test_emit_formats(capsys: pytest.CaptureFixture[str]) -> None:
    data = [{"name": "a", "properties": {"x": 1}}, {"name": "bb", "properties": {}}]
    emit(data, Format.json)
    assert json.loads(capsys.readouterr().out) == data
    emit(data, Format.yaml)
    assert "name: bb" in capsys.readouterr().out
    emit(data, Format.table, [("Name", lambda r: r["name"]), ("X", lambda r: r["properties"].get("x"))])
    assert capsys.readouterr().out.splitlines() == ["Name  X", "----  -", "a     1", "bb"]


def test_target_paths() -> None:
    assert parse_target("properties.customize[1].inline") == ["properties", "customize", 1, "inline"]
    assert parse_target("identity.userAssignedIdentities['/a/b\\'c']") == ["identity", "userAssignedIdentities",
                                                                           "/a/b'c"]
    body = {"properties": {"n": "[parameters('n')]", "m": "[[literal]", "k": {"[x()]": 1}}}
    assert involves_expression(body, "properties.n")
    assert not involves_expression(body, "properties.m")
    assert involves_expression(body, "properties.k['[x()]']")
    assert not involves_expression(body, None)
