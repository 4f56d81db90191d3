"""The client commands against a real server (HTTPS subprocess), found through its data dir's server.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.cli.conftest import Invoke
from tests.conftest import Server
from tests.wire.helpers import minimal

# Why every run of the small valid template fails on the session server: its source is in no catalog.
NOT_IN_CATALOG = ("Source: The platform image Canonical:ubuntu-24_04-lts:server:latest is not in the local catalog; "
                  "register it with 'vmforge image import FILE --platform URN'.")


def test_template_lifecycle(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    path = template_file()
    r = cli("template", "create", path, "-g", group, "--name", "web", "-o", "json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["name"] == "web" and body["properties"]["provisioningState"] == "Succeeded"
    # An identical create is reused (200), not refused.
    r = cli("template", "create", path, "-g", group, "--name", "web", "-o", "json")
    assert r.exit_code == 0, r.output

    r = cli("template", "show", "web", "-g", group)
    assert r.exit_code == 0 and json.loads(r.stdout)["id"].endswith(f"/resourceGroups/{group}/providers/"
                                                                    "Microsoft.VirtualMachineImages/imageTemplates/web")
    r = cli("template", "show", "web", "-g", group, "-o", "yaml")
    assert yaml.safe_load(r.stdout)["name"] == "web"

    r = cli("template", "list", "-g", group)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["Name", "Location", "Provisioning", "LastRun", "SubState", "Source"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:3] == ["web", "westus", "Succeeded"]
    assert "\x1b[" not in r.stdout

    r = cli("template", "update-tags", "web", "-g", group, "--tag", "env=prod", "-t", "team=img", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tags"] == {"env": "prod", "team": "img"}

    r = cli("template", "delete", "web", "-g", group)
    assert r.exit_code == 0 and "deleted" in r.stderr
    r = cli("template", "show", "web", "-g", group)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ResourceNotFound: ")
    r = cli("template", "delete", "web", "-g", group)
    assert r.exit_code == 0 and "nothing to delete" in r.stderr


def test_list_pages_and_all_groups(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    path = template_file()
    for i in range(4):  # the session server's page size is 3: the list follows nextLink
        assert cli("template", "create", path, "-g", group, "-n", f"t{i}", "--no-wait").exit_code == 0
    r = cli("template", "list", "-g", group, "-o", "json")
    assert sorted(t["name"] for t in json.loads(r.stdout)) == ["t0", "t1", "t2", "t3"]
    r = cli("template", "list", "--all", "-o", "json")
    assert {"t0", "t3"} <= {t["name"] for t in json.loads(r.stdout)}


def test_create_refuses_a_changed_template_with_the_server_error(cli: Invoke, group: str,
                                                                 template_file: Callable[..., Path]) -> None:
    assert cli("template", "create", template_file(), "-g", group, "-n", "x").exit_code == 0
    changed = minimal()
    changed["properties"]["customize"][0]["inline"] = ["echo changed"]
    r = cli("template", "create", template_file(changed, "changed.json"), "-g", group, "-n", "x")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: Conflict: ")


def test_create_shows_every_validation_detail(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    body = minimal()
    body["properties"]["source"]["type"] = "Floppy"
    body["properties"]["customize"][0]["inline"] = "echo"
    r = cli("template", "create", template_file(body), "-g", group)
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ValidationFailed: ")
    assert any(line.startswith("  properties.source.type: ") for line in lines[1:])
    assert any(line.startswith("  properties.customize[0].inline: ") for line in lines[1:])


def test_create_name_from_arm_resource(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    res = {"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2025-10-01", "name": "from-arm",
           **minimal()}
    r = cli("template", "create", template_file(res), "-g", group, "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "from-arm"


def test_build_exits_with_the_run_outcome(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    """The session server cannot build this template (its source is not in the local catalog): the run fails
    at its Source step, build shows its states and the server's message, and exits 1."""
    path = template_file(name="web-build.json")
    r = cli("build", path, "-g", group)
    assert r.exit_code == 1, r.output
    assert "template web-build: created" in r.stderr
    assert "==> " in r.stdout
    assert "\x1b[" not in r.stdout + r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert err == [f"error: BadPIRSource: {NOT_IN_CATALOG}"], r.stderr
    # The run is listed, newest first, with its state; a second build reuses the template.
    r = cli("runs", "web-build", "-g", group, "-o", "json")
    assert r.exit_code == 0, r.output
    runs = json.loads(r.stdout)
    assert [(x["runState"], x["message"]) for x in runs] == [("Failed", NOT_IN_CATALOG)] and runs[0]["id"]
    r = cli("build", path, "-g", group)
    assert r.exit_code == 1 and "unchanged, reused" in r.stderr
    after = json.loads(cli("runs", "web-build", "-g", group, "-o", "json").stdout)
    assert [x["runState"] for x in after] == ["Failed", "Failed"] and after[1]["id"] == runs[0]["id"]
    assert after[0]["startTime"] > runs[0]["startTime"]


def test_run_cancel_outputs_logs(cli: Invoke, group: str, template_file: Callable[..., Path]) -> None:
    assert cli("template", "create", template_file(), "-g", group, "-n", "r").exit_code == 0
    r = cli("runs", "r", "-g", group, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = cli("run", "r", "-g", group)
    assert r.exit_code == 1, r.output
    assert f"error: BadPIRSource: {NOT_IN_CATALOG}" in r.stderr.splitlines(), r.stderr
    r = cli("cancel", "r", "-g", group)  # nothing is running any more
    assert r.exit_code == 1 and r.stderr.startswith("error: Conflict: ")
    r = cli("outputs", "r", "-g", group, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []  # a failed run distributes nothing
    r = cli("logs", "r", "-g", group)
    # The run failed at its Source step (the platform image is not in the catalog); its log says so.
    assert r.exit_code == 0, r.output
    assert f"[source] source: {NOT_IN_CATALOG.removeprefix('Source: ')}\n" in r.stdout, r.stdout
    assert f"(telemetry) run ended Failed: {NOT_IN_CATALOG}\n" in r.stdout, r.stdout
    r = cli("run", "missing", "-g", group)
    assert r.exit_code == 1 and r.stderr.startswith("error: ResourceNotFound: ")


def test_compute_commands(cli: Invoke, group: str) -> None:
    r = cli("image", "list-managed", "-g", group, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = cli("image", "show", "nope", "-g", group)
    assert r.exit_code == 1 and r.stderr.startswith("error: ")
    r = cli("image", "delete", "nope", "-g", group)
    assert r.exit_code == 0, r.output
    r = cli("gallery", "list", "-g", group, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = cli("gallery", "show", "g1", "-g", group)
    assert r.exit_code == 1 and r.stderr.startswith("error: ")


def test_server_resolution(server: Server, group: str, tmp_path: Path) -> None:
    from tests.cli.conftest import invoke

    # --server with the CA bundle and token from the environment, no data dir.
    env = {"VMFORGE_HOME": str(tmp_path / "empty"), "VMFORGE_TOKEN": server.token, "VMFORGE_CA_BUNDLE": server.cert}
    r = invoke(["template", "list", "-g", group, "--server", server.url, "-o", "json"], env)
    assert r.exit_code == 0, r.output
    # --data-dir picks the local server of that data dir.
    r = invoke(["template", "list", "-g", group, "--data-dir", str(server.data_dir), "-o", "json"],
               {"VMFORGE_HOME": str(tmp_path / "empty")})
    assert r.exit_code == 0, r.output
    # No server anywhere: a clear error, exit 1.
    r = invoke(["template", "list"], {"VMFORGE_HOME": str(tmp_path / "empty")})
    assert r.exit_code == 1 and r.stderr.startswith("error: NoServer: ")
    # A bad token: the server's 401 as an error line.
    r = invoke(["template", "list", "--data-dir", str(server.data_dir)], {"VMFORGE_TOKEN": "nope"})
    assert r.exit_code == 1 and r.stderr.startswith("error: InvalidAuthenticationToken: ")


def test_a_missing_group_is_named_and_created_on_request(cli: Invoke, server: Server,
                                                         template_file: Callable[..., Path]) -> None:
    """`template create` and `build` into a group that does not exist: the error names it and the flag that
    creates it (nothing is made); with --create-group the group is made in the template's location."""
    import uuid

    from vmforge.cli.client import DEFAULT_SUBSCRIPTION

    body = minimal()
    body["location"] = "eastus"
    path = template_file(body, "eastern.json")
    for cmd in (["template", "create", path], ["build", path]):
        group = f"cli-new-{uuid.uuid4().hex[:6]}"
        r = cli(*cmd, "-g", group)
        assert r.exit_code == 1, r.output
        assert (f"error: ResourceGroupNotFound: The resource group '{group}' does not exist in subscription "
                f"'{DEFAULT_SUBSCRIPTION}'. Create it in 'eastus' with --create-group, or name another with -g."
                in r.stderr), r.stderr
        with server.http() as c:
            assert c.head(f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{group}",
                          params={"api-version": "2025-04-01"}).status_code == 404
        r = cli(*cmd, "-g", group, "--create-group")
        assert f"resource group {group}: created in eastus" in r.stderr, r.output
        assert cli("template", "show", "eastern", "-g", group).exit_code == 0
        with server.http() as c:
            g = c.get(f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{group}",
                      params={"api-version": "2025-04-01"}).json()
        assert g["location"] == "eastus"
        # The group exists now: asking again creates nothing and leaves it as it is.
        r = cli(*cmd, "-g", group, "--create-group")
        assert f"resource group {group}: created" not in r.stderr, r.output
