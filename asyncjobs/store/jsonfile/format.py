"""The JSON file backend's formats: journal lines and the snapshot document.

Journal line (the file may end in zero bytes reserved for the next lines)::

    <crc32 of the JSON, 8 hex digits> <JSON>\n
    JSON = {"g": generation, "b": snapshot generation it follows,
            "put": {kind: {key: record}}, "del": {kind: [key, ...]}}

Snapshot: one JSON object with ``schema`` ("store.v1"), ``generation``,
``saved_at`` and one object per kind mapping keys to records. Written by
``snapshot_bytes``: one record per line, and a last member ``sections``
with the byte range of each kind, so that a record is found by its key
without parsing the rest (``cold.py``). See docs/store-format.md.
"""

from __future__ import annotations

import gc
import json
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from ...domain.validation import check_integers
from ...errors import InvalidInput, StoreCorrupt
from ..ports import KINDS, Record

SCHEMA = "store.v1"
# No line this version writes is longer: a larger transaction commits as a
# new snapshot. A longer line (or a tail without a newline) is not ours.
MAX_LINE_BYTES = 16 << 20
# A crash tears at most the line being written; a power cut may also leave
# a few sectors of garbage in what that one write covered. More garbage than
# this after the last good line, or a second line's worth of bad lines, is
# damage to lines that were committed.
MAX_TORN_GARBAGE_BYTES = 4096
# Every byte a line holds: json.dumps writes ASCII and escapes control
# characters. Zeros are the space reserved ahead.
_LINE_BYTES = bytes(range(0x20, 0x7F)) + b"\n\0"
_LINE_START = re.compile(rb"\0*[0-9a-f]{8} \{")


def dumps(value: Any) -> bytes:
    """Compact JSON as bytes, for a snapshot of records already in the store.

    orjson writes the same bytes as the stdlib's compact ``json.dumps`` for
    ASCII text, ten times faster. It writes NaN as null, but no record holds
    one (``encode_line`` refused it); where it refuses a value (non-string
    keys), the stdlib writes it.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def snapshot_bytes(
    generation: int,
    saved_at: str,
    state: dict[str, dict[str, Record]],
    unparsed: dict[str, memoryview] | None = None,
) -> bytes:
    """A snapshot document laid out one record per line, its sections indexed.

    ::

        {"schema":"store.v1","generation":42,"saved_at":"...",
        "jobs":{
        "job_...":{...},
        "job_...":{...}
        },
        "results":{
        },
        ...
        "sections":{"jobs":[START,END,CRC32],...}}

    JSON writes no newline inside a value, so each line between a kind's
    opening and its closing ``}`` is one record. ``sections`` gives, for
    each kind, the offsets of its first record line and of its closing
    line, and the CRC-32 of the bytes between. A kind in ``unparsed`` (a
    section as ``split_snapshot`` left it, unchanged since) is copied as it
    is, without being parsed and written again.
    """
    head = dumps({"schema": SCHEMA, "generation": generation, "saved_at": saved_at})
    parts = [head[:-1], b",\n"]
    offset = len(head) + 1
    sections: dict[str, list[int]] = {}
    for kind in KINDS:
        opening = opening_of(kind)
        if unparsed is not None and kind in unparsed:
            body = bytes(unparsed[kind][2:-1])  # between its "{\n" and its "}"
        else:
            lines = [
                dumps(key) + b":" + dumps(record)
                for key, record in state.get(kind, {}).items()
            ]
            body = b",\n".join(lines) + b"\n" if lines else b""
        start = offset + len(opening)
        sections[kind] = [start, start + len(body), zlib.crc32(body)]
        parts += [opening, body, b"},\n"]
        offset = start + len(body) + 3
    parts += [b'"sections":', dumps(sections), b"}\n"]
    return b"".join(parts)


def canonical(value: Any) -> bytes:
    """JSON with sorted keys, for comparing values as the files hold them."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def loads(data: bytes | memoryview) -> Any:
    """Parse JSON bytes; raises ValueError or RecursionError when they are not JSON.

    orjson parses about twice as fast. What it refuses (nesting deeper than
    1024, NaN, a lone surrogate escape) the stdlib decides, so a document
    reads the same either way. The one difference, integers beyond 64 bits
    read as floats, cannot arise from records this version writes:
    ``encode_line`` refuses them.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)


_freeze_parsed = False


_cold_reads = False


def allow_cold_reads(on: bool = True) -> None:
    """Let the first reads of a process look up their records (cold.py), for one-shot commands.

    A long-lived process (a server, a worker) loads the store once instead:
    it reads often, and each cold read scans a kind's whole section.
    """
    global _cold_reads
    _cold_reads = on


def cold_reads_allowed() -> bool:
    return _cold_reads


def freeze_parsed_snapshots(on: bool = True) -> None:
    """Keep parsed snapshots out of the cyclic GC's scans for good (``gc.freeze``).

    Without it, the first collections after a large parse scan every new
    record again: up to a second on a 200 MB store. Freezing also freezes
    everything else alive at that moment, which a host application may not
    want, so only processes that own their heap turn it on: the
    ``asyncjobs`` command does. Records hold no cycles; reference counting
    still frees them when a newer snapshot replaces them.
    """
    global _freeze_parsed
    _freeze_parsed = on


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large document is parsed.

    Building millions of containers triggers collection after collection,
    each scanning everything built so far: a third of a large snapshot's
    parse time. The records hold no cycles, so nothing is missed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if _freeze_parsed:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()


def encode_line(entry: dict[str, Any]) -> bytes:
    """One journal line: checksum, a space, the JSON, a newline.

    Every record enters the store through here, so this is where values
    the store cannot read back exactly are refused (InvalidInput): NaN,
    infinities and integers beyond 64 bits.
    """
    body = _fast_body(entry)
    if body is None:
        try:
            body = json.dumps(entry, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"record is not JSON: {exc}") from exc
        check_integers(entry.get("put"), body, "record")  # "del" holds only keys
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _fast_body(entry: dict[str, Any]) -> bytes | None:
    """orjson's encoding of ``entry`` when it is what json.dumps would write, else None.

    orjson refuses integers beyond 64 bits, but writes NaN and infinities
    as null and other text as UTF-8: its bytes are taken only when they
    are ASCII and read back as ``entry``. Encoding, parsing and comparing
    in C take a third of the stdlib's encoding alone.
    """
    try:
        body = orjson.dumps(entry)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if not body.isascii() or orjson.loads(body) != entry:
        return None
    return body


# How every line this version writes begins (encode_line: g, b, put, del).
_LINE_HEAD = re.compile(rb'\{"g":(\d+),"b":(\d+),"put":')


def decode_line(
    line: bytes, wanted: Callable[[bytes], bool] | None = None
) -> dict[str, Any] | None:
    """The entry of a complete journal line, or None if it fails its checksum.

    A line whose JSON ``wanted`` declines is not parsed: its entry holds
    only ``g`` and ``b``, read from the line's start.
    """
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    body = line[9:]
    if zlib.crc32(body) != crc:
        return None
    if wanted is not None and not wanted(body):
        head = _LINE_HEAD.match(body)
        if head is not None:
            return {"g": int(head[1]), "b": int(head[2])}
    try:
        entry = loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("g"), int):
        return None
    return entry


class Journal:
    """The parsed journal: live entries, and where the good bytes end."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.valid_end = 0  # bytes up to the end of the last good line
        self.stale = False  # holds lines already folded into the snapshot
        self.torn_bytes = 0  # a bad tail after valid_end


def parse_journal(
    data: bytes,
    snapshot_generation: int,
    name: str,
    *,
    wanted: Callable[[bytes], bool] | None = None,
) -> Journal:
    """Parse journal bytes that follow a snapshot; raise StoreCorrupt in the middle.

    With ``wanted``, a line whose JSON it declines is checked (checksum,
    generation) but not parsed, and is left out of ``entries``.
    """
    journal = Journal()
    generation = snapshot_generation
    live = False  # a line after the snapshot was read (parsed or not)
    pos, line_no, size = 0, 0, len(data)
    while pos < size:
        end = data.find(b"\n", pos, pos + MAX_LINE_BYTES + 1)
        line_no += 1
        if end < 0:
            if size - pos > MAX_LINE_BYTES and data.count(0, pos) < size - pos:
                raise StoreCorrupt(
                    f"{name}: line {line_no} is longer than the {MAX_LINE_BYTES >> 20} "
                    "MiB a journal line may hold"
                )
            break  # a cut last line: the torn tail
        entry = decode_line(data[pos:end], wanted)
        if entry is None:
            if _has_good_line(data, end + 1):
                raise StoreCorrupt(
                    f"{name}: line {line_no} is corrupt (checksum mismatch) "
                    "and later lines are intact"
                )
            break
        g, base = entry["g"], entry.get("b")
        if g <= snapshot_generation and not live:
            journal.stale = True  # a crash between snapshot and truncation
        elif base != snapshot_generation or g != generation + 1:
            raise StoreCorrupt(
                f"{name}: line {line_no} has generation {g} (snapshot {base}) "
                f"where {generation + 1} (snapshot {snapshot_generation}) was expected"
            )
        else:
            if "put" in entry:  # not a line ``wanted`` declined
                journal.entries.append(entry)
            live = True
            generation = g
        pos = end + 1
        journal.valid_end = pos
    tail = data[journal.valid_end :].rstrip(b"\0")  # zeros are space reserved ahead
    journal.torn_bytes = len(tail)
    problem = _damage(tail)
    if problem:
        good = data.count(b"\n", 0, journal.valid_end)
        raise StoreCorrupt(
            f"{name}: {problem} after line {good} (damage, not an interrupted write)"
        )
    return journal


def _damage(tail: bytes) -> str | None:
    """Why the bad bytes after the last good line cannot be a torn write, or None.

    An interrupted write leaves one line cut, zeroed or garbled in places.
    Two or more bad lines, or more garbage than a few torn sectors, mean
    that lines already committed (fsynced, acknowledged) were damaged, and
    cutting them would lose those commits for good.
    """
    if not tail:
        return None
    garbage = len(tail.translate(None, _LINE_BYTES))
    if garbage > MAX_TORN_GARBAGE_BYTES:
        return f"{garbage} bytes that no journal line holds"
    lines = sum(1 for part in tail.split(b"\n") if _LINE_START.match(part))
    if lines > 1:
        return f"{lines} lines that fail their checksum"
    return None


def _has_good_line(data: bytes, pos: int) -> bool:
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            return False
        if decode_line(data[pos:end]) is not None:
            return True
        pos = end + 1
    return False


def parse_snapshot(
    raw: bytes | memoryview, name: str
) -> tuple[int, dict[str, dict[str, Record]], list[str]]:
    """Generation, records and unknown top-level keys of a snapshot.

    Raises StoreCorrupt when the bytes are not a snapshot this version reads.
    """
    try:
        with gc_paused():
            doc = loads(raw)
    except RecursionError as exc:
        raise StoreCorrupt(f"{name}: not a store snapshot (nested too deeply)") from exc
    except ValueError as exc:
        raise StoreCorrupt(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise StoreCorrupt(f"{name}: not a store snapshot (not a JSON object)")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise StoreCorrupt(
            f"{name}: unknown schema {schema!r} (this asyncjobs reads {SCHEMA!r})"
        )
    generation = doc.get("generation")
    if (
        not isinstance(generation, int)
        or isinstance(generation, bool)
        or generation < 0
    ):
        raise StoreCorrupt(f"{name}: generation is not a whole number: {generation!r}")
    state: dict[str, dict[str, Record]] = {}
    for kind in KINDS:
        records = doc.get(kind, {})
        if not isinstance(records, dict):
            raise StoreCorrupt(f"{name}: {kind!r} is not a JSON object")
        if records and set(map(type, records.values())) != {dict}:
            key = next(k for k, r in records.items() if type(r) is not dict)
            raise StoreCorrupt(f"{name}: {kind} record {key!r} is not a JSON object")
        state[kind] = records
    _check_sections(raw, doc.get("sections"), name)
    known = {*KINDS, "schema", "generation", "saved_at", "sections"}
    return generation, state, sorted(key for key in doc if key not in known)


# A snapshot's first line (schema, generation) and its last (sections) are shorter.
EDGE_BYTES = 4096


def section_index(
    head: bytes, tail: bytes, size: int, name: str
) -> tuple[int, dict[str, tuple[int, int, int]]] | None:
    """Generation and each kind's (start, end, CRC-32) of a snapshot of ``size`` bytes.

    Read from its first and last EDGE_BYTES (``snapshot_bytes`` lays them
    out); None for a snapshot of the older layout. StoreCorrupt for a
    schema or a generation this version does not read, or a malformed
    section.
    """
    end = head.find(b"\n")
    if not head.startswith(b'{"schema":') or end < 2 or head[end - 1 : end] != b",":
        return None
    at = tail.rfind(b'\n"sections":')
    if at < 0 or not tail.endswith(b"}\n"):
        return None
    try:
        doc = loads(head[: end - 1] + b"}")
        sections = loads(tail[at + len(b'\n"sections":') : -2])
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(sections, dict):
        return None
    if doc.get("schema") != SCHEMA:
        raise StoreCorrupt(
            f"{name}: unknown schema {doc.get('schema')!r} (this asyncjobs reads {SCHEMA!r})"
        )
    generation = doc.get("generation")
    if type(generation) is not int or generation < 0:
        raise StoreCorrupt(f"{name}: generation is not a whole number: {generation!r}")
    index = {}
    for kind in KINDS:
        if kind not in sections:
            return None
        index[kind] = _section_entry(sections[kind], kind, size, name)
    return generation, index


def _section_entry(entry: Any, kind: str, size: int, name: str) -> tuple[int, int, int]:
    if (
        not isinstance(entry, list)
        or len(entry) != 3
        or not all(type(n) is int for n in entry)
        or not 0 < entry[0] <= entry[1] <= size
    ):
        raise StoreCorrupt(f"{name}: the section of {kind!r} is malformed")
    return entry[0], entry[1], entry[2]


def opening_of(kind: str) -> bytes:
    """The line that opens a kind's section; its records start right after it."""
    return b'"%s":{\n' % kind.encode()


def split_snapshot(raw: bytes, name: str) -> tuple[int, dict[str, memoryview]] | None:
    """Generation and each kind's section, unparsed, of a snapshot with sections.

    Each section is the JSON object of its kind's records (``{`` to ``}``),
    to be parsed when the kind is first read (``parse_section``); their
    checksums are checked here. None for a snapshot of the older layout:
    ``parse_snapshot`` reads it whole.
    """
    found = section_index(raw[:EDGE_BYTES], raw[-EDGE_BYTES:], len(raw), name)
    if found is None:
        return None
    generation, index = found
    view = memoryview(raw)
    parts = {}
    for kind, (start, stop, crc) in index.items():
        opening = opening_of(kind)
        if raw[start - len(opening) : start] != opening or raw[stop : stop + 1] != b"}":
            return None
        if zlib.crc32(view[start:stop]) != crc:
            raise StoreCorrupt(f"{name}: the {kind} section fails its checksum")
        parts[kind] = view[start - 2 : stop + 1]  # "{\n", the records, "}"
    return generation, parts


def parse_section(data: memoryview, kind: str, name: str) -> dict[str, Record]:
    """The records of one section that ``split_snapshot`` left unparsed."""
    try:
        with gc_paused():
            records = loads(data)
    except (ValueError, RecursionError) as exc:
        raise StoreCorrupt(f"{name}: {kind!r} is not valid JSON ({exc})") from exc
    if not isinstance(records, dict):
        raise StoreCorrupt(f"{name}: {kind!r} is not a JSON object")
    if records and set(map(type, records.values())) != {dict}:
        key = next(k for k, r in records.items() if type(r) is not dict)
        raise StoreCorrupt(f"{name}: {kind} record {key!r} is not a JSON object")
    return records


def _check_sections(raw: bytes | memoryview, sections: Any, name: str) -> None:
    """A snapshot's section checksums (snapshot_bytes) must match: they catch a
    flipped byte that leaves the JSON readable. Older snapshots have none."""
    if sections is None:
        return
    if not isinstance(sections, dict):
        raise StoreCorrupt(f"{name}: 'sections' is not a JSON object")
    for kind, entry in sections.items():
        start, end, crc = _section_entry(entry, kind, len(raw), name)
        if zlib.crc32(raw[start:end]) != crc:
            raise StoreCorrupt(f"{name}: the {kind} section fails its checksum")


def reference_replay(
    snapshot: bytes | memoryview | None, journal: bytes
) -> tuple[int, dict[str, dict[str, Record]]]:
    """Snapshot plus journal read the plainest way: the oracle of ``store check --strict``.

    The standard library's parser, no indexes, no fast paths, no mapping:
    what the loader builds must equal this. Stops at the first line that
    fails its checksum (a torn tail: the loader has already proved that no
    good line follows one).
    """
    state: dict[str, dict[str, Record]] = {kind: {} for kind in KINDS}
    base = generation = 0
    if snapshot is not None:
        doc = json.loads(bytes(snapshot))
        base = generation = doc["generation"]
        for kind in KINDS:
            state[kind].update(doc.get(kind, {}))
    for line in journal.split(b"\n")[:-1]:
        crc, _, body = line.partition(b" ")
        try:
            if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
                break
        except ValueError:  # not hex: a torn line
            break
        entry = json.loads(body)
        if entry["g"] <= base:
            continue  # folded into the snapshot before a crash cut the journal
        for kind, keys in entry["del"].items():
            for key in keys:
                state[kind].pop(key, None)
        for kind, records in entry["put"].items():
            state[kind].update(records)
        generation = entry["g"]
    return generation, state


def entry_problem(entry: dict[str, Any]) -> str | None:
    puts, dels = entry.get("put"), entry.get("del")
    if not isinstance(puts, dict) or not isinstance(dels, dict):
        return "'put' and 'del' must be JSON objects"
    for kind, records in puts.items():
        if kind not in KINDS:
            return f"unknown record kind {kind!r}"
        if not isinstance(records, dict) or not all(
            isinstance(r, dict) for r in records.values()
        ):
            return f"records of {kind!r} are not JSON objects"
    for kind, keys in dels.items():
        if kind not in KINDS:
            return f"unknown record kind {kind!r}"
        if not isinstance(keys, list):
            return f"deleted keys of {kind!r} are not a list"
    return None
