"""Rules for input: names, payloads, priorities, numbers and times.

Every check raises ``InvalidInput`` with a message that names the field and
says why, before anything is written. Names (orgs, tasks, queues) follow
``[A-Za-z0-9][A-Za-z0-9._:-]{0,63}`` and are never ``.`` or ``..``: org ids
reach file paths under ``artifacts/``.

Every number a user gives (an option, a field, an environment variable) is
finite and inside a closed range named here, so that no later sum of times
overflows, no wait is endless and no loop spins: ``seconds`` and ``count``
check one, and the CLI's ``Number`` type is built on ``number_problem``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from .. import clock
from ..errors import InvalidInput, PayloadTooLarge

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
MAX_IDEMPOTENCY_KEY = 255
MAX_RETRIES_LIMIT = 100
MAX_DELAY_SECONDS = 10 * 365 * 86400
# Payloads and results nest at most this deep (the payload object itself is
# level 1). The store writes a record inside four more levels of its own,
# and the standard library's JSON reader and writer recurse on the Python
# stack: far below its limit of about 1,000, every process can write and
# read back every record, whatever its own stack depth.
MAX_JSON_DEPTH = 64
MAX_TTL_SECONDS = 100 * 365 * 86400
MAX_LIMIT = 10_000

# The ranges, (lowest, highest), of the numbers users give; docs/cli.md lists them.
LOCK_TIMEOUT_SECONDS = (0, 3600)
CONCURRENCY = (1, 256)
MAX_JOBS = (1, 1_000_000_000)
PREFETCH = (0, 1000)
LEASE_SECONDS = (0.1, 86400)
HEARTBEAT_SECONDS = (0.01, 28800)  # and at most a third of the lease
GRACE_SECONDS = (0, 86400)
POLL_SECONDS = (0.01, 3600)
WATCH_SECONDS = (0.2, 3600)
WAIT_SECONDS = (0, MAX_DELAY_SECONDS)  # as long as a job may be delayed
PRIORITY = (0, 9)
RETRIES = (0, MAX_RETRIES_LIMIT)
DELAY_SECONDS = (0, MAX_DELAY_SECONDS)
TTL_SECONDS = (0, MAX_TTL_SECONDS)
LIMIT = (1, MAX_LIMIT)
PORT = (0, 65535)
MAX_CONNECTIONS = (1, 10_000)
CONNECTION_TIMEOUT_SECONDS = (0.1, 3600)
MAX_PAYLOAD_BYTES = (1, 16 << 20)
RESULT_INLINE_BYTES = (0, 16 << 20)
STALE_SECONDS = (1, 30 * 86400)
LAYER_STALE_MS = (1, 30 * 86400 * 1000)
STORE_CONNECTIONS = (1, 1000)  # a server process's connections to a database store
# A cleanup's --now: ages are judged from it, and TTLs of up to 100 years
# are taken off it.
CLEANUP_NOW = (
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9000, 1, 1, tzinfo=UTC),
)


def shown(value: object, limit: int = 40) -> str:
    """A value as it can be quoted in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_id(value: object) -> str:
    """An id as a message quotes it: one rule for a missing id and a foreign one alike."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= 100
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        return value
    return shown(value, 60)


def name(value: object, field: str) -> str:
    """An org, task or queue name."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"{field}: {shown(value)} is not a valid name (1-64 characters: letters, "
            "digits and . _ : -, starting with a letter or digit)"
        )
    return value


def org(value: object) -> str:
    return name(value, "org")


def _whole(value: object) -> object:
    """3.0 as 3: JSON does not tell them apart, and JSON Schema calls both integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def shown_bound(bound: float) -> str:
    """A range's end as messages and docs write it: ``3600``, ``0.1``."""
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def number_problem(
    value: object, lo: float, hi: float, *, whole: bool = False, unit: str = "seconds"
) -> str | None:
    """Why ``value`` is not a finite number from ``lo`` to ``hi``, or None when it is.

    With ``whole`` only whole numbers pass (``3.0`` counts as ``3``). The
    reason is one line that quotes the value and names the range and ``unit``.
    """
    if whole:
        value = _whole(value)
        fits = isinstance(value, int)
    else:
        fits = isinstance(value, int) or (
            isinstance(value, float) and math.isfinite(value)
        )
    if not isinstance(value, bool) and fits and lo <= value <= hi:
        return None
    kind = "a whole number" if whole else "a finite number"
    of = f" of {unit}" if unit else ""
    return (
        f"{shown(value)} is not {kind}{of} from {shown_bound(lo)} to {shown_bound(hi)}"
    )


def seconds(value: object, field: str, bounds: tuple[float, float]) -> float:
    """A finite number of seconds from ``bounds[0]`` to ``bounds[1]``, as given.

    Raises InvalidInput naming ``field``: NaN, infinities, booleans and
    anything but a number never pass.
    """
    problem = number_problem(value, *bounds)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}")
    return value


def count(value: object, field: str, bounds: tuple[int, int], *, unit: str = "") -> int:
    """A whole number from ``bounds[0]`` to ``bounds[1]`` (``3.0`` is ``3``)."""
    problem = number_problem(value, *bounds, whole=True, unit=unit)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}")
    return _whole(value)


def priority(value: object) -> int:
    return count(value, "priority", PRIORITY)


def max_retries(value: object) -> int | None:
    if value is None:
        return None
    return count(value, "max_retries", RETRIES)


def delay(value: object) -> float:
    return float(seconds(value, "delay", DELAY_SECONDS))


def moment(
    value: object,
    field: str,
    bounds: tuple[datetime, datetime] | None = None,
) -> datetime:
    """A time, from ISO 8601 text or a datetime (one without an offset is UTC).

    Returns it in UTC. Raises InvalidInput naming ``field`` when it is not a
    time, or not from ``bounds[0]`` to ``bounds[1]``.
    """
    if isinstance(value, datetime):
        when = clock.utc(value, field=field)
    elif isinstance(value, str):
        when = clock.parse_iso(value, field=field)
    else:
        raise InvalidInput(f"{field}: {shown(value)} is not an ISO 8601 time")
    if bounds is not None and not bounds[0] <= when <= bounds[1]:
        raise InvalidInput(
            f"{field}: {clock.to_iso(when)} is not from {clock.to_iso(bounds[0])} "
            f"to {clock.to_iso(bounds[1])}"
        )
    return when


def at(value: object, now: datetime, field: str = "at") -> datetime:
    """When a job may first run: a time at most the longest delay after ``now``.

    A time in the past is fine (the job runs at once); one further ahead is
    refused like a delay over the limit.
    """
    when = moment(value, field)
    if (when - now).total_seconds() > MAX_DELAY_SECONDS:
        raise InvalidInput(
            f"{field}: {clock.to_iso(when)} is more than {MAX_DELAY_SECONDS} seconds "
            "(ten years) ahead, the most a delay may be"
        )
    return when


def idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY
        or not value.isascii()
        or not value.isprintable()
    ):
        raise InvalidInput(
            f"idempotency_key: {shown(value)} must be 1-{MAX_IDEMPOTENCY_KEY} "
            "printable ASCII characters"
        )
    return value


def limit(value: object, field: str = "limit", maximum: int = MAX_LIMIT) -> int:
    return count(value, field, (1, maximum))


def whole_setting(
    name: str,
    raw: str | None,
    default: int,
    bounds: tuple[int, int],
    *,
    unit: str = "bytes",
) -> int:
    """A whole number from the text of variable ``name``; ``default`` when unset.

    Raises InvalidInput naming the variable when it is set outside ``bounds``
    (an empty value too). ``config.Settings`` is the one caller.
    """
    if raw is None:
        return default
    try:
        value: object = int(raw)
    except ValueError:
        value = raw
    return count(value, name, bounds, unit=unit)


def seconds_setting(
    name: str, raw: str | None, default: float, bounds: tuple[float, float]
) -> float:
    """A number of seconds from the text of variable ``name``; unset or empty: ``default``."""
    if not raw:
        return default
    try:
        value: object = float(raw)
    except ValueError:
        value = raw
    return float(seconds(value, name, bounds))


INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1  # what the store holds exactly
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def check_integers(value: Any, encoded: bytes, field: str) -> None:
    """Refuse integers outside 64 bits (the store reads them back exactly only inside).

    orjson writes exactly this range and refuses anything outside it, so a
    value it writes passes (a twentieth of a regex scan of ``encoded``, the
    value as JSON). Where it declines (a lone surrogate, say), the value is
    walked, but only when ``encoded`` holds a run of 19 digits.
    """
    try:
        orjson.dumps(value)
        return
    except TypeError:  # orjson.JSONEncodeError is one
        pass
    if _LONG_DIGITS.search(encoded) is None:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
            raise InvalidInput(
                f"{field}: integer {shown(item)} does not fit in 64 bits"
            )


_TOO_DEEP = object()


def check_depth(value: Any, field: str) -> None:
    """Refuse a value nested deeper than MAX_JSON_DEPTH (InvalidInput naming ``field``)."""
    try:
        _check_depth_at(value, MAX_JSON_DEPTH)
    except InvalidInput:
        raise InvalidInput(
            f"{field}: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None


def _check_depth_at(value: Any, limit: int) -> None:
    """Raise InvalidInput when ``value`` nests deeper than ``limit``.

    Counting the brackets of orjson's encoding bounds the depth from above
    at C speed; only a value with more brackets than the cap (or one orjson
    declines) is walked, without recursion.
    """
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        return
    try:
        text = orjson.dumps(value)
        if text.count(b"{") + text.count(b"[") <= limit:
            return
    except TypeError:  # orjson.JSONEncodeError is one: too deep, or not its kind
        pass
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise InvalidInput("too deep")
        children = item.values() if type(item) is dict else item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list or kind is tuple:
                stack.append((child, depth + 1))


def payload(value: object, *, max_bytes: int) -> dict[str, Any]:
    """A payload: a JSON object, at most ``max_bytes`` bytes encoded as UTF-8.

    ``max_bytes`` is the setting ``ASYNCJOBS_MAX_PAYLOAD_BYTES``
    (``Settings.max_payload_bytes``), handed down by the caller.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            f"payload: must be a JSON object, not {type(value).__name__}"
        )
    check_depth(value, "payload")
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("payload: contains text that is not valid Unicode") from exc
    except RecursionError as exc:
        raise InvalidInput("payload: nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload: not JSON: {exc}") from exc
    if len(encoded) > max_bytes:
        raise PayloadTooLarge(
            f"payload: {len(encoded)} bytes is over the limit of {max_bytes}"
        )
    check_integers(value, encoded, "payload")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(f"duplicate key {shown(key)}")
        result[key] = value
    return result


def _no_constant(text: str) -> Any:
    raise InvalidInput(f"{text} is not allowed in JSON")


def parse_json(
    text: str | bytes,
    field: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    deep_field: str | None = None,
) -> Any:
    """Parse untrusted JSON strictly: no NaN/Infinity, no duplicate keys, bounded depth.

    A document nested deeper than ``max_depth`` is refused as
    ``<deep_field or field>: nested deeper than MAX_JSON_DEPTH levels``, the
    same words whatever the caller's stack depth: orjson, which does not
    recurse on the Python stack, measures it before the strict parse.
    """
    try:
        quick = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower():
            quick = _TOO_DEEP
        else:
            quick = None  # the strict parse below says what is wrong
    try:
        if quick is _TOO_DEEP:
            raise InvalidInput("too deep")
        _check_depth_at(quick, max_depth)
    except InvalidInput:
        raise InvalidInput(
            f"{deep_field or field}: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{field}: {exc.message}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{field}: nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{field}: not UTF-8") from exc
    except ValueError as exc:
        raise InvalidInput(f"{field}: not valid JSON ({exc})") from exc
