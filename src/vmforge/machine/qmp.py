"""A minimal synchronous QMP client: connect, negotiate capabilities, send one command, all with timeouts."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from vmforge.machine import MachineError


def command(sock_path: Path, name: str, *, arguments: dict[str, Any] | None = None,
            timeout: float = 5.0) -> dict[str, Any]:
    """Run one QMP command on the socket at ``sock_path``; return its ``return`` value (or ``{}``)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(sock_path))
            f = s.makefile("rwb", buffering=0)
            _read(f, deadline)  # greeting
            for msg in ({"execute": "qmp_capabilities"}, {"execute": name, "arguments": arguments or {}}):
                f.write(json.dumps(msg).encode() + b"\r\n")
                reply = _read(f, deadline)
                if "error" in reply:
                    raise MachineError(f"QMP {msg['execute']}: {reply['error'].get('desc', reply['error'])}")
            result = reply.get("return")
            return result if isinstance(result, dict) else {}
        except (OSError, ValueError) as exc:
            raise MachineError(f"QMP {name} failed: {exc}") from exc


def _read(f: Any, deadline: float) -> dict[str, Any]:
    """The next QMP message that is not an asynchronous event."""
    while time.monotonic() < deadline:
        line = f.readline()
        if not line:
            raise MachineError("QMP socket closed")
        msg: dict[str, Any] = json.loads(line)
        if "event" not in msg:
            return msg
    raise MachineError("QMP reply timed out")
