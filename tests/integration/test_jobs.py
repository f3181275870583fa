"""Submitting and inspecting jobs, from Python and from the CLI (in process; real
processes are in tests/system/test_jobs_processes.py)."""

from __future__ import annotations

import json

import pytest

from asyncjobs import Conflict, InvalidInput, NotFound
from asyncjobs.store import open_store

from ..conftest import data_files, exported, on_postgres, state_of

pytestmark = pytest.mark.engines

# -- the Python API -------------------------------------------------------------


def test_a_submitted_job_is_queued_with_its_fields(client, clock):
    job = client.submit(
        "reports.build",
        org="acme",
        payload={"month": "2026-10"},
        queue="reports",
        priority=7,
        max_retries=2,
    )
    assert job.job_id.startswith("job_") and job.status == "queued"
    assert (job.org_id, job.task, job.queue, job.priority) == (
        "acme",
        "reports.build",
        "reports",
        7,
    )
    assert job.payload == {"month": "2026-10"} and job.max_retries == 2
    assert job.created_at == job.run_after == "2026-11-01T12:00:00.000000Z"
    assert client.get_job(job.job_id, org="acme") == job


def test_a_delay_or_a_time_sets_when_the_job_may_run(client):
    later = client.submit("t", org="acme", delay=90)
    at = client.submit("t", org="acme", at="2026-12-24T18:00:00Z")
    past = client.submit("t", org="acme", at="2020-01-01T00:00:00Z")
    assert later.run_after == "2026-11-01T12:01:30.000000Z"
    assert at.run_after == "2026-12-24T18:00:00.000000Z"
    assert past.run_after == past.created_at  # never before it was submitted


def test_an_idempotency_key_returns_the_first_job_within_an_org_only(client):
    first = client.submit("t", org="acme", idempotency_key="nightly-2026-11-01")
    again = client.submit(
        "t", org="acme", idempotency_key="nightly-2026-11-01", payload={"other": True}
    )
    elsewhere = client.submit("t", org="globex", idempotency_key="nightly-2026-11-01")
    assert (
        again.job_id == first.job_id and again.deduplicated and not first.deduplicated
    )
    assert again.payload == {}  # the first job, unchanged
    assert elsewhere.job_id != first.job_id and not elsewhere.deduplicated
    assert len(client.list_jobs(org="acme")) == 1


def test_submit_many_is_one_transaction_and_keeps_the_order(client, store_url):
    client.submit("t", org="acme")
    jobs = client.submit_many(
        [{"task": f"t{i}", "org": "acme", "payload": {"i": i}} for i in range(5)]
        + [
            {"task": "t", "org": "acme", "idempotency_key": "k"},
            {"task": "t", "org": "acme", "idempotency_key": "k"},
        ]
    )
    assert [j.task for j in jobs] == ["t0", "t1", "t2", "t3", "t4", "t", "t"]
    assert jobs[-1].job_id == jobs[-2].job_id and jobs[-1].deduplicated
    if not on_postgres(store_url):  # PostgreSQL counts no commits
        assert client.export()["generation"] == 2


def test_submit_many_checks_every_item_before_writing(client, store_url, store_path):
    client.submit("t", org="acme")
    before = state_of(store_url, data_files(store_path))
    with pytest.raises(InvalidInput, match=r"^item 3: priority"):
        client.submit_many(
            [
                {"task": "a", "org": "acme"},
                {"task": "b", "org": "acme"},
                {"task": "c", "org": "acme", "priority": 11},
            ]
        )
    assert state_of(store_url, data_files(store_path)) == before


def test_jobs_are_listed_newest_first_and_filtered(client, clock):
    made = []
    for n, (queue, task) in enumerate([("a", "x"), ("b", "y"), ("a", "z")]):
        made.append(client.submit(task, org="acme", queue=queue))
        clock.advance(1)
    client.submit("other", org="globex")
    client.cancel(made[1].job_id, org="acme")
    assert [j.task for j in client.list_jobs(org="acme")] == ["z", "y", "x"]
    assert [j.task for j in client.list_jobs(org="acme", queue="a")] == ["z", "x"]
    assert [j.task for j in client.list_jobs(org="acme", status="canceled")] == ["y"]
    assert [j.task for j in client.list_jobs(org="acme", limit=1)] == ["z"]


def test_cancel_makes_a_terminal_job_with_one_event_and_one_notification(client):
    job = client.submit("t", org="acme")
    canceled = client.cancel(job.job_id, org="acme")
    assert canceled.status == "canceled" and canceled.finished_at
    assert [e.event_type for e in client.events(job.job_id, org="acme")] == [
        "async.job.queued",
        "async.job.canceled",
    ]
    notes = exported(client, "notifications", job_id=job.job_id)
    assert len(notes) == 1 and notes[0]["event_type"] == "async.job.canceled"
    assert notes[0]["dedupe_key"] == f"{job.job_id}:async.job.canceled:run-1"
    with pytest.raises(Conflict, match="is canceled; only a queued or running job"):
        client.cancel(job.job_id, org="acme")


def test_retry_requeues_a_terminal_job_as_its_next_run(client):
    job = client.submit("t", org="acme")
    with pytest.raises(Conflict, match="only a failed, canceled or completed job"):
        client.retry(job.job_id, org="acme")
    client.cancel(job.job_id, org="acme")
    again = client.retry(job.job_id, org="acme")
    assert again.status == "queued" and again.run == 2 and again.finished_at is None
    events = client.events(job.job_id, org="acme")
    assert [(e.event_type, e.run) for e in events] == [
        ("async.job.queued", 1),
        ("async.job.canceled", 1),
        ("async.job.queued", 2),
    ]
    assert [e.seq for e in events] == [1, 2, 3]
    client.cancel(job.job_id, org="acme")  # the second run's own cancel notification
    assert client.check().ok


def test_another_orgs_job_is_missing_to_every_operation(client):
    job = client.submit("t", org="acme")
    for operation in (client.get_job, client.events, client.cancel, client.retry):
        with pytest.raises(NotFound) as foreign:
            operation(job.job_id, org="globex")
        with pytest.raises(NotFound) as missing:
            operation("job_00000000000000000000000000", org="globex")
        assert str(foreign.value) == f"job {job.job_id} not found"
        assert str(missing.value) == "job job_00000000000000000000000000 not found"
    assert client.list_jobs(org="globex") == []
    assert client.get_job(job.job_id, org="acme").status == "queued"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"org": "../x"}, "org: '../x' is not a valid name"),
        ({"org": "."}, "org: '.' is not a valid name"),
        ({"org": "a" * 65}, "org:"),
        ({"task": "has space"}, "task: 'has space'"),
        ({"queue": ""}, "queue:"),
        ({"priority": 10}, "priority: 10 is not a whole number from 0 to 9"),
        ({"priority": True}, "priority:"),
        ({"payload": [1, 2]}, "payload: must be a JSON object, not list"),
        ({"payload": {"x": float("inf")}}, "payload: not JSON"),
        ({"payload": {"x": object()}}, "payload: not JSON"),
        ({"payload": {"x": [1 << 64]}}, "payload: integer 18446744073709551616"),
        ({"payload": {"x": -(1 << 63) - 1}}, "does not fit in 64 bits"),
        (
            {"payload": {"x": "\ud800"}},
            "payload: contains text that is not valid Unicode",
        ),
        ({"delay": -1}, "delay:"),
        ({"delay": float("nan")}, "delay:"),
        ({"at": "tomorrow"}, "at: not an ISO 8601 time"),
        ({"delay": 5, "at": "2026-12-01T00:00:00Z"}, "either delay or at"),
        ({"max_retries": -1}, "max_retries:"),
        ({"idempotency_key": "x" * 256}, "idempotency_key:"),
        ({"idempotency_key": "a\nb"}, "idempotency_key:"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    client, store_url, store_path, kwargs, words
):
    client.submit("t", org="acme")
    before = state_of(store_url, data_files(store_path))
    args = {"task": "t", "org": "acme", **kwargs}
    with pytest.raises(InvalidInput) as error:
        client.submit(args.pop("task"), **args)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert state_of(store_url, data_files(store_path)) == before


def test_the_payload_limit_is_a_setting(monkeypatch, request):
    monkeypatch.setenv("ASYNCJOBS_MAX_PAYLOAD_BYTES", "64")
    client = request.getfixturevalue("client")  # a Client reads the setting when made
    client.submit("t", org="acme", payload={"x": "a" * 40})
    with pytest.raises(InvalidInput, match="over the limit of 64"):
        client.submit("t", org="acme", payload={"x": "a" * 80})


# -- the CLI ---------------------------------------------------------------------


def test_submit_prints_the_job_id_alone_and_status_shows_it(cli):
    submitted = cli(
        "submit", "reports.build", "--org", "acme", "--payload", '{"month": "2026-10"}'
    )
    assert submitted.exit_code == 0 and submitted.stderr == ""
    job_id = submitted.stdout.strip()
    assert submitted.stdout == f"{job_id}\n" and job_id.startswith("job_")
    shown = cli("status", job_id, "--org", "acme", "--json")
    doc = json.loads(shown.stdout)
    for key in (
        "job_id",
        "org_id",
        "task",
        "queue",
        "priority",
        "status",
        "attempts",
        "result_id",
        "error",
        "created_at",
        "updated_at",
    ):
        assert key in doc
    assert (doc["job_id"], doc["status"], doc["result_id"], doc["error"]) == (
        job_id,
        "queued",
        None,
        None,
    )
    text = cli("status", job_id, "--org", "acme")
    assert "queued" in text.stdout and job_id in text.stdout


def test_submit_json_says_whether_it_was_deduplicated(cli):
    first = json.loads(
        cli("submit", "t", "--org", "acme", "--idempotency-key", "k", "--json").stdout
    )
    again = json.loads(
        cli("submit", "t", "--org", "acme", "--idempotency-key", "k", "--json").stdout
    )
    assert first["deduplicated"] is False and again["deduplicated"] is True
    assert first["job_id"] == again["job_id"] and again["status"] == "queued"


def test_the_org_comes_from_tenant_or_the_environment(cli):
    job_id = cli("submit", "t", "--tenant", "acme").stdout.strip()
    assert cli("status", job_id, env={"ASYNCJOBS_ORG": "acme"}).exit_code == 0
    assert cli("status", job_id, env={"ASYNCJOBS_ORG": "globex"}).exit_code == 3
    missing = cli("status", job_id)
    assert missing.exit_code == 2 and "ASYNCJOBS_ORG" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_payload_from_a_file_or_stdin(cli, tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"rows": [1, 2, 3]}')
    job_id = cli(
        "submit", "t", "--org", "acme", "--payload-file", str(path)
    ).stdout.strip()
    stdin_id = cli(
        "submit", "t", "--org", "acme", "--payload-file", "-", input='{"a": 1}'
    ).stdout.strip()
    assert json.loads(cli("status", job_id, "--org", "acme", "--json").stdout)[
        "payload"
    ] == {"rows": [1, 2, 3]}
    assert json.loads(cli("status", stdin_id, "--org", "acme", "--json").stdout)[
        "payload"
    ] == {"a": 1}
    both = cli(
        "submit", "t", "--org", "acme", "--payload", "{}", "--payload-file", str(path)
    )
    assert both.exit_code == 2 and "either --payload or --payload-file" in both.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--payload", '{"a": NaN}'], "payload: NaN is not allowed"),
        (["--payload", '{"a": 1, "a": 2}'], "payload: duplicate key 'a'"),
        (["--payload", "[" * 100_000 + "]" * 100_000], "payload: nested too deeply"),
        (["--payload", '{"n": ' + "9" * 5000 + "}"], "payload: not valid JSON"),
        (["--payload", "{not json"], "payload: not valid JSON"),
        (["--payload", '"text"'], "payload: must be a JSON object"),
        (["--priority", "12"], "'--priority': 12 is not a whole number from 0 to 9"),
        (["--delay", "inf"], "'--delay': inf is not a finite number of seconds"),
        (["--delay", "5", "--at", "2026-12-01T00:00:00Z"], "either --delay or --at"),
        (["--queue", "a/b"], "queue: 'a/b'"),
        (["--org", "acme", "--org", "a b"], "org: 'a b'"),
    ],
)
def test_bad_submit_input_exits_2_with_one_line_and_writes_nothing(
    cli, store_url, store_path, args, words
):
    cli("submit", "t", "--org", "acme")
    before = state_of(store_url, data_files(store_path))
    if "--org" not in args:
        args = ["--org", "acme", *args]
    outcome = cli("submit", "t", *args)
    assert outcome.exit_code == 2 and outcome.stdout == ""
    assert outcome.stderr.startswith("error: ") and outcome.stderr.count("\n") == 1
    assert words in outcome.stderr
    assert state_of(store_url, data_files(store_path)) == before


def test_integers_are_kept_exactly_up_to_64_bits(cli, client):
    edge = {"max": (1 << 64) - 1, "min": -(1 << 63), "digits": "1" * 30}
    job_id = cli("submit", "t", "--org", "acme", "--payload", json.dumps(edge)).stdout
    client.compact()  # the snapshot writer and reader, not only the journal's
    assert client.get_job(job_id.strip(), org="acme").payload == edge
    over = cli(
        "submit", "t", "--org", "acme", "--payload", '{"n": 18446744073709551616}'
    )
    assert over.exit_code == 2 and "does not fit in 64 bits" in over.stderr


def test_a_payload_reads_back_as_written_floats_and_key_order_too(client):
    payload = {"z": 1e300, "a": 0.1, "m": 1.0, "b": [2.5e-300, -0.0]}
    job = client.submit("t", org="acme", payload=payload)
    again = client.get_job(job.job_id, org="acme").payload
    assert json.dumps(again) == json.dumps(payload)  # the same types and order


def test_a_payload_over_the_limit_is_refused(cli):
    big = json.dumps({"x": "a" * (1 << 20)})
    outcome = cli("submit", "t", "--org", "acme", "--payload", big)
    assert outcome.exit_code == 2 and "over the limit of 1048576" in outcome.stderr


def test_submit_many_reads_json_lines_and_prints_ids_in_order(cli):
    lines = (
        "\n".join(
            [
                json.dumps({"task": "a", "payload": {"n": 1}}),
                "",
                json.dumps({"task": "b", "queue": "q", "priority": 9}),
                json.dumps({"task": "c", "idempotency_key": "k"}),
                json.dumps({"task": "c", "idempotency_key": "k"}),
            ]
        )
        + "\n"
    )
    outcome = cli("submit-many", "-", "--org", "acme", "--json", input=lines)
    doc = json.loads(outcome.stdout)
    assert (doc["submitted"], doc["deduplicated"]) == (3, 1)
    tasks = [cli("status", j["job_id"], "--org", "acme", "--json") for j in doc["jobs"]]
    assert [json.loads(t.stdout)["task"] for t in tasks] == ["a", "b", "c", "c"]
    plain = cli(
        "submit-many", "-", "--org", "acme", input=json.dumps({"task": "d"}) + "\n"
    )
    assert plain.stdout.strip().startswith("job_") and plain.stdout.count("\n") == 1


def test_submit_many_takes_a_large_file_in_one_go(cli, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"task": "t", "payload": {"i": i}}) + "\n" for i in range(1200)
        )
    )
    outcome = cli("submit-many", str(path), "--org", "acme")
    assert outcome.exit_code == 0 and len(outcome.stdout.split()) == 1200
    listed = json.loads(
        cli("jobs", "--org", "acme", "--limit", "2000", "--json").stdout
    )["jobs"]
    assert len(listed) == 1200


@pytest.mark.parametrize(
    "line, words",
    [
        ("{oops", "line 3: job: not valid JSON"),
        ('{"task": "t", "priority": 99}', "line 3: priority: 99"),
        ('{"task": "t", "org": "globex"}', "line 3: org: 'globex' differs from acme"),
        ('{"payload": {}}', "line 3: task: missing"),
        ('{"task": "t", "colour": "red"}', "line 3: unknown field(s): colour"),
        ("[1]", "line 3: a job must be a JSON object"),
    ],
)
def test_a_bad_line_stops_submit_many_before_anything_is_written(
    cli, store_url, store_path, line, words
):
    cli("submit", "t", "--org", "acme")
    before = state_of(store_url, data_files(store_path))
    text = f'{{"task": "a"}}\n{{"task": "b"}}\n{line}\n{{"task": "d"}}\n'
    outcome = cli("submit-many", "-", "--org", "acme", input=text)
    assert outcome.exit_code == 2 and words in outcome.stderr, outcome.stderr
    assert state_of(store_url, data_files(store_path)) == before


def test_jobs_lists_newest_first_with_filters(cli):
    ids = [
        cli("submit", task, "--org", "acme", "--queue", queue).stdout.strip()
        for task, queue in [("x", "a"), ("y", "b"), ("z", "a")]
    ]
    cli("cancel", ids[0], "--org", "acme")
    listed = json.loads(cli("jobs", "--org", "acme", "--json").stdout)["jobs"]
    assert [j["job_id"] for j in listed] == ids[::-1]
    only_a = json.loads(cli("jobs", "--org", "acme", "--queue", "a", "--json").stdout)[
        "jobs"
    ]
    assert [j["task"] for j in only_a] == ["z", "x"]
    canceled = json.loads(
        cli("jobs", "--org", "acme", "--status", "canceled", "--json").stdout
    )
    assert [j["task"] for j in canceled["jobs"]] == ["x"]
    table = cli("jobs", "--org", "acme", "--limit", "2").stdout.splitlines()
    assert table[0].split()[:3] == ["JOB_ID", "STATUS", "TASK"] and len(table) == 3
    bad = cli("jobs", "--org", "acme", "--status", "done")
    assert bad.exit_code == 2 and "status: 'done' is not one of" in bad.stderr


def test_events_cancel_and_retry_from_the_cli(cli):
    job_id = cli("submit", "t", "--org", "acme").stdout.strip()
    assert cli("cancel", job_id, "--org", "acme").stdout == f"{job_id} canceled\n"
    again = cli("cancel", job_id, "--org", "acme")
    assert again.exit_code == 4
    assert "only a queued or running job can be canceled" in again.stderr
    assert cli("retry", job_id, "--org", "acme").stdout == f"{job_id} queued (run 2)\n"
    assert cli("retry", job_id, "--org", "acme").exit_code == 4
    events = json.loads(cli("events", job_id, "--org", "acme", "--json").stdout)[
        "events"
    ]
    assert [e["event_type"] for e in events] == [
        "async.job.queued",
        "async.job.canceled",
        "async.job.queued",
    ]
    assert "async.job.canceled" in cli("events", job_id, "--org", "acme").stdout


def test_two_orgs_cannot_see_each_others_jobs_by_any_command(cli):
    job_id = cli(
        "submit", "t", "--org", "acme", "--payload", '{"secret": "canary-7f3a"}'
    ).stdout.strip()
    missing_id = "job_00000000000000000000000000"
    for command in ("status", "events", "cancel", "retry"):
        foreign = cli(command, job_id, "--org", "globex")
        missing = cli(command, missing_id, "--org", "globex")
        assert foreign.exit_code == missing.exit_code == 3
        assert foreign.stderr == f"error: job {job_id} not found\n"
        assert missing.stderr == foreign.stderr.replace(job_id, missing_id)
        assert foreign.stdout == missing.stdout == ""
    listed = cli("jobs", "--org", "globex", "--json")
    assert json.loads(listed.stdout) == {"jobs": []} and "canary" not in listed.stdout
    assert cli("status", job_id, "--org", "acme", "--json").exit_code == 0


def test_the_store_stays_sound_through_job_commands(cli):
    job_id = cli("submit", "t", "--org", "acme").stdout.strip()
    cli("cancel", job_id, "--org", "acme")
    cli("retry", job_id, "--org", "acme")
    check = cli("store", "check", "--json")
    doc = json.loads(check.stdout)
    assert check.exit_code == 0 and doc["ok"] and doc["counts"]["jobs"] == 1
    assert doc["counts"]["events"] == 3 and doc["counts"]["notifications"] == 1


def test_store_check_reports_an_event_of_a_missing_job(cli, store_url):
    cli("submit", "t", "--org", "acme")
    with open_store(store_url) as store, store.transaction() as tx:
        tx.put(
            "events",
            "evt_x",
            {"event_id": "evt_x", "job_id": "job_gone", "org_id": "acme"},
        )
    outcome = cli("store", "check")
    assert outcome.exit_code == 5
    assert (
        "error: event evt_x belongs to job job_gone, which is not in the store"
        in outcome.stderr
    )
