"""/telemetry's graph the whole way: a real worker publishes the catalog and runs a task
that declares its layer, and a real `serve` reads both (the freshness rule itself is
checked in tests/unit/test_graph.py)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from ..injection import ENV, asyncjobs_cmd


def test_a_layer_goes_live_when_a_worker_completes_a_task_that_declares_it(
    client, server, store_path
):
    """The whole way: the worker publishes the catalog, runs the task, serve reads both."""

    def graph() -> dict:
        with urllib.request.urlopen(f"{server}/telemetry", timeout=10) as answer:
            return json.loads(answer.read())["graph"]

    def burst() -> None:
        worker = subprocess.run(
            asyncjobs_cmd(store_path, "worker", "-A", "catalogapp:tasks", "-b"),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert worker.returncode == 0, worker.stderr

    burst()  # publishes the catalog: the layer is known, not yet updated
    assert [layer["status"] for layer in graph()["layers"]] == ["unknown"]
    job = client.submit("routed", org="acme")  # routed to its queue by the catalog
    assert job.queue == "reports"
    burst()
    finished = client.get_job(job.job_id, org="acme").finished_at
    deadline = time.monotonic() + 10  # the server's figures are up to 1 s old
    while graph()["layers"][0]["status"] != "live" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert graph() == {
        "layers": [
            {"name": "monthly_reports", "status": "live", "last_update_ts": finished}
        ],
        "stale_after_ms": 300000,
        "summary": {
            "live_count": 1,
            "stale_count": 0,
            "unknown_count": 0,
            "integrity_degraded": False,
        },
    }
