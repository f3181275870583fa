"""Files beside the store: large result values, written and read back by checksum.

A result value over ``Settings.result_inline_bytes`` is written to its own
file under the artifacts folder before its outcome commits; the record keeps
the path, size and sha256, and a read checks both. A file whose outcome is
refused, or whose records retention deleted, is removed after the commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from .. import ids
from ..clock import Clock
from ..domain import results, validation
from ..domain.lifecycle import Token
from ..errors import InvalidInput, StoreCorrupt, StoreError
from ..records import Result
from ..store.jsonfile.fileio import write_private_file
from ..worker import execution

log = logging.getLogger("asyncjobs.client")

Outcome = dict[str, Any]  # see worker/execution.py


def _failed(
    outcome: Outcome, error_type: str, message: str, *, retryable: bool
) -> Outcome:
    failed = {k: v for k, v in outcome.items() if k != "value"}
    return {
        **failed,
        "ok": False,
        "retryable": retryable,
        "error": {"type": error_type, "message": message[: execution.MAX_MESSAGE]},
    }


def prepare_outcome(
    token: Token,
    outcome: Outcome,
    *,
    folder: str,
    inline_bytes: int | None,
    clock: Clock,
) -> Outcome:
    """An outcome ready to commit: a value over ``inline_bytes`` written to its file.

    ``inline_bytes`` None keeps every value in the record (an engine whose
    ``result_files`` is False: other hosts cannot read this one's files).

    Done once per outcome: an outcome already prepared comes back as it is,
    so a commit tried again reuses its file. A value the store cannot hold,
    or a file that cannot be written, fails the attempt instead, with the
    reason, so that one outcome never holds back the others.
    """
    if not outcome.get("ok") or "value_file" in outcome:
        return outcome
    inline = {**outcome, "value_file": None}  # prepared: kept in the record
    if outcome.get("value") is None:
        return inline
    try:
        validation.check_depth(outcome.get("value"), "result")
        data = json.dumps(outcome.get("value"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError, InvalidInput) as exc:
        return _failed(outcome, type(exc).__name__, str(exc), retryable=False)
    if inline_bytes is None or len(data) <= inline_bytes:
        return inline
    result_id = ids.new_id("res", clock())
    path = results.value_path(folder, token.org_id, result_id)
    try:
        write_private_file(path, data)
    except StoreError as exc:
        return _failed(outcome, "ResultNotStored", exc.message, retryable=True)
    return {
        **outcome,
        "result_id": result_id,
        "value_file": {
            "path": path,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }


def discard_outcome(outcome: Outcome) -> None:
    """Delete the file of a prepared outcome that will never be committed."""
    stored = outcome.get("value_file")
    if stored:
        try:
            os.unlink(stored["path"])
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete %s: %s", stored["path"], exc.strerror or exc)


def value_of(result: Result) -> Any:
    """A result's value: inline, or read from its file and checked against its sha256."""
    if result.value_file is None:
        return result.value
    try:
        with open(result.value_file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise StoreError(
            f"result {result.result_id}: cannot read {result.value_file}: {exc.strerror}"
        ) from exc
    if (
        len(data) != result.value_bytes
        or hashlib.sha256(data).hexdigest() != result.value_sha256
    ):
        raise StoreCorrupt(
            f"result {result.result_id}: {result.value_file} does not match its sha256"
        )
    return json.loads(data)


def delete_files(paths: Iterable[str]) -> None:
    """Remove result files whose records a committed cleanup deleted."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
