"""The dashboard's application under ``/dashboard/``: routing, sessions, layout.

Pages are rendered on the server and work without JavaScript. An org's
pages live under ``/dashboard/o/<org>/`` (``orgs.py``); the store-wide
pages are an operator's (``operators.py``). A forbidden org, another org's
job and a missing id all answer the same 404 page. Every action is a POST
(``session.py`` checks where it comes from and its synchronizer token)
answered by a redirect; a viewer is shown no action and refused every one.

Each page carries an ``ETag`` made of the store's change mark, the minute
and the session's token: a live region re-fetching its page with it is
answered 304, after two small reads (the token, the mark), while nothing
changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

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
from . import assets, operators, orgs, session
from .html import Html, html, join, link
from .widgets import org_url

StartResponse = Callable[..., Any]
Answer = tuple[int, list[tuple[str, str]], Html | str]

FORM_BYTES = 64 << 10
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
STATIC = {
    "dashboard.css": ("text/css", assets.STYLE),
    "dashboard.js": ("text/javascript", assets.SCRIPT),
}
# What a redirect after an action may ask a page to say: fixed texts, so
# that a link cannot make a page say anything else.
NOTICES = {
    "retry": "Retried {n} job(s).",
    "cancel": "Canceled {n} job(s) (a running one stops at its next check).",
    "read": "Marked {n} notification(s) read.",
    "enqueued": "Enqueued the job now.",
    "reset": "The breaker is closed.",
}


@dataclass
class Request:
    """One signed-in request: its session, its org, its query."""

    environ: dict[str, Any]
    token: AccessToken
    secret: str  # the access token itself, for the synchronizer token
    now: datetime
    org: str | None = None
    etag: str | None = None
    query: dict[str, list[str]] = field(default_factory=dict)

    @property
    def operator(self) -> bool:
        return self.token.operator

    def arg(self, name: str) -> str | None:
        """The last non-blank value of a query parameter, stripped; an error
        type is taken as it is (it may start with a space)."""
        if name == "error_type":
            values = [v for v in self.query.get(name, []) if v]
        else:
            values = [v.strip() for v in self.query.get(name, []) if v.strip()]
        return values[-1] if values else None

    def args(self, name: str) -> list[str]:
        return [v for v in self.query.get(name, []) if v]

    def csrf(self) -> Html:
        """The hidden field every form of an action carries."""
        return html(
            '<input type="hidden" name="{}" value="{}">',
            session.CSRF_FIELD,
            session.csrf_token(self.secret),
        )

    def notice(self) -> Html:
        """The message a redirect after an action asked for (``?done=…&n=…``)."""
        text = NOTICES.get(self.arg("done") or "")
        if text is None:
            return Html("")
        n = self.arg("n") or "0"
        shown = f"{int(n):,}" if n.isascii() and n.isdigit() and len(n) < 10 else "0"
        more = " More match: run it again." if self.arg("more") == "1" else ""
        return html(
            '<p class="banner ok" role="status">{}{}</p>', text.format(n=shown), more
        )


class Dashboard:
    """``Dashboard(Client)``: the WSGI application of ``/dashboard/``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.redact = re.compile(client.settings.dashboard_redact, re.I)
        org, job = r"/dashboard/o/(?P<org>[^/]+)/", r"jobs/(?P<job_id>[^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            ("GET", re.compile(r"/dashboard/?"), self._home),
            ("GET", re.compile(r"/dashboard/login"), self._login_page),
            ("POST", re.compile(r"/dashboard/session"), self._sign_in),
            ("POST", re.compile(r"/dashboard/signout"), self._sign_out),
            ("GET", re.compile(r"/dashboard/static/(?P<name>[a-z.]+)"), self._static),
            ("GET", re.compile(org), self._org_page(orgs.overview)),
            ("GET", re.compile(org + "jobs"), self._jobs),
            ("GET", re.compile(org + job), self._job),
            ("POST", re.compile(org + job + "/(?P<action>retry|cancel)"), self._act),
            ("GET", re.compile(org + "failures"), self._org_page(orgs.failures)),
            ("GET", re.compile(org + "inbox"), self._org_page(orgs.inbox)),
            ("POST", re.compile(org + "inbox/mark-read"), self._mark_read),
            ("GET", re.compile(org + "bulk"), self._bulk_preview),
            ("POST", re.compile(org + "bulk"), self._bulk),
            *(
                ("GET", re.compile(f"/dashboard/{name}"), self._operator_page(name))
                for name in operators.PAGES
            ),
            (
                "POST",
                re.compile(r"/dashboard/schedules/(?P<name>[^/]+)/enqueue"),
                self._enqueue,
            ),
            (
                "POST",
                re.compile(r"/dashboard/breakers/(?P<name>[^/]+)/reset"),
                self._reset,
            ),
        ]

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            status, headers, body = self._dispatch(environ)
        except _Unchanged as exc:
            status, headers, body = 304, [("ETag", exc.etag)], ""
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
        if status == 304:
            data = b""
        kind = next(
            (
                t
                for n, (t, _) in STATIC.items()
                if environ.get("PATH_INFO") == f"/dashboard/static/{n}"
            ),
            "text/html",
        )
        given = {name for name, _ in headers}
        headers = [
            ("Content-Type", f"{kind}; charset=utf-8"),
            ("Content-Length", str(len(data))),
            *((name, value) for name, value in SECURITY_HEADERS if name not in given),
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

    # -- sessions -------------------------------------------------------------------

    def _token(self, environ: dict[str, Any]) -> tuple[AccessToken, str] | None:
        """The session's token record and the token, or None when signed out."""
        token = session.presented(environ)
        if token is None:
            return None
        try:
            return self.client.authenticate(token), token
        except Unauthorized:
            return None

    def _session(
        self, environ: dict[str, Any], org: str | None = None, *, operator: bool = False
    ) -> Request:
        """The request of a signed-in page: NotFound for an org the token is not
        for, Forbidden for an operator's page; 304 when the page is unchanged."""
        found = self._token(environ)
        if found is None:
            raise _SignIn()
        record, token = found
        if org is not None and org not in record.orgs:
            raise NotFound("no such page")
        if operator and not record.operator:
            raise Forbidden(
                "this page is an operator's; a viewer's token cannot open it"
            )
        try:
            query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=40)
        except ValueError:
            raise InvalidInput("query: more than 40 fields") from None
        now = self.client.now()
        etag = None
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            mark = self.client.change_mark()
            etag = f'W/"{mark}-{now:%Y%m%d%H%M}-{record.token_id}"'
            if environ.get("HTTP_IF_NONE_MATCH") == etag:
                raise _Unchanged(etag)
        return Request(environ, record, token, now, org, etag, query)

    def _acting(
        self, environ: dict[str, Any], org: str | None = None
    ) -> tuple[Request, dict[str, str]]:
        """An action's request and form: same origin, a session, its
        synchronizer token, and an operator's role, in that order."""
        session.check_origin(environ)
        req = self._session(environ, org)
        form = _form(environ)
        session.check_csrf(req.secret, form)
        if not req.operator:
            raise Forbidden("a viewer's session cannot act; it takes an operator's")
        return req, form

    def _home(self, environ: dict[str, Any]) -> Answer:
        try:
            req = self._session(environ)
        except _SignIn:
            return 200, [], self._login(_conflict(environ))
        if len(req.token.orgs) == 1:
            return _redirect(org_url(req.token.orgs[0]))
        items = join(html("<li>{}</li>", link(org_url(o), o)) for o in req.token.orgs)
        body = html("<h1>Orgs</h1><ul>{}</ul>", items)
        return self._answer(req, "Orgs", body)

    def _login(self, problem: str | None, current: AccessToken | None = None) -> Html:
        note = html('<p class="banner error">{}</p>', problem) if problem else Html("")
        if current is not None:
            note = html(
                '{}<p class="banner">This browser is signed in as {} ({} of {}); '
                "signing in replaces that session.</p>",
                note,
                current.label or current.token_id,
                current.role,
                ", ".join(current.orgs),
            )
        body = html(
            "<h1>Sign in</h1>{}"
            '<p id="from-link" hidden><strong>Sign in with the token of the link '
            "you opened?</strong> Only if you asked for that link.</p>"
            "<p>Paste an access token (<code>asyncjobs tokens create --org ORG "
            "--role viewer</code>), or open the link of "
            "<code>asyncjobs dashboard login-url</code>.</p>"
            '<form id="login" method="post" action="/dashboard/session">'
            '<label>Token <input name="token" type="password" autocomplete="off" '
            'required size="60"></label> <button>Sign in</button></form>',
            note,
        )
        return self._page("Sign in", body)

    def _login_page(self, environ: dict[str, Any]) -> Answer:
        found = self._token(environ)
        return 200, [], self._login(_conflict(environ), found[0] if found else None)

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

    def _static(self, environ: dict[str, Any], name: str) -> Answer:
        if name not in STATIC:
            raise NotFound("no such file")
        return 200, [("Cache-Control", "max-age=3600")], STATIC[name][1]

    # -- an org's pages (orgs.py renders them) --------------------------------

    def _org_page(
        self, render: Callable[..., tuple[str, Html]]
    ) -> Callable[..., Answer]:
        def view(environ: dict[str, Any], org: str) -> Answer:
            req = self._session(environ, org)
            title, body = render(self.client, req)
            return self._answer(req, f"{org}: {title}", body)

        return view

    def _jobs(self, environ: dict[str, Any], org: str) -> Answer:
        req = self._session(environ, org)
        wanted = req.arg("q")
        if wanted is not None:
            found = orgs.find(self.client, org, wanted)
            if found is not None:
                return _redirect(org_url(org, f"jobs/{found}"))
        title, body = orgs.jobs(self.client, req)
        return self._answer(req, f"{org}: {title}", body)

    def _job(self, environ: dict[str, Any], org: str, job_id: str) -> Answer:
        req = self._session(environ, org)
        title, body = orgs.job(self.client, req, orgs.job_id(job_id), self.redact)
        return self._answer(req, f"{org}: {title}", body)

    def _act(
        self, environ: dict[str, Any], org: str, job_id: str, action: str
    ) -> Answer:
        self._acting(environ, org)
        act = self.client.retry if action == "retry" else self.client.cancel
        act(orgs.job_id(job_id), org=org)
        return _redirect(org_url(org, f"jobs/{job_id}?done={action}&n=1"))

    def _mark_read(self, environ: dict[str, Any], org: str) -> Answer:
        _, form = self._acting(environ, org)
        one = form.get("notification_id")
        if not one and form.get("all") != "1":
            raise InvalidInput("mark-read: a notification_id, or all=1")
        changed = self.client.mark_read(
            org=org, notification_ids=[one] if one else [], every=not one
        )
        return _redirect(org_url(org, f"inbox?done=read&n={changed}"))

    def _bulk_preview(self, environ: dict[str, Any], org: str) -> Answer:
        req = self._session(environ, org)
        if not req.operator:
            raise Forbidden("a viewer's session cannot act; it takes an operator's")
        title, body = orgs.bulk_preview(self.client, req)
        return self._answer(req, f"{org}: {title}", body)

    def _bulk(self, environ: dict[str, Any], org: str) -> Answer:
        _, form = self._acting(environ, org)
        return _redirect(orgs.bulk(self.client, org, form))

    # -- the store-wide pages (operators.py renders them) ----------------------

    def _operator_page(self, name: str) -> Callable[..., Answer]:
        render = operators.PAGES[name]

        def view(environ: dict[str, Any]) -> Answer:
            req = self._session(environ, operator=True)
            title, body = render(self.client, req)
            return self._answer(req, title, body)

        return view

    def _enqueue(self, environ: dict[str, Any], name: str) -> Answer:
        req, _ = self._acting(environ)
        job = operators.enqueue(self.client, req, name)
        return _redirect(org_url(job.org_id, f"jobs/{job.job_id}?done=enqueued"))

    def _reset(self, environ: dict[str, Any], name: str) -> Answer:
        self._acting(environ)
        self.client.reset_breaker(name)
        return _redirect("/dashboard/breakers?done=reset")

    # -- layout -----------------------------------------------------------------------

    def _answer(self, req: Request, title: str, body: Html) -> Answer:
        headers = [("ETag", req.etag)] if req.etag else []
        return 200, headers, self._page(title, html("{}{}", req.notice(), body), req)

    def _page(self, title: str, body: Html, req: Request | None = None) -> Html:
        nav = Html("")
        meta = Html("")
        if req is not None:
            places = []
            if req.org is not None:
                places = [
                    link(org_url(req.org), "Overview"),
                    link(org_url(req.org, "jobs"), "Jobs"),
                    link(org_url(req.org, "failures"), "Failures"),
                    link(org_url(req.org, "inbox"), "Inbox"),
                ]
            if len(req.token.orgs) > 1:
                places.append(link("/dashboard/", "Orgs"))
            if req.operator:
                places += [link(f"/dashboard/{n}", n.title()) for n in operators.PAGES]
            nav = html(
                "<nav>{}</nav>"
                '<form id="refresh" hidden><label>Refresh <select name="seconds">'
                '<option value="2">2 s</option><option value="5">5 s</option>'
                '<option value="15">15 s</option><option value="60">1 min</option>'
                '<option value="0">off</option></select></label></form>'
                '<span class="who">{} · {}</span>'
                '<form method="post" action="/dashboard/signout">{}'
                "<button>Sign out</button></form>",
                join(places, " "),
                req.token.label or req.token.token_id[:12] + "…",
                req.token.role,
                req.csrf(),
            )
            if req.etag:
                meta = html('<meta name="asyncjobs-etag" content="{}">', req.etag)
        return html(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">{}'
            "<title>{} · asyncjobs</title>"
            '<link rel="stylesheet" href="/dashboard/static/dashboard.css">'
            '<script src="/dashboard/static/dashboard.js" defer></script></head>'
            "<body><header><strong>asyncjobs</strong>{}</header><main>"
            '<p id="stale" class="banner error" role="alert" hidden>This page could '
            "not be refreshed (the store cannot be read, or the session ended): "
            "it shows what was true before.</p>{}</main></body></html>",
            meta,
            title,
            nav,
            body,
        )

    def _message(self, title: str, message: str) -> Html:
        return self._page(title, html("<h1>{}</h1><p>{}</p>", title, message))


class _SignIn(Exception):
    """A page asked for without a session: sent to sign in."""


class _Unchanged(Exception):
    """The page is as the ETag the request carries says: 304."""

    def __init__(self, etag: str) -> None:
        super().__init__(etag)
        self.etag = etag


_NOT_FOUND = html(
    "<h1>Not found</h1><p>There is no such page, or it is not yours to see.</p>"
)


def _conflict(environ: dict[str, Any]) -> str | None:
    if not session.conflicting(environ):
        return None
    return (
        "This browser sends two different session cookies (another site on "
        "this host may have set one): clear this site's cookies, then sign in."
    )


def _redirect(to: str) -> Answer:
    return 303, [("Location", to)], ""


def _form(environ: dict[str, Any]) -> dict[str, str]:
    """A url-encoded form body, at most FORM_BYTES."""
    raw = read_body(environ, FORM_BYTES, "form")
    try:
        parsed = parse_qs(raw.decode("utf-8"), max_num_fields=40)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"form: {validation.shown(str(exc))}") from None
    return {key: values[-1] for key, values in parsed.items()}
