"""A few records of a JSON file store, read without loading the rest.

A one-shot command such as ``status JOB`` needs one job and a few records
around it; parsing a 200 MB snapshot to find them takes seconds and a
gigabyte of memory. A snapshot written by ``format.snapshot_bytes`` holds
one record per line and, in its last member, the byte range and checksum of
each kind's section. ``ColdReader`` finds the lines of a kind's section
that hold a key (or a field's value), checking the section's checksum as it
reads it, then applies the journal lines that mention it.

Anything it does not expect (a snapshot of the older layout, a checksum or
a range that does not match, a line that does not parse) raises
``Unavailable``: the caller loads the store whole, which says what is wrong.
Damage to the journal, or to the snapshot's first and last lines, is
reported exactly as a whole load reports it (``format.parse_journal``,
``format.section_index``). The caller holds the store's lock throughout.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..ports import KINDS, Record
from .fileio import FileIO
from .format import (
    EDGE_BYTES,
    dumps,
    entry_problem,
    loads,
    opening_of,
    parse_journal,
    section_index,
)

CHUNK_BYTES = 8 << 20  # read at a time; memory stays near this, whatever the store


class Unavailable(Exception):
    """The store cannot be read this way: load it whole."""


class ColdReader:
    """Records by key or by a field's value, from snapshot and journal, under the lock."""

    def __init__(self, io: FileIO, path: str, journal_path: str) -> None:
        self.io = io
        self.path = path
        self.journal_path = journal_path
        self._fd: int | None = None
        self._generation = 0
        self._sections: dict[str, tuple[int, int, int]] = {}
        self._journal: bytes | None = None

    def open(self) -> None:
        """Read the snapshot's first and last lines; Unavailable if they are not the layout."""
        fd = self.io.open_read(self.path)
        if fd is None:  # a store of journal lines only: every section is empty
            self._sections = {kind: (0, 0, 0) for kind in KINDS}
            return
        self._fd = fd
        size = self.io.fstat(fd).st_size
        head = self.io.pread(fd, EDGE_BYTES, 0)
        tail = self.io.pread(fd, EDGE_BYTES, max(0, size - EDGE_BYTES))
        found = section_index(head, tail, size, self.path)
        if found is None:
            raise Unavailable("not a snapshot of one record per line")
        self._generation, index = found
        for kind, (start, end, crc) in index.items():
            opening = opening_of(kind)
            if self.io.pread(fd, len(opening), start - len(opening)) != opening:
                raise Unavailable(f"the section of {kind} is not where it says")
            self._sections[kind] = (start, end, crc)

    def close(self) -> None:
        if self._fd is not None:
            self.io.close(self._fd)
            self._fd = None

    def by_key(self, kind: str, key: str) -> Record | None:
        """The record of ``kind`` stored under ``key``, or None."""
        _ascii(key)
        needle = dumps(key) + b":"
        found: dict[str, Record] = {}
        for line in self._lines(kind, needle, at_line_start=True):
            record_key, record = _record_of(line)
            if record_key == key:
                found[key] = record
        self._replay(kind, dumps(key), found, lambda k, r: k == key)
        return found.get(key)

    def by_field(self, kind: str, field: str, value: str) -> dict[str, Record]:
        """Every record of ``kind`` whose ``field`` is ``value``, by key."""
        _ascii(value)
        needle = dumps(field) + b":" + dumps(value)
        found: dict[str, Record] = {}
        for line in self._lines(kind, needle, at_line_start=False):
            record_key, record = _record_of(line)
            if record.get(field) == value:
                found[record_key] = record
        self._replay(kind, dumps(value), found, lambda k, r: r.get(field) == value)
        return found

    # -- the snapshot ------------------------------------------------------

    def _lines(self, kind: str, needle: bytes, *, at_line_start: bool) -> list[bytes]:
        """The record lines of a kind's section that hold ``needle``.

        The whole section is read, in pieces that end at a line's end, so
        that its checksum is checked and no line is cut.
        """
        start, end, crc = self._sections[kind]
        if self._fd is None or start == end:
            return []
        lines, checked, carry, offset = [], 0, b"", start
        while offset < end or carry:
            piece = self.io.pread(self._fd, min(CHUNK_BYTES, end - offset), offset)
            offset += len(piece)
            if not piece and offset < end:
                raise Unavailable("the snapshot is shorter than its sections say")
            data = carry + piece
            cut = data.rfind(b"\n") + 1 if offset < end else len(data)
            data, carry = data[:cut], data[cut:]
            checked = zlib.crc32(data, checked)
            at = data.find(needle)
            while at >= 0:
                line_start = data.rfind(b"\n", 0, at) + 1
                if not at_line_start or line_start == at:
                    line_end = data.find(b"\n", at)
                    lines.append(data[line_start : line_end if line_end >= 0 else None])
                    at = line_end
                    if at < 0:
                        break
                at = data.find(needle, at + 1)
            if offset >= end and not carry:
                break
        if checked != crc:
            raise Unavailable(f"the section of {kind} fails its checksum")
        return lines

    # -- the journal -------------------------------------------------------

    def _replay(
        self,
        kind: str,
        mention: bytes,
        found: dict[str, Record],
        matches: Any,
    ) -> None:
        """Apply the journal's changes to what was found, in commit order.

        Only lines that mention the value, or delete anything, are parsed:
        the others change none of these records.
        """
        if self._journal is None:
            fd = self.io.open_read(self.journal_path)
            if fd is None:
                self._journal = b""
            else:
                try:
                    self._journal = self.io.pread(fd, self.io.fstat(fd).st_size, 0)
                finally:
                    self.io.close(fd)
        journal = parse_journal(
            self._journal,
            self._generation,
            self.journal_path,
            wanted=lambda body: mention in body or not body.endswith(b'"del":{}}'),
        )
        for entry in journal.entries:
            if entry_problem(entry):
                raise Unavailable("a journal line of the wrong shape")
            for key in entry["del"].get(kind, ()):
                found.pop(key, None)
            for key, record in entry["put"].get(kind, {}).items():
                if matches(key, record):
                    found[key] = record
                else:
                    found.pop(key, None)


def _ascii(text: str) -> None:
    """Only ASCII is looked up: a snapshot may hold other text as UTF-8 and a
    journal line as escapes, and a search for one form misses the other."""
    if not text.isascii():
        raise Unavailable("a key that is not ASCII")


def _parse(data: bytes) -> dict[str, Any]:
    try:
        doc = loads(data)
    except (ValueError, RecursionError) as exc:
        raise Unavailable("a line that does not parse") from exc
    if not isinstance(doc, dict):
        raise Unavailable("a line that is not an object")
    return doc


def _record_of(line: bytes) -> tuple[str, Record]:
    """A section line, ``"key":{...}`` with or without its comma, as (key, record)."""
    doc = _parse(b"{" + line.rstrip(b",") + b"}")
    if len(doc) != 1:
        raise Unavailable("a section line that is not one record")
    ((key, record),) = doc.items()
    if not isinstance(record, dict):
        raise Unavailable("a section line that is not one record")
    return key, record
