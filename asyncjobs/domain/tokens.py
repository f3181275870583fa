"""Access tokens for the HTTP API: what one allows, and how one is checked.

A token is ``<token id>.<secret>``: the id (``tok_…``) names its record, the
secret is 256 random bits. The store keeps the SHA-256 of the secret, never
the secret: a copy of the store lets nobody in. A token is bound to one or
more orgs and has a role: a ``viewer`` reads, an ``operator`` also writes
(every POST) and reads ``/metrics`` and ``/telemetry``. It may expire, and
it can be revoked; either way it stops at once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .. import clock, ids
from ..errors import Forbidden, InvalidInput, Unauthorized
from . import validation

ROLES = ("viewer", "operator")
EXPIRES_IN_SECONDS = (60, 10 * 366 * 86400)  # a minute to ten years
MAX_LABEL_CHARS = 200
MAX_ORGS = 100
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class AccessToken:
    """A token's record (the secret's hash, never the secret)."""

    token_id: str
    orgs: list[str]
    role: str
    secret_sha256: str = field(repr=False)
    created_at: str
    label: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None

    KIND = "tokens"

    @property
    def key(self) -> str:
        return self.token_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "orgs": list(self.orgs),
            "role": self.role,
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "secret_sha256": self.secret_sha256,
        }

    def shown(self) -> dict[str, Any]:
        """What ``tokens list`` shows: the record without the hash."""
        doc = self.to_dict()
        del doc["secret_sha256"]
        return doc

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> AccessToken:
        return cls(
            token_id=record["token_id"],
            orgs=list(record["orgs"]),
            role=record["role"],
            secret_sha256=record["secret_sha256"],
            created_at=record["created_at"],
            label=record.get("label"),
            expires_at=record.get("expires_at"),
            revoked_at=record.get("revoked_at"),
        )

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def new(
    orgs: list[str],
    role: str,
    *,
    label: str | None,
    expires_in: float | None,
    now: datetime,
) -> tuple[AccessToken, str]:
    """A new token's record and the token itself (shown once, never stored)."""
    if not orgs:
        raise InvalidInput("org: give at least one org")
    if len(orgs) > MAX_ORGS:
        raise InvalidInput(f"org: at most {MAX_ORGS} orgs a token")
    bound = list(dict.fromkeys(validation.org(org) for org in orgs))
    if role not in ROLES:
        raise InvalidInput(f"role: {validation.shown(role)} is not viewer or operator")
    if label is not None and (
        not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL_CHARS
    ):
        raise InvalidInput(f"label: give 1 to {MAX_LABEL_CHARS} characters")
    expires_at = None
    if expires_in is not None:
        seconds = validation.seconds(expires_in, "expires_in", EXPIRES_IN_SECONDS)
        expires_at = clock.to_iso(now + timedelta(seconds=seconds))
    secret = ids.secret()
    record = AccessToken(
        token_id=ids.new_id("tok", now),
        orgs=bound,
        role=role,
        secret_sha256=_digest(secret),
        created_at=clock.to_iso(now),
        label=label,
        expires_at=expires_at,
    )
    return record, f"{record.token_id}.{secret}"


def token_id_of(presented: str) -> str:
    """The id a presented token names; Unauthorized when it is not a token's shape."""
    token_id, dot, secret = presented.partition(".")
    if (
        len(presented) > MAX_TOKEN_CHARS
        or not dot
        or not secret
        or not ids.is_id(token_id, "tok")
    ):
        raise Unauthorized("the access token is not valid")
    return token_id


def check(record: AccessToken | None, presented: str, now: datetime) -> AccessToken:
    """The token's record if ``presented`` is it and it is live; Unauthorized if not.

    One answer for every reason (unknown, wrong secret, expired, revoked),
    and the secret's hash is compared in constant time.
    """
    secret = presented.partition(".")[2]
    matches = hmac.compare_digest(
        _digest(secret), record.secret_sha256 if record is not None else _NO_MATCH
    )
    if record is None or not matches:
        raise Unauthorized("the access token is not valid")
    if record.revoked_at is not None or (
        record.expires_at is not None and record.expires_at <= clock.to_iso(now)
    ):
        raise Unauthorized("the access token is not valid")
    return record


def allow(
    token: AccessToken, *, org: str | None, write: bool, operators_only: bool
) -> None:
    """Forbidden unless ``token`` may act for ``org`` in this way.

    ``org``: the tenant a route acts for (None: a route of no tenant).
    ``write``: a POST. ``operators_only``: ``/metrics``, ``/telemetry``.
    """
    if org is not None and org not in token.orgs:
        raise Forbidden(f"this access token is not for org {org}")
    if (write or operators_only) and not token.operator:
        raise Forbidden(
            "a viewer's access token cannot do this; it takes an operator's"
        )


def revoke(record: AccessToken, now: datetime) -> AccessToken:
    """The record revoked (as it is when it already was)."""
    if record.revoked_at is not None:
        return record
    return replace(record, revoked_at=clock.to_iso(now))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


_NO_MATCH = "0" * 64  # compared against when there is no record, as long as a hash
