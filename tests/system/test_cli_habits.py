"""Celery and RQ habits on the command line: short flags, comma lists, bare commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asyncjobs.cli import cli as cli_group

from ..conftest import Outcome
from ..injection import asyncjobs_cmd as asyncjobs
from ..injection import wait_for

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
APP = "jobsapp:tasks"
ENV = {"PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}", "ASYNCJOBS_FSYNC": "never"}


# -- no command ---------------------------------------------------------------------


def test_no_arguments_print_the_usage_and_the_commands_on_stderr_and_exit_2(
    tmp_path, console
):
    proc = subprocess.run(
        [sys.executable, "-m", "asyncjobs"],
        cwd=tmp_path,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    bare = Outcome(proc.returncode, proc.stdout, proc.stderr)
    only_options = console()  # --store PATH and no command: the same answer
    for outcome in (bare, only_options):
        assert outcome.exit_code == 2 and outcome.stdout == ""
        lines = outcome.stderr.splitlines()
        assert lines[0] == "Usage: asyncjobs [OPTIONS] COMMAND [ARGS]..."
        assert "Commands:" in lines and "error:" not in outcome.stderr
        commands = [line.split()[0] for line in lines[lines.index("Commands:") + 1 :]]
        assert {"submit", "wait", "worker", "store"} <= set(commands)
    assert not (tmp_path / "runtime").exists()  # nothing was opened, or created


def test_a_group_without_its_subcommand_prints_its_usage(console):
    outcome = console("store")
    assert outcome.exit_code == 2 and outcome.stdout == ""
    assert outcome.stderr.startswith("Usage: asyncjobs store [OPTIONS] COMMAND")
    assert [
        line.split()[0] for line in outcome.stderr.split("Commands:\n")[1].splitlines()
    ] == [
        "check",
        "compact",
        "export",
        "import",
        "init",
    ]


def test_help_asked_for_goes_to_stdout_with_exit_0(console):
    outcome = console("--help")
    assert outcome.exit_code == 0 and outcome.stderr == ""
    assert "Commands:" in outcome.stdout


# -- worker flags --------------------------------------------------------------------


def worker_params(*args: str) -> dict:
    command = cli_group.commands["worker"]
    return command.make_context("worker", ["-A", APP, *args]).params


def test_worker_short_flags_mean_their_long_forms():
    short = worker_params("-b", "-B", "-l", "debug", "-Q", "a,b", "-Q", "c,a")
    long = worker_params(
        "--burst",
        "--beat",
        "--log-level",
        "debug",
        "--queue",
        "a",
        "--queue",
        "b",
        "--queue",
        "c",
    )
    assert short == long
    assert short["queues"] == ["a", "b", "c"] and short["burst"] and short["beat"]


def test_a_bad_name_in_a_queue_list_is_refused_naming_the_option(cli):
    for given in ("a,,b", "a,", "reports,bad name"):
        outcome = cli("worker", "-A", APP, "-b", "-Q", given)
        assert outcome.exit_code == 2, given
        assert outcome.stderr.startswith("error: Invalid value for '--queue' / '-Q'")
        assert "is not a valid name" in outcome.stderr


def test_a_burst_worker_takes_jobs_of_a_comma_separated_queue_list(client, store_url):
    jobs = {q: client.submit("echo", org="acme", queue=q) for q in ("a", "b", "c")}
    proc = subprocess.run(
        asyncjobs(store_url, "worker", "-A", APP, "-b", "-l", "info", "-Q", "a,b"),
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "on queues a,b, concurrency 1" in proc.stderr  # -l info shows it
    status = {q: client.get_job(j.job_id, org="acme").status for q, j in jobs.items()}
    assert status == {"a": "completed", "b": "completed", "c": "queued"}


def test_a_worker_with_dash_capital_b_enqueues_periodic_tasks(client, store_url):
    proc = subprocess.Popen(
        asyncjobs(store_url, "worker", "-A", APP, "-B", "-l", "error")
        + ["--poll-seconds", "0.1"],
        env={**os.environ, **ENV},
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(j.task == "tick" for j in client.list_jobs(org="ops")),
            what="a periodic run",
        )
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# -- info -i --------------------------------------------------------------------------


def test_info_interval_is_watch_with_the_same_range(cli):
    for flag in ("-i", "--interval", "--watch"):
        outcome = cli("info", flag, "0.1")
        assert outcome.exit_code == 2
        assert "'--watch' / '--interval' / '-i'" in outcome.stderr
        assert "from 0.2 to 3600" in outcome.stderr


def test_info_dash_i_refreshes_until_stopped(client, store_url):
    proc = subprocess.Popen(
        asyncjobs(store_url, "info", "-i", "0.2"),
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        seen = 0
        while seen < 2:
            line = proc.stdout.readline()
            assert line, "info stopped by itself"
            seen += line.startswith("store generation")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert seen == 2
