"""The run state machine, as AIB reports it in ``lastRunStatus``.

``runState`` moves Running → Succeeded | PartiallySucceeded | Failed, or Running → Canceling → Canceled;
``runSubState`` moves forward through Queued → Building → Customizing → Optimizing → Validating →
Distributing while the run is Running. Any other move is refused: a bug in a runner cannot write an
impossible history into the store.
"""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    RUNNING = "Running"
    CANCELING = "Canceling"
    SUCCEEDED = "Succeeded"
    PARTIALLY_SUCCEEDED = "PartiallySucceeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class RunSubState(str, Enum):
    QUEUED = "Queued"
    BUILDING = "Building"
    CUSTOMIZING = "Customizing"
    OPTIMIZING = "Optimizing"
    VALIDATING = "Validating"
    DISTRIBUTING = "Distributing"


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED, RunState.FAILED, RunState.CANCELED})

_NEXT: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset(
        {RunState.RUNNING, RunState.CANCELING, RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED, RunState.FAILED}
    ),
    # A run that finishes (or fails) before the cancel reaches it keeps that ending.
    RunState.CANCELING: frozenset(
        {RunState.CANCELING, RunState.CANCELED, RunState.FAILED, RunState.SUCCEEDED, RunState.PARTIALLY_SUCCEEDED}
    ),
}

_SUB_ORDER = list(RunSubState)


class IllegalTransition(Exception):
    """A runner asked for a move the state machine does not allow (a programming error, not user input)."""


def check_transition(
    state: RunState, sub: RunSubState | None, new_state: RunState, new_sub: RunSubState | None
) -> None:
    if new_state not in _NEXT.get(state, frozenset()):
        raise IllegalTransition(f"run state {state.value} → {new_state.value} is not allowed")
    if new_state is RunState.RUNNING and new_sub is not None and sub is not None:
        if _SUB_ORDER.index(new_sub) < _SUB_ORDER.index(sub):
            raise IllegalTransition(f"run sub-state {sub.value} → {new_sub.value} goes backwards")
