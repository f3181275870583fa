"""The JSON file backend: a snapshot, a journal of lines, and a lock.

Three files side by side (``store.v1.json`` is the default name):

``store.v1.json``, the snapshot: one JSON object::

    {"schema": "store.v1", "generation": 42, "saved_at": "2026-...Z",
     "jobs": {"job_...": {...}}, "results": {...}, "events": {...},
     "notifications": {...}, "workers": {...}, "breakers": {...},
     "counters": {...}}

``store.v1.json.journal``, one line per transaction committed since the
snapshot, then zero bytes reserved for the next lines::

    <crc32 of the JSON, 8 hex digits> <JSON>\\n
    JSON = {"g": generation, "b": snapshot generation it follows,
            "put": {kind: {key: record}}, "del": {kind: [key, ...]}}

``store.v1.json.lock``, the lock file (see ``lock.py``); never deleted.

A commit writes one line after the last, over the reserved zeros, and fsyncs
it, so its cost does not grow with the store. Past a threshold the journal is
folded into a new snapshot (temp file, fsync, rename, fsync of the folder),
and only then truncated; a line whose generation is not above the snapshot's
is never replayed. A torn last line (a crash mid-write: a cut line, zeros,
garbage) fails its checksum, is ignored, and is cut off before the next line
is written. A bad line with good lines after it is
corruption: the store refuses to open and nothing is written. After a failed
write or fsync the commit has failed; the process re-reads the files before
its next transaction.
"""

from __future__ import annotations

import bisect
import errno
import heapq
import itertools
import logging
import os
import stat
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from ... import clock
from ...clock import Clock
from ...domain import paging, scheduling
from ...errors import StoreCorrupt, StoreError, StoreLocked
from ..kv import INDEXES, KeyValueTransaction
from ..ports import KINDS, PageOf, Record, Store, Transaction, Verification
from .cold import ColdReader, Unavailable
from .fileio import FileIO, trusted_realpath
from .format import (
    MAX_LINE_BYTES,
    SCHEMA,
    Journal,
    canonical,
    cold_reads_allowed,
    decode_line,
    dumps,
    encode_line,
    entry_problem,
    gc_paused,
    loads,
    parse_journal,
    parse_section,
    parse_snapshot,
    reference_replay,
    snapshot_bytes,
    split_snapshot,
)

log = logging.getLogger(__name__)

# The journal is folded into a new snapshot when it is larger than half the
# snapshot and than this. A fold rewrites the whole store; below this size,
# replaying the journal adds about 50 ms to a process's first whole read
# (15 MiB of lines, 20,000 jobs), while a worker draining 5,000 short jobs
# writes about 15 MB of lines: at 4 MiB it folded a small store three times.
COMPACT_MIN_BYTES = 16 << 20
# Zeros written ahead of the journal's last line, fsynced with it. Later lines
# overwrite them in place, so their fsync has no new file size to record:
# about a third cheaper than an append's (benchmarks/durable_write.py).
JOURNAL_RESERVE_BYTES = 1 << 20
_PEEK_BYTES = 8 << 10  # what a catch-up reads first; most lines are shorter
# A transaction larger than this commits as a new snapshot instead of a
# journal line (a cleanup of 100,000 jobs, say): same atomicity, no giant line.
LARGE_COMMIT_BYTES = MAX_LINE_BYTES
LARGE_COMMIT_RECORDS = 200_000  # deleting over half of this, and of the store
# A process's first reads may look their records up (cold.py); after this
# many it loads the store whole, as a process that reads on and on should.
COLD_READS = 3
# Group commit (JsonFileStore.transaction): at most this many transactions
# share a line; a member whose group is still unwritten after this long
# writes it itself.
GROUP_MAX = 64
GROUP_WAIT_SECONDS = 0.05
_DELETED = object()
# Where these answer an open for writing, the store can still be read.
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_NO_CHANGES: dict[str, Any] = {}  # read-only stand-in for a kind not changed


class JsonFileStore(Store):
    """A store in one folder: snapshot, journal and lock file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        fsync: bool = True,
        lock_disabled: bool = False,
        io: FileIO | None = None,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
        journal_reserve_bytes: int = JOURNAL_RESERVE_BYTES,
        create_folder: bool = False,
    ) -> None:
        from .lock import StoreLock

        self.path = _resolve(os.fspath(path))
        self.url = self.path
        self.folder = os.path.dirname(self.path)
        self.journal_path = self.path + ".journal"
        self.lock_path = self.path + ".lock"
        self.io = io or FileIO(fsync=fsync)
        self.compact_min_bytes = compact_min_bytes
        self.journal_reserve_bytes = journal_reserve_bytes
        # Only `store init` makes folders, and the first write to the default
        # store: a mistyped --store must not leave a new folder tree behind.
        self.create_folder = create_folder
        self._folder_checked = False
        self._lock = StoreLock(
            self.lock_path, timeout=lock_timeout, disabled=lock_disabled
        )
        self._state: dict[str, dict[str, Record]] | None = None
        # Kinds of the snapshot not parsed yet (format.split_snapshot), and
        # the changes to apply to each once it is: parsed on first read.
        self._raw: dict[str, memoryview] = {}
        self._pending: dict[str, list[tuple[Any, Any]]] = {}
        self._indexes: dict[str, dict[Any, set[str]]] = {}
        # The claim order and what fair tags are reckoned from (_Runnable),
        # built on first use and kept exact by every commit after that.
        self._runnable: _Runnable | None = None
        # index name -> value -> that group's keys in page order (see _ORDERS),
        # built per group on its first page read.
        self._sorted: dict[str, dict[Any, _Ordered]] = {}
        self._snapshot_generation = 0
        # The snapshot read last stays open: its inode cannot be freed and
        # handed to a newer snapshot while this process holds it, so an
        # inode number that differs from the path's always means a new
        # snapshot (times and sizes can repeat; see _ident).
        self._snapshot_fd: int | None = None
        self._snapshot_ident: tuple[int, int, int] | None = None
        self._snapshot_bytes = 0
        self._generation = 0
        self._journal_fd: int | None = None
        self._journal_writable = False  # opened read-only (a read-only store)
        self._temps_swept = False
        self._journal_offset = 0  # bytes of the journal applied to the state
        self._journal_size = 0  # the file's size when last seen (lines + reserve)
        self._journal_head = b""  # its first line when last loaded
        self._journal_clean = True  # nothing to cut before the next line
        self._stale = True  # re-read everything before the next transaction
        # The state holds only records a cold read looked up (cold.py); it
        # may be read as a whole only while _partial_ok (_ColdTransaction).
        self._partial = False
        self._partial_ok = False
        self._cold_reads_left = COLD_READS
        self._group: _Group | None = None  # transactions waiting for one line
        _OPEN_STORES.add(self)

    # -- opening and catching up ------------------------------------------

    def _exists(self) -> bool:
        return self.io.exists(self.path) or self.io.exists(self.journal_path)

    def _ident(self) -> tuple[int, int, int] | None:
        """Which snapshot is at the path now: (inode, mtime, size).

        The inode of the snapshot loaded last is held open (``_snapshot_fd``),
        so no new file can take its number: a rename of a new snapshot over
        it always shows. Times and sizes only catch a rewrite in place.
        """
        st = self.io.stat(self.path)
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def _forget_descriptors(self) -> None:
        """Drop the open files (in a forked child: they are the parent's too)."""
        for name in ("_journal_fd", "_snapshot_fd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                try:
                    self.io.close(fd)
                except OSError:
                    pass
        self._stale = True

    def _load(self, *, lazy: bool = True) -> tuple[Journal, list[str]]:
        """Read snapshot and journal from disk, replacing the state in memory.

        Returns the parsed journal and the snapshot's unknown top-level keys
        (for ``verify``). Raises StoreCorrupt, naming the file, when either
        is not what this version writes. With ``lazy``, each kind of a
        snapshot with sections is parsed when it is first read
        (``_materialize``), after its checksum is checked here.
        """
        if self._state is None:
            self._warn_if_others_can_write()
        self._stale = True
        self._state, self._indexes, self._runnable = None, {}, None
        self._sorted = {}
        self._raw, self._pending = {}, {}
        self._partial = self._partial_ok = False
        if self._snapshot_fd is not None:
            self.io.close(self._snapshot_fd)
            self._snapshot_fd = None
        with _failing("read", self.path):
            fd = self.io.open_read(self.path)
            if fd is None:
                ident, raw = None, None
            else:
                self._snapshot_fd = fd
                st = self.io.fstat(fd)
                ident = (st.st_ino, st.st_mtime_ns, st.st_size)
                raw = self.io.read_all(fd)
        extra: list[str] = []
        if raw is None:
            generation, state = 0, {kind: {} for kind in KINDS}
            self._snapshot_bytes = 0
        else:
            split = split_snapshot(raw, self.path) if lazy else None
            if split is not None:
                generation, self._raw = split
                self._pending = {kind: [] for kind in self._raw}
                state = {}
            else:
                generation, state, extra = parse_snapshot(raw, self.path)
            self._snapshot_bytes = len(raw)
            del raw  # the parsed state replaces it: do not hold both
        data = b""
        with _failing("open", self.journal_path):
            if self._journal_fd is None and self.io.exists(self.journal_path):
                self._open_journal(create=False)
            if self._journal_fd is not None:
                size = self.io.size(self._journal_fd)
                data = self.io.pread(self._journal_fd, size, 0)
        self._journal_size = len(data)
        self._journal_head = data[: data.find(b"\n") + 1]
        journal = parse_journal(data, generation, self.journal_path)
        for entry in journal.entries:
            problem = entry_problem(entry)
            if problem:  # a well-formed line of the wrong shape: not ours
                raise StoreCorrupt(
                    f"{self.journal_path}: generation {entry['g']}: {problem}"
                )
        self._state = state
        self._snapshot_generation = self._generation = generation
        self._snapshot_ident = ident
        for entry in journal.entries:
            self._apply(entry["put"], entry["del"])
            self._generation = entry["g"]
        self._journal_offset = journal.valid_end
        self._journal_clean = not journal.stale and journal.torn_bytes == 0
        self._stale = False
        return journal, extra

    def _open_journal(self, *, create: bool) -> None:
        """Open the journal to read and write, or only to read where it cannot be written.

        A store on read-only media (a mounted backup) or of another user can
        still be read, checked and exported; a commit then fails with the
        reason. Raises OSError.
        """
        if self._journal_fd is not None and (self._journal_writable or not create):
            return
        if self._journal_fd is not None:
            self.io.close(self._journal_fd)
            self._journal_fd = None
        try:
            self._journal_fd = self.io.open_rw(self.journal_path)
            self._journal_writable = True
        except OSError as exc:
            if create or exc.errno not in _READ_ONLY_ERRNOS:
                raise
            self._journal_fd = self.io.open_read(self.journal_path)
            self._journal_writable = False

    def _warn_if_others_can_write(self) -> None:
        """A folder others can write to lets them replace the store: say so once."""
        try:
            st = self.io.stat(self.folder)
        except OSError:
            return  # reading the store itself reports what is wrong
        if st is not None and st.st_mode & 0o022 and not st.st_mode & 0o1000:
            log.warning(
                "%s is writable by other users, who could replace the store; "
                "chmod go-w it",
                self.folder,
            )

    def _catch_up(self) -> None:
        """Apply what other processes committed since this one last looked."""
        with _failing("read", self.path):
            moved = self._ident() != self._snapshot_ident
        if self._stale or self._state is None or moved:
            self._load()
            return
        if self._journal_fd is None:
            if self.io.exists(self.journal_path):
                self._load()
            return
        with _failing("read", self.journal_path):
            self._read_new_lines(self._journal_fd)

    def _read_new_lines(self, fd: int) -> None:
        """Apply the journal lines after ``_journal_offset``, reading little.

        They end at the zeros reserved ahead or at the end of the file. No
        line holds a zero byte (JSON escapes it), so a zero inside a line,
        or a line cut by the end of the file, is torn: a full ``_load``
        decides whether it is the tail (cut before the next write) or
        damage with good lines after it, as it does for anything unexpected.

        The file is not stat'ed: on Linux since 6.13, asking for its times
        makes the next write log the inode again, and a line's fsync costs
        what an append's does. A short read is the end of the file; a file
        cut below this offset means a compaction, which the snapshot's
        change has already sent to ``_load``.
        """
        if self._journal_offset and self._stale_prefix():
            # Every line read so far was already in the snapshot (a crash in
            # a compaction): the next writer cuts them and starts again at 0,
            # below this offset, with no new snapshot to say so. Its first
            # line then differs from the one read.
            head = self._journal_head
            if self.io.pread(fd, len(head), 0) != head:
                self._load()
                return
        want = _PEEK_BYTES
        while True:
            offset = self._journal_offset
            data = self.io.pread(fd, want, offset)
            at_end = len(data) < want
            self._journal_size = max(self._journal_size, offset + len(data))
            pos = 0
            while pos < len(data) and data[pos] != 0:
                end = data.find(b"\n", pos, pos + MAX_LINE_BYTES + 1)
                stop = end if end >= 0 else len(data)
                if data.find(b"\0", pos, stop) >= 0 or (end < 0 and at_end):
                    self._load()  # a torn line: see above
                    return
                if end < 0:
                    break  # the line goes on past this read
                entry = decode_line(data[pos:end])
                if (
                    entry is None
                    or entry.get("b") != self._snapshot_generation
                    or entry["g"] != self._generation + 1
                ):
                    self._load()  # a torn line or a compaction: re-read it all
                    return
                self._apply(entry["put"], entry["del"])
                self._generation = entry["g"]
                pos = end + 1
            self._journal_offset = offset + pos
            if pos == len(data):
                if at_end:
                    return  # every line is read
                continue  # more lines than this read held
            if data[pos] == 0:
                return  # the reserved zeros: every line is read
            if pos == 0:  # one line longer than this read
                if want > MAX_LINE_BYTES:
                    self._load()  # not a line of ours: _load says what
                    return
                want *= 8

    def _materialize(self, kind: str) -> None:
        """Parse a kind's section and apply the changes made to it since."""
        records = parse_section(self._raw[kind], kind, self.path)
        for puts, dels in self._pending.pop(kind, ()):
            for key in dels or ():
                records.pop(key, None)
            records.update(puts or {})
        assert self._state is not None
        self._state[kind] = records
        del self._raw[kind]  # the last one frees the snapshot's bytes

    def _materialize_all(self) -> None:
        self._whole()
        for kind in list(self._raw):
            self._materialize(kind)

    def _apply(
        self, puts: dict[str, dict[str, Record]], dels: dict[str, list[str]]
    ) -> None:
        state = self._state
        assert state is not None
        if self._raw:  # kinds not parsed yet get their changes when they are
            for kind in self._raw.keys() & (puts.keys() | dels.keys()):
                self._pending[kind].append((puts.get(kind), dels.get(kind)))
            puts = {k: v for k, v in puts.items() if k not in self._raw}
            dels = {k: v for k, v in dels.items() if k not in self._raw}
        for kind, keys in dels.items():
            records = state.setdefault(kind, {})
            for key in keys:
                old = records.pop(key, None)
                if old is not None:
                    self._unindex(kind, key, old)
                    if self._runnable is not None:
                        self._runnable.remove(kind, old)
        for kind, new in puts.items():
            records = state.setdefault(kind, {})
            for key, record in new.items():
                old = records.get(key)
                if old is not None:
                    self._unindex(kind, key, old)
                records[key] = record
                self._index(kind, key, record)
                if self._runnable is not None:
                    self._runnable.replace(kind, old, record)

    # -- secondary indexes, built on first use -----------------------------

    def _index(self, kind: str, key: str, record: Record) -> None:
        indexes = self._indexes
        for name, value_of in _INDEXES_OF.get(kind, ()):
            index = indexes.get(name)
            if index is not None:
                value = value_of(record)
                if value is not None:
                    keys = index.get(value)
                    if keys is None:
                        index[value] = {key}
                    else:
                        keys.add(key)
        if self._sorted:
            for name, value_of in _ORDERED_OF.get(kind, ()):
                groups = self._sorted.get(name)
                group = None if groups is None else groups.get(value_of(record))
                if group is not None:
                    group.add(_ORDERS[name](record, key))

    def _unindex(self, kind: str, key: str, record: Record) -> None:
        indexes = self._indexes
        for name, value_of in _INDEXES_OF.get(kind, ()):
            index = indexes.get(name)
            if index is not None:
                value = value_of(record)
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
        if self._sorted:
            for name, value_of in _ORDERED_OF.get(kind, ()):
                groups = self._sorted.get(name)
                group = None if groups is None else groups.get(value_of(record))
                if group is not None:
                    group.stale += 1  # its entry stays; pages skip it

    def _whole(self) -> None:
        """Load the whole store, where a cold read asks for more than it looked up."""
        if self._partial and not self._partial_ok:
            self._load()

    def _ordered(self, name: str, value: Any) -> _Ordered:
        """The group's keys in page order, built from the hash index on first use."""
        self._whole()
        groups = self._sorted.setdefault(name, {})
        group = groups.get(value)
        kind, value_of = INDEXES[name]
        order = _ORDERS[name]
        records = self._records(kind)
        if group is None:
            keys = self._lookup(name, value)
            with gc_paused():  # tuples, no cycles: see gc_paused
                if len(keys) * 8 > len(records):
                    # A large share of the kind: the map keeps the order the
                    # records came in, close to the one wanted, which the
                    # sort then takes in about one pass.
                    field = _GROUP_FIELDS.get(name)
                    entries = [
                        order(record, key)
                        for key, record in records.items()
                        if (
                            record.get(field) == value
                            if field is not None
                            else value_of(record) == value
                        )
                    ]
                    entries.sort()
                else:
                    entries = sorted(order(records[key], key) for key in keys)
            group = groups[value] = _Ordered(entries)
        elif group.stale > _STALE_MIN and group.stale * 2 > len(group.entries):
            # Mostly removed records (a cleanup): drop them in one pass.
            group.entries = [
                entry
                for entry in group.entries
                if _holds(records.get(entry[-1]), entry, value, value_of, order)
            ]
            group.stale = 0
        return group

    def _lookup(self, name: str, value: Any) -> set[str]:
        self._whole()
        index = self._indexes.get(name)
        if index is None:
            kind, value_of = INDEXES[name]
            index = {}
            for key, record in self._records(kind).items():
                indexed = value_of(record)
                if indexed is not None:
                    index.setdefault(indexed, set()).add(key)
            self._indexes[name] = index
        return index.get(value, set())

    # -- the runnable index ------------------------------------------------

    def _runnable_index(self) -> _Runnable:
        self._whole()
        if self._runnable is None:
            self._runnable = _Runnable(self._records("jobs").values())
        return self._runnable

    def _records(self, kind: str) -> dict[str, Record]:
        self._whole()
        if kind in self._raw:
            self._materialize(kind)
        assert self._state is not None
        return self._state.setdefault(kind, {})

    # -- transactions ------------------------------------------------------

    def _check_folder(self) -> None:
        """The store's folder must be there (StoreError), unless this store may make it."""
        if self._folder_checked:
            return
        with _failing("create", self.folder):
            if self.create_folder:
                self.io.makedirs(self.folder)
            elif not self.io.is_folder(self.folder):
                raise StoreError(
                    f"{self.folder} does not exist: create the store there with "
                    f"'asyncjobs --store {self.path} store init'"
                )
        self._folder_checked = True

    def _missing(self) -> StoreError:
        return StoreError(
            f"no store at {self.path}: create it with "
            f"'asyncjobs --store {self.path} store init' (or submit a job)"
        )

    @contextmanager
    def transaction(self, *, clock: Clock | None = None) -> Iterator[Transaction]:
        """A writing transaction: its changes are one journal line, alone or in a group.

        Group commit: a transaction that ends while other threads of this
        process wait for the lock joins a group instead of writing at once.
        Its changes go into the state in memory (the next transaction reads
        them), it hands the lock over without letting another process in,
        and it returns only once the group is written. The transaction that
        finds no one waiting writes its own changes and the group's as one
        line with one fsync: all of them are durable, or none. Whoever takes
        the lock next to do anything else writes the group first, so a read
        never sees a change that is not on disk.
        """
        self._check_folder()
        group = None
        self._lock.acquire()
        try:
            if not self._temps_swept:
                # A compaction killed mid-write leaves its temp file: the
                # first writer of each process clears it, under the lock.
                with _failing("clean up", self.folder):
                    self.io.remove_stale_temps(self.folder, os.path.basename(self.path))
                self._temps_swept = True
            if self._group is None:
                self._catch_up()  # (with a group pending, no other process wrote)
            read_unwritten = self._group is not None
            tx = _JsonTransaction(self, writable=True, clock=clock)
            try:
                yield tx
            except BaseException as exc:
                self._unwritten_read(read_unwritten, exc)
                raise
            if not tx.changes:
                self._unwritten_read(read_unwritten, None)
            elif (
                self._lock.waiting
                and self._lock.depth == 1
                and (self._group is None or self._group.count < GROUP_MAX)
            ):
                group = self._join_group(tx.changes)
            else:
                self._commit_grouped(tx.changes)
        finally:
            if group is None:
                # Never let the file lock go with a group unwritten: another
                # process would write over the line it is to take.
                self._flush_group()
            self._lock.release(keep_file_lock=group is not None)
        if group is not None:
            self._await_group(group)

    def _unwritten_read(
        self, read_unwritten: bool, raised: BaseException | None
    ) -> None:
        """Write the pending group; a transaction that read it fails if that fails.

        What it decided (a job found by its key, a conflict) may rest on
        changes that are now never written.
        """
        error = self._flush_group()
        if error is not None and read_unwritten:
            raise StoreError(
                f"cannot commit the changes this transaction read: {error}"
            ) from raised or error

    def _join_group(self, changes: dict[str, dict[str, Any]]) -> _Group:
        """Add a transaction's changes to the pending group and to the state."""
        puts, dels = _split(changes)
        # Checked now, so that a record no line may hold fails this
        # transaction alone, not the group's line.
        encode_line({"g": 0, "b": 0, "put": puts, "del": dels})
        group = self._group or _Group()
        group.add(changes)
        self._group = group
        self._apply(puts, dels)
        return group

    def _commit_grouped(self, changes: dict[str, dict[str, Any]]) -> None:
        """Commit these changes, with the pending group's in the same line."""
        if self._group is None:
            self._commit(changes)
            return
        puts, dels = _split(changes)
        encode_line({"g": 0, "b": 0, "put": puts, "del": dels})  # as _join_group
        self._group.add(changes)
        error = self._flush_group()
        if error is not None:
            raise error

    def _flush_group(self) -> BaseException | None:
        """Write the pending group, if any; returns what its write raised.

        Its members raise that error; on any failure the state in memory,
        which holds their changes, is read again before the next transaction.
        """
        group, self._group = self._group, None
        if group is None:
            return None
        try:
            self._commit(group.changes)
        except BaseException as exc:
            self._stale = True
            group.error = exc
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: the members learn it too
        finally:
            group.done.set()
        return group.error

    def _await_group(self, group: _Group) -> None:
        """Return once the group is durable; raise what its write raised."""
        while not group.done.wait(GROUP_WAIT_SECONDS):
            # The thread that was waiting for the lock has not written it
            # (it may have timed out): write whatever is pending from here.
            # While a group is pending this process holds the file lock, so
            # a lock that cannot be had means the group is written already.
            try:
                self._lock.acquire()
            except StoreLocked:
                continue
            try:
                self._flush_group()
                if not group.done.is_set():  # dropped unwritten (a fork, a close)
                    group.error = StoreError("the store was closed before the commit")
                    group.done.set()
            finally:
                self._lock.release()
        if group.error is not None:
            if isinstance(group.error, StoreError):
                raise type(group.error)(group.error.message) from group.error
            raise StoreError(f"cannot commit: {group.error}") from group.error

    @contextmanager
    def read(self, *, clock: Clock | None = None) -> Iterator[Transaction]:
        if not self._exists():
            # Reading creates nothing, and a store never made is not an
            # empty one: a mistyped path must not answer "no jobs".
            raise self._missing()
        with self._lock:
            self._flush_group()  # a read sees only what is on disk
            reader = self._cold_reader()
            if reader is not None:
                try:
                    yield _ColdTransaction(self, reader, clock)
                finally:
                    reader.close()
                return
            self._catch_up()
            yield _JsonTransaction(self, writable=False, clock=clock)

    def _cold_reader(self) -> ColdReader | None:
        """A reader of a few records, where this process may read cold (cold.py)."""
        if not cold_reads_allowed() or self._cold_reads_left <= 0:
            return None
        if self._state is not None and not self._partial:
            return None  # loaded already: catching up is cheaper
        if self._state is None:
            self._warn_if_others_can_write()
        self._cold_reads_left -= 1
        reader = ColdReader(self.io, self.path, self.journal_path)
        try:
            with _failing("read", self.path):
                reader.open()
        except Unavailable:
            reader.close()
            return None
        except BaseException:
            reader.close()
            raise
        self._state = {kind: {} for kind in KINDS}
        self._indexes, self._runnable, self._sorted = {}, None, {}
        self._raw, self._pending = {}, {}
        self._partial, self._stale = True, True  # the next transaction loads it all
        return reader

    def _commit(self, changes: dict[str, dict[str, Any]]) -> None:
        puts, dels = _split(changes)
        generation = self._generation + 1
        # Encoding checks every record, even for a commit that goes out as
        # a snapshot: what a later open cannot read back is refused here.
        line = encode_line(
            {"g": generation, "b": self._snapshot_generation, "put": puts, "del": dels}
        )
        deleting = sum(len(keys) for keys in dels.values())
        if len(line) > LARGE_COMMIT_BYTES or (
            deleting > LARGE_COMMIT_RECORDS // 2 and deleting * 2 > self._count_all()
        ):
            # Huge, or removing most of the store: the snapshot it leaves is
            # much smaller, and every later open reads that one.
            self._commit_as_snapshot(puts, dels, generation)
            return
        try:
            if self._journal_fd is None or not self._journal_writable:
                created = not self.io.exists(self.journal_path)
                self._open_journal(create=True)
                if created:
                    # Until the folder is fsynced, a power cut may lose the
                    # new file's name, and with it every fsynced line in it.
                    self.io.fsync_dir(self.folder)
            if not self._journal_clean:
                # Cut a torn tail (or lines already in the snapshot) first, so
                # that the new line never follows garbage.
                keep = (
                    0
                    if self._journal_offset and self._stale_prefix()
                    else self._journal_offset
                )
                self.io.truncate(self._journal_fd, keep)
                self.io.fsync(self._journal_fd)
                self._journal_offset = self._journal_size = keep
                self._journal_clean = True
            data = line
            if self._journal_offset + len(line) > self._journal_size:
                data = line + bytes(self.journal_reserve_bytes)  # see the constant
            self.io.write_at(self._journal_fd, data, self._journal_offset)
            self.io.fsync(self._journal_fd)
            self._journal_size = max(
                self._journal_size, self._journal_offset + len(data)
            )
        except OSError as exc:
            self._fail_commit()
            raise StoreError(
                f"cannot write {self.journal_path}: {exc.strerror or exc}"
            ) from exc
        self._apply(puts, dels)
        self._generation = generation
        self._journal_offset += len(line)
        if self._journal_offset > max(
            self.compact_min_bytes, self._snapshot_bytes // 2
        ):
            try:
                self._compact_locked()
            except StoreError as exc:
                # The commit is durable in the journal; a failed fold loses
                # nothing and is tried again after the next commit.
                log.warning("compaction failed: %s", exc)

    def _count_all(self) -> int:
        self._materialize_all()
        assert self._state is not None
        return sum(len(records) for records in self._state.values())

    def _commit_as_snapshot(
        self,
        puts: dict[str, dict[str, Record]],
        dels: dict[str, list[str]],
        generation: int,
    ) -> None:
        """Commit by writing the new state as the snapshot (atomic by rename)."""
        self._materialize_all()
        # Rebuilding the indexes on next use is cheaper than unindexing
        # hundreds of thousands of records one by one.
        self._indexes, self._runnable, self._sorted = {}, None, {}
        state = self._state
        assert state is not None
        for kind, keys in dels.items():
            records = state.setdefault(kind, {})
            gone = set(keys)
            if len(gone) * 2 > len(records):  # keep the few rather than pop the many
                state[kind] = {k: v for k, v in records.items() if k not in gone}
            else:
                for key in gone:
                    records.pop(key, None)
        self._apply(puts, {})
        self._generation = generation
        # On failure the state in memory is ahead of the disk: _compact_locked
        # marks it stale, so it is read again before the next transaction.
        self._compact_locked()

    def _stale_prefix(self) -> bool:
        """Whether the journal's good lines were all folded into the snapshot."""
        return self._generation == self._snapshot_generation

    def _fail_commit(self) -> None:
        """After a failed write or fsync: never let a half-done line count."""
        self._stale = True
        if self._journal_fd is not None:
            try:
                # The bytes may sit in the page cache where other readers
                # would take them as committed: cut them off.
                self.io.truncate(self._journal_fd, self._journal_offset)
            except OSError:
                pass
            try:
                self.io.close(self._journal_fd)
            except OSError:
                pass
            self._journal_fd = None

    # -- maintenance -------------------------------------------------------

    def _snapshot_data(self) -> bytes:
        """The snapshot file's bytes: one record per line (format.snapshot_bytes).

        A kind not parsed yet and not changed since is copied as it is.
        """
        self._whole()
        unparsed = {k: v for k, v in self._raw.items() if not self._pending.get(k)}
        for kind in list(self._raw):
            if kind not in unparsed:
                self._materialize(kind)
        assert self._state is not None
        return snapshot_bytes(
            self._generation, clock.to_iso(clock.now()), self._state, unparsed
        )

    def _compact_locked(self) -> dict[str, Any]:
        before = self._journal_offset
        folded = self._generation - self._snapshot_generation
        try:
            data = self._snapshot_data()
            self.io.write_atomic(self.path, data)
        except OSError as exc:
            self._stale = True
            raise StoreError(
                f"cannot write {self.path}: {exc.strerror or exc}"
            ) from exc
        # The new snapshot is durable: only now may the journal go.
        self._snapshot_generation = self._generation
        self._pin_snapshot()
        self._snapshot_bytes = len(data)
        self._journal_offset, self._journal_clean = 0, True
        if self._journal_fd is not None and self._journal_writable:
            try:
                self.io.truncate(self._journal_fd, 0)
                self.io.fsync(self._journal_fd)
                self._journal_size = 0
            except OSError as exc:
                # The snapshot already holds everything: lines left in the
                # journal are not above its generation, so they are never
                # replayed, and the next write cuts them.
                log.warning(
                    "cannot truncate %s: %s", self.journal_path, exc.strerror or exc
                )
                self._journal_offset = self.io.size(self._journal_fd)
                self._journal_size = self._journal_offset
                self._journal_clean = False
        return {
            "generation": self._generation,
            "folded_transactions": folded,
            "journal_bytes_before": before,
            "snapshot_bytes": len(data),
        }

    def _pin_snapshot(self) -> None:
        """Hold the snapshot just written open, and remember which it is."""
        if self._snapshot_fd is not None:
            self.io.close(self._snapshot_fd)
            self._snapshot_fd = None
        try:
            fd = self.io.open_read(self.path)
        except OSError:
            fd = None
        if fd is None:  # gone or unreadable already: read it all again next time
            self._snapshot_ident, self._stale = None, True
            return
        self._snapshot_fd = fd
        st = self.io.fstat(fd)
        self._snapshot_ident = (st.st_ino, st.st_mtime_ns, st.st_size)

    def initialize(self) -> bool:
        with _failing("create", self.folder):
            self.io.makedirs(self.folder)
        self._folder_checked = True
        if self._exists():
            with self.read():
                self._whole()
                return False  # reading it all proves it opens
        self._compact()
        return True

    def compact(self) -> dict[str, Any]:
        """Fold the journal into a new snapshot."""
        if not self._exists():
            raise self._missing()
        return self._compact()

    def _compact(self) -> dict[str, Any]:
        with self._lock:
            self._flush_group()
            self._catch_up()
            with _failing("clean up", self.folder):
                self.io.remove_stale_temps(self.folder, os.path.basename(self.path))
            return self._compact_locked()

    def export(self) -> dict[str, Any]:
        with self.read():
            self._materialize_all()
            assert self._state is not None
            doc: dict[str, Any] = {"schema": SCHEMA, "generation": self._generation}
            for kind in KINDS:
                # A copy of each map: a caller holding the export must not see
                # later commits, nor change the store's state by editing it.
                doc[kind] = dict(self._state.get(kind, {}))
            return doc

    def verify(self, *, strict: bool = False) -> Verification:
        """Read the files afresh and say what is wrong with them.

        ``strict`` also replays the files with ``reference_replay`` and
        writes and re-reads the state, and compares both with what was loaded.
        """
        report = Verification()
        if not self._exists():
            report.problems.append(f"{self.path}: no store here")
            return report
        with self._lock:
            self._flush_group()
            try:
                journal, extra = self._load(lazy=False)  # afresh, all of it
            except StoreCorrupt as exc:
                report.problems.append(str(exc))
                return report
            if not self.io.exists(self.path):
                report.notes.append(f"{self.path}: no snapshot yet (journal only)")
            if extra:
                report.problems.append(f"{self.path}: unknown keys {extra}")
            if journal.stale:
                report.notes.append(
                    f"{self.journal_path}: starts with lines already in the snapshot "
                    "(a crash during compaction); the next write cuts them"
                )
            if journal.torn_bytes:
                report.notes.append(
                    f"{self.journal_path}: torn last line ({journal.torn_bytes} bytes, "
                    "an interrupted write); the next write cuts it"
                )
            report.generation = self._generation
            assert self._state is not None
            report.counts = {kind: len(self._state.get(kind, {})) for kind in KINDS}
            if strict:
                report.problems += self._strict_problems()
        return report

    def _strict_problems(self) -> list[str]:
        """Compare the loaded state with a plain replay, and with its own round trip."""
        assert self._state is not None
        journal = b""
        with _failing("read", self.path):
            if self._journal_fd is not None:
                size = self.io.size(self._journal_fd)
                journal = self.io.pread(self._journal_fd, size, 0)
            fd = self._snapshot_fd
            snapshot = None if fd is None else self.io.read_all(fd)
        generation, expected = reference_replay(snapshot, journal)
        problems = []
        if generation != self._generation:
            problems.append(
                f"{self.path}: a plain replay ends at generation {generation}, "
                f"the store at {self._generation}"
            )
        written = loads(dumps({kind: self._state.get(kind, {}) for kind in KINDS}))
        for kind in KINDS:
            loaded = self._state.get(kind, {})
            mine = canonical(loaded)
            for name, other in (
                ("a plain replay", expected[kind]),
                ("a rewrite", written[kind]),
            ):
                # Compared as JSON, so that 2**70 and its float are not "equal".
                if mine != canonical(other):
                    keys = sorted(
                        k
                        for k in loaded.keys() | other.keys()
                        if canonical(loaded.get(k)) != canonical(other.get(k))
                    )
                    problems.append(
                        f"{self.path}: {kind}: {len(keys)} record(s) differ from "
                        f"{name}, first {keys[0]}"
                    )
        return problems

    def close(self) -> None:
        if self._group is not None:
            with self._lock:
                self._flush_group()
        self._forget_descriptors()
        self._lock.close()
        self._state, self._indexes, self._stale = None, {}, True
        self._sorted, self._raw, self._pending = {}, {}, {}


_OPEN_STORES: weakref.WeakSet[JsonFileStore] = weakref.WeakSet()


def _split(
    changes: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, Record]], dict[str, list[str]]]:
    """A transaction's changes as a journal line's ``put`` and ``del``."""
    puts: dict[str, dict[str, Record]] = {}
    dels: dict[str, list[str]] = {}
    for kind, records in changes.items():
        gone = [key for key, record in records.items() if record is _DELETED]
        if gone:
            dels[kind] = gone
        if len(gone) < len(records):
            puts[kind] = {
                key: record for key, record in records.items() if record is not _DELETED
            }
    return puts, dels


class _Group:
    """Transactions of one process whose changes go out in one journal line."""

    def __init__(self) -> None:
        self.changes: dict[str, dict[str, Any]] = {}  # kind -> key -> record
        self.count = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def add(self, changes: dict[str, dict[str, Any]]) -> None:
        for kind, records in changes.items():
            self.changes.setdefault(kind, {}).update(records)
        self.count += 1


def _after_fork_in_child() -> None:
    # A forked child shares its parent's open file descriptions: their
    # offsets, and the parent's flock. It opens its own on first use.
    for store in list(_OPEN_STORES):
        store._group = None  # the parent writes it; its members are the parent's
        store._forget_descriptors()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _resolve(path: str) -> str:
    """The store's real path, resolved once: it is used by that path from then on.

    Every symlink on the way must belong to the user running this (or to
    root), and a symlink at the store's own name is followed only when the
    link and its target belong to that user: otherwise whoever planted it
    would choose which file a compaction replaces. Raises StoreError.
    """
    absolute = os.path.abspath(path)
    folder = trusted_realpath(os.path.dirname(absolute))
    candidate = os.path.join(folder, os.path.basename(absolute))
    try:
        link = os.lstat(candidate)
        if not stat.S_ISLNK(link.st_mode):
            return candidate
        real = trusted_realpath(candidate)
        owners = {link.st_uid}
        if os.path.lexists(real):
            owners.add(os.stat(real).st_uid)
    except FileNotFoundError:
        return candidate  # a new store: nothing to follow yet
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    others = owners - {os.geteuid()}
    if others:
        raise StoreError(
            f"{path} is a symlink to {real}, and another user (uid "
            f"{min(others)}) owns the link or its target: not following it"
        )
    return real


@contextmanager
def _failing(verb: str, path: str) -> Iterator[None]:
    """Turn an OSError into a StoreError naming the file (exit 5, one line)."""
    try:
        yield
    except OSError as exc:
        raise StoreError(f"cannot {verb} {path}: {exc.strerror or exc}") from exc


# An entry of the claim order: scheduling.claim_key, then the task (to skip
# the tasks a breaker holds back without reading the job).
_Entry = tuple[int, int, str, str, str, str]
# An entry of the jobs waiting for their run_after, untagged: (run_after,
# created_at, job_id).
_Waiting = tuple[str, str, str]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _queued(record: Record) -> bool:
    """A queued job whose order fields have the types the indexes sort by."""
    return (
        record.get("status") == "queued"
        and isinstance(record.get("queue"), str)
        and _is_int(record.get("priority"))
        and isinstance(record.get("task"), str)
        and isinstance(record.get("run_after"), str)
        and isinstance(record.get("created_at"), str)
        and isinstance(record.get("job_id"), str)
        and (record.get("fair_tag") is None or _is_int(record.get("fair_tag")))
    )


def _leased(record: Record) -> bool:
    """A running job with a lease end and an id the lease index sorts by."""
    return (
        record.get("status") == "running"
        and isinstance(record.get("lease_expires_at"), str)
        and isinstance(record.get("job_id"), str)
    )


def _entry(record: Record) -> _Entry:
    return (*scheduling.claim_key(record), record["task"])


def _waiting(record: Record) -> _Waiting:
    return (record["run_after"], record["created_at"], record["job_id"])


def _lane_of(record: Record) -> tuple[str, int, int] | None:
    """(queue, priority, next_tag) of a ``lanes`` record, None for a malformed one."""
    queue, priority, tag = (
        record.get("queue"),
        record.get("priority"),
        record.get("next_tag"),
    )
    if isinstance(queue, str) and _is_int(priority) and _is_int(tag):
        return queue, priority, tag
    return None


def _remove(entries: list[Any], entry: Any) -> None:
    i = bisect.bisect_left(entries, entry)
    if i < len(entries) and entries[i] == entry:
        del entries[i]


class _Runnable:
    """The committed queued jobs as the claim needs them, kept exact at every commit.

    - ``order``: queue -> the claim order (sorted entries) of its queued jobs
      with a fair tag: one index per queue, whatever the number of orgs.
    - ``waiting``: queue -> queued jobs without a fair tag (waiting for their
      run_after), by run_after: the claim stages those that came due.
    - ``lane_next``: (queue, priority) -> the highest next tag of the lane's
      ``lanes`` records (None: reckon it again from the records).
    """

    def __init__(self, jobs: Iterable[Record]) -> None:
        order: dict[str, list[_Entry]] = {}
        waiting: dict[str, list[_Waiting]] = {}
        jobs_seen = list(jobs)
        for record in jobs_seen:
            if not _queued(record):
                continue
            if record.get("fair_tag") is None:
                waiting.setdefault(record["queue"], []).append(_waiting(record))
            else:
                order.setdefault(record["queue"], []).append(_entry(record))
        for entries in (*order.values(), *waiting.values()):
            entries.sort()
        self.order, self.waiting = order, waiting
        # running jobs by the end of their lease: (lease_expires_at, job_id)
        self.leases = sorted(
            (record["lease_expires_at"], record["job_id"])
            for record in jobs_seen
            if _leased(record)
        )
        self.lane_next: dict[tuple[str, int], int] | None = None

    def lane_next_tag(self, queue: str, priority: int, lanes: Iterable[Record]) -> int:
        if self.lane_next is None:
            self.lane_next = {}
            for record in lanes:
                self._raise_lane(record)
        return self.lane_next.get((queue, priority), 0)

    def _raise_lane(self, record: Record) -> None:
        assert self.lane_next is not None
        lane = _lane_of(record)
        if lane is not None:
            key = lane[:2]
            self.lane_next[key] = max(self.lane_next.get(key, 0), lane[2])

    def replace(self, kind: str, old: Record | None, new: Record) -> None:
        if kind == "jobs":
            if old is not None:
                self._drop(old)
            if _leased(new):
                bisect.insort(self.leases, (new["lease_expires_at"], new["job_id"]))
            if _queued(new):
                if new.get("fair_tag") is None:
                    bisect.insort(
                        self.waiting.setdefault(new["queue"], []), _waiting(new)
                    )
                else:
                    bisect.insort(self.order.setdefault(new["queue"], []), _entry(new))
        elif kind == "lanes" and self.lane_next is not None:
            before = None if old is None else _lane_of(old)
            after = _lane_of(new)
            if before is None or (
                after is not None and after[:2] == before[:2] and after[2] >= before[2]
            ):
                self._raise_lane(new)  # the rules only ever raise a next tag
            else:
                self.lane_next = None  # lowered or moved by hand: reckon again

    def remove(self, kind: str, old: Record) -> None:
        if kind == "jobs":
            self._drop(old)
        elif kind == "lanes":
            self.lane_next = None

    def _drop(self, old: Record) -> None:
        if _leased(old):
            _remove(self.leases, (old["lease_expires_at"], old["job_id"]))
        if not _queued(old):
            return
        if old.get("fair_tag") is None:
            _remove(self.waiting.get(old["queue"], []), _waiting(old))
        else:
            _remove(self.order.get(old["queue"], []), _entry(old))


def _error_type(record: Record) -> Any:
    error = record.get("error")
    return error.get("type") if isinstance(error, dict) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _seq(value: Any) -> int:
    return value if type(value) is int else 0


def _time_then_key(record: Record, key: str) -> tuple[str, str]:
    created_at = record.get("created_at")
    return (created_at if isinstance(created_at, str) else "", key)


# The index groups pages walk, each kept in order by this key (ascending;
# newest-first pages walk it backwards). The key is a cursor's position.
_ORDERS: dict[str, Callable[[Record, str], tuple[Any, ...]]] = {
    "jobs_by_org": _time_then_key,
    "notifications_by_org": _time_then_key,
    "notifications_by_job": _time_then_key,
    "jobs_finished": lambda r, key: (_text(r.get("finished_at")), key),
    "events_by_job": lambda r, key: (
        _seq(r.get("seq")),
        _text(r.get("created_at")),
        key,
    ),
}
# The field each of those indexes groups by (INDEXES gives it as a function;
# one missing here groups by that function).
_GROUP_FIELDS = {
    "jobs_by_org": "org_id",
    "notifications_by_org": "org_id",
    "notifications_by_job": "job_id",
    "events_by_job": "job_id",
}
_STALE_MIN = 64  # removed entries a group keeps before it is pruned
# Each kind's indexes, and those of them kept in page order, as
# (name, value_of): a record changed visits only its own kind's.
_INDEXES_OF: dict[str, tuple[tuple[str, Callable[[Record], Any]], ...]] = {
    kind: tuple((name, of) for name, (k, of) in INDEXES.items() if k == kind)
    for kind in {k for k, _ in INDEXES.values()}
}
_ORDERED_OF = {
    kind: tuple((name, of) for name, of in indexes if name in _ORDERS)
    for kind, indexes in _INDEXES_OF.items()
}


class _Ordered:
    """One group's record keys, sorted; entries of removed records stay until pruned.

    Removing from the middle of a long list moves everything after it, and a
    cleanup removes thousands: so a removal only counts, pages skip entries
    whose record is gone or changed, and a group of mostly such entries is
    rebuilt once (``JsonFileStore._ordered``).
    """

    __slots__ = ("entries", "stale")

    def __init__(self, entries: list[tuple[Any, ...]]) -> None:
        self.entries = entries
        self.stale = 0

    def add(self, entry: tuple[Any, ...]) -> None:
        entries = self.entries
        i = bisect.bisect_left(entries, entry)
        if i < len(entries) and entries[i] == entry:
            self.stale = max(0, self.stale - 1)  # a removed record came back
        else:
            entries.insert(i, entry)  # a new record is the newest: at the end


def _pending_in_group(
    pending: Mapping[str, Any],
    value: Any,
    value_of: Callable[[Record], Any],
    order: Callable[[Record, str], tuple[Any, ...]],
    keep: Callable[[Record], bool],
    *,
    newest_first: bool,
) -> list[tuple[tuple[Any, ...], Record]]:
    """A transaction's own records of an index group that ``keep``, with their
    entries, in walking order: merged with the committed entries by a walk."""
    return sorted(
        (
            (order(record, key), record)
            for key, record in pending.items()
            if record is not _DELETED and value_of(record) == value and keep(record)
        ),
        key=itemgetter(0),
        reverse=newest_first,
    )


def _holds(
    record: Record | None,
    entry: tuple[Any, ...],
    value: Any,
    value_of: Callable[[Record], Any],
    order: Callable[[Record, str], tuple[Any, ...]],
) -> bool:
    """Whether an entry still stands for its committed record, in its group."""
    return (
        record is not None
        and order(record, entry[-1]) == entry
        and value_of(record) == value
    )


class _JsonTransaction(KeyValueTransaction):
    def __init__(
        self, store: JsonFileStore, *, writable: bool, clock: Clock | None
    ) -> None:
        super().__init__(clock)
        self._store = store
        self._writable = writable
        # kind -> key -> the new record, or _DELETED
        self.changes: dict[str, dict[str, Any]] = {}

    @property
    def generation(self) -> int:
        return self._store._generation

    def get(self, kind: str, key: str) -> Record | None:
        change = self.changes.get(kind, _NO_CHANGES).get(key)
        if change is not None:
            return None if change is _DELETED else change
        return self._store._records(kind).get(key)

    def put(self, kind: str, key: str, record: Record) -> None:
        self._check_writable(kind)
        self.changes.setdefault(kind, {})[key] = record

    def delete(self, kind: str, key: str) -> None:
        self._check_writable(kind)
        self.changes.setdefault(kind, {})[key] = _DELETED

    def delete_many(self, kind: str, keys: Iterable[str]) -> None:
        self._check_writable(kind)
        self.changes.setdefault(kind, {}).update(dict.fromkeys(keys, _DELETED))

    def _check_writable(self, kind: str) -> None:
        if not self._writable:
            raise StoreError("this is a read-only transaction")
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")

    def scan(self, kind: str) -> Iterator[Record]:
        records = self._store._records(kind)
        pending = self.changes.get(kind, _NO_CHANGES)
        for key, record in records.items():
            if key not in pending:
                yield record
        for record in pending.values():
            if record is not _DELETED:
                yield record

    def find(self, index: str, value: Any) -> list[Record]:
        kind, value_of = INDEXES[index]
        keys = set(self._store._lookup(index, value))
        for key, record in self.changes.get(kind, _NO_CHANGES).items():
            if record is not _DELETED and value_of(record) == value:
                keys.add(key)
            else:
                keys.discard(key)
        found = []
        for key in keys:
            record = self.get(kind, key)
            if record is not None:
                found.append(record)
        return found

    def find_committed(self, index: str, value: Any) -> list[Record]:
        kind, value_of = INDEXES[index]
        found = []
        for key in self._store._lookup(index, value):
            record = self.get(kind, key)
            if record is not None and value_of(record) == value:
                found.append(record)
        return found

    def lease_order(self) -> Iterator[Record]:
        index = self._store._runnable_index()
        changed = self.changes.get("jobs", _NO_CHANGES)
        pending = sorted(
            (record["lease_expires_at"], key)
            for key, record in changed.items()
            if record is not _DELETED and _leased(record)
        )
        committed = (entry for entry in index.leases if entry[1] not in changed)
        for _, key in heapq.merge(pending, committed):
            record = self.get("jobs", key)
            assert record is not None
            yield record

    def finished_since(self, org: str, status: str, since: str) -> Iterator[Record]:
        """From the group's entries in finished_at order, walked back to ``since``;
        jobs changed in this transaction are merged in."""
        name, value = "jobs_finished", (org, status)
        _, value_of = INDEXES[name]
        order = _ORDERS[name]
        entries = self._store._ordered(name, value).entries
        committed = self._store._records("jobs")
        pending = self.changes.get("jobs", _NO_CHANGES)

        def stored() -> Iterator[tuple[tuple[Any, ...], Record]]:
            for i in range(len(entries) - 1, -1, -1):
                entry = entries[i]
                if entry[0] < since:
                    return
                key = entry[-1]
                if key in pending:
                    continue  # this transaction's version comes from `changed`
                record = committed.get(key)
                if _holds(record, entry, value, value_of, order):
                    yield entry, record

        changed = _pending_in_group(
            pending,
            value,
            value_of,
            order,
            lambda record: _text(record.get("finished_at")) >= since,
            newest_first=True,
        )
        for _, record in heapq.merge(
            stored(), changed, key=itemgetter(0), reverse=True
        ):
            yield record

    def change_mark(self) -> str:
        return str(self.generation)

    def _pending_jobs(self) -> Iterator[Record]:
        """Jobs changed here that are queued (not in the index until the commit)."""
        for record in self.changes.get("jobs", _NO_CHANGES).values():
            if record is not _DELETED and _queued(record):
                yield record

    def _walk(
        self, entries: list[_Entry], start: int, exclude_tasks: Collection[str]
    ) -> Iterator[_Entry]:
        """Committed entries from ``start`` on, less excluded tasks and changed jobs."""
        changed = self.changes.get("jobs", _NO_CHANGES)
        for i in range(start, len(entries)):
            entry = entries[i]
            if entry[5] in exclude_tasks or entry[4] in changed:
                continue  # a job changed here is seen through _pending_jobs
            yield entry

    def claim_order(
        self,
        queues: Collection[str],
        exclude_tasks: Collection[str] = (),
        *,
        want: int = 1,
    ) -> Iterator[Record]:
        index = self._store._runnable_index()
        wanted = set(queues)
        pending = sorted(
            _entry(record)
            for record in self._pending_jobs()
            if record["queue"] in wanted
            and record.get("fair_tag") is not None
            and record["task"] not in exclude_tasks
        )
        streams = [
            self._walk(index.order[queue], 0, exclude_tasks)
            for queue in wanted
            if queue in index.order
        ]
        for entry in heapq.merge(iter(pending), *streams):
            record = self.get("jobs", entry[4])
            assert record is not None
            yield record

    def lane_head(
        self, queue: str, priority: int, exclude_tasks: Collection[str] = ()
    ) -> int | None:
        index = self._store._runnable_index()
        head = None
        entries = index.order.get(queue, [])
        start = bisect.bisect_left(entries, (-priority,))
        for entry in self._walk(entries, start, exclude_tasks):
            if entry[0] == -priority:
                head = entry[1]
            break
        for record in self._pending_jobs():
            tag = record.get("fair_tag")
            if (
                tag is not None
                and record["queue"] == queue
                and record["priority"] == priority
                and record["task"] not in exclude_tasks
                and (head is None or tag < head)
            ):
                head = tag
        return head

    def lane_next_tag(self, queue: str, priority: int) -> int:
        index = self._store._runnable_index()
        tag = index.lane_next_tag(
            queue, priority, self._store._records("lanes").values()
        )
        for record in self.changes.get("lanes", _NO_CHANGES).values():
            lane = None if record is _DELETED else _lane_of(record)
            if lane is not None and lane[:2] == (queue, priority):
                tag = max(tag, lane[2])
        return tag

    def due_untagged(self, queues: Collection[str], now: str) -> list[Record]:
        index = self._store._runnable_index()
        changed = self.changes.get("jobs", _NO_CHANGES)
        found: list[tuple[_Waiting, Record]] = []
        for queue in set(queues):
            for entry in index.waiting.get(queue, []):
                if entry[0] > now:
                    break  # sorted by run_after: none later is due
                if entry[2] not in changed:
                    found.append((entry, self._store._records("jobs")[entry[2]]))
        wanted = set(queues)
        for record in self._pending_jobs():
            if (
                record.get("fair_tag") is None
                and record["queue"] in wanted
                and record["run_after"] <= now
            ):
                found.append((_waiting(record), record))
        found.sort(key=lambda pair: pair[0])
        return [record for _, record in found]

    # -- pages ---------------------------------------------------------------

    def page_jobs(
        self,
        org: str,
        *,
        statuses: Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int,
        cursor: str | None = None,
        error_type: str | None = None,
    ) -> PageOf:
        wanted = None if statuses is None else frozenset(statuses)
        where = paging.scope(
            "jobs",
            org=org,
            statuses=None if wanted is None else sorted(wanted),
            queue=queue,
            task=task,
            **({} if error_type is None else {"error_type": error_type}),
        )

        def match(record: Record) -> bool:
            return (
                (wanted is None or record.get("status") in wanted)
                and (queue is None or record.get("queue") == queue)
                and (task is None or record.get("task") == task)
                and (error_type is None or _error_type(record) == error_type)
            )

        return self._page("jobs_by_org", org, match, where, cursor, limit)

    def page_notifications(
        self,
        job_id: str,
        *,
        org: str,
        channel: str,
        limit: int,
        cursor: str | None = None,
    ) -> PageOf:
        where = paging.scope("notifications", org=org, job_id=job_id, channel=channel)

        def match(record: Record) -> bool:
            return (
                record.get("org_id") == org
                and record.get("channel", "in_app") == channel
            )

        return self._page("notifications_by_job", job_id, match, where, cursor, limit)

    def page_inbox(
        self, org: str, *, unread: bool, limit: int, cursor: str | None = None
    ) -> PageOf:
        where = paging.scope("inbox", org=org, unread=unread)

        def match(record: Record) -> bool:
            return not unread or record.get("read_at") is None

        return self._page("notifications_by_org", org, match, where, cursor, limit)

    def page_events(
        self, job_id: str, *, org: str, limit: int, cursor: str | None = None
    ) -> PageOf:
        where = paging.scope("events", org=org, job_id=job_id)

        def match(record: Record) -> bool:
            return record.get("org_id") == org

        return self._page("events_by_job", job_id, match, where, cursor, limit)

    def _page(
        self,
        name: str,
        value: Any,
        match: Callable[[Record], bool],
        where: paging.Scope,
        cursor: str | None,
        limit: int,
    ) -> PageOf:
        """Up to ``limit`` records of an index group that ``match``, after the cursor.

        The committed records come from the group's sorted keys, from the
        cursor's position on (a bisection); those changed in this
        transaction are merged in. One record past the page says whether
        there is a next one.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        after = paging.decode(cursor, where)  # InvalidInput before any read
        kind, value_of = INDEXES[name]
        order = _ORDERS[name]
        newest_first = name != "events_by_job"
        store = self._store
        entries = store._ordered(name, value).entries
        committed = store._records(kind)
        pending = self.changes.get(kind, _NO_CHANGES)

        def positions() -> Iterator[int]:
            if newest_first:
                end = (
                    len(entries)
                    if after is None
                    else bisect.bisect_left(entries, after)
                )
                return iter(range(end - 1, -1, -1))
            start = 0 if after is None else bisect.bisect_right(entries, after)
            return iter(range(start, len(entries)))

        def stored() -> Iterator[tuple[tuple[Any, ...], Record]]:
            for i in positions():
                entry = entries[i]
                key = entry[-1]
                if key in pending:
                    continue  # this transaction's version comes from `changed`
                record = committed.get(key)
                if _holds(record, entry, value, value_of, order) and match(record):
                    yield entry, record

        changed = _pending_in_group(
            pending, value, value_of, order, match, newest_first=newest_first
        )
        if after is not None:
            changed = [
                item
                for item in changed
                if (item[0] < after if newest_first else item[0] > after)
            ]
        merged = heapq.merge(stored(), changed, key=itemgetter(0), reverse=newest_first)
        taken = list(itertools.islice(merged, limit + 1))
        more = len(taken) > limit
        del taken[limit:]
        next_cursor = paging.encode(where, taken[-1][0]) if more else None
        return [record for _, record in taken], next_cursor

    def count(self, kind: str) -> int:
        records = self._store._records(kind)
        total = len(records)
        for key, record in self.changes.get(kind, _NO_CHANGES).items():
            if record is _DELETED:
                total -= key in records
            else:
                total += key not in records
        return total


# The groups a cold read can look up: index -> (kind, field).
_COLD_GROUPS = {
    "events_by_job": ("events", "job_id"),
    "results_by_job": ("results", "job_id"),
    "notifications_by_job": ("notifications", "job_id"),
}


class _ColdTransaction(_JsonTransaction):
    """A read answered from the records it looks up (cold.py), not the whole store.

    A record by its key, and a job's events, results and notifications, are
    looked up on first use and kept in the store's state, which holds only
    them (``_partial``). Anything else (a scan, a count, another index, a
    page of an org's jobs) loads the whole store first, through
    ``JsonFileStore._whole``; so does a lookup the reader cannot serve.
    """

    def __init__(
        self, store: JsonFileStore, reader: ColdReader, clock: Clock | None
    ) -> None:
        super().__init__(store, writable=False, clock=clock)
        self._reader = reader
        self._keys: set[tuple[str, str]] = set()
        self._groups: set[tuple[str, Any]] = set()

    @contextmanager
    def _looked_up(self, ok: bool = True) -> Iterator[None]:
        """Let the engine read the partial state, for what was looked up."""
        store = self._store
        before = store._partial_ok
        store._partial_ok = ok and store._partial
        try:
            yield
        finally:
            store._partial_ok = before and store._partial

    def _add(self, kind: str, records: dict[str, Record]) -> None:
        store = self._store
        assert store._state is not None
        store._state[kind].update(records)
        store._indexes, store._sorted = {}, {}  # built from what is known now

    def _fetch_key(self, kind: str, key: str) -> None:
        if not self._store._partial or (kind, key) in self._keys:
            return
        try:
            with _failing("read", self._store.path):
                record = self._reader.by_key(kind, key)
        except Unavailable:
            self._store._load()
            return
        self._keys.add((kind, key))
        if record is not None:
            self._add(kind, {key: record})

    def _fetch_group(self, index: str, value: Any) -> bool:
        """Look up an index group; whether the partial state now holds all of it."""
        store = self._store
        if not store._partial:
            return False
        if (index, value) in self._groups:
            return True
        if index not in _COLD_GROUPS or not isinstance(value, str):
            return False
        kind, field = _COLD_GROUPS[index]
        try:
            with _failing("read", store.path):
                records = self._reader.by_field(kind, field, value)
        except Unavailable:
            store._load()
            return False
        self._groups.add((index, value))
        self._keys.update((kind, key) for key in records)
        self._add(kind, records)
        return True

    def get(self, kind: str, key: str) -> Record | None:
        self._fetch_key(kind, key)
        with self._looked_up():
            return super().get(kind, key)

    def find(self, index: str, value: Any) -> list[Record]:
        with self._looked_up(self._fetch_group(index, value)):
            return super().find(index, value)

    def find_committed(self, index: str, value: Any) -> list[Record]:
        with self._looked_up(self._fetch_group(index, value)):
            return super().find_committed(index, value)

    def _page(
        self,
        name: str,
        value: Any,
        match: Callable[[Record], bool],
        where: paging.Scope,
        cursor: str | None,
        limit: int,
    ) -> PageOf:
        with self._looked_up(self._fetch_group(name, value)):
            return super()._page(name, value, match, where, cursor, limit)

    @property
    def generation(self) -> int:
        self._store._whole()
        return self._store._generation
