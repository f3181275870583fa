"""Access tokens for the HTTP API (tokens create, list, revoke) and the
dashboard's sign-in links (dashboard login-url)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click

from ..client import Client
from ..domain import tokens as token_rules
from ..domain import validation
from ..errors import InvalidInput
from .common import Number, cli, emit, json_option, pass_client

LOGIN_SECONDS = 8 * 3600  # a working day's session


def orgs_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--org`` / ``--tenant``, repeatable: the orgs a new token is for."""
    return click.option(
        "--org",
        "--tenant",
        "orgs",
        multiple=True,
        required=True,
        metavar="ORG",
        help=help,
    )


def role_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--role viewer|operator`` of a new token."""
    return click.option(
        "--role", type=click.Choice(token_rules.ROLES), required=True, help=help
    )


@cli.group()
def tokens() -> None:
    """Access tokens for serve --auth tokens: create, list, revoke."""


@tokens.command("create")
@orgs_option("An org the token acts for; repeat for several.")
@role_option("viewer: reads; operator: also every POST, /metrics and /telemetry.")
@click.option("--label", metavar="TEXT", help="What the token is for, to list it by.")
@click.option(
    "--expires-in",
    type=Number(token_rules.EXPIRES_IN_SECONDS),
    metavar="SECONDS",
    help="Expire this long from now (60 s to ten years; default: never).",
)
@json_option
@pass_client
def create(
    client: Client,
    orgs: tuple[str, ...],
    role: str,
    label: str | None,
    expires_in: float | None,
    as_json: bool,
) -> None:
    """Create a token and print it, once: the store keeps only its hash."""
    record, token = client.create_token(
        orgs=list(orgs), role=role, label=label, expires_in=expires_in
    )
    emit({"id": record["token_id"], "token": token}, as_json, text=token)
    if not as_json:
        click.echo(
            f"{record['token_id']}: {role} of {', '.join(record['orgs'])}; "
            "keep the token now, it is not shown again",
            err=True,
        )


@tokens.command("list")
@json_option
@pass_client
def list_(client: Client, as_json: bool) -> None:
    """List the tokens (never a token itself), oldest first."""
    from .jobs_cmds import _table

    found = client.tokens()
    rows = [
        [
            t["token_id"],
            t["role"],
            ",".join(t["orgs"]),
            t["label"] or "-",
            t["created_at"],
            t["expires_at"] or "-",
            t["revoked_at"] or "-",
        ]
        for t in found
    ]
    header = ["ID", "ROLE", "ORGS", "LABEL", "CREATED_AT", "EXPIRES_AT", "REVOKED_AT"]
    emit({"tokens": found}, as_json, text=_table(rows, header))


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
@pass_client
def revoke(client: Client, token_id: str, as_json: bool) -> None:
    """Revoke a token: every request with it is refused from now on."""
    record, changed = client.revoke_token(token_id)
    said = "revoked" if changed else f"already revoked at {record['revoked_at']}"
    emit(record, as_json, text=f"{token_id} {said}")


@cli.group()
def dashboard() -> None:
    """The web dashboard of serve --dashboard: sign-in links."""


@dashboard.command("login-url")
@orgs_option("An org the session may see; repeat for several.")
@role_option("viewer: reads; operator: also acts, and sees the store-wide pages.")
@click.option("--label", metavar="TEXT", help="Who the link is for, to list it by.")
@click.option(
    "--expires-in",
    type=Number(token_rules.EXPIRES_IN_SECONDS),
    default=LOGIN_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="The session ends this long from now (60 s to ten years).",
)
@click.option(
    "--url",
    "base_url",
    default="http://127.0.0.1:8080",
    show_default=True,
    metavar="URL",
    help="Where the server that serves the dashboard is reached.",
)
@json_option
@pass_client
def login_url(
    client: Client,
    orgs: tuple[str, ...],
    role: str,
    label: str | None,
    expires_in: float,
    base_url: str,
    as_json: bool,
) -> None:
    """Create an access token and print a link that signs in with it.

    The token rides in the link's fragment (after #), which a browser never
    sends to a server nor puts in a Referer: the page posts it and forgets it.
    """
    parsed = urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"--url: {validation.shown(base_url)} is not an http(s) URL")
    record, token = client.create_token(
        orgs=list(orgs), role=role, label=label, expires_in=expires_in
    )
    url = f"{base_url.rstrip('/')}/dashboard/login#{token}"
    emit(
        {"id": record["token_id"], "url": url, "expires_at": record["expires_at"]},
        as_json,
        text=url,
    )
