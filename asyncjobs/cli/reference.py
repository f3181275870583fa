"""docs/cli.md, generated from the click tree: `python scripts/gen_cli_docs.py` writes it."""

from __future__ import annotations

from collections.abc import Iterator

import click


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``command`` with its path, depth first, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(root: click.Group, prog: str = "asyncjobs") -> str:
    lines = [
        "# Command reference",
        "",
        "Generated from the command definitions by `scripts/gen_cli_docs.py`; a test",
        "keeps it current. Every command prints only its answer on stdout and errors",
        "as one line `error: …` on stderr, with exit codes 0 done, 1 anything else,",
        "2 invalid usage or input, 3 not found, 4 conflict, 5 store unreadable,",
        "corrupt or locked.",
        "",
    ]
    for path, command in walk(root):
        name = " ".join((prog, *path))
        ctx = click.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f"## `{name}`", "", f"```text\n{name} {usage}\n```", ""]
        if command.help:
            lines += [command.help.strip(), ""]
        rows = []
        for param in command.params:
            if isinstance(param, click.Argument):
                rows.append(
                    (
                        param.make_metavar(ctx)
                        if _takes_ctx(param)
                        else param.name.upper(),
                        "argument",
                        "",
                        "",
                    )
                )
                continue
            if not isinstance(param, click.Option) or param.hidden:
                continue
            flags = ", ".join(
                f"`{flag}`" for flag in (*param.opts, *param.secondary_opts)
            )
            env = f"`{param.envvar}`" if isinstance(param.envvar, str) else ""
            default = ""
            if param.show_default and param.default not in (None, False, ()):
                default = f"`{param.default}`"
            rows.append((flags, _cell(param.help or ""), env, default))
        if rows:
            lines += [
                "| option | meaning | env | default |",
                "| --- | --- | --- | --- |",
            ]
            lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
            lines.append("")
    return "\n".join(lines)


def _takes_ctx(param: click.Parameter) -> bool:
    import inspect

    return "ctx" in inspect.signature(param.make_metavar).parameters
