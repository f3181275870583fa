"""Results: which version a permalink serves, and which values live in files.

A result's value is kept in the store unless its JSON is larger than the
inline limit (``Settings.result_inline_bytes``, 64 KiB by default); then it
is written to ``<artifacts>/results/<org>/<result_id>.json`` and the store
keeps the file's path, size and sha256, checked on every read.

A permalink names one result version. ``view="latest"`` serves the newest
version of the same job (``projection_mode: "latest"``); ``view="pinned"``
serves exactly the one named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .. import ids
from ..errors import InvalidInput
from ..records import Result
from . import validation

VIEWS = ("latest", "pinned")


def value_path(root: str, org: str, result_id: str) -> str:
    """Where a large value is written; never outside ``root``."""
    validation.org(org)
    if not ids.is_id(result_id, "res"):
        raise InvalidInput(f"result id {validation.shown(result_id)} is malformed")
    path = os.path.join(root, "results", org, f"{result_id}.json")
    if os.path.commonpath(
        [os.path.abspath(path), os.path.abspath(root)]
    ) != os.path.abspath(root):
        raise InvalidInput(
            f"org {validation.shown(org)} leads outside the artifacts folder"
        )
    return path


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise InvalidInput(
            f"view: {validation.shown(view)} is not one of latest, pinned"
        )
    return view


def newest(versions: Sequence[Result]) -> Result:
    return max(versions, key=lambda r: (r.run, r.attempt, r.created_at, r.result_id))


def permalink(
    requested: Result, versions: Sequence[Result], view: str
) -> tuple[Result, str]:
    """The version to serve for a permalink, and its projection mode."""
    if check_view(view) == "pinned" or not versions:
        return requested, "pinned" if view == "pinned" else "latest"
    return newest(versions), "latest"


def permalink_doc(
    served: Result, requested_id: str, mode: str, value: Any
) -> dict[str, Any]:
    return {
        "result_id": served.result_id,
        "requested_result_id": requested_id,
        "projection_mode": mode,
        "job_id": served.job_id,
        "org_id": served.org_id,
        "task": served.task,
        "value": value,
        "created_at": served.created_at,
    }
