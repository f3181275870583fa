"""Access tokens: create, list, revoke, and check one presented to the HTTP API.

Each operation is one transaction (``store/ports.py``); the rules are in
``domain/tokens.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import clock as clocks
from ..domain import tokens
from ..errors import NotFound
from ..store import Store


class Access:
    """The token operations of one store (``Client`` hands them on)."""

    def __init__(self, store: Store, clock: clocks.Clock | None) -> None:
        self.store = store
        self.clock = clock

    def create(
        self,
        orgs: Sequence[str],
        role: str,
        *,
        label: str | None,
        expires_in: float | None,
    ) -> tuple[dict[str, Any], str]:
        with self.store.transaction(clock=self.clock) as tx:
            record, token = tokens.new(
                list(orgs), role, label=label, expires_in=expires_in, now=tx.now
            )
            tx.save(record)
        return record.shown(), token

    def list(self) -> list[dict[str, Any]]:
        with self.store.read(clock=self.clock) as tx:
            found = [tokens.AccessToken.from_dict(r) for r in tx.tokens()]
        return [t.shown() for t in sorted(found, key=lambda t: t.created_at)]

    def revoke(self, token_id: str) -> tuple[dict[str, Any], bool]:
        """The token's record, revoked, and whether it was live until now."""
        with self.store.transaction(clock=self.clock) as tx:
            record = tx.token(token_id) if isinstance(token_id, str) else None
            if record is None:
                raise NotFound(f"token {token_id} not found")
            before = tokens.AccessToken.from_dict(record)
            after = tokens.revoke(before, tx.now)
            if after is not before:
                tx.save(after)
        return after.shown(), after is not before

    def authenticate(self, presented: str) -> tokens.AccessToken:
        token_id = tokens.token_id_of(presented)
        with self.store.read(clock=self.clock) as tx:
            record = tx.token(token_id)
            now = tx.now
        found = None if record is None else tokens.AccessToken.from_dict(record)
        return tokens.check(found, presented, now)
