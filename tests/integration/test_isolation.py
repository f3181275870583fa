"""The tenant isolation matrix, over the CLI and the HTTP API.

Org ``globex`` owns a finished job whose payload and result carry a canary
string. For every command and route that takes an id, ``acme`` asking for
globex's id must get exactly the answer it gets for the same id once the
record is gone (exit code, stdout, stderr; HTTP status, headers but Date and
X-Request-ID, body); the canary never shows in anything acme is shown; and
over 200 requests each, a foreign id is not measurably slower or faster to
refuse than a missing one.
"""

from __future__ import annotations

import statistics
import time

import pytest

from asyncjobs.http.app import App
from asyncjobs.tasks import TaskRegistry

from .test_http import call, without_volatile

pytestmark = pytest.mark.engines

CANARY = "canary-7f3c9e2a"
tasks = TaskRegistry()


@tasks.task(name="report")
def report(**payload: object) -> dict:
    return {"seen": payload}  # the result carries the payload, canary and all


@pytest.fixture
def secret(client):
    """globex's finished job and its result id; acme has a job of its own."""
    client.submit("report", org="acme", payload={"rows": 1}, sync=True, tasks=tasks)
    job = client.submit(
        "report", org="globex", payload={"note": CANARY}, sync=True, tasks=tasks
    )
    assert job.status == "completed"
    return job.job_id, job.result_id


def answers_without(client, ids: tuple[str, str], ask):
    """``ask()`` with globex's job and result, then with both removed."""
    job_id, result_id = ids
    foreign = ask()
    # No public call takes records away and puts them back: done by hand.
    with client.store.transaction() as tx:
        saved = {
            kind: {key: tx.get(kind, key) for key in keys}
            for kind, keys in (
                ("jobs", [job_id]),
                ("results", [result_id]),
                (
                    "notifications",
                    [
                        n["notification_id"]
                        for n in tx.find("notifications_by_job", job_id)
                    ],
                ),
            )
        }
        for kind, records in saved.items():
            for key in records:
                tx.delete(kind, key)
    missing = ask()
    with client.store.transaction() as tx:
        for kind, records in saved.items():
            for key, record in records.items():
                tx.put(kind, key, record)
    return foreign, missing


@pytest.mark.parametrize(
    "command",
    [
        ["status", "{job}"],
        ["status", "{job}", "--json"],
        ["events", "{job}"],
        ["events", "{job}", "--json"],
        ["notifications", "{job}"],
        ["notifications", "{job}", "--json"],
        ["events", "{job}", "--limit", "1", "--cursor", "not-a-cursor"],
        ["notifications", "{job}", "--cursor", "not-a-cursor", "--json"],
        ["cancel", "{job}"],
        ["retry", "{job}"],
        ["result", "{result}"],
        ["result", "{result}", "--view", "pinned", "--json"],
        ["inbox", "--mark-read", "--json"],
    ],
)
def test_a_foreign_id_reads_exactly_as_a_missing_one_in_the_cli(
    client, cli, secret, command
):
    job_id, result_id = secret
    args = [a.format(job=job_id, result=result_id) for a in command]
    foreign, missing = answers_without(
        client, secret, lambda: cli(*args, "--org", "acme")
    )
    assert foreign == missing
    assert CANARY not in foreign.stdout + foreign.stderr


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/analyze/jobs/{job}"),
        ("GET", "/analyze/jobs/{job}/notifications"),
        ("GET", "/analyze/jobs/{job}/notifications?limit=1&cursor=not-a-cursor"),
        ("GET", "/analyze/results/{result}"),
        ("GET", "/analyze/results/{result}?view=pinned"),
        ("POST", "/analyze/jobs/{job}/retry"),
        ("POST", "/analyze/jobs/{job}/cancel"),
    ],
)
def test_a_foreign_id_reads_exactly_as_a_missing_one_over_http(
    client, secret, method, path
):
    app = App(client)
    job_id, result_id = secret
    url = path.format(job=job_id, result=result_id)
    foreign, missing = answers_without(
        client, secret, lambda: call(app, method, url, org="acme")
    )
    assert without_volatile(foreign) == without_volatile(missing)
    assert foreign.status == 404 and CANARY.encode() not in foreign.body


def test_nothing_acme_is_shown_carries_globexs_canary(client, cli, secret):
    app = App(client)
    shown = [
        cli("jobs", "--org", "acme", "--json").stdout,
        cli("inbox", "--org", "acme", "--json").stdout,
        cli("telemetry").stdout,
        cli("health").stdout,
    ]
    for path in ("/metrics", "/telemetry", "/health", "/analyze/jobs"):
        shown.append(call(app, "GET", path, org="acme").body.decode())
    assert not [text for text in shown if CANARY in text]
    # A filter that globex's job would match never reaches it from acme.
    everything = b'{"status": ["completed", "failed", "canceled"]}'
    for dry_run in (True, False):
        body = everything[:-1] + b', "dry_run": %s}' % str(dry_run).lower().encode()
        answer = call(app, "POST", "/analyze/jobs/retry", org="acme", body=body)
        assert answer.status == 200 and secret[0] not in answer.body.decode()
    retried = cli("retry", "--all", "--org", "acme", "--status", "completed")
    assert retried.exit_code == 0 and secret[0] not in retried.stdout
    listed = call(app, "GET", "/analyze/jobs", org="acme").json["jobs"]
    assert secret[0] not in [job["job_id"] for job in listed]
    unchanged = cli("status", secret[0], "--org", "globex", "--json")
    assert '"status": "completed"' in unchanged.stdout
    # globex does see its own canary: the test would notice a leak.
    assert CANARY in cli("status", secret[0], "--org", "globex", "--json").stdout


def test_a_foreign_id_is_refused_as_fast_as_a_missing_one(client, secret):
    app = App(client)
    job_id = secret[0]
    unknown = "job_" + "0" * 26

    def median_ms(path: str) -> float:
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            assert call(app, "GET", path, org="acme").status == 404
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    foreign = median_ms(f"/analyze/jobs/{job_id}")
    missing = median_ms(f"/analyze/jobs/{unknown}")
    assert abs(foreign - missing) < 2.0, (foreign, missing)
