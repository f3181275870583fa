"""Delivery: result permalinks, a job's notifications, the org's inbox.

Reads answer another org's record exactly as a missing one. A large result
value is read from its file and checked (``services/artifacts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import clock as clocks
from ..domain import results, validation
from ..domain.paging import Page
from ..errors import InvalidInput, NotFound
from ..records import Notification
from ..store import Store
from . import artifacts
from .jobs import job_of


def _check_channel(channel: str) -> None:
    if channel != "in_app":
        raise InvalidInput(
            f"channel: {validation.shown(channel)} is not a channel (in_app)"
        )


class Delivery:
    """The delivery operations of one store (``Client`` hands them on)."""

    def __init__(self, store: Store, clock: clocks.Clock | None) -> None:
        self.store = store
        self.clock = clock

    def result(self, result_id: str, *, org: str, view: str) -> dict[str, Any]:
        validation.org(org)
        results.check_view(view)
        with self.store.read(clock=self.clock) as tx:
            requested = tx.result(result_id)
            if requested is None or requested.org_id != org:
                raise NotFound(f"result {validation.shown_id(result_id)} not found")
            versions = tx.result_versions(requested.job_id)
        served, mode = results.permalink(requested, versions, view)
        return results.permalink_doc(
            served, result_id, mode, artifacts.value_of(served)
        )

    def page_notifications(
        self, job_id: str, *, org: str, channel: str, limit: int, cursor: str | None
    ) -> Page[Notification]:
        validation.org(org)
        _check_channel(channel)
        validation.limit(limit)
        with self.store.read(clock=self.clock) as tx:
            job_of(tx, job_id, org=org)
            found, next_cursor = tx.page_notifications(
                job_id, org=org, channel=channel, limit=limit, cursor=cursor
            )
            return Page([Notification.from_dict(r) for r in found], next_cursor)

    def page_inbox(
        self, *, org: str, unread: bool, limit: int, cursor: str | None
    ) -> Page[Notification]:
        validation.org(org)
        validation.limit(limit)
        with self.store.read(clock=self.clock) as tx:
            found, next_cursor = tx.page_inbox(
                org, unread=bool(unread), limit=limit, cursor=cursor
            )
            return Page([Notification.from_dict(r) for r in found], next_cursor)

    def mark_read(
        self, *, org: str, notification_ids: Sequence[str], every: bool
    ) -> int:
        validation.org(org)
        if bool(notification_ids) == every:
            raise InvalidInput("name notification ids or --all, not both or neither")
        with self.store.transaction(clock=self.clock) as tx:
            return tx.mark_read(
                org,
                None if every else list(notification_ids),
                clocks.to_iso(tx.now),
            )
