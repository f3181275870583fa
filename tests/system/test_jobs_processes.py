"""Submitting and inspecting jobs with real `asyncjobs` processes: a disk that fails
under `submit-many` (strace), and a process that submits, shows and guards tenants
(the same from Python and the in-process CLI is in tests/integration/test_jobs.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asyncjobs import Client

from ..injection import asyncjobs_cmd, under_strace

pytestmark = pytest.mark.engines


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_submit_many_is_all_or_nothing_when_the_disk_fails(tmp_path):
    store = tmp_path / "store" / "store.v1.json"
    store.parent.mkdir()
    with Client(store) as client:
        first = client.submit("t", org="acme").job_id  # the journal exists
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"task": "t", "payload": {"i": i}}) + "\n" for i in range(1200)
        )
    )
    command = asyncjobs_cmd(store, "submit-many", str(path), "--org", "acme")
    journal = Path(f"{store}.journal")

    def queued() -> list[str]:
        with Client(store) as client:
            assert client.check(strict=True).ok
            return [j.job_id for j in client.list_jobs(org="acme", limit=10_000)]

    failures = 0
    for n in range(1, 10):  # fail the journal's nth write: the first, then later
        proc = under_strace("write", f"error=ENOSPC:when={n}", command, path=journal)
        if proc.returncode == 0:
            break
        failures += 1
        assert proc.returncode == 5 and proc.stdout == "", proc.stderr
        assert queued() == [first]  # not one job of the file
    assert failures >= 1 and proc.returncode == 0  # the retry, once the fault is gone
    assert len(proc.stdout.split()) == 1200
    assert len(queued()) == 1201


def test_a_real_asyncjobs_process_submits_shows_and_guards_tenants(console):
    submitted = console(
        "submit", "reports.build", "--org", "acme", "--payload", '{"m": 1}'
    )
    assert submitted.exit_code == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    shown = console("status", job_id, "--org", "acme", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["status"] == "queued"
    foreign = console("status", job_id, "--tenant", "globex")
    assert (
        foreign.exit_code == 3 and foreign.stderr == f"error: job {job_id} not found\n"
    )
    assert "Traceback" not in foreign.stderr
