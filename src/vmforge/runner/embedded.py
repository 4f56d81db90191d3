"""An in-process Celery worker thread for ``vmforge serve`` (no broker needed)."""

from __future__ import annotations

import logging
import threading

from celery.worker import WorkController
from celery.worker import state as worker_state

from vmforge.runner.celery_app import app

log = logging.getLogger("vmforge.worker")


class EmbeddedWorker:
    def __init__(self, concurrency: int = 2) -> None:
        self.concurrency = concurrency
        self._thread: threading.Thread | None = None
        self._worker: WorkController | None = None

    def start(self) -> None:
        self._worker = WorkController(
            app=app, concurrency=self.concurrency, pool="threads", hostname="vmforge-embedded@localhost",
            loglevel="WARNING", without_heartbeat=True, without_mingle=True, without_gossip=True,
            queues=[app.conf.task_default_queue],
        )
        self._thread = threading.Thread(target=self._worker.start, name="vmforge-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        worker_state.should_terminate = 0
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("embedded worker did not stop within %.0f s", timeout)
        worker_state.should_terminate = None
        self._thread = None
