"""The web dashboard in process, on every engine: pages, sign-in, 404s, CSRF, viewers, escaping.

The same WSGI app that ``serve --dashboard`` runs; requests are built by
hand with the headers a browser sends (a real browser is in
tests/system/test_dashboard_browser.py once it exists).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncjobs import Client, Settings
from asyncjobs.http.app import App
from asyncjobs.tasks import TaskRegistry

from .test_bulk import failed
from .test_claiming import make_worker
from .test_http import call

pytestmark = pytest.mark.engines

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
EXAMPLES = itertools.count()  # one store serves every example of a property
tasks = TaskRegistry()


@tasks.task(name="dash.any", queue="dash", max_retries=0)
def any_payload(**payload: object) -> None: ...


def failed_with(client, error: dict, org: str = "acme", **submit: object) -> str:
    """A job of dash.any that ran once and failed with ``error``."""
    job = client.submit("dash.any", org=org, tasks=tasks, **submit)
    worker = dataclasses.replace(make_worker(client), queues=["dash"])
    _, claimed = client.exchange(worker, [], want=1, registry=tasks)
    assert claimed[0][0].job_id == job.job_id
    outcome = {"job_id": job.job_id, "ok": False, "error": error}
    client.exchange(worker, [(claimed[0][1], outcome)], want=0, registry=tasks)
    return job.job_id


def completed_with(client, value: object, org: str = "acme") -> str:
    """A job of dash.any that ran once and returned ``value``."""
    job = client.submit("dash.any", org=org, tasks=tasks)
    worker = dataclasses.replace(make_worker(client), queues=["dash"])
    _, claimed = client.exchange(worker, [], want=1, registry=tasks)
    outcome = {"job_id": job.job_id, "ok": True, "value": value}
    client.exchange(worker, [(claimed[0][1], outcome)], want=0, registry=tasks)
    assert client.get_job(job.job_id, org=org).status == "completed"
    return job.job_id


@pytest.fixture
def app(client):
    return App(client, dashboard=True)


@pytest.fixture
def operator(client):
    return client.create_token(orgs=["acme"], role="operator", label="alice")[1]


@pytest.fixture
def viewer(client):
    return client.create_token(orgs=["acme"], role="viewer", label="bob")[1]


def get(app, path, token=None, **headers):
    if token is not None:
        headers["Cookie"] = f"asyncjobs_session={token}"
    return call(app, "GET", path, headers=headers)


def post(app, path, token=None, form=b"", **headers):
    if token is not None:
        headers["Cookie"] = f"asyncjobs_session={token}"
    return call(app, "POST", path, headers=headers, body=form)


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.body.decode()).group(1)


def test_signing_in_sets_a_strict_httponly_cookie_and_lands_on_the_org(app, operator):
    login = get(app, "/dashboard/")
    assert login.status == 200 and 'name="token"' in login.body.decode()
    signed = post(
        app, "/dashboard/session", form=f"token={operator}".encode(), **SAME_ORIGIN
    )
    assert (signed.status, signed.headers["Location"]) == (303, "/dashboard/")
    cookie = signed.headers["Set-Cookie"]
    assert cookie.startswith(f"asyncjobs_session={operator};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/dashboard/" in cookie
    home = get(app, "/dashboard/", operator)
    assert (home.status, home.headers["Location"]) == (303, "/dashboard/o/acme/")


ORG_PAGES = (
    "/dashboard/o/acme/",
    "/dashboard/o/acme/jobs",
    "/dashboard/o/acme/jobs?status=failed&status=queued&queue=mail",
    "/dashboard/o/acme/failures",
    "/dashboard/o/acme/inbox",
    "/dashboard/o/acme/inbox?unread=1",
)
OPERATOR_PAGES = (
    "/dashboard/queues",
    "/dashboard/workers",
    "/dashboard/schedules",
    "/dashboard/breakers",
    "/dashboard/system",
    "/dashboard/system?check=1",
)


def test_every_page_of_an_allowed_org_renders(app, client, operator):
    job_id = failed(client, "acme", "mail.send", 1)[0]
    bulk = "/dashboard/o/acme/bulk?action=retry&status=failed"
    for path in (*ORG_PAGES, f"/dashboard/o/acme/jobs/{job_id}", bulk, *OPERATOR_PAGES):
        page = get(app, path, operator)
        assert page.status == 200, path
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "same-origin"
        assert_no_inline_code(parsed(page.body))
    assert job_id in get(app, "/dashboard/o/acme/", operator).body.decode()


def test_a_token_of_several_orgs_picks_an_org_and_sees_only_its_own(app, client):
    client.submit("mail.send", org="globex")  # an org the store knows
    token = client.create_token(orgs=["acme", "initech"], role="viewer")[1]
    picker = get(app, "/dashboard/", token).body.decode()
    assert "/dashboard/o/acme/" in picker and "/dashboard/o/initech/" in picker
    assert "globex" not in picker


def test_a_forbidden_org_another_orgs_job_and_a_missing_one_are_the_same_404(
    app, client, operator
):
    theirs = failed(client, "globex", "mail.send", 1)[0]
    answers = [
        get(app, path, operator)
        for path in (
            f"/dashboard/o/acme/jobs/{theirs}",
            "/dashboard/o/acme/jobs/job_" + "0" * 26,
            "/dashboard/o/acme/jobs/not-an-id",
            f"/dashboard/o/globex/jobs/{theirs}",
            "/dashboard/o/globex/",
        )
    ]
    assert {a.status for a in answers} == {404}
    assert len({a.body for a in answers}) == 1


@pytest.mark.parametrize(
    ("headers", "with_csrf", "status"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, True, 303),
        ({"Sec-Fetch-Site": "same-origin"}, False, 403),
        ({"Sec-Fetch-Site": "same-site"}, True, 403),
        ({"Sec-Fetch-Site": "cross-site"}, True, 403),
        ({"Sec-Fetch-Site": "none"}, True, 403),
        ({"Origin": "http://127.0.0.1"}, True, 303),
        ({"Origin": "http://127.0.0.1:3000"}, True, 403),
        ({}, True, 403),
    ],
)
def test_an_action_is_taken_only_from_this_origin_with_the_sessions_token(
    app, client, operator, headers, with_csrf, status
):
    job = client.submit("mail.send", org="acme")
    page = get(app, f"/dashboard/o/acme/jobs/{job.job_id}", operator)
    form = f"csrf={csrf_of(page)}".encode() if with_csrf else b"csrf=0"
    answer = post(
        app, f"/dashboard/o/acme/jobs/{job.job_id}/cancel", operator, form, **headers
    )
    assert answer.status == status
    after = client.get_job(job.job_id, org="acme").status
    assert after == ("canceled" if status == 303 else "queued")


def test_an_action_by_get_is_405_and_changes_nothing(app, client, operator):
    job = client.submit("mail.send", org="acme")
    answer = get(app, f"/dashboard/o/acme/jobs/{job.job_id}/cancel", operator)
    assert answer.status == 405 and answer.headers["Allow"] == "POST"
    assert client.get_job(job.job_id, org="acme").status == "queued"


def test_another_sessions_token_does_not_pass_the_check(app, client, operator):
    other = client.create_token(orgs=["acme"], role="operator")[1]
    job = client.submit("mail.send", org="acme")
    theirs = csrf_of(get(app, f"/dashboard/o/acme/jobs/{job.job_id}", other))
    answer = post(
        app,
        f"/dashboard/o/acme/jobs/{job.job_id}/cancel",
        operator,
        f"csrf={theirs}".encode(),
        **SAME_ORIGIN,
    )
    assert answer.status == 403


def test_a_viewer_sees_no_action_and_is_refused_one(app, client, viewer):
    job_id = failed(client, "acme", "mail.send", 1)[0]
    page = get(app, f"/dashboard/o/acme/jobs/{job_id}", viewer)
    text = page.body.decode()
    assert page.status == 200 and "/retry" not in text and "/cancel" not in text
    answer = post(
        app,
        f"/dashboard/o/acme/jobs/{job_id}/retry",
        viewer,
        f"csrf={csrf_of(page)}".encode(),
        **SAME_ORIGIN,
    )
    assert answer.status == 403
    assert client.get_job(job_id, org="acme").status == "failed"


def test_an_expired_forged_or_revoked_token_is_sent_to_sign_in(
    app, client, clock, operator
):
    record, revoked = client.create_token(orgs=["acme"], role="operator")
    client.revoke_token(record["token_id"])
    expiring = client.create_token(orgs=["acme"], role="operator", expires_in=60)[1]
    clock.advance(61)
    for token in (revoked, expiring, operator[:-2] + "xx", "tok_x.y", "garbage"):
        page = get(app, "/dashboard/o/acme/jobs", token)
        assert (page.status, page.headers["Location"]) == (303, "/dashboard/")
        assert 'name="token"' in get(app, "/dashboard/", token).body.decode()
        refused = post(
            app, "/dashboard/session", form=f"token={token}".encode(), **SAME_ORIGIN
        )
        assert refused.status == 401 and "Set-Cookie" not in refused.headers


def test_signing_out_clears_the_cookie(app, operator):
    page = get(app, "/dashboard/o/acme/", operator)
    out = post(
        app,
        "/dashboard/signout",
        operator,
        f"csrf={csrf_of(page)}".encode(),
        **SAME_ORIGIN,
    )
    assert out.status == 303 and "Max-Age=0" in out.headers["Set-Cookie"]


def test_secrets_in_a_payload_are_not_shown(app, client, operator):
    job = client.submit(
        "mail.send",
        org="acme",
        payload={"api_key": "sk-live-1", "nested": {"Password": "p"}, "to": "x@y"},
    )
    text = get(app, f"/dashboard/o/acme/jobs/{job.job_id}", operator).body.decode()
    assert "sk-live-1" not in text and '"p"' not in text and "x@y" in text
    assert text.count("[redacted]") == 2


def test_a_traceback_is_folded_for_operators_and_absent_for_viewers(
    app, client, operator, viewer
):
    error = {"type": "KeyError", "message": "'x'", "traceback": "File /srv/app/x.py"}
    job_id = failed_with(client, error)
    path = f"/dashboard/o/acme/jobs/{job_id}"
    assert "/srv/app/x.py" in get(app, path, operator).body.decode()
    seen = get(app, path, viewer).body.decode()
    assert "/srv/app/x.py" not in seen and "KeyError" in seen


# -- nothing the store holds becomes markup ----------------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def parsed(body: bytes) -> Tags:
    tags = Tags()
    tags.feed(body.decode())
    return tags


def assert_no_inline_code(page: Tags) -> None:
    """No script but the dashboard's own file, no style or event attribute:
    what the Content-Security-Policy would refuse to run anyway."""
    scripts = [v for tag, name, v in page.attrs if tag == "script" and name == "src"]
    assert page.tags.count("script") == len(scripts) == 1
    assert scripts == ["/dashboard/static/dashboard.js"]
    assert "style" not in page.tags
    assert not [
        name for _, name, _ in page.attrs if name == "style" or name.startswith("on")
    ]


HOSTILE = st.one_of(
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(1)>',
            "</textarea><b>",
            "'; --><!--",
            "&lt;b&gt;",
        ]
    ),
    st.text(alphabet=st.sampled_from("<>&\"'/= abc!-"), min_size=1, max_size=30),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=HOSTILE,
    key=st.text(alphabet=st.sampled_from("<>&\"'/=ab"), min_size=1, max_size=20),
)
def test_no_text_from_a_job_ever_becomes_markup(app, client, text, key):
    """Each example's jobs are alone in an org of their own, so that the
    hostile pages and the plain ones list the same rows."""
    n = next(EXAMPLES)
    pages: dict[str, list] = {}
    for name, value, ikey in (("hostile", text, key), ("plain", "x", "k")):
        org = f"xss-{n}-{name}"
        token = client.create_token(orgs=[org], role="operator")[1]
        error = {"type": value, "message": value, "traceback": value}
        job_id = failed_with(
            client,
            error,
            org=org,
            payload={"note": value, value: 1},
            idempotency_key=f"{ikey}-{n}"[:200],
        )
        done = completed_with(client, {"value": value, value: [value]}, org=org)
        pages[name] = [
            get(app, f"/dashboard/o/{org}/{path}", token)
            for path in (
                f"jobs/{job_id}",
                f"jobs/{done}",
                "failures",
                "jobs",
                "inbox",
                "",
                f"bulk?action=retry&{urlencode({'error_type': value[:200]})}",
            )
        ]
    for hostile_page, plain_page in zip(pages["hostile"], pages["plain"], strict=True):
        hostile, plain = parsed(hostile_page.body), parsed(plain_page.body)
        assert hostile.tags == plain.tags  # the same elements, whatever the text
        assert_no_inline_code(hostile)
    for page in pages["hostile"][:3]:
        shown = "".join(parsed(page.body).text)
        as_json = json.dumps(text, ensure_ascii=False)[1:-1]  # in a result's JSON
        assert text in shown or as_json in shown  # shown as text, exactly


# -- what each page shows --------------------------------------------------------------


def test_a_viewer_reads_every_org_page_without_a_form_and_no_operator_page(
    app, client, viewer
):
    job_id = failed(client, "acme", "mail.send", 1)[0]
    for path in (*ORG_PAGES, f"/dashboard/o/acme/jobs/{job_id}"):
        page = get(app, path, viewer)
        assert page.status == 200, path
        forms = re.findall(
            r'<form method="post" [^>]*action="([^"]+)"', page.body.decode()
        )
        assert forms == ["/dashboard/signout"], path
    for path in (*OPERATOR_PAGES, "/dashboard/o/acme/bulk?action=retry"):
        assert get(app, path, viewer).status == 403, path


def test_the_overview_counts_the_orgs_jobs_and_charts_the_last_hour(
    app, client, operator
):
    failed(client, "acme", "mail.send", 3)
    failed(client, "globex", "mail.send", 5)  # another org's
    client.submit("mail.send", org="acme")
    text = get(app, "/dashboard/o/acme/", operator).body.decode()
    figures = dict(
        (label, int(n.replace(",", "")))
        for n, label in re.findall(r"<li><strong>([\d,]+)</strong>([^<]+)</li>", text)
    )
    assert figures["failed in the last hour"] == 3
    assert figures["runnable"] == 1 and figures["running"] == 0
    assert "<svg" in text and "3 failed" in text  # a bar's tooltip
    assert "No worker has been seen" in text


def test_failures_are_grouped_by_task_and_error_and_a_group_is_retried_through_a_preview(
    app, client, operator
):
    smtp = failed(client, "acme", "mail.send", 3, error="SMTPError")
    failed(client, "acme", "mail.send", 2, error="KeyError")
    failed(client, "globex", "mail.send", 4, error="SMTPError")
    text = get(app, "/dashboard/o/acme/failures", operator).body.decode()
    rows = re.findall(r"<tr><td>mail\.send</td><td>(\w+)</td><td>(\d+)</td>", text)
    assert rows == [("SMTPError", "3"), ("KeyError", "2")]
    listed = re.search(r'href="(/dashboard/o/acme/jobs\?[^"]*KeyError)"', text).group(1)
    page = get(app, listed.replace("&amp;", "&"), operator).body.decode()
    assert page.count("<td>KeyError</td>") == 2 and "SMTPError" not in page
    preview_path = re.search(
        r'href="(/dashboard/o/acme/bulk\?action=retry[^"]*SMTPError[^"]*)"', text
    ).group(1)
    preview = get(app, preview_path.replace("&amp;", "&"), operator)
    shown = preview.body.decode()
    assert "Retry 3 job(s)?" in shown and all(i in shown for i in smtp)
    assert {
        job["status"] for job in client.list_jobs(org="acme", status="queued")
    } == set()
    fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', shown))
    form = "&".join(f"{k}={v}" for k, v in fields.items()).replace(":", "%3A")
    done = post(app, "/dashboard/o/acme/bulk", operator, form.encode(), **SAME_ORIGIN)
    assert done.status == 303 and "done=retry&n=3" in done.headers["Location"]
    assert "error_type=SMTPError" in done.headers["Location"]  # back to the group
    queued = {j.job_id for j in client.list_jobs(org="acme", status="queued")}
    assert queued == set(smtp)
    landed = get(app, done.headers["Location"], operator).body.decode()
    assert "Retried 3 job(s)." in landed


def test_a_bulk_preview_says_when_more_match_than_one_confirmation_takes(
    app, client, operator
):
    failed(client, "acme", "mail.send", 1001)
    shown = get(app, "/dashboard/o/acme/bulk?action=retry", operator).body.decode()
    assert "Retry 1,001 job(s)?" in shown and "capped at 1,000" in shown
    assert "Confirm: retry 1,000 job(s)" in shown


def test_a_bulk_action_is_refused_from_another_origin_and_for_a_viewer(
    app, client, operator, viewer
):
    failed(client, "acme", "mail.send", 2)
    page = get(app, "/dashboard/o/acme/bulk?action=retry", operator)
    form = f"csrf={csrf_of(page)}&action=retry&status=failed".encode()
    site = {"Sec-Fetch-Site": "same-site"}
    assert post(app, "/dashboard/o/acme/bulk", operator, form, **site).status == 403
    mine = f"csrf={csrf_of(get(app, '/dashboard/o/acme/', viewer))}&action=retry"
    refused = post(app, "/dashboard/o/acme/bulk", viewer, mine.encode(), **SAME_ORIGIN)
    assert refused.status == 403
    assert len(client.list_jobs(org="acme", status="failed")) == 2


def test_the_inbox_marks_one_notification_read_then_all(app, client, operator):
    failed(client, "acme", "mail.send", 3)
    page = get(app, "/dashboard/o/acme/inbox?unread=1", operator)
    text = page.body.decode()
    first = re.search(r'name="notification_id" value="(ntf_\w+)"', text).group(1)
    one = f"csrf={csrf_of(page)}&notification_id={first}".encode()
    done = post(app, "/dashboard/o/acme/inbox/mark-read", operator, one, **SAME_ORIGIN)
    assert done.status == 303 and done.headers["Location"].endswith("done=read&n=1")
    assert len(client.inbox(org="acme", unread=True)) == 2
    damaged = f"csrf={csrf_of(page)}&notification_id=".encode()
    refused = post(
        app, "/dashboard/o/acme/inbox/mark-read", operator, damaged, **SAME_ORIGIN
    )
    assert refused.status == 400  # not taken for "all"
    assert len(client.inbox(org="acme", unread=True)) == 2
    every = f"csrf={csrf_of(page)}&all=1".encode()
    post(app, "/dashboard/o/acme/inbox/mark-read", operator, every, **SAME_ORIGIN)
    assert client.inbox(org="acme", unread=True) == []


def test_a_job_is_found_by_its_id_or_idempotency_key_within_the_org(
    app, client, operator
):
    mine = client.submit("mail.send", org="acme", idempotency_key="order-7")
    client.submit("mail.send", org="globex", idempotency_key="order-8")
    for wanted in (mine.job_id, "order-7"):
        found = get(app, f"/dashboard/o/acme/jobs?q={wanted}", operator)
        assert found.headers["Location"] == f"/dashboard/o/acme/jobs/{mine.job_id}"
    missing = get(app, "/dashboard/o/acme/jobs?q=order-8", operator)
    assert missing.status == 200
    assert "No job of this org has id or key order-8" in missing.body.decode()


def test_an_unchanged_page_is_answered_304_until_the_store_changes(
    app, client, operator
):
    first = get(app, "/dashboard/o/acme/", operator)
    etag = first.headers["ETag"]
    assert etag in first.body.decode().replace("&quot;", '"')
    again = get(app, "/dashboard/o/acme/", operator, **{"If-None-Match": etag})
    assert (again.status, again.body, again.headers["ETag"]) == (304, b"", etag)
    client.submit("mail.send", org="acme")
    changed = get(app, "/dashboard/o/acme/", operator, **{"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


def test_a_notice_after_an_action_is_one_of_the_dashboards_own_texts(app, operator):
    text = get(
        app, "/dashboard/o/acme/jobs?done=<b>hi</b>&n=<i>", operator
    ).body.decode()
    assert "<b>hi" not in text and "&lt;b&gt;" not in text
    shown = get(app, "/dashboard/o/acme/jobs?done=retry&n=x1", operator).body.decode()
    assert "Retried 0 job(s)." in shown


periodic = TaskRegistry()


@periodic.periodic(name="dash.nightly", every=3600, org="acme", payload={"full": True})
def nightly(full: bool) -> None: ...


@periodic.periodic(name="dash.theirs", every=60, org="globex")
def theirs() -> None: ...


def test_schedules_list_the_sessions_orgs_and_enqueue_one_now(app, client, operator):
    client.register_worker(make_worker(client), tasks=periodic)
    page = get(app, "/dashboard/schedules", operator)
    text = page.body.decode()
    assert "dash.nightly" in text and "every 3600 s" in text
    assert "dash.theirs" not in text
    form = f"csrf={csrf_of(page)}".encode()
    done = post(
        app, "/dashboard/schedules/dash.nightly/enqueue", operator, form, **SAME_ORIGIN
    )
    (job,) = client.list_jobs(org="acme", task="dash.nightly")
    assert (
        done.headers["Location"] == f"/dashboard/o/acme/jobs/{job.job_id}?done=enqueued"
    )
    assert job.payload == {"full": True}
    refused = post(
        app, "/dashboard/schedules/dash.theirs/enqueue", operator, form, **SAME_ORIGIN
    )
    assert refused.status == 404
    assert client.list_jobs(org="globex") == []


guarded = TaskRegistry()
guarded.breaker("smtp", fail_max=1, reset_timeout=600)


@guarded.task(name="dash.guarded", breaker="smtp", max_retries=0)
def dash_guarded() -> None: ...


def test_an_open_breaker_shows_a_banner_a_countdown_and_is_reset(app, client, operator):
    job = client.submit("dash.guarded", org="acme", tasks=guarded)
    worker = make_worker(client)
    _, claimed = client.exchange(worker, [], want=1, registry=guarded)
    outcome = {"job_id": job.job_id, "ok": False, "error": {"type": "SMTPError"}}
    client.exchange(worker, [(claimed[0][1], outcome)], want=0, registry=guarded)
    assert (
        "Open circuit breaker(s): smtp."
        in get(app, "/dashboard/o/acme/", operator).body.decode()
    )
    page = get(app, "/dashboard/breakers", operator)
    text = page.body.decode()
    assert "<td>open</td>" in text and "in 10 min" in text
    form = f"csrf={csrf_of(page)}".encode()
    done = post(app, "/dashboard/breakers/smtp/reset", operator, form, **SAME_ORIGIN)
    assert done.status == 303
    assert [b["state"] for b in client.breakers()] == ["closed"]


def test_the_redacted_keys_are_configurable(store_url, clock):
    settings = Settings(dashboard_redact=r"^to$")
    with Client(store_url, clock=clock, settings=settings) as client:
        app = App(client, dashboard=True)
        token = client.create_token(orgs=["acme"], role="viewer")[1]
        job = client.submit(
            "mail.send", org="acme", payload={"to": "x@y", "api_key": "k1"}
        )
        text = get(app, f"/dashboard/o/acme/jobs/{job.job_id}", token).body.decode()
    assert "x@y" not in text and "k1" in text


def test_a_login_link_page_holds_the_form_its_script_submits(app):
    page = get(app, "/dashboard/login")
    assert page.status == 200 and '<form id="login"' in page.body.decode()
    script = get(app, "/dashboard/static/dashboard.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert b"location.hash" in script.body


def test_the_system_page_shows_the_retention_cutoff_once_a_cleanup_deleted_notifications(
    app, client, clock, operator
):
    failed(client, "acme", "mail.send", 2)
    assert "none deleted" in get(app, "/dashboard/system", operator).body.decode()
    clock.advance(7200)
    report = client.cleanup(
        results_ttl_seconds=3600,
        events_ttl_seconds=3600,
        notifications_ttl_seconds=3600,
    )
    assert report["notifications"]["delete_count"] == 2
    cutoff = client.pruned_before()
    assert cutoff is not None
    text = get(app, "/dashboard/system", operator).body.decode()
    assert f"<td>notifications deleted before</td><td>{cutoff}</td>" in text


# -- bad input is a clear answer, never a crash -------------------------------------------


def test_bad_input_gets_a_one_line_answer_and_changes_nothing(app, client, operator):
    job = client.submit("mail.send", org="acme")
    path = f"/dashboard/o/acme/jobs/{job.job_id}/cancel"
    for form in (b"csrf=%C3%A9", b"csrf=%FF", b"\xff\xfe"):
        answer = post(app, path, operator, form, **SAME_ORIGIN)
        assert answer.status in (400, 403), form
    crowded = "&".join(f"status=queued&f{i}=1" for i in range(30))
    assert get(app, f"/dashboard/o/acme/jobs?{crowded}", operator).status == 400
    bogus = get(app, "/dashboard/o/acme/jobs?status=bogus", operator)
    said = "".join(parsed(bogus.body).text)
    assert bogus.status == 400 and "status: 'bogus' is not one of" in said
    shown = get(app, "/dashboard/o/acme/jobs?done=retry&n=\u00b2", operator)
    assert "Retried 0 job(s)." in shown.body.decode()
    assert client.get_job(job.job_id, org="acme").status == "queued"


def test_a_malformed_cookie_of_another_application_does_not_hide_the_session(
    app, operator
):
    page = get(
        app, "/dashboard/o/acme/", Cookie=f'foo={{"a":1}}; asyncjobs_session={operator}'
    )
    assert page.status == 200


def test_two_different_session_cookies_are_no_session(app, client, operator):
    other = client.create_token(orgs=["acme"], role="operator")[1]
    both = f"asyncjobs_session={other}; asyncjobs_session={operator}"
    page = get(app, "/dashboard/o/acme/", Cookie=both)
    assert (page.status, page.headers["Location"]) == (303, "/dashboard/")
    told = get(app, "/dashboard/", Cookie=both).body.decode()
    assert "two different session cookies" in told
    same = f"asyncjobs_session={operator}; asyncjobs_session={operator}"
    assert get(app, "/dashboard/o/acme/", Cookie=same).status == 200


def test_a_job_id_pasted_with_spaces_is_found(app, client, operator):
    job = client.submit("mail.send", org="acme")
    found = get(app, f"/dashboard/o/acme/jobs?q=%20{job.job_id}%20", operator)
    assert found.headers["Location"] == f"/dashboard/o/acme/jobs/{job.job_id}"


def test_static_files_are_cached_and_pages_are_not(app, operator):
    css = get(app, "/dashboard/static/dashboard.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    cache = [v for k, v in css.header_list if k == "Cache-Control"]
    assert cache == ["max-age=3600"]
    page = get(app, "/dashboard/o/acme/", operator)
    assert [v for k, v in page.header_list if k == "Cache-Control"] == ["no-store"]


def test_a_group_without_an_error_type_is_not_offered_as_a_group_retry(
    app, client, operator
):
    failed_with(client, {"message": "no type"})
    failed_with(client, {"type": "KeyError"})
    text = get(app, "/dashboard/o/acme/failures", operator).body.decode()
    assert "(no type)" in text
    assert text.count("retry this group") == 1 and "error_type=KeyError" in text


def test_a_result_hides_secret_looking_keys_as_the_payload_does(app, client, operator):
    job_id = completed_with(client, {"session_token": "s3cr3t", "rows": 7})
    page = get(app, f"/dashboard/o/acme/jobs/{job_id}", operator)
    text = "".join(parsed(page.body).text)
    assert "s3cr3t" not in text and '"rows": 7' in text


def test_another_session_or_minute_gets_another_etag(app, client, clock, operator):
    other = client.create_token(orgs=["acme"], role="operator")[1]
    mine = get(app, "/dashboard/o/acme/", operator).headers["ETag"]
    assert get(app, "/dashboard/o/acme/", other).headers["ETag"] != mine
    clock.advance(60)
    later = get(app, "/dashboard/o/acme/", operator, **{"If-None-Match": mine})
    assert later.status == 200 and later.headers["ETag"] != mine


def test_the_login_page_says_who_is_signed_in_before_a_link_replaces_the_session(
    app, operator
):
    text = get(app, "/dashboard/login", operator).body.decode()
    assert "signed in as alice (operator of acme)" in text
    assert 'id="from-link" hidden' in text
