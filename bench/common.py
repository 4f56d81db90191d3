"""Shared pieces of the benchmarks: a server in a temp dir, wrk runs, result files."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class BenchServer:
    data_dir: Path
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert(self) -> str:
        return str(self.data_dir / "tls" / "cert.pem")

    @property
    def token(self) -> str:
        from vmforge.identity import local_token

        return local_token(self.data_dir, lifetime=6 * 3600)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.cert, timeout=60,
                            headers={"Authorization": f"Bearer {self.token}"})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(*args: str) -> BenchServer:
    d = Path(tempfile.mkdtemp(prefix="vmforge-bench-")) / "data"
    port = free_port()
    log = open(d.parent / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "vmforge.cli", "serve", "--port", str(port), "--data-dir", str(d),
                             "--log-level", "warning", *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    srv = BenchServer(d, port, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if Path(srv.cert).exists() and httpx.get(srv.url + "/healthz", verify=srv.cert).status_code == 200:
                return srv
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    srv.stop()
    raise RuntimeError("server did not start")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, *, connections: int, seconds: int, threads: int = 2, headers: dict[str, str] | None = None,
        script: str | None = None) -> dict:
    """Run wrk and return requests/s, p50/p99 latency (ms) and the non-2xx count."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required for this benchmark: apt-get install wrk")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    tmp = None
    if script:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        tmp.write(script)
        tmp.close()
        cmd += ["-s", tmp.name]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if tmp:
        os.unlink(tmp.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else None}


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
