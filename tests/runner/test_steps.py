from __future__ import annotations

from pathlib import Path

import pytest

from vmforge.events import RunEvents, redact
from vmforge.kinds.base import Canceled, Context, Step, assign_ids, cleanup_all, execute
from vmforge.service.runstate import IllegalTransition, RunState, RunSubState, check_transition


class Rec(Step):
    def __init__(self, name: str, log: list, fail: bool = False, phase=RunSubState.CUSTOMIZING) -> None:  # noqa: ANN001
        super().__init__(name, {"n": name})
        self.log, self.fail, self.phase, self.kind = log, fail, phase, "Rec"

    def run(self, ctx) -> None:  # noqa: ANN001
        self.log.append(("run", self.name))
        if self.fail:
            raise RuntimeError("boom")

    def cleanup(self, ctx) -> None:  # noqa: ANN001
        self.log.append(("cleanup", self.name))


def ctx(tmp: Path, cancel=lambda: False) -> Context:  # noqa: ANN001
    return Context(run_id=1, work_dir=tmp, data_dir=tmp, events=RunEvents(tmp / "log"), template={},
                   template_name="t", template_location="w", cancel_requested=cancel, fetch=None, artifacts=None)


def test_failure_stops_and_cleanup_is_lifo(tmp_path: Path) -> None:
    log: list = []
    steps = [Rec("a", log), Rec("b", log, fail=True), Rec("c", log)]
    c = ctx(tmp_path)
    out = execute(c, steps, lambda p: None)
    assert out.failed is steps[1] and [s.name for s in out.ran] == ["a", "b"]
    cleanup_all(c, out.ran)
    assert log == [("run", "a"), ("run", "b"), ("cleanup", "b"), ("cleanup", "a")]
    text = (tmp_path / "log").read_text()
    assert '(telemetry) Starting provisioner Rec "a" (Customizing 1/3)' in text
    assert 'ending Rec "b" - failure' in text


def test_cancel_is_checked_between_steps(tmp_path: Path) -> None:
    log: list = []
    flag = {"v": False}
    steps = [Rec("a", log), Rec("b", log)]
    steps[0].run = lambda c: flag.update(v=True)  # the cancel arrives during step a
    out = execute(ctx(tmp_path, cancel=lambda: flag["v"]), steps, lambda p: None)
    assert isinstance(out.error, Canceled) and [s.name for s in out.ran] == ["a"]


def test_step_ids_chain_their_inputs() -> None:
    a1, b1 = Rec("a", []), Rec("b", [])
    a2, b2 = Rec("a", []), Rec("b2", [])
    assign_ids("digest", [a1, b1])
    assign_ids("digest", [a2, b2])
    assert a1.step_id == a2.step_id and b1.step_id != b2.step_id
    a3 = Rec("a", [])
    assign_ids("other", [a3])
    assert a3.step_id != a1.step_id


def test_state_machine_refuses_illegal_moves() -> None:
    check_transition(RunState.RUNNING, RunSubState.QUEUED, RunState.RUNNING, RunSubState.BUILDING)
    with pytest.raises(IllegalTransition):
        check_transition(RunState.SUCCEEDED, None, RunState.RUNNING, None)
    with pytest.raises(IllegalTransition):
        check_transition(RunState.RUNNING, RunSubState.DISTRIBUTING, RunState.RUNNING, RunSubState.BUILDING)
    with pytest.raises(IllegalTransition):
        check_transition(RunState.CANCELED, None, RunState.CANCELING, None)


def test_secrets_are_redacted() -> None:
    assert "[REDACTED]" in redact("https://a.blob.core.windows.net/c/x.vhd?sv=2020&sig=abcDEF%2B")
    assert "abcDEF" not in redact("https://a.blob.core.windows.net/c/x.vhd?sv=2020&sig=abcDEF%2B")
    assert "secret" not in redact("Authorization: Bearer secret.token.value")
