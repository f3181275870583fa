"""Cursor-paged lists: jobs, events, notifications and the inbox, walked page by page.

Walks run on real stores in temp folders. The order is a key, so a walk shows
every record once, newest first (events oldest first), whatever is submitted,
changed or deleted between its pages, by this process or another; a cursor
only resumes the list, org and filters it was made for.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncjobs import Client, InvalidInput, TaskRegistry
from asyncjobs.clock import FixedClock, to_iso
from asyncjobs.http.app import App
from asyncjobs.records import JobStatus
from asyncjobs.store import JsonFileStore

from ..conftest import exported
from .test_http import call

pytestmark = pytest.mark.engines

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ORGS = ("acme", "globex", "initech")
START = FixedClock("2026-11-01T12:00:00Z").moment
STATUSES = [s.value for s in JobStatus]
QUEUES = ("default", "reports")
tasks = TaskRegistry()


@tasks.task(name="report")
def report() -> dict:
    return {"ok": True}


@contextmanager
def fresh_client(clock: FixedClock) -> Iterator[Client]:
    """A Client on a new store in its own temp folder (one per hypothesis example)."""
    folder = Path(tempfile.mkdtemp(prefix="asyncjobs-paging-"))
    try:
        store = JsonFileStore(folder / "store.v1.json", fsync=False)
        with Client(store, clock=clock) as client:
            client.init_store()
            yield client
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def set_status(client: Client, job_id: str, status: str) -> None:
    """Any status at once, without running the job there (no public call does)."""
    with client.store.transaction() as tx:
        tx.put("jobs", job_id, {**tx.get("jobs", job_id), "status": status})


def key(job) -> tuple[str, str]:
    return (job.created_at, job.job_id)


def newest_first(client: Client, org: str, status=None, queue=None) -> list[str]:
    """What a walk must show: every matching job, sorted, read without paging."""
    found = [
        r
        for r in exported(client, "jobs", org_id=org)
        if (status is None or r["status"] in status)
        and (queue is None or r["queue"] == queue)
    ]
    found.sort(key=lambda r: (r["created_at"], r["job_id"]), reverse=True)
    return [r["job_id"] for r in found]


def pages(client: Client, between=lambda: None, **filters) -> list:
    """Every page of ``page_jobs`` in turn, calling ``between()`` after each."""
    found, cursor = [], None
    while len(found) < 1000:  # a cursor that does not move on fails, not hangs
        page = client.page_jobs(cursor=cursor, **filters)
        found.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found
        between()
    raise AssertionError("the walk does not end")


def walk(client: Client, between=lambda: None, **filters) -> list:
    return [job for page in pages(client, between, **filters) for job in page]


JOBS = st.lists(
    st.tuples(
        st.sampled_from(ORGS),
        st.integers(0, 30),  # seconds after the start: many ties
        st.sampled_from(STATUSES),
        st.sampled_from(QUEUES),
    ),
    max_size=40,
)


def at_second(clock: FixedClock, second: float) -> None:
    clock.moment = START + timedelta(seconds=second)


def submit_all(client: Client, clock: FixedClock, jobs) -> None:
    for org, second, status, queue in jobs:
        at_second(clock, second)
        job = client.submit("report", org=org, queue=queue, tasks=tasks)
        if status != "queued":
            set_status(client, job.job_id, status)


def job_with_history(client, clock, cycles: int) -> str:
    """A job canceled and retried ``cycles`` times: events and notifications to page."""
    job_id = client.submit("report", org="acme", tasks=tasks).job_id
    for _ in range(cycles):
        clock.advance(1)
        client.cancel(job_id, org="acme")
        clock.advance(1)
        client.retry(job_id, org="acme")
    return job_id


@SETTINGS
@given(
    jobs=JOBS,
    limit=st.integers(1, 7),
    status=st.none() | st.lists(st.sampled_from(STATUSES), min_size=1, unique=True),
    queue=st.none() | st.sampled_from(QUEUES),
)
def test_a_walk_shows_every_matching_job_once_newest_first(jobs, limit, status, queue):
    clock = FixedClock(START)
    with fresh_client(clock) as client:
        submit_all(client, clock, jobs)
        for org in ORGS:
            found = pages(client, org=org, status=status, queue=queue, limit=limit)
            shown = [job for page in found for job in page]
            assert [j.job_id for j in shown] == newest_first(client, org, status, queue)
            assert all(j.org_id == org for j in shown)
            # Full pages, then one short one; an empty one only for an empty list.
            assert all(len(page) == limit for page in found[:-1])
            assert 0 < len(found[-1]) <= limit or found == [[]]


@SETTINGS
@given(
    jobs=JOBS,
    limit=st.integers(1, 5),
    later=st.lists(st.sampled_from(ORGS), max_size=3),
)
def test_jobs_submitted_between_pages_never_repeat_or_hide_older_ones(
    jobs, limit, later
):
    clock = FixedClock(START)
    with fresh_client(clock) as client:
        submit_all(client, clock, jobs)
        clock.advance(60)  # now is after every job so far
        before = newest_first(client, "acme")

        def submit_more() -> None:
            for org in later:
                clock.advance(0.001)
                client.submit("report", org=org, tasks=tasks)

        shown = [j.job_id for j in walk(client, submit_more, org="acme", limit=limit)]
        assert shown == before


@SETTINGS
@given(
    jobs=JOBS,
    limit=st.integers(1, 5),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["submit", "delete", "status"]),
            st.integers(0, 60),
            st.sampled_from(STATUSES),
        ),
        max_size=12,
    ),
)
def test_a_walk_stays_in_order_whatever_changes_between_its_pages(jobs, limit, changes):
    """Old or new submits, deletes and status changes between pages: still no job
    twice, still in order, and every job left alone throughout is shown."""
    clock = FixedClock(START)
    with fresh_client(clock) as client:
        submit_all(client, clock, jobs)
        untouched = set(newest_first(client, "acme", ["queued", "completed"]))
        pending = list(changes)

        def change() -> None:
            if not pending:
                return
            what, second, status = pending.pop()
            ids = newest_first(client, "acme")
            if what == "submit":
                at_second(clock, second)
                client.submit("report", org="acme", tasks=tasks)
            elif ids:
                victim = ids[second % len(ids)]
                untouched.discard(victim)
                with client.store.transaction() as tx:
                    if what == "delete":
                        tx.delete("jobs", victim)
                    else:
                        tx.put(
                            "jobs", victim, {**tx.get("jobs", victim), "status": status}
                        )

        shown = walk(
            client, change, org="acme", status=["queued", "completed"], limit=limit
        )
        keys = [key(j) for j in shown]
        assert keys == sorted(set(keys), reverse=True)  # in order, none twice
        assert untouched <= {j.job_id for j in shown}


@SETTINGS
@given(
    jobs=JOBS,
    limit=st.integers(1, 6),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["put", "delete", "status"]),
            st.integers(0, 60),
            st.sampled_from(STATUSES),
        ),
        max_size=8,
    ),
)
def test_pages_read_in_a_transaction_see_its_own_changes(jobs, limit, edits):
    clock = FixedClock(START)
    wanted = [s for s in STATUSES if s != "failed"]

    def expected(tx) -> list[tuple[str, str]]:
        return sorted(
            (
                (r["created_at"], r["job_id"])
                for r in tx.find("jobs_by_org", "acme")
                if r["status"] in wanted
            ),
            reverse=True,
        )

    def pages(tx) -> list[tuple[str, str]]:
        shown, cursor = [], None
        for _ in range(1000):
            page, cursor = tx.page_jobs(
                "acme", statuses=wanted, limit=limit, cursor=cursor
            )
            shown += [(r["created_at"], r["job_id"]) for r in page]
            if cursor is None:
                return shown
        raise AssertionError("the walk does not end")

    with fresh_client(clock) as client:
        submit_all(client, clock, jobs)
        template = client.submit("report", org="acme", tasks=tasks).to_dict()
        with client.store.read() as tx:
            pages(tx)  # the pages' index is in use before the changes
        with client.store.transaction() as tx:
            for n, (what, second, status) in enumerate(edits):
                ids = sorted(r["job_id"] for r in tx.find("jobs_by_org", "acme"))
                if what == "put":
                    job_id = f"job_{n:026d}"
                    created = to_iso(START + timedelta(seconds=second))
                    record = {**template, "job_id": job_id, "created_at": created}
                    tx.put("jobs", job_id, record)
                elif ids:
                    victim = ids[second % len(ids)]
                    if what == "delete":
                        tx.delete("jobs", victim)
                    else:
                        record = {**tx.get("jobs", victim), "status": status}
                        tx.put("jobs", victim, record)
            in_transaction = expected(tx)
            assert pages(tx) == in_transaction
        with client.store.read() as tx:  # committed, into the same index
            assert pages(tx) == expected(tx) == in_transaction


# -- the index under deletes, re-puts and other processes --------------------------


def test_records_deleted_and_put_back_show_once(client, clock):
    ids = []
    for _ in range(5):
        clock.advance(1)
        ids.append(client.submit("report", org="acme", tasks=tasks).job_id)
    assert [j.job_id for j in client.list_jobs(org="acme")] == ids[::-1]
    with client.store.transaction() as tx:
        saved = {job_id: tx.get("jobs", job_id) for job_id in ids[1:4]}
        for job_id in saved:
            tx.delete("jobs", job_id)
    assert [j.job_id for j in client.list_jobs(org="acme")] == [ids[4], ids[0]]
    with client.store.transaction() as tx:
        for job_id, record in saved.items():
            tx.put("jobs", job_id, record)
    assert [j.job_id for j in walk(client, org="acme", limit=2)] == ids[::-1]


def test_a_cleanup_between_pages_leaves_the_rest_in_order(client, clock):
    ids = []
    for _ in range(6):
        clock.advance(1)
        batch = client.submit_many([{"task": "report"}] * 50, org="acme", tasks=tasks)
        ids += [j.job_id for j in batch]
    everything = newest_first(client, "acme")
    first = client.page_jobs(org="acme", limit=10)
    assert [j.job_id for j in first] == everything[:10]
    # Most of the rest goes at once (the index drops removed entries in bulk).
    gone = set(everything[10:][::7]) ^ set(everything[10:])
    with client.store.transaction() as tx:
        tx.delete_many("jobs", gone)
    clock.advance(1)
    client.submit("report", org="acme", tasks=tasks)  # newer: not in this walk
    rest, cursor = [], first.next_cursor
    while cursor is not None:
        page = client.page_jobs(org="acme", limit=7, cursor=cursor)
        rest += [j.job_id for j in page]
        cursor = page.next_cursor
    assert rest == [job_id for job_id in everything[10:] if job_id not in gone]


def test_another_process_submitting_between_pages_changes_nothing_seen(
    client, clock, store_url
):
    for _ in range(12):
        clock.advance(1)
        client.submit("report", org="acme", tasks=tasks)
    before = newest_first(client, "acme")
    with Client(store_url, clock=clock) as other:

        def submit_elsewhere() -> None:
            clock.advance(1)
            other.submit("report", org="acme", tasks=tasks)
            oldest = other.get_job(before[-1], org="acme")
            if oldest.status == "queued":
                other.cancel(oldest.job_id, org="acme")

        shown = [j.job_id for j in walk(client, submit_elsewhere, org="acme", limit=5)]
    assert shown == before  # pages of 5, 5 and 2, with two submits between them
    assert len(client.list_jobs(org="acme", limit=100)) == 14


# -- events, notifications and the inbox ---------------------------------------------


def test_events_and_notifications_walk_in_their_orders(client, clock):
    job_id = job_with_history(client, clock, 4)
    client.submit("report", org="acme", tasks=tasks)  # events of another job
    events, cursor = [], None
    while True:
        page = client.page_events(job_id, org="acme", limit=3, cursor=cursor)
        events += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [e.seq for e in events] == list(range(1, 10))
    assert events == client.events(job_id, org="acme")
    notes = []
    page = client.page_notifications(job_id, org="acme", limit=3)
    notes += page.items
    page = client.page_notifications(job_id, org="acme", cursor=page.next_cursor)
    notes += page.items
    assert page.next_cursor is None and len(notes) == 4
    keys = [(n.created_at, n.notification_id) for n in notes]
    assert keys == sorted(keys, reverse=True)
    assert notes == client.inbox(org="acme", limit=10)
    assert client.page_inbox(org="globex").items == []


def test_an_unread_inbox_walk_shows_each_once_while_others_are_marked_read(
    client, clock
):
    job_id = job_with_history(client, clock, 6)
    unread = [n.notification_id for n in client.inbox(org="acme", unread=True)]
    shown, cursor = [], None
    while True:
        page = client.page_inbox(org="acme", unread=True, limit=2, cursor=cursor)
        shown += [n.notification_id for n in page]
        cursor = page.next_cursor
        if cursor is None:
            break
        # Someone reads the newest one meanwhile: the walk goes on where it was.
        client.mark_read(org="acme", notification_ids=[unread[0]])
    assert shown == unread and len(shown) == 6
    assert client.page_notifications(job_id, org="acme", limit=6).next_cursor is None


# -- cursors -------------------------------------------------------------------------


def forged(body: list) -> str:
    """A cursor of this body with a correct check, as paging.py writes one."""
    import hashlib

    data = json.dumps(body, separators=(",", ":")).encode()

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{b64(data)}.{b64(hashlib.sha256(data).digest()[:6])}"


@pytest.fixture
def two_pages(client, clock) -> str:
    """acme has three queued jobs; the cursor after the first of them."""
    for _ in range(3):
        clock.advance(1)
        client.submit("report", org="acme", tasks=tasks)
    client.submit("report", org="globex", tasks=tasks)
    return client.page_jobs(org="acme", limit=1).next_cursor


@pytest.mark.parametrize(
    "filters",
    [
        {"org": "globex"},
        {"org": "acme", "status": "queued"},
        {"org": "acme", "queue": "default"},
        {"org": "acme", "task": "report"},
        {"org": "acme", "status": ["queued", "running"]},
    ],
)
def test_a_cursor_used_with_other_filters_or_another_org_is_refused(
    client, two_pages, filters
):
    with pytest.raises(InvalidInput) as refused:
        client.page_jobs(limit=5, cursor=two_pages, **filters)
    assert str(refused.value) == "cursor: does not match these filters"


def test_a_cursor_of_one_list_does_not_page_another(client, two_pages):
    job_id = client.list_jobs(org="acme")[0].job_id
    for read in (
        lambda: client.page_inbox(org="acme", cursor=two_pages),
        lambda: client.page_events(job_id, org="acme", cursor=two_pages),
        lambda: client.page_notifications(job_id, org="acme", cursor=two_pages),
    ):
        with pytest.raises(InvalidInput, match="does not match these filters"):
            read()


def test_the_same_filters_in_another_order_take_the_same_cursor(client, two_pages):
    cursor = client.page_jobs(
        org="acme", status=["running", "queued"], limit=1
    ).next_cursor
    page = client.page_jobs(org="acme", status=("queued", "running"), cursor=cursor)
    assert len(page) == 2 and page.next_cursor is None


def damaged(cursor: str) -> list:
    body, _, check = cursor.partition(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    return [
        "",
        "x",
        body,  # no check
        f"{flipped}.{check}",  # the check no longer matches
        cursor[:-1],
        cursor + "A",
        f"{body}.{check}.{check}",
        "!" + cursor,
        cursor.replace(".", "%2E"),
        "A" * 5000,
        forged([1, "jobs"]),  # too short
        forged([2, "jobs", "0" * 16, "2026-11-01T12:00:00.000000Z", "job_x"]),
        forged([1, "tasks", "0" * 16, "2026-11-01T12:00:00.000000Z", "job_x"]),
        forged([1, "jobs", "0" * 16, 7, "job_x"]),
        forged([1, "jobs", "0" * 16, "2026", "job_x", "extra"]),
        forged([1, "jobs", "0" * 16, "2026", None]),
        forged([1, "jobs", "0" * 16, "2026", "j" * 300]),
        forged([1, "events", "0" * 16, True, "2026", "evt_x"]),
        forged([1, "events", "0" * 16, 2**64, "2026", "evt_x"]),
        forged({"v": 1}),
        forged([1, ["jobs"], "0" * 16, "2026", "job_x"]),  # not even hashable
        forged([1, {"jobs": 1}, "0" * 16, "2026", "job_x"]),
        forged([True, "jobs", "0" * 16, "2026", "job_x"]),
        forged([1.0, "jobs", "0" * 16, "2026", "job_x"]),
        forged([1, "jobs", ["0" * 16], "2026", "job_x"]),
        base64.urlsafe_b64encode(b"[1, 2").decode().rstrip("=") + ".AAAAAAAA",
    ]


def test_a_damaged_or_made_up_cursor_is_refused_as_invalid_input(client, two_pages):
    for cursor in damaged(two_pages):
        with pytest.raises(InvalidInput, match="^cursor: "):
            client.page_jobs(org="acme", cursor=cursor)
    for cursor in (7, b"abc", ["x"]):
        with pytest.raises(InvalidInput, match="^cursor: "):
            client.page_jobs(org="acme", cursor=cursor)


def test_a_made_up_cursor_with_a_good_check_pages_only_the_orgs_own_jobs(
    client, two_pages
):
    """A cursor is no secret: one forged for globex's list is still globex's only."""
    body = json.loads(base64.urlsafe_b64decode(two_pages.split(".")[0] + "=="))
    assert body[:2] == [1, "jobs"]
    body[3] = "9999-12-31T23:59:59.999999Z"  # resume after the far future: at the top
    page = client.page_jobs(org="acme", cursor=forged(body))
    assert len(page) == 3 and {j.org_id for j in page} == {"acme"}


# -- the CLI -------------------------------------------------------------------------


def cli_walk(cli, *args: str) -> tuple[list[dict], int]:
    """Every page of a listing command via --cursor; returns the items and the pages."""
    items, cursor, pages_read = [], None, 0
    key = {"jobs": "jobs", "events": "events"}.get(args[0], "notifications")
    while pages_read < 1000:
        more = ["--cursor", cursor] if cursor else []
        answer = cli(*args, "--json", *more)
        assert answer.exit_code == 0, answer.stderr
        doc = json.loads(answer.stdout)
        items += doc[key]
        pages_read += 1
        cursor = doc.get("next_cursor")
        if cursor is None:
            assert "next_cursor" not in doc
            return items, pages_read
    raise AssertionError("the walk does not end")


def test_jobs_pages_from_the_cli_with_next_cursor(cli, client, clock):
    ids = []
    for _ in range(7):
        clock.advance(1)
        ids.append(client.submit("report", org="acme", tasks=tasks).job_id)
    items, read = cli_walk(cli, "jobs", "--org", "acme", "--limit", "3")
    assert [j["job_id"] for j in items] == ids[::-1] and read == 3
    text = cli("jobs", "--org", "acme", "--limit", "3")
    cursor = json.loads(cli("jobs", "--org", "acme", "--limit", "3", "--json").stdout)[
        "next_cursor"
    ]
    assert text.stderr == f"next page: --cursor {cursor}\n"
    assert text.stdout.count("job_") == 3
    last = cli("jobs", "--org", "acme", "--limit", "7")
    assert last.stderr == "" and last.stdout.count("job_") == 7


def test_a_cursor_refused_by_the_cli_exits_2_and_shows_nothing_of_the_other_org(
    cli, client, clock
):
    mine = [client.submit("report", org="acme", tasks=tasks).job_id for _ in range(3)]
    cursor = json.loads(cli("jobs", "--org", "acme", "--limit", "1", "--json").stdout)[
        "next_cursor"
    ]
    for args in (
        ["--org", "globex", "--cursor", cursor],
        ["--org", "acme", "--status", "queued", "--cursor", cursor],
        ["--org", "acme", "--cursor", cursor[:-2]],
        ["--org", "acme", "--cursor", "garbage"],
    ):
        answer = cli("jobs", *args, "--json")
        assert answer.exit_code == 2 and answer.stdout == ""
        assert answer.stderr.startswith("error: cursor: ")
        assert not [job_id for job_id in mine if job_id in answer.stderr]
    other = cli("jobs", "--org", "globex", "--cursor", cursor)
    assert other.stderr == "error: cursor: does not match these filters\n"


def test_events_notifications_and_the_inbox_page_from_the_cli(cli, client, clock):
    job_id = job_with_history(client, clock, 5)
    events, read = cli_walk(cli, "events", job_id, "--org", "acme", "--limit", "4")
    assert [e["event_id"] for e in events] == [
        e.event_id for e in client.events(job_id, org="acme")
    ]
    assert len(events) == 11 and read == 3
    assert [e["seq"] for e in events] == list(range(1, 12))
    notes, read = cli_walk(
        cli, "notifications", job_id, "--org", "acme", "--limit", "2"
    )
    assert len(notes) == 5 and read == 3
    assert [n["created_at"] for n in notes] == sorted(
        (n["created_at"] for n in notes), reverse=True
    )
    inbox, read = cli_walk(cli, "inbox", "--org", "acme", "--limit", "2")
    assert inbox == notes and read == 3


@pytest.mark.slow
def test_the_cli_walks_25000_jobs_in_pages_of_10000(cli, client):
    submitted = []
    for _ in range(50):
        batch = client.submit_many([{"task": "report"}] * 500, org="acme", tasks=tasks)
        submitted += [j.job_id for j in batch]
    items, read = cli_walk(cli, "jobs", "--org", "acme", "--limit", "10000")
    shown = [j["job_id"] for j in items]
    assert read == 3 and len(shown) == 25_000
    assert set(shown) == set(submitted)
    keys = [(j["created_at"], j["job_id"]) for j in items]
    assert keys == sorted(keys, reverse=True)


# -- no cursor gets a server error ----------------------------------------------------


def mutations(cursor: str):
    """A real cursor with one character changed, removed or added."""
    chars = st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=%+/ \\\"'\0é"
    )
    at = st.integers(0, len(cursor) - 1)
    return st.one_of(
        st.tuples(at, chars).map(lambda p: cursor[: p[0]] + p[1] + cursor[p[0] + 1 :]),
        at.map(lambda i: cursor[:i] + cursor[i + 1 :]),
        st.tuples(at, chars).map(lambda p: cursor[: p[0]] + p[1] + cursor[p[0] :]),
    )


@pytest.fixture
def paged_job(client, clock) -> tuple[str, str]:
    """A job of acme with five notifications, and the cursor after its first two."""
    job_id = job_with_history(client, clock, 5)
    return job_id, client.page_notifications(job_id, org="acme", limit=2).next_cursor


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_no_cursor_gets_a_server_error_over_http(client, paged_job, data):
    job_id, cursor = paged_job
    text = data.draw(st.one_of(mutations(cursor), st.text(max_size=60)))
    answer = call(
        App(client),
        "GET",
        f"/analyze/jobs/{job_id}/notifications?limit=2&cursor={quote(text)}",
        org="acme",
    )
    if text in ("", cursor):
        assert answer.status == 200
    else:
        assert answer.status == 400, (text, answer.body)
        assert answer.json["error"]["message"].startswith("cursor: ")
