"""One event interface for a run's progress: it feeds customization.log (in AIB's shape), the API and the
CLI. Nothing in the build path prints."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Secrets never reach the log: bearer tokens, SAS signatures, passwords in URLs, storage account keys.
_REDACTIONS = [
    (re.compile(r"(?i)(authorization:\s*bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[REDACTED]"),
    (re.compile(r"(?i)\b(SharedKey(?:Lite)?\s+[^:\s]+:)[A-Za-z0-9+/=]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)((?:[?&]|%3F|%26)(sig|se|sv|sp|skoid|sktid|skt|ske|sks|skv|signature|token|code)(?:=|%3D))"
                r"[^&\s\"'<]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(?<![A-Za-z0-9_])(sig=)[^&\s\"'<;]+"), r"\1[REDACTED]"),  # a bare SAS token
    # Connection strings: AccountKey=...; SharedAccessSignature=...;
    (re.compile(r"(?i)\b((?:AccountKey|SharedAccessKey|SharedAccessSignature)=)[^;\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(https?://[^:/\s]+:)[^@/\s]+@"), r"\1[REDACTED]@"),
    # JWTs anywhere (access tokens in headers, bodies, tracebacks), client secrets in forms and JSON.
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    (re.compile(r"(?i)((?:client_secret|client_assertion|password|access_token|refresh_token)=)[^&\s\"']+"),
     r"\1[REDACTED]"),
    (re.compile(r"(?i)(\"(?:password|client_secret|clientSecret|secret|access_token|accessToken)\"\s*:\s*\")"
                r"[^\"]*"), r"\1[REDACTED]"),
    # The same keys in Python reprs (a dict in an exception message): 'client_secret': '...'
    (re.compile(r"(?i)('(?:password|client_secret|clientSecret|secret|access_token|accessToken|account_key|"
                r"AccountKey|sas_token)'\s*:\s*')[^']*"), r"\1[REDACTED]"),
]


def redact(text: str) -> str:
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


@dataclass
class StepInfo:
    index: int
    total: int
    phase: str
    kind: str
    name: str


@dataclass
class RunEvents:
    """Append-only run log plus listeners (the API's live stream, tests)."""

    log_path: Path
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log_path, "a", encoding="utf-8", buffering=1)

    def line(self, text: str, source: str = "") -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
        prefix = f"[{source}] " if source else ""
        out = redact(f"[{stamp}] {prefix}{text.rstrip()}")
        with self._lock:
            self._fh.write(out + "\n")
        for listener in self.listeners:
            listener(out)

    def telemetry(self, text: str) -> None:
        self.line(f"(telemetry) {text}")

    def step_started(self, step: StepInfo) -> None:
        self.telemetry(f"Starting provisioner {step.kind}" + (f" \"{step.name}\"" if step.name else "")
                       + f" ({step.phase} {step.index}/{step.total})")

    def step_ended(self, step: StepInfo, seconds: float, ok: bool) -> None:
        self.telemetry(f"ending {step.kind}" + (f" \"{step.name}\"" if step.name else "")
                       + f" - {'success' if ok else 'failure'} after {seconds:.1f}s")

    def close(self) -> None:
        with self._lock:
            self._fh.close()
