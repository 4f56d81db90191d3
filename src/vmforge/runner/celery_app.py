"""The Celery application that carries "run R is ready" messages.

The store stays the single source of truth for run state; a message only names a run id. By default the
broker is in-process (``memory://``) and ``vmforge serve`` runs an embedded worker thread, so a user needs no
broker; a Redis or RabbitMQ URL (``VMFORGE_BROKER_URL``) lets remote ``vmforge worker`` processes take runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from celery import Celery

TASK_NAME = "vmforge.run_build"

app = Celery("vmforge", broker=os.environ.get("VMFORGE_BROKER_URL", "memory://"))
app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,  # a worker that dies mid-run leaves the message for another one
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
    task_default_queue="vmforge-runs",
)

# Set by whoever starts a worker in this process: executes one run by id.
_executor: Callable[[int], None] | None = None


def set_executor(fn: Callable[[int], None] | None) -> None:
    global _executor
    _executor = fn


@app.task(name=TASK_NAME, bind=True, max_retries=0)
def run_build(self, run_id: int) -> None:  # noqa: ANN001
    if _executor is None:
        raise RuntimeError("this worker has no run executor configured")
    _executor(run_id)
