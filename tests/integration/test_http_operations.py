"""Operating jobs over HTTP: list them, retry and cancel one, retry and cancel in bulk.

The WSGI app in process on every engine; a real ``serve`` is in
tests/system/test_http_served.py.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from asyncjobs.http.app import App
from asyncjobs.tasks import TaskRegistry

from ..conftest import exported
from .test_bulk import failed, statuses
from .test_claiming import make_worker
from .test_http import call

pytestmark = pytest.mark.engines


@pytest.fixture
def app(client):
    return App(client)


def post(app, path: str, doc: object = None, *, org: str = "acme"):
    body = None if doc is None else json.dumps(doc).encode()
    return call(app, "POST", path, org=org, body=body)


def test_the_orgs_jobs_are_listed_newest_first_a_page_at_a_time(app, client, clock):
    ids = []
    for _ in range(3):
        ids.append(client.submit("mail.send", org="acme", queue="mail").job_id)
        clock.advance(1)
    client.submit("mail.send", org="globex", queue="mail")
    first = call(app, "GET", "/analyze/jobs?limit=2", org="acme")
    assert first.status == 200
    assert [j["job_id"] for j in first.json["jobs"]] == ids[::-1][:2]
    rest = call(
        app,
        "GET",
        f"/analyze/jobs?limit=2&cursor={first.json['next_cursor']}",
        org="acme",
    )
    assert [j["job_id"] for j in rest.json["jobs"]] == ids[:1]
    assert "next_cursor" not in rest.json
    client.cancel(ids[0], org="acme")
    canceled = call(app, "GET", "/analyze/jobs?status=canceled,failed", org="acme")
    assert [j["job_id"] for j in canceled.json["jobs"]] == ids[:1]
    queued = call(app, "GET", "/analyze/jobs?status=queued&queue=mail", org="acme")
    assert [j["job_id"] for j in queued.json["jobs"]] == ids[:0:-1]


@pytest.mark.parametrize(
    "query",
    [
        "status=paused",
        "status=",
        "queue=",
        "limit=0",
        "limit=x",
        "cursor=zz",
        "sort=id",
    ],
)
def test_a_bad_listing_is_refused_in_one_line(app, client, query):
    client.submit("mail.send", org="acme")
    answer = call(app, "GET", f"/analyze/jobs?{query}", org="acme")
    assert answer.status == 400 and answer.json["error"]["code"] == "invalid_input"


def test_one_job_is_retried_or_canceled_with_the_clis_answers(app, client):
    job_id = failed(client, "acme", "mail.send", 1)[0]
    retried = post(app, f"/analyze/jobs/{job_id}/retry")
    assert retried.status == 200
    assert (retried.json["status"], retried.json["run"]) == ("queued", 2)
    canceled = post(app, f"/analyze/jobs/{job_id}/cancel")
    assert (canceled.status, canceled.json["status"]) == (200, "canceled")
    again = post(app, f"/analyze/jobs/{job_id}/cancel")
    assert again.status == 409 and again.json["error"]["code"] == "conflict"
    assert "only a queued or running job can be canceled" in again.body.decode()
    unknown = post(app, "/analyze/jobs/job_00000000000000000000000000/retry")
    assert unknown.status == 404


def test_bulk_retry_answers_count_ids_and_more(app, client):
    ids = failed(client, "acme", "mail.send", 3)
    theirs = failed(client, "globex", "mail.send", 2)
    dry = post(app, "/analyze/jobs/retry", {"dry_run": True, "limit": 2})
    assert dry.status == 200
    assert (dry.json["count"], dry.json["more"], dry.json["dry_run"]) == (2, True, True)
    assert set(statuses(client, "acme").values()) == {("failed", 1)}
    first = post(app, "/analyze/jobs/retry", {"status": "failed", "limit": 2})
    rest = post(app, "/analyze/jobs/retry", {"queue": "mail", "task": "mail.send"})
    assert (first.json["count"], first.json["more"]) == (2, True)
    assert (rest.json["count"], rest.json["more"]) == (1, False)
    assert sorted(first.json["ids"] + rest.json["ids"]) == ids
    assert set(statuses(client, "acme").values()) == {("queued", 2)}
    assert set(statuses(client, "globex")) == set(theirs)
    assert set(statuses(client, "globex").values()) == {("failed", 1)}
    # No body at all: the defaults (failed jobs, up to 1,000).
    assert post(app, "/analyze/jobs/retry").json["count"] == 0


def test_bulk_cancel_takes_its_filters_from_the_body(app, client):
    mail = [client.submit("mail.send", org="acme", queue="mail") for _ in range(2)]
    other = client.submit("reports.build", org="acme", queue="reports")
    done = post(app, "/analyze/jobs/cancel", {"queue": "mail", "status": ["queued"]})
    assert done.status == 200
    assert sorted(done.json["ids"]) == sorted(j.job_id for j in mail)
    assert statuses(client, "acme")[other.job_id] == ("queued", 1)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/analyze/jobs/retry", b"[]", "body: must be a JSON object"),
        ("/analyze/jobs/retry", b"{", "body:"),
        ("/analyze/jobs/retry", b'{"colour": 1}', "body: unknown field(s): colour"),
        ("/analyze/jobs/retry", b'{"status": "running"}', "status: retry takes"),
        ("/analyze/jobs/retry", b'{"status": 3}', "status: 3 is not a status"),
        ("/analyze/jobs/retry", b'{"limit": 1001}', "limit: 1001"),
        ("/analyze/jobs/retry", b'{"limit": true}', "limit:"),
        ("/analyze/jobs/retry", b'{"dry_run": "yes"}', "dry_run:"),
        ("/analyze/jobs/retry", b'{"failed_since": "soon"}', "failed_since:"),
        ("/analyze/jobs/cancel", b'{"failed_since": null}', "body: unknown field"),
        ("/analyze/jobs/cancel", b'{"created_before": 5}', "created_before:"),
    ],
)
def test_a_bad_bulk_call_is_refused_and_changes_nothing(
    app, client, path, body, message
):
    failed(client, "acme", "mail.send", 2)
    client.submit("mail.send", org="acme")
    before = exported(client, "jobs"), exported(client, "events")
    answer = call(app, "POST", path, org="acme", body=body)
    assert answer.status == 400, answer.body
    assert message in answer.json["error"]["message"]
    assert (exported(client, "jobs"), exported(client, "events")) == before


def test_five_thousand_failed_jobs_are_replayed_in_capped_calls_each_once(app, client):
    ids = []
    for _ in range(5):
        ids += failed(client, "acme", "mail.send", 1000)
    answers = []
    while not answers or answers[-1]["more"]:
        answer = post(app, "/analyze/jobs/retry", {"status": "failed"})
        assert answer.status == 200
        answers.append(answer.json)
    assert [a["count"] for a in answers] == [1000] * 5  # the fifth: no more left
    replayed = [job_id for a in answers for job_id in a["ids"]]
    assert len(replayed) == len(set(replayed)) == 5000
    assert sorted(replayed) == sorted(ids)
    assert set(statuses(client, "acme").values()) == {("queued", 2)}


# -- the inbox ------------------------------------------------------------------


def test_the_inbox_lists_the_orgs_notifications_and_marks_them_read(app, client):
    ids = failed(client, "acme", "mail.send", 2)
    failed(client, "globex", "mail.send", 1)
    inbox = call(app, "GET", "/analyze/inbox?unread=true&limit=1", org="acme")
    assert inbox.status == 200 and len(inbox.json["notifications"]) == 1
    first = inbox.json["notifications"][0]
    assert first["job_id"] in ids and first["read_at"] is None
    marked = post(app, "/analyze/inbox/mark-read", {"ids": [first["notification_id"]]})
    assert (marked.status, marked.json) == (200, {"marked": 1})
    unread = call(app, "GET", "/analyze/inbox?unread=true", org="acme").json
    assert [n["job_id"] for n in unread["notifications"]] == [
        i for i in ids if i != first["job_id"]
    ]
    assert post(app, "/analyze/inbox/mark-read", {"all": True}).json == {"marked": 1}
    theirs = call(app, "GET", "/analyze/inbox?unread=true", org="globex").json
    assert len(theirs["notifications"]) == 1  # globex's stay unread


def test_another_orgs_notification_is_refused_as_a_missing_one(app, client):
    failed(client, "globex", "mail.send", 1)
    theirs = call(app, "GET", "/analyze/inbox", org="globex").json["notifications"]
    foreign = post(
        app, "/analyze/inbox/mark-read", {"ids": [theirs[0]["notification_id"]]}
    )
    missing = post(app, "/analyze/inbox/mark-read", {"ids": ["ntf_" + "0" * 26]})
    assert foreign.status == missing.status == 404
    assert foreign.json["error"]["code"] == missing.json["error"]["code"]
    unread = call(app, "GET", "/analyze/inbox?unread=true", org="globex").json
    assert len(unread["notifications"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'give "ids" or "all": true'),
        ({"ids": ["ntf_x"], "all": True}, 'give "ids" or "all": true'),
        ({"ids": []}, "ids: give at least one"),
        ({"ids": "ntf_x"}, "ids: must be a list"),
        ({"all": "yes"}, "all:"),
        ({"every": True}, "body: unknown field(s): every"),
    ],
)
def test_a_bad_mark_read_is_refused_in_one_line(app, client, body, message):
    assert (
        message in post(app, "/analyze/inbox/mark-read", body).json["error"]["message"]
    )


# -- breakers -------------------------------------------------------------------

guarded = TaskRegistry()
guarded.breaker("smtp", fail_max=1, reset_timeout=600)


@guarded.task(name="mail.guarded", breaker="smtp", max_retries=0)
def mail_guarded() -> None: ...


def test_breakers_are_listed_and_an_open_one_is_reset(app, client):
    job = client.submit("mail.guarded", org="acme", tasks=guarded)
    worker = make_worker(client)
    _, claimed = client.exchange(worker, [], want=1, registry=guarded)
    outcome = {"job_id": job.job_id, "ok": False, "error": {"type": "SMTPError"}}
    client.exchange(worker, [(claimed[0][1], outcome)], want=0, registry=guarded)
    listed = call(app, "GET", "/analyze/breakers", org="acme")
    assert listed.status == 200
    assert [(b["name"], b["state"]) for b in listed.json["breakers"]] == [
        ("smtp", "open")
    ]
    reset = post(app, "/analyze/breakers/smtp/reset")
    assert (reset.status, reset.json["state"]) == (200, "closed")
    assert (
        call(app, "GET", "/analyze/breakers", org="acme").json["breakers"][0]["state"]
        == "closed"
    )
    assert post(app, "/analyze/breakers/nope/reset").status == 404


# -- queues ---------------------------------------------------------------------


def test_queues_count_the_orgs_jobs_by_queue_with_their_lag(app, client, clock):
    client.submit("reports.build", org="acme", queue="reports")
    clock.advance(1)
    client.submit("reports.build", org="globex", queue="reports")
    clock.advance(29)
    client.submit("reports.build", org="acme", queue="reports")
    client.submit("reports.build", org="acme", queue="reports", delay=600)
    client.submit("mail.guarded", org="acme", tasks=guarded)
    worker = dataclasses.replace(make_worker(client), queues=["reports"])
    client.exchange(worker, [], want=1, registry=guarded)  # the oldest runs
    clock.advance(10)
    answer = call(app, "GET", "/analyze/queues", org="acme")
    assert answer.status == 200
    assert answer.json["queues"] == [
        {
            "queue": "default",
            "depth": 1,
            "runnable": 1,
            "delayed": 0,
            "running": 0,
            "lag_s": 10.0,
            "held": 0,
        },
        {
            "queue": "reports",
            "depth": 2,
            "runnable": 1,
            "delayed": 1,
            "running": 1,
            "lag_s": 10.0,
            "held": 0,
        },
    ]
    everyone = {q["queue"]: q for q in client.queues(org=None)}
    assert everyone["reports"]["depth"] == 3  # globex's job too
    assert everyone["reports"]["lag_s"] == 39.0  # globex's, runnable since second 1


def test_a_queue_behind_an_open_breaker_shows_its_held_jobs(app, client):
    first, second = client.submit_many(
        [{"task": "mail.guarded", "org": "acme"}] * 2, tasks=guarded
    )
    worker = make_worker(client)
    worker = dataclasses.replace(worker, queues=[first.queue])
    _, claimed = client.exchange(worker, [], want=1, registry=guarded)
    outcome = {"job_id": claimed[0][0].job_id, "ok": False, "error": {"type": "E"}}
    client.exchange(worker, [(claimed[0][1], outcome)], want=0, registry=guarded)
    (queue,) = call(app, "GET", "/analyze/queues", org="acme").json["queues"]
    assert (queue["depth"], queue["runnable"], queue["held"]) == (1, 1, 1)


def test_the_cli_shows_queues_for_one_org_or_all(client, cli):
    client.submit("reports.build", org="acme", queue="reports")
    client.submit("reports.build", org="globex", queue="mail")
    mine = cli("queues", "--org", "acme", "--json")
    assert [q["queue"] for q in json.loads(mine.stdout)["queues"]] == ["reports"]
    every = cli("queues", "--all-orgs")
    assert every.exit_code == 0
    assert [line.split()[0] for line in every.stdout.splitlines()] == [
        "QUEUE",
        "mail",
        "reports",
    ]
    both = cli("queues", "--org", "acme", "--all-orgs")
    assert both.exit_code == 2 and "not both" in both.stderr
    neither = cli("queues")
    assert neither.exit_code == 2 and "give --org ORG, or --all-orgs" in neither.stderr
