"""A fake guest and context for driving kinds without a VM (command construction, error paths)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmforge.events import RunEvents
from vmforge.kinds.base import Context


@dataclass
class FakeGuest:
    """Records commands and uploads; answers each command with the next scripted exit status."""

    statuses: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    uploads: list[tuple[Path, str, bytes]] = field(default_factory=list)
    reconnects: int = 0

    def run(self, command: str, *, timeout: float | None = None, source: str = "") -> int:
        self.commands.append(command)
        return self.statuses.pop(0) if self.statuses else 0

    def upload(self, local: Path, remote: str) -> None:
        self.uploads.append((local, remote, Path(local).read_bytes()))

    def reconnect(self, timeout: float) -> float:
        self.reconnects += 1
        return 0.0


@pytest.fixture
def make_ctx(tmp_path: Path):  # noqa: ANN201
    def make(os_type: str = "Linux", fetched: dict[str, bytes] | None = None, statuses: list[int] | None = None):  # noqa: ANN202
        fetched = fetched or {}

        def fetch(url: str, sha: str | None) -> Path:
            p = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
            p.write_bytes(fetched[url])
            return p

        ctx = Context(run_id=1, work_dir=tmp_path, data_dir=tmp_path, events=RunEvents(tmp_path / "log.txt"),
                      template={}, template_name="t", template_location="westus", cancel_requested=lambda: False,
                      fetch=fetch, artifacts=None, os_type=os_type)
        ctx.guest = FakeGuest(statuses=list(statuses or []))
        return ctx

    return make
