"""The HTTP API as a WSGI application (stdlib only).

Serve it with gunicorn or waitress in production (``asyncjobs.wsgi:application``
reads ``ASYNCJOBS_STORE``), or with ``asyncjobs serve`` (the threaded stdlib
server in ``http/server.py``). The tenant comes from ``X-Org-Id`` or
``X-Tenant-Id``; both present must agree, and neither may be empty.

Errors are answered here, in ``App._answer`` and nowhere else, as
``{"error": {"code", "message"}}`` with the status their class in
``errors.py`` carries: 400 invalid input, 404 missing (another org's record
and a malformed id answer exactly alike), 409 conflict, 413 body or payload
over the limit, 503 store unavailable. The HTTP layer's own: 404 no route,
405 wrong method, 408 body not in by the server's deadline. A bug answers
500 without detail.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from .. import clock as clocks
from .. import ids, logs
from ..client import SUBMIT_FIELDS, Client
from ..config import AUTH_MODES, Settings
from ..dashboard.views import Dashboard
from ..domain import bulk, metrics, observability, tokens, validation
from ..errors import (
    AsyncJobsError,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from ..records import Job
from . import openapi
from .wire import STATUS_TEXT, BodyTimedOut, read_body

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
SUMMARY_TTL_SECONDS = 1.0
WINDOW_SECONDS = 3600
# The org comes from the header; allow_unknown is the request's, not the job's.
BODY_FIELDS = (SUBMIT_FIELDS - {"org"}) | {"allow_unknown"}
# What a bulk retry or cancel takes in its body (the org comes from the header).
_FILTERS = {"status", "queue", "task", "created_before", "error_type"}
BULK_FIELDS = {
    "retry": frozenset(_FILTERS | {"failed_since", "dry_run", "limit"}),
    "cancel": frozenset(_FILTERS | {"dry_run", "limit"}),
}
BULK_BODY_BYTES = 64 << 10
# Routes that show every org's figures: an operator's token only.
OPERATORS_ONLY = frozenset({"/metrics", "/telemetry"})


class HttpError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: list | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []


class RequestStats:
    """This process's request figures: cumulative counts and an hour of samples."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, int], int] = {}
        self.durations: dict[str, dict[str, Any]] = {}
        self.window: deque[tuple[float, str, int, float]] = deque(maxlen=200_000)
        self.last_request_utc: str | None = None

    def record(self, path: str, status: int, seconds: float, stamp: str) -> None:
        with self.lock:
            self.counts[(path, status)] = self.counts.get((path, status), 0) + 1
            histogram = self.durations.get(path) or metrics.empty_histogram(
                "http", metrics.HTTP_BUCKETS
            )
            self.durations[path] = metrics.observe(
                histogram, seconds, metrics.HTTP_BUCKETS
            )
            self.window.append((time.monotonic(), path, status, seconds * 1000))
            self.last_request_utc = stamp

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"counts": dict(self.counts), "durations": dict(self.durations)}

    def last_hour(self) -> dict[str, Any]:
        cutoff = time.monotonic() - WINDOW_SECONDS
        with self.lock:
            while self.window and self.window[0][0] < cutoff:
                self.window.popleft()
            samples = list(self.window)
            last = self.last_request_utc
        by_path: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for _, path, status, _ in samples:
            by_path[path] = by_path.get(path, 0) + 1
            by_status[str(status)] = by_status.get(str(status), 0) + 1
        latencies = sorted(s[3] for s in samples)
        p95 = (
            latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            if latencies
            else None
        )
        errors = sum(1 for s in samples if s[2] >= 500)
        return {
            "total_1h": len(samples),
            "error_rate_1h": round(errors / len(samples), 6) if samples else 0.0,
            "latency_p95_ms": round(p95, 3) if p95 is not None else None,
            "by_path": dict(sorted(by_path.items())),
            "by_status": dict(sorted(by_status.items())),
            "last_request_utc": last,
        }


def _job_id(value: str) -> str:
    if not ids.is_id(value, "job"):
        raise NotFound(f"job {validation.shown_id(value)} not found")
    return value


class App:
    """The WSGI application: ``App(Client(...))``."""

    ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
        ("GET", re.compile(r"/health"), "health", "/health"),
        ("GET", re.compile(r"/telemetry"), "telemetry", "/telemetry"),
        ("GET", re.compile(r"/metrics"), "metrics", "/metrics"),
        ("GET", re.compile(r"/openapi\.json"), "openapi", "/openapi.json"),
        ("POST", re.compile(r"/analyze/jobs"), "submit", "/analyze/jobs"),
        ("GET", re.compile(r"/analyze/jobs"), "jobs", "/analyze/jobs"),
        # bulk, by filter; and one job (each its own template, for the figures)
        *[
            (
                "POST",
                re.compile(rf"/analyze/jobs/(?P<action>{a})"),
                "bulk",
                f"/analyze/jobs/{a}",
            )
            for a in bulk.ACTIONS
        ],
        *[
            (
                "POST",
                re.compile(rf"/analyze/jobs/(?P<job_id>[^/]+)/(?P<action>{a})"),
                "act",
                f"/analyze/jobs/{{job_id}}/{a}",
            )
            for a in bulk.ACTIONS
        ],
        (
            "GET",
            re.compile(r"/analyze/jobs/(?P<job_id>[^/]+)/notifications"),
            "notifications",
            "/analyze/jobs/{job_id}/notifications",
        ),
        (
            "GET",
            re.compile(r"/analyze/jobs/(?P<job_id>[^/]+)"),
            "job",
            "/analyze/jobs/{job_id}",
        ),
        (
            "GET",
            re.compile(r"/analyze/results/(?P<result_id>[^/]+)"),
            "result",
            "/analyze/results/{result_id}",
        ),
        ("GET", re.compile(r"/analyze/inbox"), "inbox", "/analyze/inbox"),
        (
            "POST",
            re.compile(r"/analyze/inbox/mark-read"),
            "mark_read",
            "/analyze/inbox/mark-read",
        ),
        ("GET", re.compile(r"/analyze/queues"), "queues", "/analyze/queues"),
        ("GET", re.compile(r"/analyze/breakers"), "breakers", "/analyze/breakers"),
        (
            "POST",
            re.compile(r"/analyze/breakers/(?P<name>[^/]+)/reset"),
            "reset_breaker",
            "/analyze/breakers/{name}/reset",
        ),
    ]

    def __init__(
        self,
        client: Client,
        *,
        started_utc: str | None = None,
        auth: str | None = None,
        dashboard: bool | None = None,
    ) -> None:
        self.client = client
        # the web dashboard under /dashboard/ (dashboard/views.py), when asked for
        shown = client.settings.dashboard if dashboard is None else dashboard
        self.dashboard = Dashboard(client) if shown else None
        # "tokens": every route but /health takes a bearer token (domain/tokens.py)
        self.auth = client.settings.auth if auth is None else auth
        if self.auth not in AUTH_MODES:
            raise InvalidInput(f"auth: {validation.shown(auth)} is not none or tokens")
        self.stats = RequestStats()
        self.started_utc = started_utc or clocks.to_iso(clocks.now())
        self._summary: tuple[float, dict[str, Any]] | None = None
        self._summary_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", request_id):
            request_id = ids.new_id("evt", clocks.now())[4:]
        with logs.context(request_id=request_id):
            path = environ.get("PATH_INFO") or "/"
            if self.dashboard is not None and (
                path == "/dashboard" or path.startswith("/dashboard/")
            ):
                return self.dashboard(environ, start_response)
            return self._answer(environ, start_response, started, request_id)

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        started: float,
        request_id: str,
    ) -> Iterable[bytes]:
        template = "unmatched"
        headers: list[tuple[str, str]] = []
        try:
            handler, params, template = self._route(environ)
            self._authorize(environ, template)
            status, body, content_type = handler(environ, **params)
        except HttpError as exc:
            status, body, content_type = (
                exc.status,
                _error_body(exc.code, exc.message),
                None,
            )
            headers += exc.headers
        except AsyncJobsError as exc:
            status = exc.http_status
            body, content_type = _error_body(exc.code, exc.message), None
        except Exception:
            log.exception("unexpected error answering %s", template)
            status, body, content_type = (
                500,
                _error_body("internal", "internal error"),
                None,
            )
        if isinstance(body, (dict, list)):
            data = (json.dumps(body, allow_nan=False) + "\n").encode()
            content_type = "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
        headers = [
            ("Content-Type", content_type or "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            ("X-Request-ID", request_id),
            *headers,
        ]
        start_response(f"{status} {STATUS_TEXT.get(status, 'Error')}", headers)
        self.stats.record(
            template, status, time.perf_counter() - started, clocks.to_iso(clocks.now())
        )
        if environ.get("REQUEST_METHOD", "").upper() == "HEAD":
            return [b""]  # the GET answer's headers, Content-Length included
        return [data]

    def _route(
        self, environ: dict[str, Any]
    ) -> tuple[Callable[..., Any], dict[str, str], str]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        allowed = []
        literal: list[str] = []
        for route_method, pattern, name, template in self.ROUTES:
            match = pattern.fullmatch(path)
            if match:
                if route_method == method or (
                    method == "HEAD" and route_method == "GET"
                ):
                    return getattr(self, f"_{name}"), match.groupdict(), template
                allowed.append(route_method)
                if "{" not in template:
                    literal.append(route_method)
        if allowed:
            # /analyze/jobs/retry is the bulk route, though a job id could be
            # spelled so: its own methods are the ones to name.
            methods = literal or allowed
            raise HttpError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here",
                [("Allow", ", ".join(sorted(set(methods))))],
            )
        raise HttpError(404, "not_found", "no such route")

    def _authorize(self, environ: dict[str, Any], template: str) -> None:
        """With token auth, the caller's token, before the route touches the store.

        401 (with ``WWW-Authenticate``) for no token or one that is not
        live; 403 for a viewer's POST and a viewer on ``/metrics`` or
        ``/telemetry``. Whether the token is for the route's org is checked
        in ``_org``, also before any record is read.
        """
        environ["asyncjobs.token"] = None
        if self.auth != "tokens" or template == "/health":
            return
        scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not presented.strip():
                raise Unauthorized("Authorization: Bearer TOKEN is required")
            token = self.client.authenticate(presented.strip())
        except Unauthorized as exc:
            raise HttpError(
                401,
                exc.code,
                exc.message,
                [("WWW-Authenticate", 'Bearer realm="asyncjobs"')],
            ) from None
        tokens.allow(
            token,
            org=None,
            write=environ.get("REQUEST_METHOD") == "POST",
            operators_only=template in OPERATORS_ONLY,
        )
        environ["asyncjobs.token"] = token

    def _shown(self, environ: dict[str, Any], job: Job) -> dict[str, Any]:
        """A job as its caller may see it: a failure's traceback (server paths)
        only for an operator's token."""
        doc = job.to_dict()
        token = environ.get("asyncjobs.token")
        error = doc.get("error")
        if isinstance(error, dict) and "traceback" in error:
            if token is None or not token.operator:
                doc["error"] = {k: v for k, v in error.items() if k != "traceback"}
        return doc

    def _org(self, environ: dict[str, Any]) -> str:
        """The tenant of the request, before anything touches the store.

        A gateway sets one of the two headers; a client that adds the other
        must not get to choose, so two that disagree are refused, and so is an
        empty one (it would otherwise fall through to the other header).
        """
        given = {
            header: environ[key]
            for header, key in (
                ("X-Org-Id", "HTTP_X_ORG_ID"),
                ("X-Tenant-Id", "HTTP_X_TENANT_ID"),
            )
            if key in environ
        }
        for header, value in given.items():
            if not value.strip():
                raise InvalidInput(f"{header} is empty")
        if len(set(given.values())) > 1:
            org_id, tenant_id = (validation.shown(v) for v in given.values())
            raise InvalidInput(
                f"X-Org-Id {org_id} and X-Tenant-Id {tenant_id} disagree; "
                "send one tenant header"
            )
        if not given:
            raise InvalidInput("X-Org-Id (or X-Tenant-Id) header is required")
        org = validation.name(next(iter(given.values())), next(iter(given)))
        token = environ.get("asyncjobs.token")
        if token is not None:
            tokens.allow(token, org=org, write=False, operators_only=False)
        return org

    def _query(self, environ: dict[str, Any]) -> dict[str, str]:
        try:
            parsed = parse_qs(
                environ.get("QUERY_STRING", ""),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=20,
            )
        except ValueError as exc:
            raise InvalidInput(f"query: {exc}") from exc
        return {key: values[-1] for key, values in parsed.items()}

    def _summary_or_none(
        self,
    ) -> tuple[dict[str, Any] | None, AsyncJobsError | None]:
        with self._summary_lock:
            if (
                self._summary
                and time.monotonic() - self._summary[0] < SUMMARY_TTL_SECONDS
            ):
                return self._summary[1], None
            try:
                summary = self.client.stats()
            except AsyncJobsError as exc:
                return None, exc
            self._summary = (time.monotonic(), summary)
            return summary, None

    # -- routes --------------------------------------------------------------------

    def _health(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        doc = health(*self._summary_or_none(), settings=self.client.settings)
        return (200 if doc["status"] == "ok" else 503), doc, None

    def _telemetry(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        summary, error = self._summary_or_none()
        message = error.message if error is not None else None
        return (
            200,
            telemetry(
                summary,
                message,
                self.stats.last_hour(),
                self.started_utc,
                settings=self.client.settings,
            ),
            None,
        )

    def _metrics(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        summary, _ = self._summary_or_none()
        text = observability.metrics_text(summary, self.stats.snapshot())
        return 200, text, "text/plain; version=0.0.4; charset=utf-8"

    def _openapi(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        return 200, openapi.document(), None

    def _job(self, environ: dict[str, Any], job_id: str) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        return (
            200,
            self._shown(environ, self.client.get_job(_job_id(job_id), org=org)),
            None,
        )

    def _notifications(
        self, environ: dict[str, Any], job_id: str
    ) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        query = self._query(environ)
        limit = _int(query.get("limit", "20"), "limit")
        page = self.client.page_notifications(
            _job_id(job_id),
            org=org,
            channel=query.get("channel", "in_app"),
            limit=limit,
            cursor=query.get("cursor") or None,  # an empty one: the first page
        )
        doc: dict[str, Any] = {
            "job_id": job_id,
            "notifications": [n.to_dict() for n in page],
        }
        if page.next_cursor is not None:
            doc["next_cursor"] = page.next_cursor
        return 200, doc, None

    def _result(
        self, environ: dict[str, Any], result_id: str
    ) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        view = self._query(environ).get("view", "latest")
        if not ids.is_id(result_id, "res"):
            raise NotFound(f"result {validation.shown_id(result_id)} not found")
        return 200, self.client.get_result(result_id, org=org, view=view), None

    def _jobs(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        query = self._query(environ)
        unknown = sorted(set(query) - {"status", "queue", "task", "limit", "cursor"})
        if unknown:
            raise InvalidInput(f"query: unknown parameter(s): {', '.join(unknown)}")
        status = query.get("status")
        page = self.client.page_jobs(
            org=org,
            status=None if status is None else status.split(","),
            queue=query.get("queue"),
            task=query.get("task"),
            limit=_int(query.get("limit", "50"), "limit"),
            cursor=query.get("cursor") or None,  # an empty one: the first page
        )
        doc: dict[str, Any] = {"jobs": [self._shown(environ, job) for job in page]}
        if page.next_cursor is not None:
            doc["next_cursor"] = page.next_cursor
        return 200, doc, None

    def _act(
        self, environ: dict[str, Any], job_id: str, action: str
    ) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        self._body(environ, BULK_BODY_BYTES)  # read, and none is needed
        act = self.client.retry if action == "retry" else self.client.cancel
        return 200, self._shown(environ, act(_job_id(job_id), org=org)), None

    def _bulk(
        self, environ: dict[str, Any], action: str
    ) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        body = self._json_body(environ, BULK_FIELDS[action])
        dry_run = body.pop("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidInput(
                f"dry_run: {validation.shown(dry_run)} is not true or false"
            )
        limit = body.pop("limit", bulk.MAX_JOBS)
        filters = {key: value for key, value in body.items() if value is not None}
        if action == "retry":
            done = self.client.retry_matching(
                org=org, dry_run=dry_run, limit=limit, **filters
            )
        else:
            done = self.client.cancel_matching(
                org=org, dry_run=dry_run, limit=limit, **filters
            )
        return 200, done.to_dict(), None

    def _inbox(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        query = self._query(environ)
        unknown = sorted(set(query) - {"unread", "limit", "cursor"})
        if unknown:
            raise InvalidInput(f"query: unknown parameter(s): {', '.join(unknown)}")
        unread = query.get("unread", "false")
        if unread not in ("true", "false"):
            raise InvalidInput(
                f"unread: {validation.shown(unread)} is not true or false"
            )
        page = self.client.page_inbox(
            org=org,
            unread=unread == "true",
            limit=_int(query.get("limit", "50"), "limit"),
            cursor=query.get("cursor") or None,  # an empty one: the first page
        )
        doc: dict[str, Any] = {"notifications": [n.to_dict() for n in page]}
        if page.next_cursor is not None:
            doc["next_cursor"] = page.next_cursor
        return 200, doc, None

    def _mark_read(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        body = self._json_body(environ, {"ids", "all"})
        ids_given, every = body.get("ids"), body.get("all", False)
        if not isinstance(every, bool):
            raise InvalidInput(f"all: {validation.shown(every)} is not true or false")
        if ids_given is not None and (
            not isinstance(ids_given, list)
            or not all(isinstance(i, str) for i in ids_given)
        ):
            raise InvalidInput("ids: must be a list of notification ids")
        if ids_given == []:
            raise InvalidInput("ids: give at least one notification id")
        if every == (ids_given is not None):
            raise InvalidInput('body: give "ids" or "all": true, not both or neither')
        changed = self.client.mark_read(
            org=org, notification_ids=ids_given or (), every=every
        )
        return 200, {"marked": changed}, None

    def _queues(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        return 200, {"queues": self.client.queues(org=self._org(environ))}, None

    def _breakers(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        self._org(environ)
        return 200, {"breakers": self.client.breakers()}, None

    def _reset_breaker(
        self, environ: dict[str, Any], name: str
    ) -> tuple[int, Any, str | None]:
        self._org(environ)
        self._body(environ, BULK_BODY_BYTES)  # read, and none is needed
        return 200, self.client.reset_breaker(name), None

    def _json_body(self, environ: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        """A small JSON object body (64 KiB at most), only ``fields`` in it."""
        raw = self._body(environ, BULK_BODY_BYTES)
        body = validation.parse_json(raw, "body") if raw else {}
        if not isinstance(body, dict):
            raise InvalidInput("body: must be a JSON object")
        unknown = sorted(set(body) - fields)
        if unknown:
            raise InvalidInput(f"body: unknown field(s): {', '.join(unknown)}")
        return body

    def _body(self, environ: dict[str, Any], limit: int) -> bytes:
        """The request's body, at most ``limit`` bytes (413 over it)."""
        try:
            return read_body(environ, limit)
        except BodyTimedOut as exc:  # the server's read deadline, or the client left
            raise HttpError(408, "request_timeout", str(exc)) from exc

    def _submit(self, environ: dict[str, Any]) -> tuple[int, Any, str | None]:
        org = self._org(environ)
        raw = self._body(environ, self.client.settings.max_payload_bytes + (64 << 10))
        # The body nests the payload one level down.
        body = validation.parse_json(
            raw,
            "body",
            max_depth=validation.MAX_JSON_DEPTH + 1,
            deep_field="payload",
        )
        if not isinstance(body, dict):
            raise InvalidInput("body: must be a JSON object")
        unknown = sorted(set(body) - BODY_FIELDS)
        if unknown:
            raise InvalidInput(f"body: unknown field(s): {', '.join(unknown)}")
        if "task" not in body:
            raise InvalidInput("task: missing")
        allow_unknown = body.pop("allow_unknown", None)
        if allow_unknown is not None and not isinstance(allow_unknown, bool):
            raise InvalidInput(
                f"allow_unknown: {validation.shown(allow_unknown)} is not true or false"
            )
        job = self.client.submit_many(
            [{**body, "org": org}], allow_unknown=bool(allow_unknown)
        )[0]
        return (
            202,
            {
                "job_id": job.job_id,
                "status": job.status.value,
                "deduplicated": job.deduplicated,
            },
            None,
        )


def _int(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(
            f"{field}: {validation.shown(text)} is not a whole number"
        ) from None


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": " ".join(message.split())}}


def health(
    summary: dict[str, Any] | None,
    error: AsyncJobsError | None,
    *,
    settings: Settings,
) -> dict[str, Any]:
    """``{"status": "ok", ...}`` when the store can be read, else the reason.

    Both carry the ``async`` block of /telemetry.
    """
    checked = clocks.to_iso(clocks.now())
    if summary is None:
        doc: dict[str, Any] = {"status": "unavailable", "checked_at": checked}
        if error is not None:
            doc["error"] = {
                "code": error.code,
                "message": " ".join(error.message.split()),
            }
    else:
        doc = {
            "status": "ok",
            "checked_at": checked,
            "store_generation": summary["generation"],
        }
    doc["async"] = observability.async_section(
        summary, async_enabled=settings.async_enabled
    )
    return doc


def telemetry(
    summary: dict[str, Any] | None,
    error: str | None,
    requests: dict[str, Any],
    started_utc: str,
    *,
    settings: Settings,
) -> dict[str, Any]:
    """The /telemetry document: always answerable, degraded when the store is not."""
    doc: dict[str, Any] = {
        "timestamp": clocks.to_iso(clocks.now()),
        "started_utc": started_utc,
        "requests": requests,
        "async": observability.async_section(
            summary, async_enabled=settings.async_enabled
        ),
        "graph": observability.graph_section(
            summary,
            clocks.now(),
            layers=settings.layers,
            stale_ms=settings.layer_stale_ms,
        ),
        "degraded": summary is None,
    }
    if summary is None:
        doc["error"] = {
            "code": "degraded",
            "msg": " ".join((error or "store unreadable").split()),
        }
    return doc


def create_app(
    store: str | None = None,
    app: str | None = None,
    *,
    settings: Settings | None = None,
) -> App:
    """An App on the store named (or ``ASYNCJOBS_STORE``, or the default path).

    ``app`` (or ``ASYNCJOBS_APP``), ``MODULE:ATTR``, is the TaskRegistry
    submissions consult; without one, the task catalog. ``settings``, by
    default read from the environment now, go to the Client.
    """
    from ..store import DEFAULT_STORE

    settings = Settings.from_env() if settings is None else settings
    return App(
        Client(
            store or settings.store or DEFAULT_STORE,
            app=app or settings.app,
            settings=settings,
            # its request threads share a pool (a PostgreSQL store)
            connections=settings.store_connections,
        )
    )


class _LazyApplication:
    """``asyncjobs.wsgi:application`` for WSGI servers; the store opens on first use."""

    def __init__(self) -> None:
        self._app: App | None = None
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        with self._lock:
            if self._app is None:
                self._app = create_app()
        return self._app(environ, start_response)


application = _LazyApplication()
