from __future__ import annotations

import pytest

from vmforge.kinds import make_step
from vmforge.kinds.customizers.shell import inline_script
from vmforge.kinds.base import BuildError
from vmforge.service.runstate import RunSubState


def test_inline_lines_become_one_failing_fast_script(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx()
    step = make_step("customize", {"type": "Shell", "name": "s", "inline": ["echo a", "false", "echo b"]}, 0)
    step.run(ctx)
    (_, remote, content), = ctx.guest.uploads
    assert content.decode() == "#!/bin/sh -e\necho a\nfalse\necho b\n"
    assert remote.startswith("/tmp/vmforge-script-") and remote in ctx.guest.commands[0]
    assert inline_script(["x"]).startswith("#!/bin/sh -e\n")


def test_script_uri_is_fetched_and_a_nonzero_exit_fails(make_ctx) -> None:  # noqa: ANN001
    ctx = make_ctx(fetched={"https://h/s.sh": b"#!/bin/bash\nexit 3\n"}, statuses=[3])
    step = make_step("customize", {"type": "Shell", "name": "script", "scriptUri": "https://h/s.sh"}, 0)
    with pytest.raises(BuildError) as e:
        step.run(ctx)
    assert 'Shell "script" exited with status 3' in str(e.value)
    assert ctx.guest.uploads[0][2] == b"#!/bin/bash\nexit 3\n"


def test_validator_phase_and_windows_refusal(make_ctx) -> None:  # noqa: ANN001
    step = make_step("validate", {"type": "Shell", "inline": ["true"]}, 0)
    assert step.phase is RunSubState.VALIDATING
    assert step.prepare(make_ctx(os_type="Windows"))
