"""HTML that escapes by construction.

``Html`` marks text that is already markup; ``html(fmt, *args)`` escapes
every argument that is not ``Html`` (``&``, ``<``, ``>``, ``"`` and ``'``)
and returns ``Html``. Nothing the store holds can become markup unless a
caller wraps it in ``Html`` itself, and no code here does.
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Iterable, Sequence
from typing import Any


class Html(str):
    """Text that is markup already: inserted as it is."""


def escape(value: object) -> Html:
    """``value`` as text in HTML; ``Html`` passes through."""
    if isinstance(value, Html):
        return value
    return Html(_html.escape("" if value is None else str(value), quote=True))


def html(fmt: str, *args: object) -> Html:
    """``fmt`` (markup written here) with each ``{}`` filled by an escaped argument."""
    return Html(fmt.format(*(escape(a) for a in args)))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(sep.join(escape(p) for p in parts))


def table(header: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> Html:
    """A table with one row per item, or ``empty`` when there is none."""
    body = [
        html("<tr>{}</tr>", join(html("<td>{}</td>", c) for c in row)) for row in rows
    ]
    if not body:
        return html('<p class="empty">{}</p>', empty)
    head = join(html('<th scope="col">{}</th>', h) for h in header)
    return html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, join(body)
    )


def link(href: str, text: object) -> Html:
    return html('<a href="{}">{}</a>', href, text)


def pretty_json(value: Any, *, limit: int) -> Html:
    """A value as indented JSON in ``<pre>``, cut after ``limit`` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return html("<pre>{}</pre>", text)
