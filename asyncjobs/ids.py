"""Record ids: the one place that draws random bits.

An id is ``<prefix>_<26 characters>``: 10 characters of milliseconds since the
epoch and 16 random characters (80 bits from ``secrets``), both in Crockford's
base 32, so ids sort by creation time and cannot be guessed.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = ("job", "res", "evt", "ntf", "wrk")
ID_PATTERN = re.compile(r"^(job|res|evt|ntf|wrk)_[0-9A-HJKMNP-TV-Z]{26}$")


# RFC 4648 base 32 (A-Z, 2-7) digit by digit into Crockford's alphabet:
# the C encoder does the bit work, ten times faster than a Python loop.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def _base32(number: int, length: int) -> str:
    """``number`` as ``length`` Crockford base-32 digits (it must fit)."""
    width = -(-length * 5 // 40) * 5  # bytes: whole 40-bit groups, no padding
    encoded = base64.b32encode(number.to_bytes(width, "big"))
    return encoded.translate(_FROM_RFC4648)[-length:].decode()


def new_id(prefix: str, now: datetime) -> str:
    """A new unguessable id such as ``job_01JD3...``, time-ordered by ``now``."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(now.timestamp() * 1000)
    return f"{prefix}_{_base32((millis << 80) | secrets.randbits(80), 26)}"


def is_id(value: str, prefix: str) -> bool:
    """Whether ``value`` is a well-formed id with that prefix."""
    match = ID_PATTERN.match(value)
    return bool(match) and match.group(1) == prefix


def random_fraction() -> float:
    """A random number in [0, 1), for retry jitter."""
    return secrets.randbits(53) / (1 << 53)
