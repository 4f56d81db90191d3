from __future__ import annotations

from vmforge.kinds import make_step


def test_file_is_uploaded_beside_then_moved_into_place(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(fetched={"https://h/f": b"payload"})
    make_step("customize", {"type": "File", "sourceUri": "https://h/f", "destination": "/opt/a/b.txt"}, 0).run(ctx)
    assert ctx.guest.commands[0] == "mkdir -p /opt/a"
    (_, remote, content), = ctx.guest.uploads
    assert content == b"payload" and remote.startswith("/opt/a/b.txt.vmforge-")
    assert ctx.guest.commands[1].startswith("mv -f ") and ctx.guest.commands[1].endswith(" /opt/a/b.txt")
