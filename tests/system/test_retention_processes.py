"""TTL retention from real processes: the cron script run from the checkout, and a
`cleanup` whose report fails after its commit (strace). What goes and what stays is in
tests/integration/test_retention.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import sha256_of, store_files
from ..injection import asyncjobs_cmd, under_strace
from ..integration import test_retention
from ..integration.test_retention import ids_of, tasks

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]
client = test_retention.client  # the fixture: a Client with its artifacts in tmp_path


def test_the_cron_script_runs_from_the_checkout_with_the_runbook_flags(
    client, store_url, tmp_path
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    artifact = tmp_path / "artifacts" / "async" / "retention-dry-run.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = [sys.executable, str(ROOT / "scripts" / "run_async_retention_cleanup.py")]
    dry = subprocess.run(
        [
            *script,
            "--store-file",
            store_url,
            "--results-ttl-seconds",
            "0",
            "--events-ttl-seconds",
            "0",
            "--dry-run",
            "--output-json",
            str(artifact),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(artifact.read_text())["results"]["delete_count"] == 1
    live = subprocess.run(
        [
            *script,
            "--store-file",
            store_url,
            "--results-ttl-seconds",
            "0",
            "--events-ttl-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (
        live.returncode == 0 and json.loads(live.stdout)["results"]["delete_count"] == 1
    )
    bad = subprocess.run(
        [*script, "--results-ttl-seconds", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (
        bad.returncode == 2
        and bad.stderr.startswith("error: ")
        and bad.stderr.count("\n") == 1
    )


@pytest.mark.jsonfile  # the JSON file's journal
def test_the_cron_script_refuses_to_write_its_report_over_the_journal(
    client, store_path
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    before = sha256_of(*store_files(store_path))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_async_retention_cleanup.py"),
            "--store-file",
            str(store_path),
            "--results-ttl-seconds",
            "0",
            "--events-ttl-seconds",
            "0",
            "--output-json",
            f"{store_path}.journal",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and "is the store's journal" in proc.stderr
    assert sha256_of(*store_files(store_path)) == before


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_report_that_fails_after_the_commit_goes_to_stdout_with_exit_6(
    client, store_url, tmp_path
):
    for _ in range(2):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    result_ids = sorted(ids_of(client, "results"))
    report = tmp_path / "reports" / "retention.json"
    metrics = tmp_path / "reports" / "retention.prom"
    command = asyncjobs_cmd(
        store_url,
        "cleanup",
        "--results-ttl-seconds",
        "0",
        "--events-ttl-seconds",
        "0",
        "--now",
        "2030-01-01T00:00:00Z",
        "--output-json",
        str(report),
        "--metrics-file",
        str(metrics),
    )
    # The disk fills between the commit and the report's rename into place.
    # That rename's source is a random temp name, which strace -P cannot
    # match, so the run's first rename fails: the report's, as nothing
    # renames before it (no bytecode is written, the commit is a journal line).
    proc = under_strace(
        "rename",
        "error=ENOSPC:when=1",
        command,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.startswith("error: cleanup committed its deletions, but ")
    assert proc.stderr.count("\n") == 1 and "the report is on stdout" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is False and doc["results"]["deleted_ids"] == result_ids
    assert not report.exists()
    assert 'async_retention_cleanup_exit_code{mode="live"} 6' in metrics.read_text()
    assert ids_of(client, "results") == set()  # the deletions are committed
    assert client.check().ok
