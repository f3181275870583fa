"""Record ids: the one place that draws random bits.

An id is ``<prefix>_<26 characters>``: 10 characters of milliseconds since the
epoch and 16 random characters (80 bits from ``secrets``), both in Crockford's
base 32, so ids sort by creation time and cannot be guessed.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = ("job", "res", "evt", "ntf", "wrk", "tok")
ID_PATTERN = re.compile(r"^(job|res|evt|ntf|wrk|tok)_[0-9A-HJKMNP-TV-Z]{26}$")


# Every pair of digits, so that an id takes 13 lookups of 10 bits each.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _base32(number: int, length: int) -> str:
    """``number`` as ``length`` Crockford base-32 digits (it must fit; length even)."""
    shifts = range((length // 2 - 1) * 10, -1, -10)
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in shifts])


def new_id(prefix: str, now: datetime) -> str:
    """A new unguessable id such as ``job_01JD3...``, time-ordered by ``now``."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    global _head
    millis = int(now.timestamp() * 1000)
    head = _head
    if head[0] != millis:
        head = _head = (millis, _base32(millis, 10))
    return f"{prefix}_{head[1]}{_base32(secrets.randbits(80), 16)}"


# The time part of the last id made: ids come many to a millisecond.
_head: tuple[int, str] = (-1, "")


def is_id(value: str, prefix: str) -> bool:
    """Whether ``value`` is a well-formed id with that prefix."""
    match = ID_PATTERN.match(value)
    return bool(match) and match.group(1) == prefix


def secret() -> str:
    """A new secret: 256 random bits from ``secrets``, URL-safe base 64 (43 characters)."""
    return secrets.token_urlsafe(32)


def random_fraction() -> float:
    """A random number in [0, 1), for retry jitter."""
    return secrets.randbits(53) / (1 << 53)
