"""Rules for input: names, payloads, priorities, times.

Every check raises ``InvalidInput`` with a message that names the field and
says why, before anything is written. Names (orgs, tasks, queues) follow
``[A-Za-z0-9][A-Za-z0-9._:-]{0,63}`` and are never ``.`` or ``..``: org ids
reach file paths under ``artifacts/``.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import orjson

from .errors import InvalidInput

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


def priority(value: object) -> int:
    value = _whole(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise InvalidInput(
            f"priority: {shown(value)} is not a whole number from 0 to 9"
        )
    return value


def max_retries(value: object) -> int | None:
    if value is None:
        return None
    value = _whole(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_RETRIES_LIMIT
    ):
        raise InvalidInput(
            f"max_retries: {shown(value)} is not a whole number from 0 to "
            f"{MAX_RETRIES_LIMIT}"
        )
    return value


def delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"delay: {shown(value)} is not a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= MAX_DELAY_SECONDS:
        raise InvalidInput(
            f"delay: {shown(value)} must be from 0 to {MAX_DELAY_SECONDS} seconds"
        )
    return float(value)


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


def limit(value: object, field: str = "limit", maximum: int = 10_000) -> int:
    value = _whole(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= maximum
    ):
        raise InvalidInput(
            f"{field}: {shown(value)} is not a whole number from 1 to {maximum}"
        )
    return value


def max_payload_bytes() -> int:
    """The payload limit: ``ASYNCJOBS_MAX_PAYLOAD_BYTES``, 1 MiB by default."""
    raw = os.environ.get("ASYNCJOBS_MAX_PAYLOAD_BYTES")
    if raw is None:
        return DEFAULT_MAX_PAYLOAD_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidInput(
            f"ASYNCJOBS_MAX_PAYLOAD_BYTES: {shown(raw)} is not a positive number"
        )
    return value


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


class PayloadTooLarge(InvalidInput):
    """The payload is larger than the limit."""

    code = "payload_too_large"


def payload(value: object, *, max_bytes: int | None = None) -> dict[str, Any]:
    """A payload: a JSON object, at most ``max_bytes`` bytes encoded as UTF-8."""
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
    max_bytes = max_payload_bytes() if max_bytes is None else max_bytes
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
