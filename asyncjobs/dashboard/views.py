"""The dashboard's pages and actions: a WSGI application under ``/dashboard/``.

Pages are rendered on the server and work without JavaScript. An org's
pages live under ``/dashboard/o/<org>/``; a forbidden org, another org's
job and a missing id all answer the same 404 page. Every action is a POST
(``session.py`` checks where it comes from and its synchronizer token)
answered by a redirect; a viewer is shown no action and refused every one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from .. import ids
from ..client import Client
from ..domain import validation
from ..domain.tokens import AccessToken
from ..errors import (
    AsyncJobsError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from ..http.wire import STATUS_TEXT, BodyTimedOut, read_body
from ..records import Job, JobStatus
from . import session
from .html import Html, html, join, link, pretty_json, table

StartResponse = Callable[..., Any]
Answer = tuple[int, list[tuple[str, str]], Html | str]

FORM_BYTES = 64 << 10
PAYLOAD_CHARS = 64 << 10  # shown of a payload or a result, then cut
# Payload keys whose values are never shown (matched anywhere in the key).
REDACT = re.compile(r"pass|secret|token|key|auth|cookie|session|credential", re.I)
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
]
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1d2330;color:#fff}
header a{color:#cfe0ff}header form{margin-left:auto}
main{padding:1rem 1.2rem;max-width:72rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.2rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #dde2ea;vertical-align:top}
th{font-weight:600;background:#eef1f6}
pre{background:#f0f2f6;padding:.6rem;overflow:auto;max-height:30rem}
.banner{padding:.5rem .8rem;background:#fff3cd;border:1px solid #e7c65a;margin:.5rem 0}
.error{background:#fde8e8;border-color:#e59a9a}
.empty{color:#667}
form.inline{display:inline}
button{cursor:pointer}
@media (prefers-color-scheme: dark){
body{background:#14171d;color:#e4e7ee}th{background:#222734}
th,td{border-color:#2d3342}pre{background:#1d212b}a{color:#9cc2ff}
.banner{background:#3a3216;border-color:#7a6420}.error{background:#3d1d1d}}
"""


class Dashboard:
    """``Dashboard(Client)``: the WSGI application of ``/dashboard/``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            ("GET", re.compile(r"/dashboard/?"), self._home),
            ("POST", re.compile(r"/dashboard/session"), self._sign_in),
            ("POST", re.compile(r"/dashboard/signout"), self._sign_out),
            ("GET", re.compile(r"/dashboard/static/dashboard\.css"), self._style),
            ("GET", re.compile(r"/dashboard/o/(?P<org>[^/]+)/"), self._overview),
            ("GET", re.compile(r"/dashboard/o/(?P<org>[^/]+)/jobs"), self._jobs),
            (
                "GET",
                re.compile(r"/dashboard/o/(?P<org>[^/]+)/jobs/(?P<job_id>[^/]+)"),
                self._job,
            ),
            (
                "POST",
                re.compile(
                    r"/dashboard/o/(?P<org>[^/]+)/jobs/(?P<job_id>[^/]+)/"
                    r"(?P<action>retry|cancel)"
                ),
                self._act,
            ),
        ]

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            status, headers, body = self._dispatch(environ)
        except _SignIn:
            status, headers, body = _redirect("/dashboard/")
        except NotFound:
            status, headers, body = 404, [], self._page("Not found", _NOT_FOUND)
        except Forbidden as exc:
            status, headers, body = 403, [], self._message("Forbidden", exc.message)
        except Conflict as exc:
            status, headers, body = 409, [], self._message("Not now", exc.message)
        except PayloadTooLarge as exc:
            status, headers, body = 413, [], self._message("Too large", exc.message)
        except BodyTimedOut as exc:
            status, headers, body = 408, [], self._message("Too slow", str(exc))
        except InvalidInput as exc:
            status, headers, body = 400, [], self._message("Not valid", exc.message)
        except AsyncJobsError as exc:
            status, headers = exc.http_status if exc.http_status >= 500 else 503, []
            body = self._message("The store cannot be read", exc.message)
        data = body.encode()
        content_type = (
            "text/css" if environ.get("PATH_INFO", "").endswith(".css") else None
        )
        headers = [
            ("Content-Type", (content_type or "text/html") + "; charset=utf-8"),
            ("Content-Length", str(len(data))),
            *SECURITY_HEADERS,
            *headers,
        ]
        start_response(f"{status} {STATUS_TEXT.get(status, 'Error')}", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def _dispatch(self, environ: dict[str, Any]) -> Answer:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method == "HEAD":
            method = "GET"
        allowed = []
        for route_method, pattern, view in self.routes:
            match = pattern.fullmatch(path)
            if match:
                if route_method == method:
                    return view(environ, **match.groupdict())
                allowed.append(route_method)
        if allowed:
            return (
                405,
                [("Allow", ", ".join(allowed))],
                self._message("Not allowed", f"{method} is not allowed here"),
            )
        raise NotFound("no such page")

    # -- signing in --------------------------------------------------------------

    def _token(self, environ: dict[str, Any]) -> tuple[AccessToken, str] | None:
        """The session's token record and the token, or None when signed out."""
        token = session.presented(environ)
        if token is None:
            return None
        try:
            return self.client.authenticate(token), token
        except Unauthorized:
            return None

    def _signed_in(self, environ: dict[str, Any], org: str) -> tuple[AccessToken, str]:
        """The session for an org page; NotFound for an org the token is not for."""
        found = self._token(environ)
        if found is None:
            raise _SignIn()
        if org not in found[0].orgs:
            raise NotFound("no such page")
        return found

    def _home(self, environ: dict[str, Any]) -> Answer:
        found = self._token(environ)
        if found is None:
            return 200, [], self._login(None)
        record, token = found
        if len(record.orgs) == 1:
            return _redirect(_org_url(record.orgs[0]))
        items = join(html("<li>{}</li>", link(_org_url(o), o)) for o in record.orgs)
        body = html("<h1>Orgs</h1><ul>{}</ul>", items)
        return 200, [], self._page("Orgs", body, (record, token))

    def _login(self, problem: str | None) -> Html:
        note = html('<p class="banner error">{}</p>', problem) if problem else Html("")
        body = html(
            "<h1>Sign in</h1>{}"
            "<p>Paste an access token (<code>asyncjobs tokens create --org ORG "
            "--role viewer</code>).</p>"
            '<form method="post" action="/dashboard/session">'
            '<label>Token <input name="token" type="password" autocomplete="off" '
            'required size="60"></label> <button>Sign in</button></form>',
            note,
        )
        return self._page("Sign in", body)

    def _sign_in(self, environ: dict[str, Any]) -> Answer:
        session.check_origin(environ)
        token = _form(environ).get("token", "").strip()
        try:
            self.client.authenticate(token)
        except Unauthorized:
            return 401, [], self._login("That token is not valid.")
        status, headers, body = _redirect("/dashboard/")
        return status, [*headers, ("Set-Cookie", session.cookie(token, environ))], body

    def _sign_out(self, environ: dict[str, Any]) -> Answer:
        session.check_origin(environ)
        found = self._token(environ)
        if found is not None:
            session.check_csrf(found[1], _form(environ))
        status, headers, body = _redirect("/dashboard/")
        return status, [*headers, ("Set-Cookie", session.cleared())], body

    def _style(self, environ: dict[str, Any]) -> Answer:
        return 200, [("Cache-Control", "max-age=3600")], STYLE

    # -- an org's pages ------------------------------------------------------------

    def _overview(self, environ: dict[str, Any], org: str) -> Answer:
        who = self._signed_in(environ, org)
        queues = table(
            ["Queue", "Depth", "Runnable", "Delayed", "Running", "Lag (s)", "Held"],
            (
                [
                    q["queue"],
                    q["depth"],
                    q["runnable"],
                    q["delayed"],
                    q["running"],
                    f"{q['lag_s']:g}",
                    q["held"],
                ]
                for q in self.client.queues(org=org)
            ),
            "No job is queued or running.",
        )
        failed = self.client.page_jobs(org=org, status="failed", limit=5)
        failures = _job_rows(org, failed.items, "No job has failed.")
        body = html(
            "<h1>{}</h1>{}<h2>Queues</h2>{}<h2>Last failures</h2>{}<p>{}</p>",
            org,
            self._banners(),
            queues,
            failures,
            link(_org_url(org, "jobs?status=failed"), "All failed jobs"),
        )
        return 200, [], self._page(f"{org}: overview", body, who, org)

    def _banners(self) -> Html:
        try:
            summary = self.client.stats()
        except AsyncJobsError as exc:
            return html(
                '<p class="banner error">The store cannot be read: {}</p>', exc.message
            )
        notes = []
        if summary["queue_depth"] and not summary["workers_seen"]:
            notes.append("No worker has been seen: queued jobs are not being run.")
        opened = [b["name"] for b in summary["breakers"] if b.get("state") == "open"]
        if opened:
            notes.append(f"Open circuit breaker(s): {', '.join(opened)}.")
        return join(html('<p class="banner">{}</p>', note) for note in notes)

    def _jobs(self, environ: dict[str, Any], org: str) -> Answer:
        who = self._signed_in(environ, org)
        query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=40)
        statuses = [s for s in query.get("status", []) if s]
        queue = (query.get("queue") or [""])[-1] or None
        task = (query.get("task") or [""])[-1] or None
        cursor = (query.get("cursor") or [""])[-1] or None
        page = self.client.page_jobs(
            org=org,
            status=statuses or None,
            queue=queue,
            task=task,
            limit=50,
            cursor=cursor,
        )
        boxes = join(
            html(
                '<label><input type="checkbox" name="status" value="{}"{}> {}</label> ',
                s.value,
                Html(" checked") if s.value in statuses else Html(""),
                s.value,
            )
            for s in JobStatus
        )
        filters = html(
            '<form method="get" class="filters">{}'
            '<label>Queue <input name="queue" value="{}"></label> '
            '<label>Task <input name="task" value="{}"></label> '
            "<button>Filter</button></form>",
            boxes,
            queue or "",
            task or "",
        )
        more = Html("")
        if page.next_cursor is not None:
            args = [("status", s) for s in statuses]
            args += [(k, v) for k, v in (("queue", queue), ("task", task)) if v]
            args.append(("cursor", page.next_cursor))
            more = html("<p>{}</p>", link(f"?{urlencode(args)}", "Next page"))
        body = html(
            "<h1>Jobs</h1>{}{}{}",
            filters,
            _job_rows(org, page.items, "No job matches."),
            more,
        )
        return 200, [], self._page(f"{org}: jobs", body, who, org)

    def _job(self, environ: dict[str, Any], org: str, job_id: str) -> Answer:
        who = self._signed_in(environ, org)
        job = self.client.get_job(_job_id(job_id), org=org)
        fields = table(
            ["Field", "Value"],
            (
                [name, value]
                for name, value in job.to_dict().items()
                if name not in ("payload", "error")
            ),
            "",
        )
        payload = pretty_json(_redacted(job.payload), limit=PAYLOAD_CHARS)
        error = _error(job, operator=who[0].operator)
        events = table(
            ["Seq", "Event", "Run", "Attempt", "At", "Data"],
            (
                [e.seq, e.event_type, e.run, e.attempt, e.created_at, _data(e.data)]
                for e in self.client.events(job.job_id, org=org)
            ),
            "No event.",
        )
        result = Html("")
        if job.result_id is not None:
            value = self.client.get_result(job.result_id, org=org, view="pinned")
            result = html(
                "<h2>Result</h2>{}",
                pretty_json(value.get("value"), limit=PAYLOAD_CHARS),
            )
        notes = table(
            ["Event", "At", "Read"],
            (
                [n.event_type, n.created_at, n.read_at or "-"]
                for n in self.client.notifications(job.job_id, org=org, limit=20)
            ),
            "No notification.",
        )
        command = f"asyncjobs status {job.job_id} --org {org}"
        body = html(
            "<h1>{}</h1><p>{} · {}</p>{}<h2>Fields</h2>{}<h2>Payload</h2>{}{}"
            "<h2>Events</h2>{}{}<h2>Notifications</h2>{}"
            "<h2>From the shell</h2><pre>{}</pre>",
            job.job_id,
            job.task,
            job.status.value,
            self._actions(job, org, who),
            fields,
            payload,
            error,
            events,
            result,
            notes,
            command,
        )
        return 200, [], self._page(f"{org}: {job.job_id}", body, who, org)

    def _actions(self, job: Job, org: str, who: tuple[AccessToken, str]) -> Html:
        """Retry and cancel buttons, for an operator only (a viewer sees none)."""
        record, token = who
        if not record.operator:
            return Html("")
        buttons = []
        if job.status.terminal:
            buttons.append(("retry", "Retry"))
        if job.status is JobStatus.QUEUED or (
            job.status is JobStatus.RUNNING and job.cancel_requested_at is None
        ):
            buttons.append(("cancel", "Cancel"))
        return join(
            html(
                '<form method="post" class="inline" action="{}">'
                '<input type="hidden" name="{}" value="{}"><button>{}</button></form> ',
                _org_url(org, f"jobs/{job.job_id}/{action}"),
                session.CSRF_FIELD,
                session.csrf_token(token),
                label,
            )
            for action, label in buttons
        )

    def _act(
        self, environ: dict[str, Any], org: str, job_id: str, action: str
    ) -> Answer:
        session.check_origin(environ)
        record, token = self._signed_in(environ, org)
        session.check_csrf(token, _form(environ))
        if not record.operator:
            raise Forbidden("a viewer's session cannot act; it takes an operator's")
        act = self.client.retry if action == "retry" else self.client.cancel
        act(_job_id(job_id), org=org)
        return _redirect(_org_url(org, f"jobs/{job_id}"))

    # -- layout ----------------------------------------------------------------------

    def _page(
        self,
        title: str,
        body: Html,
        who: tuple[AccessToken, str] | None = None,
        org: str | None = None,
    ) -> Html:
        nav = Html("")
        if who is not None:
            record, token = who
            places = []
            if org is not None:
                places = [
                    link(_org_url(org), "Overview"),
                    link(_org_url(org, "jobs"), "Jobs"),
                ]
            if len(record.orgs) > 1:
                places.append(link("/dashboard/", "Orgs"))
            nav = html(
                "<nav>{}</nav><span>{} · {}</span>"
                '<form method="post" action="/dashboard/signout">'
                '<input type="hidden" name="{}" value="{}">'
                "<button>Sign out</button></form>",
                join(places, " · "),
                record.label or record.token_id,
                record.role,
                session.CSRF_FIELD,
                session.csrf_token(token),
            )
        return html(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>{} · asyncjobs</title>"
            '<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>'
            "<body><header><strong>asyncjobs</strong>{}</header><main>{}</main></body></html>",
            title,
            nav,
            body,
        )

    def _message(self, title: str, message: str) -> Html:
        return self._page(title, html("<h1>{}</h1><p>{}</p>", title, message))


class _SignIn(Exception):
    """An org page asked for without a session: sent to sign in."""


_NOT_FOUND = html(
    "<h1>Not found</h1><p>There is no such page, or it is not yours to see.</p>"
)


def _redirect(to: str) -> Answer:
    return 303, [("Location", to)], ""


def _org_url(org: str, rest: str = "") -> str:
    return f"/dashboard/o/{quote(org, safe='')}/{rest}"


def _job_id(value: str) -> str:
    if not ids.is_id(value, "job"):
        raise NotFound("no such page")
    return value


def _job_rows(org: str, jobs: list[Job], empty: str) -> Html:
    return table(
        ["Job", "Task", "Queue", "Status", "Attempts", "Created", "Error"],
        (
            [
                link(_org_url(org, f"jobs/{j.job_id}"), j.job_id),
                j.task,
                j.queue,
                j.status.value,
                j.attempts,
                j.created_at,
                (j.error or {}).get("type", "") if isinstance(j.error, dict) else "",
            ]
            for j in jobs
        ),
        empty,
    )


def _error(job: Job, *, operator: bool) -> Html:
    if not isinstance(job.error, dict):
        return Html("")
    trace = job.error.get("traceback")
    folded = (
        html("<details><summary>Traceback</summary><pre>{}</pre></details>", trace)
        if operator and trace
        else Html("")
    )
    return html(
        "<h2>Error</h2><p><strong>{}</strong>: {}</p>{}",
        job.error.get("type", ""),
        job.error.get("message", ""),
        folded,
    )


def _data(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items())


def _redacted(value: Any) -> Any:
    """The payload with the values of secret-looking keys hidden, at any depth."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if REDACT.search(str(k)) else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _form(environ: dict[str, Any]) -> dict[str, str]:
    """A url-encoded form body, at most FORM_BYTES."""
    raw = read_body(environ, FORM_BYTES, "form")
    try:
        parsed = parse_qs(raw.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"form: {validation.shown(str(exc))}") from None
    return {key: values[-1] for key, values in parsed.items()}
