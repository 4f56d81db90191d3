"""Mixed CRUD load: N concurrent clients (default 64) for S seconds (default 60) create, read, list and delete
image templates with a real JWT of a service principal that holds Contributor on the subscription; then every
acknowledged write is read back: each template whose PUT was acknowledged (and not deleted) must exist and be
Succeeded, each acknowledged DELETE must end in 404.

    .venv/bin/python bench/load_mixed.py [--clients 64] [--seconds 60]

Errors are transport errors, 5xx, 429 and any status outside what the operation may answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.common import save, start_server

SUB = "00000000-0000-0000-0000-00000000aaaa"
V = "2025-10-01"
P = {"api-version": V}
BODY = {
    "location": "westus",
    "identity": {"type": "None"},
    "properties": {
        "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [{"type": "VHD", "runOutputName": "vhd"}],
    },
}
EXPECTED = {"put": {200, 201}, "get": {200}, "list": {200}, "delete": {202, 204}}


def url(group: str, name: str = "") -> str:
    base = f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.VirtualMachineImages/imageTemplates"
    return base + (f"/{name}" if name else "")


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    live: dict[tuple[str, str], bool] = field(default_factory=dict)  # acknowledged: True = exists, False = deleted


async def worker(i: int, http: httpx.AsyncClient, deadline: float, t: Tally) -> None:
    rnd = random.Random(i)
    group = f"load-{i}"
    mine: list[str] = []
    n = 0
    while time.monotonic() < deadline:
        roll = rnd.random()
        if roll < 0.25 or not mine:
            op, n = "put", n + 1
            name = f"t{n}"
            req = http.put(url(group, name), params=P, json=BODY)
        elif roll < 0.70:
            op, name = "get", rnd.choice(mine)
            req = http.get(url(group, name), params=P)
        elif roll < 0.85:
            op, name = "list", ""
            req = http.get(url(group), params=P)
        else:
            op, name = "delete", mine.pop(rnd.randrange(len(mine)))
            req = http.delete(url(group, name), params=P)
        t0 = time.perf_counter()
        try:
            r = await req
        except httpx.HTTPError as e:
            t.errors.append(f"{op} {group}/{name}: {type(e).__name__} {e}")
            continue
        t.latencies.append(time.perf_counter() - t0)
        t.counts[op] += 1
        if r.status_code not in EXPECTED[op]:
            t.errors.append(f"{op} {group}/{name}: {r.status_code} {r.text[:200]}")
            continue
        if op == "put":
            mine.append(name)
            t.live[(group, name)] = True
        elif op == "delete":
            t.live[(group, name)] = False


async def verify(http: httpx.AsyncClient, t: Tally) -> dict[str, int]:
    """Read back every acknowledged write (waiting for asynchronous completion, at most 60 s)."""
    pending = dict(t.live)
    checked = Counter()
    deadline = time.monotonic() + 60
    sem = asyncio.Semaphore(32)

    async def one(key: tuple[str, str], exists: bool) -> bool:
        async with sem:
            r = await http.get(url(*key), params=P)
        if exists:
            return r.status_code == 200 and r.json()["properties"]["provisioningState"] == "Succeeded"
        return r.status_code == 404

    while pending and time.monotonic() < deadline:
        keys = list(pending)
        results = await asyncio.gather(*(one(k, pending[k]) for k in keys))
        for k, ok in zip(keys, results):
            if ok:
                checked["exists" if pending.pop(k) else "deleted"] += 1
        if pending:
            await asyncio.sleep(1)
    for (g, n), exists in pending.items():
        t.errors.append(f"read-back {g}/{n}: expected {'Succeeded' if exists else '404'}")
    return dict(checked)


def principal_token(srv) -> str:  # noqa: ANN001
    out = subprocess.run([sys.executable, "-m", "vmforge.cli", "principal", "create", "load", "--role", "Contributor",
                          "--scope", f"/subscriptions/{SUB}", "--data-dir", str(srv.data_dir)],
                         capture_output=True, text=True, check=True)
    sp = json.loads(out.stdout)
    r = httpx.post(f"{srv.url}/{sp['tenant']}/oauth2/v2.0/token", verify=srv.cert,
                   data={"grant_type": "client_credentials", "client_id": sp["appId"],
                         "client_secret": sp["password"], "scope": "https://management.azure.com/.default"})
    r.raise_for_status()
    return r.json()["access_token"]


async def run(clients: int, seconds: int) -> dict:
    srv = start_server()
    try:
        token = principal_token(srv)
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=srv.url, verify=srv.cert, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            t = Tally()
            t0 = time.monotonic()
            await asyncio.gather(*(worker(i, http, t0 + seconds, t) for i in range(clients)))
            elapsed = time.monotonic() - t0
            checked = await verify(http, t)
    finally:
        srv.stop()
    lat = sorted(t.latencies)
    total = sum(t.counts.values())
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": total, "rps": round(total / elapsed, 1),
            "by_operation": dict(t.counts), "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
            "errors": len(t.errors), "error_samples": t.errors[:10], "read_back": checked}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    result = asyncio.run(run(args.clients, args.seconds))
    print(json.dumps(result, indent=2))
    save("load_mixed", result)
    if result["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
