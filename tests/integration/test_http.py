"""The HTTP API: the WSGI app in-process for every route and error, and a property test
that no request gets a 5xx. A real `serve` over loopback and the validate script are
in tests/system/test_http_served.py."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncjobs import Client, TaskRegistry
from asyncjobs.http.app import App

from ..conftest import ENGINES, data_files, make_unreadable, state_of

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="report")
def report(rows: int = 1) -> dict:
    return {"rows": rows}


class Response:
    def __init__(
        self, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.status = int(status.split()[0])
        self.headers = dict(headers)
        self.header_list = headers  # as sent, a repeated header included
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)


def call(
    app: App,
    method: str,
    path: str,
    *,
    org: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Response:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "CONTENT_LENGTH": str(len(body or b"")),
    }
    if org is not None:
        environ["HTTP_X_ORG_ID"] = org
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    captured = {}

    def start_response(status, response_headers):
        captured["status"], captured["headers"] = status, response_headers

    data = b"".join(app(environ, start_response))
    return Response(captured["status"], captured["headers"], data)


def call_afresh(store_url: str, method: str, path: str, **options) -> Response:
    """``call`` to an app on a Client of its own, as a server just started has."""
    with Client(store_url) as fresh:
        return call(App(fresh), method, path, **options)


@pytest.fixture
def app(client) -> App:
    return App(client)


@pytest.fixture
def done(client) -> str:
    """A completed job of acme."""
    return client.submit(
        "report", org="acme", payload={"rows": 2}, sync=True, tasks=tasks
    ).job_id


def without_volatile(response: Response) -> tuple[int, dict, bytes]:
    headers = {
        k: v for k, v in response.headers.items() if k not in ("Date", "X-Request-ID")
    }
    return response.status, headers, response.body


# -- routes ------------------------------------------------------------------------------


def test_health_is_ok_on_a_readable_store_and_503_on_a_corrupt_one(
    app, client, store_url, store_path
):
    client.submit("report", org="acme")
    ok = call(app, "GET", "/health")
    assert ok.status == 200 and ok.json["status"] == "ok"
    words = make_unreadable(store_url, store_path)
    broken = call_afresh(store_url, "GET", "/health")
    assert broken.status == 503 and broken.json["status"] == "unavailable"
    assert words in broken.json["error"]["message"]


def test_a_job_is_served_to_its_org_and_missing_to_every_other(app, done):
    own = call(app, "GET", f"/analyze/jobs/{done}", org="acme")
    assert (
        own.status == 200
        and own.json["status"] == "completed"
        and own.json["job_id"] == done
    )
    assert (
        call(
            app, "GET", f"/analyze/jobs/{done}", headers={"X-Tenant-Id": "acme"}
        ).status
        == 200
    )
    foreign = call(app, "GET", f"/analyze/jobs/{done}", org="globex")
    assert foreign.status == 404
    assert foreign.json == {
        "error": {"code": "not_found", "message": f"job {done} not found"}
    }
    missing_id = "job_" + "0" * 26
    missing = call(app, "GET", f"/analyze/jobs/{missing_id}", org="globex")
    assert without_volatile(missing)[:2] == without_volatile(foreign)[:2]
    assert missing.body == foreign.body.replace(done.encode(), missing_id.encode())
    assert call(app, "GET", "/analyze/jobs/not-an-id", org="acme").status == 404
    no_tenant = call(app, "GET", f"/analyze/jobs/{done}")
    assert no_tenant.status == 400 and "X-Org-Id" in no_tenant.json["error"]["message"]
    assert call(app, "GET", f"/analyze/jobs/{done}", org="../etc").status == 400


@pytest.mark.parametrize(
    "headers, words",
    [
        (
            {"X-Org-Id": "globex", "X-Tenant-Id": "acme"},
            "X-Org-Id 'globex' and X-Tenant-Id 'acme' disagree",
        ),
        ({"X-Org-Id": "", "X-Tenant-Id": "acme"}, "X-Org-Id is empty"),
        ({"X-Org-Id": "acme", "X-Tenant-Id": " "}, "X-Tenant-Id is empty"),
        ({"X-Tenant-Id": ""}, "X-Tenant-Id is empty"),
    ],
)
def test_tenant_headers_that_disagree_or_are_empty_are_refused_before_the_store(
    app, client, store_url, store_path, done, headers, words
):
    body = json.dumps({"task": "report"}).encode()
    before = state_of(store_url, data_files(store_path))
    posted = call(app, "POST", "/analyze/jobs", headers=headers, body=body)
    assert posted.status == 400 and posted.json["error"] == {
        "code": "invalid_input",
        "message": posted.json["error"]["message"],
    }
    assert words in posted.json["error"]["message"]
    assert state_of(store_url, data_files(store_path)) == before
    read = call(app, "GET", f"/analyze/jobs/{done}", headers=headers)
    assert read.status == 400 and words in read.json["error"]["message"]
    # refused before the store is touched: an unreadable store changes nothing
    make_unreadable(store_url, store_path, "{broken")
    unread = call_afresh(store_url, "GET", f"/analyze/jobs/{done}", headers=headers)
    assert (unread.status, unread.json) == (400, read.json)


def test_tenant_headers_that_agree_are_one_tenant(app, done):
    both = {"X-Org-Id": "acme", "X-Tenant-Id": "acme"}
    assert call(app, "GET", f"/analyze/jobs/{done}", headers=both).status == 200
    other = {"X-Org-Id": "globex", "X-Tenant-Id": "globex"}
    assert call(app, "GET", f"/analyze/jobs/{done}", headers=other).status == 404


def test_foreign_and_missing_answers_are_byte_identical_for_the_same_id(
    app, client, done
):
    for path in (f"/analyze/jobs/{done}", f"/analyze/jobs/{done}/notifications"):
        foreign = call(app, "GET", path, org="globex")
        # No public call takes a record away and puts it back: done by hand.
        with client.store.transaction() as tx:
            saved = tx.get("jobs", done)
            tx.delete("jobs", done)
        missing = call(app, "GET", path, org="acme")
        with client.store.transaction() as tx:
            tx.put("jobs", done, saved)
        assert without_volatile(foreign) == without_volatile(missing), path


def test_result_permalinks_over_http(app, client, done):
    first = client.get_job(done, org="acme").result_id
    client.retry(done, org="acme")
    client.run_job(done, org="acme", tasks=tasks)
    latest = call(app, "GET", f"/analyze/results/{first}", org="acme")
    assert latest.status == 200 and latest.json["projection_mode"] == "latest"
    assert (
        latest.json["result_id"] != first
        and latest.json["requested_result_id"] == first
    )
    pinned = call(app, "GET", f"/analyze/results/{first}?view=pinned", org="acme")
    assert pinned.json["result_id"] == first and pinned.json["value"] == {"rows": 2}
    assert (
        call(app, "GET", f"/analyze/results/{first}?view=all", org="acme").status == 400
    )
    assert call(app, "GET", f"/analyze/results/{first}", org="globex").status == 404
    assert call(app, "GET", "/analyze/results/res_nope", org="acme").status == 404


def test_notifications_over_http_latest_first(app, client, clock, done):
    clock.advance(1)
    client.retry(done, org="acme")
    client.cancel(done, org="acme")
    answer = call(
        app,
        "GET",
        f"/analyze/jobs/{done}/notifications?channel=in_app&limit=20",
        org="acme",
    )
    assert answer.status == 200 and answer.json["job_id"] == done
    assert [n["event_type"] for n in answer.json["notifications"]] == [
        "async.job.canceled",
        "async.job.completed",
    ]
    assert (
        call(
            app, "GET", f"/analyze/jobs/{done}/notifications?limit=x", org="acme"
        ).status
        == 400
    )
    assert (
        call(
            app, "GET", f"/analyze/jobs/{done}/notifications?limit=0", org="acme"
        ).status
        == 400
    )


def test_notifications_over_http_come_in_pages_with_next_cursor(
    app, client, clock, done
):
    for _ in range(2):  # two more runs, each canceled: three notifications
        clock.advance(1)
        client.retry(done, org="acme")
        client.cancel(done, org="acme")
    url = f"/analyze/jobs/{done}/notifications?limit=2"
    first = call(app, "GET", url, org="acme")
    assert first.status == 200 and len(first.json["notifications"]) == 2
    cursor = first.json["next_cursor"]
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", cursor)  # goes in a URL as it is
    last = call(app, "GET", f"{url}&cursor={cursor}", org="acme")
    assert last.status == 200 and "next_cursor" not in last.json
    shown = first.json["notifications"] + last.json["notifications"]
    assert [n["notification_id"] for n in shown] == [
        n.notification_id for n in client.notifications(done, org="acme")
    ]
    assert [n["event_type"] for n in shown][-1] == "async.job.completed"
    assert call(app, "GET", f"{url}&cursor=", org="acme").json == first.json
    for bad in (cursor[:-1], "x", cursor.replace(".", "")):
        refused = call(app, "GET", f"{url}&cursor={bad}", org="acme")
        assert refused.status == 400
        assert refused.json["error"]["code"] == "invalid_input"
        assert refused.json["error"]["message"].startswith("cursor: ")
    other = client.submit("report", org="acme", sync=True, tasks=tasks).job_id
    elsewhere = call(
        app, "GET", f"/analyze/jobs/{other}/notifications?cursor={cursor}", org="acme"
    )
    assert elsewhere.status == 400
    assert elsewhere.json["error"]["message"] == "cursor: does not match these filters"


def test_posting_a_job_queues_it_for_the_header_org(app, client):
    body = json.dumps(
        {
            "task": "report",
            "payload": {"rows": 5},
            "priority": 7,
            "idempotency_key": "k1",
        }
    ).encode()
    created = call(app, "POST", "/analyze/jobs", org="acme", body=body)
    assert created.status == 202 and created.json["status"] == "queued"
    job = client.get_job(created.json["job_id"], org="acme")
    assert (job.priority, job.payload, job.org_id) == (7, {"rows": 5}, "acme")
    again = call(app, "POST", "/analyze/jobs", org="acme", body=body)
    assert again.status == 202 and again.json["deduplicated"] is True
    assert again.json["job_id"] == created.json["job_id"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b'{"task": "report", "priority": 11}', 400, "priority: 11"),
        (b'{"payload": {}}', 400, "task: missing"),
        (b'{"task": "report", "org": "globex"}', 400, "unknown field(s): org"),
        (b'{"task": "a b"}', 400, "task: 'a b'"),
        (b"not json", 400, "body: not valid JSON"),
        (b'{"task": "report", "payload": {"x": NaN}}', 400, "NaN is not allowed"),
        (b'{"task": "report", "task": "other"}', 400, "duplicate key"),
        (b'{"task": "report", "at": "9999-12-31T23:59:59-12:00"}', 400, "at: "),
        (b'{"task": "report", "at": "0001-01-01T00:00:00+01:00"}', 400, "at: "),
        (b'{"task": "report", "at": "2100-01-01T00:00:00Z"}', 400, "ten years"),
        (b'{"task": "report", "delay": 1e300}', 400, "delay: "),
        (b"[" * 100_000, 400, "nested too deeply"),
        (
            b'{"task": "r", "payload": {"n": ' + b"9" * 5000 + b"}}",
            400,
            "not valid JSON",
        ),
        (b'["task"]', 400, "must be a JSON object"),
        (b"\xff\xfe", 400, "body"),
        (
            json.dumps({"task": "r", "payload": {"x": "a" * (1 << 20)}}).encode(),
            413,
            "over the limit",
        ),
        (b"x" * ((1 << 20) + (64 << 10) + 1), 413, "over the limit"),
    ],
)
def test_bad_posts_are_refused_with_a_field_message_and_write_nothing(
    app, client, store_url, store_path, body, status, words
):
    client.submit("report", org="acme")
    before = state_of(store_url, data_files(store_path))
    answer = call(app, "POST", "/analyze/jobs", org="acme", body=body)
    assert answer.status == status and words in answer.json["error"]["message"]
    assert state_of(store_url, data_files(store_path)) == before


def test_unknown_routes_404_and_wrong_methods_405(app):
    assert call(app, "GET", "/nope").status == 404
    assert call(app, "GET", "/").json["error"]["code"] == "not_found"
    wrong = call(app, "DELETE", "/health")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET"
    listed = call(app, "DELETE", "/analyze/jobs", org="acme")
    assert listed.status == 405 and listed.headers["Allow"] == "GET, POST"
    bulk = call(app, "PUT", "/analyze/jobs/retry", org="acme")
    assert bulk.status == 405 and bulk.headers["Allow"] == "POST"
    assert call(app, "PUT", "/analyze/jobs/job_x", org="acme").status == 405


def test_telemetry_is_always_200_and_degraded_when_the_store_is_unreadable(
    app, client, done, store_url, store_path
):
    call(app, "GET", f"/analyze/jobs/{done}", org="acme")
    call(app, "GET", "/nope")
    doc = call(app, "GET", "/telemetry").json
    for key in ("timestamp", "started_utc", "requests", "async"):
        assert key in doc
    requests = doc["requests"]
    for key in (
        "total_1h",
        "error_rate_1h",
        "latency_p95_ms",
        "by_path",
        "by_status",
        "last_request_utc",
    ):
        assert key in requests
    assert (
        requests["by_path"]["/analyze/jobs/{job_id}"] == 1
        and requests["by_status"]["404"] == 1
    )
    section = doc["async"]
    for key in (
        "async_enabled",
        "worker_seen",
        "materializer_stale",
        "last_materialize_ts",
        "blocked_mutations_count",
        "queue_depth",
        "running",
        "failed_1h",
        "oldest_queued_age_s",
        "breakers",
    ):
        assert key in section
    assert section["queue_depth"] == 0 and section["last_materialize_ts"] is not None
    make_unreadable(store_url, store_path, "{broken")
    degraded = call_afresh(store_url, "GET", "/telemetry")
    assert degraded.status == 200 and degraded.json["async"]["queue_depth"] == 0
    assert (
        degraded.json["error"]["code"] == "degraded"
        and degraded.json["degraded"] is True
    )


# The types of the telemetry contract's examples: a frontend reads these keys
# without checking for null.
ASYNC_TYPES = {
    "async_enabled": bool,
    "worker_seen": bool,
    "materializer_stale": bool,
    "last_materialize_ts": str,
    "blocked_mutations_count": int,
    "queue_depth": int,
    "running": int,
    "failed_1h": int,
    "oldest_queued_age_s": (int, float),
    "breakers": dict,
    "degraded": bool,
}


def assert_contract_types(section: dict) -> None:
    for key, kind in ASYNC_TYPES.items():
        assert isinstance(section[key], kind), (key, section[key])
        assert not (kind is int and isinstance(section[key], bool)), key


def test_the_async_block_has_the_contracts_types_readable_or_not(
    store_url, store_path, client
):
    empty = call(App(client), "GET", "/telemetry").json["async"]
    assert_contract_types(empty)
    assert empty["last_materialize_ts"] == "" and empty["oldest_queued_age_s"] == 0
    client.submit("report", org="acme")
    assert_contract_types(call(App(client), "GET", "/telemetry").json["async"])
    make_unreadable(store_url, store_path, "{broken")
    degraded = call_afresh(store_url, "GET", "/telemetry").json["async"]
    assert_contract_types(degraded)
    assert degraded["degraded"] is True and degraded["worker_seen"] is False
    assert degraded["materializer_stale"] is True and degraded["breakers"] == {}


def test_health_carries_the_same_async_block_as_telemetry(
    store_url, store_path, client
):
    client.submit("report", org="acme")
    app = App(client)
    health = call(app, "GET", "/health")
    telemetry = call(app, "GET", "/telemetry")
    assert health.status == 200 and health.json["status"] == "ok"
    assert health.json["async"] == telemetry.json["async"]
    assert health.json["async"]["queue_depth"] == 1
    make_unreadable(store_url, store_path, "{broken")
    down = call_afresh(store_url, "GET", "/health")
    assert down.status == 503 and down.json["status"] == "unavailable"
    assert down.json["error"]["code"] == "store_corrupt"
    assert down.json["async"]["degraded"] is True
    assert_contract_types(down.json["async"])


def test_metrics_expose_every_series_without_org_ids_or_raw_paths(app, client, done):
    client.submit("report", org="acme", queue="reports")
    call(app, "GET", f"/analyze/jobs/{done}", org="acme")
    text = call(app, "GET", "/metrics")
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = text.body.decode()
    for series in (
        "asyncjobs_jobs{",
        "asyncjobs_queue_depth{",
        "asyncjobs_jobs_completed_total",
        "asyncjobs_jobs_failed_total",
        "asyncjobs_job_duration_seconds_bucket",
        "asyncjobs_breaker_open",
        "asyncjobs_workers_seen",
        "asyncjobs_http_requests_total{",
        "asyncjobs_http_request_duration_seconds",
        "asyncjobs_terminal_jobs_without_in_app_notification",
    ):
        assert series in body, series
    assert 'asyncjobs_jobs{status="completed",queue="default"} 1' in body
    assert 'asyncjobs_queue_depth{queue="reports"} 1' in body
    assert 'path="/analyze/jobs/{job_id}"' in body and done not in body
    assert "acme" not in body
    assert "asyncjobs_jobs_completed_total 1" in body


def test_openapi_describes_every_route(app):
    doc = call(app, "GET", "/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {r[3] for r in App.ROUTES}


def test_every_answer_carries_a_request_id(app):
    echoed = call(app, "GET", "/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = call(app, "GET", "/health", headers={"X-Request-ID": "bad id\n"})
    assert re.fullmatch(r"[0-9A-Z]{26}", made.headers["X-Request-ID"])


# -- property test ------------------------------------------------------------------


PATHS = st.one_of(
    st.sampled_from(
        [
            "/health",
            "/telemetry",
            "/metrics",
            "/openapi.json",
            "/analyze/jobs",
            "/analyze/jobs/job_" + "0" * 26,
            "/analyze/results/res_" + "0" * 26,
            "/analyze/jobs/job_" + "0" * 26 + "/notifications",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).map(
        lambda s: "/" + s
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]),
    path=PATHS,
    query=st.text(max_size=30),
    org=st.one_of(st.none(), st.text(max_size=20)),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "task",
                    "payload",
                    "queue",
                    "priority",
                    "delay",
                    "idempotency_key",
                    "x",
                ]
            ),
            st.one_of(
                st.text(max_size=10),
                st.integers(),
                st.none(),
                st.floats(allow_nan=False),
            ),
            max_size=5,
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_no_request_gets_a_server_error_and_refusals_write_nothing(
    app, store_url, store_path, method, path, query, org, body
):
    before = state_of(store_url, data_files(store_path))
    answer = call(app, method, f"{path}?{query}", org=org, body=body)
    assert answer.status < 500, answer.body
    assert answer.headers["Content-Type"]
    if method == "HEAD":
        assert answer.body == b""
    elif answer.status >= 400:
        assert set(answer.json) == {"error"} and "Traceback" not in answer.body.decode()
    if answer.status >= 400:
        assert state_of(store_url, data_files(store_path)) == before


# -- a store never made -------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_store_never_made_is_unhealthy_not_empty(tmp_path, request, engine):
    # pg_url names a schema no one made (store_url would make it)
    url = request.getfixturevalue("pg_url") if engine == "postgres" else None
    with Client(url or tmp_path / "store.v1.json") as fresh:
        app = App(fresh)
        health = call(app, "GET", "/health")
        telemetry = call(app, "GET", "/telemetry")
    assert health.status == 503 and health.json["status"] == "unavailable"
    assert "no store at" in health.json["error"]["message"]
    assert "store init" in health.json["error"]["message"]
    assert telemetry.status == 200 and telemetry.json["degraded"] is True
