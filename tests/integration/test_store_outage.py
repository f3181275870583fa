"""A worker through a long store outage: it keeps trying, at most every few seconds, and says so once."""

from __future__ import annotations

import logging
import time

from asyncjobs import TaskRegistry
from asyncjobs.errors import StoreError
from asyncjobs.worker import loop
from asyncjobs.worker.loop import Worker

tasks = TaskRegistry()


def test_a_worker_outlasts_thousands_of_failed_store_calls_and_logs_the_outage_once(
    client, caplog
):
    worker = Worker(client, tasks)

    def down() -> None:
        raise StoreError("connection refused")

    caplog.set_level(logging.DEBUG, logger=loop.__name__)
    for _ in range(3_000):  # hours of heartbeats and beats at the longest wait
        assert worker._store(down) is None
        wait = worker.store_retry_at - time.monotonic()
        assert wait <= loop.STORE_RETRY_MAX_SECONDS
    assert wait > loop.STORE_RETRY_MAX_SECONDS - 1  # backed off, not spinning
    assert worker._store(lambda: "answer") == "answer"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("store unavailable")
    assert warnings[1].startswith("store available again") and "3000" in warnings[1]
