"""The build VM's network boundary and metadata service, from inside a real guest (one TCG boot for all).

The VM runs in a network namespace this test makes ("the host"): a bridge (a second interface, as docker0 is) holds addresses of the host's
own (198.18.0.1, 2001:db8:ff::1) and a foreign listener on 169.254.169.254; a veth peer namespace plays the
internet (198.51.100.80, 2001:db8:1::80) and also holds a ``--build-deny`` address, private addresses (one opened
by ``--build-allow``), a link-local one, a 6to4 address embedding a private one and the host's DNS resolver
(a private address) with a DNS server the test runs. No packet leaves this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tools
from vmforge.identity.keys import ensure_key
from vmforge.identity.tokens import LocalIssuer, TokenVerifier

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PORT = 8080

LISTENER = r'''
import socket, struct, sys, threading
log = open(sys.argv[1], "a", buffering=1)
def tcp(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(sys.argv[2]))); s.listen(16)
    while True:
        c, _ = s.accept(); log.write(addr + "\n"); c.close()
def dns(addr, answer):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, 53))
    while True:
        q, peer = s.recvfrom(512)
        end = q.index(b"\0", 12) + 5
        qtype = q[end - 4:end - 2]
        ans = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(answer) if qtype == b"\0\x01" else b""
        s.sendto(q[:2] + b"\x81\x80" + q[4:6] + (b"\0\x01" if ans else b"\0\0") + b"\0\0\0\0" + q[12:end] + ans, peer)
        log.write("dns " + addr + "\n")
args = sys.argv[3:]
for a in args:
    if a.startswith("dns="):
        addr, answer = a[4:].split(",")
        threading.Thread(target=dns, args=(addr, answer), daemon=True).start()
    else:
        threading.Thread(target=tcp, args=(a,), daemon=True).start()
threading.Event().wait()
'''


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict]:
    """The two namespaces, their addresses and listeners; removed afterwards."""
    require_tools("ip", "unshare", "pasta")
    tag = uuid.uuid4().hex[:8]
    host, net = f"vmft-h-{tag}", f"vmft-i-{tag}"
    resolv = Path("/etc/netns") / host / "resolv.conf"  # what `ip netns exec` shows as /etc/resolv.conf
    procs: list[subprocess.Popen] = []
    try:
        ip("netns", "add", host)
        ip("netns", "add", net)
        for ns in (host, net):
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", host, "link", "add", "br0", "type", "bridge")  # a docker-style bridge
        ip("-n", host, "link", "set", "br0", "up")
        for a in ("198.18.0.1/32", "169.254.169.254/32", "2001:db8:ff::1/128"):
            ip("-n", host, "addr", "add", a, "dev", "br0", *(["nodad"] if ":" in a else []))
        ip("-n", host, "link", "add", "w0", "type", "veth", "peer", "name", "i0", "netns", net)
        ip("-n", host, "addr", "add", "198.51.100.1/24", "dev", "w0")
        ip("-n", host, "addr", "add", "2001:db8:1::1/64", "dev", "w0", "nodad")
        ip("-n", host, "link", "set", "w0", "up")
        ip("-n", net, "addr", "add", "198.51.100.80/24", "dev", "i0")
        ip("-n", net, "addr", "add", "2001:db8:1::80/64", "dev", "i0", "nodad")
        far = ["198.51.100.99", "10.77.0.5", "10.88.0.5", "10.53.0.53", "169.254.1.1"]
        for a in far:
            ip("-n", net, "addr", "add", f"{a}/32", "dev", "i0")
        ip("-n", net, "addr", "add", "2002:a58:5::1/128", "dev", "i0", "nodad")  # 6to4 of 10.88.0.5
        ip("-n", net, "link", "set", "i0", "up")
        ip("-n", host, "route", "add", "default", "via", "198.51.100.80")
        ip("-n", host, "-6", "route", "add", "default", "via", "2001:db8:1::80")
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.write_text("nameserver 10.53.0.53\n")
        script = tmp_path / "listener.py"
        script.write_text(LISTENER)
        logs = {host: tmp_path / "host.log", net: tmp_path / "internet.log"}
        listeners = {host: ["198.18.0.1", "169.254.169.254", "2001:db8:ff::1"],
                     net: ["198.51.100.80", "2001:db8:1::80", "2002:a58:5::1", *far,
                           "dns=10.53.0.53,198.51.100.80"]}
        for ns, addrs in listeners.items():
            port = "80" if ns == host else str(PORT)
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(script), str(logs[ns]),
                                           port, *addrs], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        assert all(p.poll() is None for p in procs), "a listener did not start"
        yield {"host": host, "net": net, "logs": logs}
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        for ns in (host, net):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
        resolv.unlink(missing_ok=True)
        if resolv.parent.exists():
            resolv.parent.rmdir()


def probe(addr: str, port: int = PORT) -> str:
    return f"timeout 8 bash -c '</dev/tcp/{addr}/{port}'"


def imds(client_id: str) -> str:
    url = ("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
           f"&resource=https://management.azure.com/&client_id={client_id}")
    return ("python3 -c 'import sys, urllib.request, urllib.error\n"
            f"req = urllib.request.Request(\"{url}\", headers={{\"Metadata\": \"true\"}})\n"
            "try:\n    r = urllib.request.urlopen(req, timeout=20); print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n'")


def test_guest_reaches_the_internet_and_nothing_denied(test_image: Path, vm_workdir: Path, world: dict,
                                                       tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    issuer = LocalIssuer(ensure_key(key_dir), "https://127.0.0.1:8443/t/v2.0", "t")
    identity = {"subscription_id": "s1", "resource_group": "rg", "name": "builder", "location": "westus",
                "principal_id": "11111111-1111-4111-8111-111111111111",
                "client_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "tenant_id": "t"}
    probes = {
        "internet": probe("198.51.100.80"),
        "internet6": probe("2001:db8:1::80"),
        "allowed_private": probe("10.77.0.5"),
        "host_own": probe("198.18.0.1", 80),
        "host_own6": probe("2001:db8:ff::1", 80),
        "private": probe("10.88.0.5"),
        "six_to_four_private": probe("2002:a58:5::1"),
        "build_deny": probe("198.51.100.99"),
        "link_local": probe("169.254.1.1"),
        "resolver_not_dns": probe("10.53.0.53"),
        "gateway_alias": probe("10.0.2.2", 80),
        "dns": "getent hosts mirror.test",
        "imds_named": imds(identity["client_id"]),
        "imds_other": imds("cccccccc-cccc-4ccc-8ccc-cccccccccccc"),
    }
    config = {"probes": probes, "deny": ["198.51.100.96/28"], "allow": ["10.77.0.0/24"],
              "key_dir": str(key_dir), "issuer": issuer.issuer, "identity": identity}
    cfg = tmp_path / "driver.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.run(["ip", "netns", "exec", world["host"], sys.executable, "-m", "tests.machine.guestnet_driver",
                           str(test_image), str(vm_workdir), str(cfg)], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'src'}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    status, outputs = out["probes"], out["outputs"]
    assert "198.18.0.1" in out["host_addresses"]  # the bridge counts as the host's own

    for name in ("internet", "internet6", "allowed_private", "dns"):
        assert status[name] == 0, (name, outputs[name])
    for name in ("host_own", "host_own6", "private", "six_to_four_private", "build_deny", "link_local",
                 "resolver_not_dns", "gateway_alias"):
        assert status[name] != 0, (name, outputs[name])
    assert "198.51.100.80" in outputs["dns"] and "mirror.test" in outputs["dns"]

    reached_internet = world["logs"][world["net"]].read_text().split("\n")
    reached_host = world["logs"][world["host"]].read_text().split("\n") if world["logs"][world["host"]].exists() else []
    assert {"198.51.100.80", "2001:db8:1::80", "10.77.0.5", "dns 10.53.0.53"} <= set(reached_internet)
    for addr in ("198.51.100.99", "10.88.0.5", "2002:a58:5::1", "169.254.1.1", "10.53.0.53"):
        assert addr not in reached_internet, addr
    assert [ln for ln in reached_host if ln] == []  # neither the host's own addresses nor its 169.254.169.254

    code, body = outputs["imds_named"].split("\n", 1)
    assert code == "200", outputs["imds_named"]
    token = json.loads(body)
    assert token["client_id"] == identity["client_id"] and token["token_type"] == "Bearer"
    verified = TokenVerifier(issuer).verify(token["access_token"])
    assert (verified.object_id, verified.app_id) == (identity["principal_id"], identity["client_id"])
    code, body = outputs["imds_other"].split("\n", 1)
    assert code == "400" and json.loads(body) == {"error": "invalid_request", "error_description": "Identity not found"}
