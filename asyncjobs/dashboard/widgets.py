"""Pieces the dashboard's pages share: times, counts, the throughput chart, job rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .. import clock
from ..records import Job
from .html import Html, html, join, link, table

CHART_WIDTH, CHART_HEIGHT = 600, 120
STATUSES = ("completed", "failed", "canceled")  # the chart's stack, bottom up


def org_url(org: str, rest: str = "") -> str:
    return f"/dashboard/o/{quote(org, safe='')}/{rest}"


def number(value: int) -> str:
    return f"{value:,}"


def age(seconds: float | None) -> str:
    """``42 s``, ``3 min``, ``2.5 h``, ``4 d``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def ago(moment: str | None, now: datetime) -> Html:
    """A stored time as ``3 min ago`` (or ``in 3 min``), the exact time on hover."""
    if not moment:
        return Html("-")
    try:
        seconds = (now - clock.parse_iso(moment)).total_seconds()
    except (TypeError, ValueError):
        return html("{}", moment)
    shown = f"{age(seconds)} ago" if seconds >= 0 else f"in {age(-seconds)}"
    return html('<time datetime="{}" title="{}">{}</time>', moment, moment, shown)


def counts(items: Sequence[tuple[str, int]]) -> Html:
    return html(
        '<ul class="counts">{}</ul>',
        join(
            html("<li><strong>{}</strong>{}</li>", number(n), label)
            for label, n in items
        ),
    )


def chart(minutes: Sequence[Mapping[str, Any]]) -> Html:
    """Jobs that ended per minute as stacked bars, oldest left: inline SVG,
    each bar with its counts as a tooltip."""
    top = max((sum(m[s] for s in STATUSES) for m in minutes), default=0) or 1
    step = CHART_WIDTH / max(len(minutes), 1)
    plot = CHART_HEIGHT - 16
    bars = []
    for i, minute in enumerate(minutes):
        base = float(plot)
        rects = []
        for status in STATUSES:
            n = minute[status]
            if not n:
                continue
            tall = plot * n / top
            base -= tall
            rects.append(
                html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"/>',
                    status,
                    f"{i * step + 1:.1f}",
                    f"{base:.1f}",
                    f"{max(step - 2, 1):.1f}",
                    f"{tall:.1f}",
                )
            )
        tip = f"{minute['minute'][11:]} UTC: " + ", ".join(
            f"{minute[s]} {s}" for s in STATUSES
        )
        bars.append(html("<g><title>{}</title>{}</g>", tip, join(rects)))
    first = minutes[0]["minute"][11:] if minutes else ""
    return html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '{}<text x="2" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">now</text>'
        '<text x="2" y="10">{}</text></svg>'
        '<p class="legend"><span class="completed"></span>completed'
        '<span class="failed"></span>failed<span class="canceled"></span>canceled</p>',
        CHART_WIDTH,
        CHART_HEIGHT,
        f"Jobs ended per minute, the last {len(minutes)} minutes",
        join(bars),
        CHART_HEIGHT - 3,
        first,
        CHART_WIDTH - 2,
        CHART_HEIGHT - 3,
        f"max {top}/min",
    )


def queue_table(queues: Iterable[Mapping[str, Any]]) -> Html:
    """Each queue's figures (``Client.queues``)."""
    return table(
        ["Queue", "Depth", "Runnable", "Delayed", "Running", "Oldest runnable", "Held"],
        (
            [
                q["queue"],
                number(q["depth"]),
                number(q["runnable"]),
                number(q["delayed"]),
                number(q["running"]),
                f"{q['lag_s']:.0f} s",
                number(q["held"]),
            ]
            for q in queues
        ),
        "No job is queued or running.",
    )


def job_rows(org: str, jobs: Iterable[Job], now: datetime, empty: str) -> Html:
    return table(
        ["Job", "Task", "Queue", "Status", "Attempts", "Created", "Error"],
        (
            [
                link(org_url(org, f"jobs/{j.job_id}"), j.job_id),
                j.task,
                j.queue,
                html(
                    '<span class="status-{}">{}</span>', j.status.value, j.status.value
                ),
                j.attempts,
                ago(j.created_at, now),
                error_type(j),
            ]
            for j in jobs
        ),
        empty,
    )


def error_type(job: Job) -> str:
    error = job.error
    return str(error.get("type", "")) if isinstance(error, dict) else ""
