"""What operators watch, as plain functions of records and ``now``.

``summarize`` gives the figures behind ``asyncjobs info``, ``/telemetry``
and ``/metrics`` from ``JobFigures`` (one pass over the jobs, or an
engine's ``GROUP BY``) and the other records; ``telemetry_doc`` and
``metrics_text`` shape them. Nothing here carries an org id out: figures are
per queue, status, task and breaker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .. import clock
from . import breakers as breaker_rules
from . import lifecycle, metrics

TERMINAL = ("completed", "failed", "canceled")


def worker_view(
    record: Mapping[str, Any], now: datetime, running: list[str] | None = None
) -> dict[str, Any]:
    """A worker record with ``gone``: stopped, or not seen for three heartbeats.

    ``running``, the jobs the store says the worker holds, replaces the
    record's own list, which is only written at heartbeats: without it a
    worker that just claimed four jobs shows none while the jobs count four.
    """
    silent = (now - clock.parse_iso(record["last_seen_at"])).total_seconds()
    gone = record.get("state") == "stopped" or silent > 3 * record["heartbeat_seconds"]
    view = {**record, "gone": gone, "seen_seconds_ago": round(silent, 3)}
    if running is not None:
        view["running"] = sorted(running)
    return view


def running_by_worker(jobs: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The running jobs' ids by the worker that holds them."""
    held: dict[str, list[str]] = {}
    for job in jobs:
        if job.get("status") == "running" and job.get("worker_id"):
            held.setdefault(job["worker_id"], []).append(job["job_id"])
    return held


def missing_notifications(
    jobs: Iterable[Mapping[str, Any]],
    dedupe_keys: set[str],
    pruned_before: str | None = None,
) -> list[str]:
    """Terminal jobs without the in-app notification of their terminal transition.

    A job that finished before ``pruned_before`` (where retention removed
    notifications) may lack it on purpose and is not counted.
    """
    missing = []
    for job in jobs:
        event = lifecycle.TERMINAL_EVENT_OF.get(job.get("status", ""))
        if event is None:
            continue
        if pruned_before and (job.get("finished_at") or "") < pruned_before:
            continue
        if (
            lifecycle.dedupe_key_of(job["job_id"], event, job.get("run", 1))
            not in dedupe_keys
        ):
            missing.append(job["job_id"])
    return missing


def open_tasks(breakers: Iterable[Mapping[str, Any]], now: datetime) -> set[str]:
    """The tasks an open breaker holds back at ``now``."""
    return {
        task
        for b in breakers
        if breaker_rules.blocks(
            breaker_rules.Breaker.from_dict(dict(b), b["name"]), now
        )
        for task in b.get("tasks", [])
    }


class QueueGroup(NamedTuple):
    """Queued or running jobs of one (queue, status, task) (``queue_groups``)."""

    queue: str
    status: str
    task: str
    jobs: int
    runnable: int  # queued, and due
    earliest_due: str | None  # the smallest run_after of those


def queue_view(
    groups: Iterable[QueueGroup], *, now: datetime, open_tasks: set[str]
) -> list[dict[str, Any]]:
    """Each queue's figures, by name: what ``asyncjobs queues`` shows.

    ``depth`` queued jobs, of them ``runnable`` (due) and ``delayed`` (not
    yet); ``running``; ``lag_s``, how long the oldest runnable job has been
    runnable (0 when none is); ``held`` runnable jobs an open breaker holds
    back (``open_tasks``).
    """
    queues: dict[str, dict[str, Any]] = {}
    earliest: dict[str, str] = {}
    for group in groups:
        q = queues.setdefault(
            group.queue,
            {
                "queue": group.queue,
                "depth": 0,
                "runnable": 0,
                "delayed": 0,
                "running": 0,
                "lag_s": 0.0,
                "held": 0,
            },
        )
        if group.status == "running":
            q["running"] += group.jobs
            continue
        q["depth"] += group.jobs
        q["runnable"] += group.runnable
        q["delayed"] += group.jobs - group.runnable
        if group.task in open_tasks:
            q["held"] += group.runnable
        due = group.earliest_due
        if due is not None and (
            group.queue not in earliest or due < earliest[group.queue]
        ):
            earliest[group.queue] = due
    for name, due in earliest.items():
        age = (now - clock.parse_iso(due)).total_seconds()
        queues[name]["lag_s"] = round(max(0.0, age), 3)
    return [queues[name] for name in sorted(queues)]


@dataclass
class JobFigures:
    """What ``summarize`` needs from the jobs: counts and extremes, no job itself.

    An engine fills it in one pass over the jobs (``job_figures``), or with
    ``GROUP BY`` queries that give the same numbers (``add_group``).
    """

    now: datetime
    open_tasks: set[str]
    by_status_queue: dict[tuple[str, str], int] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: int = 0
    runnable: int = 0
    blocked: int = 0
    failed_1h: int = 0
    last_finished: str | None = None
    completed_by_task: dict[str, str] = field(default_factory=dict)  # latest finish
    held: dict[str, list[str]] = field(default_factory=dict)  # running ids by worker

    @property
    def stamp(self) -> str:
        return clock.to_iso(self.now)

    @property
    def hour_ago(self) -> str:
        return clock.to_iso(self.now - timedelta(hours=1))

    def add_group(
        self,
        status: str,
        queue: str,
        task: str,
        *,
        count: int,
        oldest_queued_at: str | None = None,
        due: int = 0,
        last_finished: str | None = None,
        finished_1h: int = 0,
    ) -> None:
        """Count ``count`` jobs of one (status, queue, task).

        For queued ones: the oldest ``updated_at`` and how many are due
        (``run_after`` at or before now); for terminal ones: the latest
        ``finished_at`` and how many finished within the last hour.
        """
        key = (status, queue)
        self.by_status_queue[key] = self.by_status_queue.get(key, 0) + count
        q = self.queues.setdefault(
            queue, {"depth": 0, "oldest_queued_at": None, "running": 0}
        )
        if status == "queued":
            q["depth"] += count
            if oldest_queued_at is not None and (
                q["oldest_queued_at"] is None
                or oldest_queued_at < q["oldest_queued_at"]
            ):
                q["oldest_queued_at"] = oldest_queued_at
            self.runnable += due
            if task in self.open_tasks:
                self.blocked += due
        elif status == "running":
            self.running += count
            q["running"] += count
        if status in TERMINAL and last_finished:
            if self.last_finished is None or last_finished > self.last_finished:
                self.last_finished = last_finished
            if status == "completed" and last_finished > self.completed_by_task.get(
                task, ""
            ):
                self.completed_by_task[task] = last_finished
        if status == "failed":
            self.failed_1h += finished_1h


def job_figures(
    jobs: Iterable[Mapping[str, Any]], *, now: datetime, open_tasks: set[str]
) -> JobFigures:
    """The figures of one pass over the jobs."""
    figures = JobFigures(now=now, open_tasks=open_tasks)
    stamp, hour_ago = figures.stamp, figures.hour_ago
    for job in jobs:
        status = job["status"]
        finished = job.get("finished_at") if status in TERMINAL else None
        figures.add_group(
            status,
            job["queue"],
            job["task"],
            count=1,
            oldest_queued_at=job["updated_at"] if status == "queued" else None,
            due=int(status == "queued" and job["run_after"] <= stamp),
            last_finished=finished,
            finished_1h=int(bool(finished) and finished >= hour_ago),
        )
        if status == "running" and job.get("worker_id"):
            figures.held.setdefault(job["worker_id"], []).append(job["job_id"])
    return figures


def summarize(
    *,
    figures: JobFigures,
    missing: list[str],
    breakers: list[Mapping[str, Any]],
    workers: list[Mapping[str, Any]],
    counters: Mapping[str, Mapping[str, Any]],
    catalog: Iterable[Mapping[str, Any]] = (),
    stale_seconds: float,
) -> dict[str, Any]:
    """The figures behind ``info``, ``/telemetry`` and ``/metrics``.

    ``missing`` is ``missing_notifications``' answer. ``materializer_stale``:
    runnable jobs wait and no job finished within ``stale_seconds``
    (``Settings.stale_seconds``).
    """
    now = figures.now
    queues = figures.queues
    for q in queues.values():
        oldest = q["oldest_queued_at"]
        q["oldest_age_s"] = (
            round((now - clock.parse_iso(oldest)).total_seconds(), 3)
            if oldest
            else None
        )
    oldest_all = [
        q["oldest_age_s"] for q in queues.values() if q["oldest_age_s"] is not None
    ]
    seen = [worker_view(w, now, figures.held.get(w["worker_id"], [])) for w in workers]
    last_finished = figures.last_finished
    stale = figures.runnable > 0 and (
        last_finished is None
        or (now - clock.parse_iso(last_finished)).total_seconds() > stale_seconds
    )
    return {
        "now": figures.stamp,
        "by_status_queue": figures.by_status_queue,
        "queues": dict(sorted(queues.items())),
        "queue_depth": sum(q["depth"] for q in queues.values()),
        "running": figures.running,
        "runnable": figures.runnable,
        "blocked": figures.blocked,
        "failed_1h": figures.failed_1h,
        "oldest_queued_age_s": max(oldest_all) if oldest_all else None,
        "last_finished_at": last_finished,
        "materializer_stale": stale,
        "terminal_without_notification": missing,
        "breakers": sorted((dict(b) for b in breakers), key=lambda b: b["name"]),
        "workers": seen,
        "workers_seen": sum(not w["gone"] for w in seen),
        "counters": {
            name: r.get("value", 0) for name, r in counters.items() if "value" in r
        },
        "duration": counters.get(metrics.DURATION) or metrics.empty_histogram(),
        "layers": _layer_updates(catalog, figures.completed_by_task),
    }


def _layer_updates(
    catalog: Iterable[Mapping[str, Any]], completed_by_task: Mapping[str, str]
) -> dict[str, str | None]:
    """Each declared layer and the finish of its latest completed job (None: none yet)."""
    layers: dict[str, str | None] = {}
    for task in catalog:
        layer = task.get("layer")
        if not isinstance(layer, str):
            continue
        finished = completed_by_task.get(task.get("name", ""))
        known = layers.get(layer)
        if finished is not None and (known is None or finished > known):
            layers[layer] = finished
        else:
            layers.setdefault(layer, known)
    return layers


def graph_section(
    summary: Mapping[str, Any] | None,
    now: datetime,
    *,
    layers: Sequence[str] | None,
    stale_ms: int,
) -> dict[str, Any]:
    """The ``graph`` part of /telemetry: how fresh each named data layer is.

    A layer is materialized by the tasks that declare it (``layer=``); its
    ``last_update_ts`` is the finish of its latest completed job, ``live``
    within ``stale_ms`` of now (``ASYNCJOBS_LAYER_STALE_MS``), ``stale``
    beyond, ``unknown`` with none. ``layers`` (``ASYNCJOBS_LAYERS``) fixes
    which layers are listed and their order; None lists the declared ones by
    name. Fail-open: an unreadable store lists every configured layer as
    unknown.
    """
    updates: Mapping[str, str | None] = summary["layers"] if summary else {}
    names = sorted(updates) if layers is None else list(layers)
    shown = []
    counts = {"live": 0, "stale": 0, "unknown": 0}
    for name in names:
        stamp = updates.get(name)
        if stamp is None:
            status = "unknown"
        else:
            age_ms = (now - clock.parse_iso(stamp)).total_seconds() * 1000
            status = "live" if age_ms <= stale_ms else "stale"
        counts[status] += 1
        shown.append({"name": name, "status": status, "last_update_ts": stamp or ""})
    return {
        "layers": shown,
        "stale_after_ms": stale_ms,
        "summary": {
            "live_count": counts["live"],
            "stale_count": counts["stale"],
            "unknown_count": counts["unknown"],
            "integrity_degraded": summary is None or counts["unknown"] > 0,
        },
    }


def async_section(
    summary: Mapping[str, Any] | None, *, async_enabled: bool
) -> dict[str, Any]:
    """The ``async`` part of /telemetry and /health, with the contract's types.

    ``async_enabled`` is ``Settings.async_enabled`` (``ASYNCJOBS_ASYNC_ENABLED``).

    Times are ISO text, ``""`` when there is none; counts are numbers and
    flags booleans even when the store is unreadable (then ``degraded`` is
    true, counts are 0, no worker is seen and the data counts as stale).
    """
    if summary is None:
        return {
            "async_enabled": async_enabled,
            "worker_seen": False,
            "materializer_stale": True,
            "last_materialize_ts": "",
            "blocked_mutations_count": 0,
            "queue_depth": 0,
            "running": 0,
            "failed_1h": 0,
            "oldest_queued_age_s": 0,
            "breakers": {},
            "degraded": True,
        }
    return {
        "async_enabled": async_enabled,
        "worker_seen": summary["workers_seen"] > 0,
        "materializer_stale": summary["materializer_stale"],
        "last_materialize_ts": summary["last_finished_at"] or "",
        "blocked_mutations_count": summary["blocked"],
        "queue_depth": summary["queue_depth"],
        "running": summary["running"],
        "failed_1h": summary["failed_1h"],
        "oldest_queued_age_s": summary["oldest_queued_age_s"] or 0,
        "breakers": {b["name"]: b["state"] for b in summary["breakers"]},
        "degraded": False,
    }


def metrics_text(summary: Mapping[str, Any] | None, http: Mapping[str, Any]) -> str:
    """The /metrics exposition: store figures (when readable) and this process's HTTP figures."""
    out = metrics.Exposition()
    if summary is not None:
        out.family(
            "asyncjobs_jobs",
            "gauge",
            "Jobs by status and queue.",
            [
                ({"status": s, "queue": q}, n)
                for (s, q), n in sorted(summary["by_status_queue"].items())
            ],
        )
        out.family(
            "asyncjobs_queue_depth",
            "gauge",
            "Queued jobs per queue.",
            [({"queue": q}, v["depth"]) for q, v in summary["queues"].items()],
        )
        counters = summary["counters"]
        for name, help_text in (
            ("jobs_submitted_total", "Jobs submitted."),
            ("jobs_completed_total", "Jobs completed."),
            ("jobs_failed_total", "Jobs failed for good."),
            ("jobs_canceled_total", "Jobs canceled."),
            ("attempts_failed_total", "Failed attempts, retried or not."),
            ("leases_expired_total", "Leases that ran out and were rescued."),
            (
                "stale_outcomes_refused_total",
                "Outcomes refused under a superseded lease.",
            ),
        ):
            out.family(
                f"asyncjobs_{name}", "counter", help_text, [({}, counters.get(name, 0))]
            )
        out.histogram(
            "asyncjobs_job_duration_seconds",
            "Attempt durations.",
            metrics.DURATION_BUCKETS,
            [({}, summary["duration"])],
        )
        out.family(
            "asyncjobs_breaker_open",
            "gauge",
            "1 while a breaker holds jobs back.",
            [
                ({"breaker": b["name"]}, int(b["state"] != "closed"))
                for b in summary["breakers"]
            ],
        )
        out.family(
            "asyncjobs_workers_seen",
            "gauge",
            "Workers seen within three heartbeats.",
            [({}, summary["workers_seen"])],
        )
        out.family(
            "asyncjobs_terminal_jobs_without_in_app_notification",
            "gauge",
            "Terminal jobs missing their in-app notification (must stay 0).",
            [({}, len(summary["terminal_without_notification"]))],
        )
    out.family(
        "asyncjobs_store_up",
        "gauge",
        "1 when the store could be read.",
        [({}, int(summary is not None))],
    )
    out.family(
        "asyncjobs_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
        [
            ({"path": p, "status": str(s)}, n)
            for (p, s), n in sorted(http["counts"].items())
        ],
    )
    out.histogram(
        "asyncjobs_http_request_duration_seconds",
        "HTTP request durations.",
        metrics.HTTP_BUCKETS,
        [({"path": p}, h) for p, h in sorted(http["durations"].items())],
    )
    return out.text()


# -- what one org's jobs did lately (the dashboard's overview and failures) ----

WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}  # failure-group columns


class Finished(NamedTuple):
    """A job that ended, as ``finished_since`` walks it (newest first)."""

    finished_at: str
    status: str
    task: str
    error_type: str  # "" when the job holds no error
    error_message: str
    job_id: str


class FailureGroup(NamedTuple):
    """Failed jobs of one (task, error type): counts per window of ``WINDOWS``."""

    task: str
    error_type: str
    last_hour: int
    last_day: int
    last_week: int
    newest_at: str
    newest_message: str
    newest_job_id: str


def finished_of(record: Mapping[str, Any]) -> Finished:
    """The fields ``finished_since`` hands on, from a job record."""
    error = record.get("error")
    kind = message = ""
    if isinstance(error, Mapping):
        kind = error.get("type") if isinstance(error.get("type"), str) else ""
        message = error.get("message") if isinstance(error.get("message"), str) else ""
    return Finished(
        record["finished_at"],
        record["status"],
        record.get("task", ""),
        kind,
        message,
        record["job_id"],
    )


def since(now: datetime, seconds: float) -> str:
    """The ISO moment ``seconds`` before ``now``: the start of a window."""
    return clock.to_iso(now - timedelta(seconds=seconds))


def throughput(finished: Iterable[Finished]) -> list[tuple[str, str, int]]:
    """Ended jobs counted by (minute, status), the minute as ``YYYY-MM-DDTHH:MM``."""
    counts: dict[tuple[str, str], int] = {}
    for job in finished:
        key = (job.finished_at[:16], job.status)
        counts[key] = counts.get(key, 0) + 1
    return [(minute, status, n) for (minute, status), n in sorted(counts.items())]


def failure_groups(finished: Iterable[Finished], now: datetime) -> list[FailureGroup]:
    """Failed jobs of the last week by (task, error type), most failures first.

    ``finished`` comes newest first, so a group's first job is its newest.
    """
    hour, day = since(now, WINDOWS["1h"]), since(now, WINDOWS["24h"])
    groups: dict[tuple[str, str], list[Any]] = {}
    for job in finished:
        if job.status != "failed":
            continue
        group = groups.get((job.task, job.error_type))
        if group is None:
            group = groups[(job.task, job.error_type)] = [
                0,
                0,
                0,
                job.finished_at,
                job.error_message,
                job.job_id,
            ]
        group[0] += job.finished_at >= hour
        group[1] += job.finished_at >= day
        group[2] += 1
    found = [FailureGroup(task, kind, *g) for (task, kind), g in groups.items()]
    return sorted(found, key=lambda g: (-g.last_week, g.task, g.error_type))


def minutes(
    rows: Iterable[tuple[str, str, int]], now: datetime, count: int = 60
) -> list[dict[str, Any]]:
    """The last ``count`` minutes up to ``now``, oldest first, each with its
    completed, failed and canceled counts (zero where none ended)."""
    by_minute: dict[str, dict[str, int]] = {}
    for minute, status, n in rows:
        by_minute.setdefault(minute, {})[status] = n
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=count - 1)
    out = []
    for i in range(count):
        minute = clock.to_iso(start + timedelta(minutes=i))[:16]
        seen = by_minute.get(minute, {})
        out.append({"minute": minute, **{s: seen.get(s, 0) for s in TERMINAL}})
    return out
