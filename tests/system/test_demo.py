"""scripts/demo.sh, the README's first command, as a newcomer runs it (twice)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    env["ASYNCJOBS_FSYNC"] = "never"
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_the_demo_prints_pasteable_commands_and_the_workers_log_and_installs_once():
    first = run_demo()
    assert first.returncode == 0, first.stdout[-3000:]
    stamp = ROOT / ".venv" / ".demo-installed"
    installed = stamp.stat().st_mtime_ns
    second = run_demo()
    assert second.returncode == 0, second.stdout[-3000:]
    assert stamp.stat().st_mtime_ns == installed  # no second install
    shown = [line[2:] for line in second.stdout.splitlines() if line.startswith("$ ")]
    assert len(shown) > 20
    for command in shown:
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True)
        assert check.returncode == 0, (command, check.stderr)
    assert any('--payload \'{"month": "2026-10"}\'' in c for c in shown)
    assert " INFO asyncjobs.worker: " in second.stdout  # what it claimed and finished
    assert " failed for good (no retries left)" in second.stdout  # a WARNING line


@pytest.mark.slow
def test_the_demo_runs_on_a_throwaway_postgresql_server_and_stops_it(pg_server):
    import psycopg

    run = run_demo("--postgres")
    assert run.returncode == 0, run.stdout[-3000:]
    match = re.search(r"ASYNCJOBS_STORE=(postgresql://\S+)", run.stdout)
    assert match, run.stdout[:2000]
    assert " failed for good (no retries left)" in run.stdout
    assert "ok: postgresql://" in run.stdout  # store check, at the end
    with pytest.raises(psycopg.OperationalError):  # the server is gone
        psycopg.connect(match.group(1).split("?")[0], connect_timeout=2).close()
