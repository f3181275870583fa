"""Real `asyncjobs` processes refuse numbers outside their range at once: exit 2 with
one line naming it, and not one byte written (the in-process CLI, Python and HTTP
refusals are in tests/integration/test_ranges.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncjobs import Client

from ..conftest import on_postgres, sha256_of, state_of, store_files
from ..integration import test_ranges
from ..integration.test_ranges import FAR_AHEAD, WORKER, refused

APPS = Path(__file__).parents[1] / "apps"
stored = test_ranges.stored  # the fixture: a store with a finished job in it

pytestmark = pytest.mark.engines


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["submit", "report", "--org", "acme", "--at", FAR_AHEAD], {}, "--at:"),
        (
            [
                "cleanup",
                "--results-ttl-seconds",
                str(10**30),
                "--events-ttl-seconds",
                "1",
            ],
            {},
            "'--results-ttl-seconds'",
        ),
        (["--lock-timeout", "inf", "jobs", "--org", "acme"], {}, "'--lock-timeout'"),
        (["jobs", "--org", "acme"], {"ASYNCJOBS_LOCK_TIMEOUT": "nan"}, "LOCK_TIMEOUT"),
        ([*WORKER, "--poll-seconds", "0"], {}, "'--poll-seconds'"),
        ([*WORKER, "--lease-seconds", "1e300"], {}, "'--lease-seconds'"),
    ],
)
def test_real_processes_refuse_out_of_range_numbers_at_once(
    console, stored, store_url, store_path, args, env, words
):
    outcome = console(*args, env={"PYTHONPATH": str(APPS), **env}, timeout=30)
    assert refused(outcome, words), outcome
    assert state_of(store_url, store_files(store_path)) == stored


@pytest.mark.parametrize(
    "args",
    [
        ["--lease-seconds", "inf"],
        ["--heartbeat-seconds", "nan"],
        ["--grace", "nan"],
        ["--poll-seconds", "0"],
        ["--lease-seconds", "3", "--heartbeat-seconds", "1.5"],
    ],
)
def test_a_worker_with_bad_options_stops_before_it_touches_the_store(
    console, store_url, store_path, args
):
    outcome = console(*WORKER, *args, env={"PYTHONPATH": str(APPS)}, timeout=30)
    assert outcome.exit_code == 2 and outcome.stderr.count("\n") == 1, outcome
    assert set(sha256_of(*store_files(store_path)).values()) == {None}
    if on_postgres(store_url):  # made empty by the fixture: still empty
        with Client(store_url) as made:
            state = made.export()
        assert not any(state[kind] for kind in ("workers", "tasks", "jobs"))
