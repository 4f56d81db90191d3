from __future__ import annotations

from vmforge.kinds import make_step
from vmforge.machine.guestos import powershell_script


def test_file_is_uploaded_beside_then_moved_into_place(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(fetched={"https://h/f": b"payload"})
    make_step("customize", {"type": "File", "sourceUri": "https://h/f", "destination": "/opt/a/b.txt"}, 0).run(ctx)
    assert ctx.guest.commands[0] == "mkdir -p -- /opt/a"
    (_, remote, content), = ctx.guest.uploads
    assert content == b"payload" and remote.startswith("/opt/a/b.txt.vmforge-")
    assert ctx.guest.commands[1] == f"mv -f -- {remote} /opt/a/b.txt"


def test_file_on_windows_uses_powershell_not_linux_commands(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(os_type="Windows", fetched={"https://h/f": b"payload"})
    make_step("customize", {"type": "File", "sourceUri": "https://h/f",
                            "destination": "C:\\Program Files\\app\\it's.txt"}, 0).run(ctx)
    mkdir, move = ctx.guest.commands
    assert "mkdir -p" not in mkdir and "mv -f" not in move
    assert powershell_script(mkdir).endswith("New-Item -ItemType Directory -Force -Path 'C:\\Program Files\\app' | Out-Null")
    (_, remote, _), = ctx.guest.uploads
    assert remote.startswith("C:\\Program Files\\app\\it's.txt.vmforge-")
    assert f"-Destination 'C:\\Program Files\\app\\it''s.txt' -Force" in powershell_script(move)
