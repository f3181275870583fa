"""``asyncjobs store ...``: create, check, compact, export and import a store."""

from __future__ import annotations

import json
from typing import Any

import click

from ..client import Client
from ..errors import InvalidInput
from .common import cli, emit, json_option, pass_client


@cli.group()
def store() -> None:
    """Look after the store: create, check, compact, export, import."""


@store.command("init")
@json_option
@pass_client
def init(client: Client, as_json: bool) -> None:
    """Create an empty store if there is none."""
    info = client.init_store()
    word = "created" if info["created"] else "exists"
    emit(info, as_json, text=f"{word}: {info['store']}")


@store.command("check")
@click.option(
    "--strict",
    is_flag=True,
    help="Also compare the loaded state with a plain replay of the files.",
)
@json_option
@pass_client
def check(client: Client, strict: bool, as_json: bool) -> None:
    """Validate snapshot, journal, schema and references (exit 5 on a problem)."""
    report = client.check(strict=strict)
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items())
    summary = f"ok: {report.store} (generation {report.generation}; {counts})"
    if not report.ok:
        summary = f"{len(report.problems)} problem(s): {report.store}"
    emit(report.to_dict(), as_json, text=summary)
    if not as_json:
        for note in report.notes:
            click.echo(f"note: {note}")
    if not report.ok:
        for problem in report.problems:
            click.echo("error: " + " ".join(problem.split()), err=True)
        raise SystemExit(5)


@store.command("compact")
@json_option
@pass_client
def compact(client: Client, as_json: bool) -> None:
    """Fold the journal into the snapshot, so that it alone shows the state."""
    info = client.compact()
    text = info.get("note") or (
        f"compacted: generation {info['generation']}, "
        f"{info['folded_transactions']} transaction(s) folded"
    )
    emit(info, as_json, text=text)


@store.command("export")
@pass_client
def export(client: Client) -> None:
    """Print the whole current state as one JSON document."""
    click.echo(json.dumps(client.export(), indent=1, allow_nan=False))


@store.command("import")
@click.argument("source", type=click.File("rb"))
@json_option
@pass_client
def import_(client: Client, source: Any, as_json: bool) -> None:
    """Load a 'store export' document (from either engine) into an empty store.

    SOURCE is the file, or - for stdin. One transaction: a store that holds
    records, or a document that is not an export, changes nothing.
    """
    name = getattr(source, "name", "import")
    try:
        doc = json.loads(source.read())
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{name}: not JSON: {exc}") from None
    info = client.import_store(doc, source=name)
    emit(
        info,
        as_json,
        text=f"imported: {info['records']} record(s) into {info['store']}",
    )
    for problem in info["problems"]:
        click.echo("warning: " + problem, err=True)
