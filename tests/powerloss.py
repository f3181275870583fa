"""A power-loss simulator for the JSON file backend.

``SimFS`` is a folder in memory that remembers what was fsynced. ``SimIO``
is a ``FileIO`` over it that can stop the process ("crash") before its Nth
operation. ``SimFS.after_power_loss`` then builds one disk a power loss could
leave: every byte fsynced is there; each write since the last fsync of its
file is kept, dropped or garbled (zeros, random bytes, or cut at a 512-byte
sector); a truncate not yet fsynced may be undone; and of the folder changes
since the last fsync of the folder (creates, renames, deletes), only some
prefix survives, as a journaling file system keeps them in order.
"""

from __future__ import annotations

import itertools
import os
import random
import types
from dataclasses import dataclass, field

from asyncjobs.store.jsonfile.fileio import FileIO

SECTOR = 512
_inode_numbers = itertools.count(1)


class Crash(BaseException):
    """The simulated power cut: nothing in the store may catch it."""


@dataclass
class Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""
    pending: list[tuple] = field(
        default_factory=list
    )  # ("write", at, bytes) | ("truncate", size)
    number: int = field(default_factory=lambda: next(_inode_numbers))
    version: int = 0


class SimFS:
    """One folder of files, with what is durable kept apart from what is not."""

    def __init__(self) -> None:
        self.names: dict[str, Inode] = {}
        self.durable_names: dict[str, Inode] = {}
        self.folder_pending: list[tuple[str, str, Inode | None]] = []

    def link(self, path: str, inode: Inode | None) -> None:
        if inode is None:
            self.names.pop(path, None)
        else:
            self.names[path] = inode
        self.folder_pending.append(("link", path, inode))

    def after_power_loss(self, rng: random.Random) -> SimFS:
        """A disk as a power cut at this moment could leave it."""
        names = dict(self.durable_names)
        kept = rng.randint(0, len(self.folder_pending))
        for _, path, inode in self.folder_pending[:kept]:
            if inode is None:
                names.pop(path, None)
            else:
                names[path] = inode
        disk = SimFS()
        contents: dict[int, Inode] = {}
        for path, inode in names.items():
            if inode.number not in contents:
                contents[inode.number] = _survivor(inode, rng)
            disk.names[path] = contents[inode.number]
        disk.durable_names = dict(disk.names)
        return disk


def _survivor(inode: Inode, rng: random.Random) -> Inode:
    data = bytearray(inode.durable)
    for op in inode.pending:
        fate = rng.random()
        if op[0] == "truncate":
            if fate < 0.5:
                del data[op[1] :]
            continue
        _, at, chunk = op
        if fate < 0.3:
            continue  # never reached the disk
        if fate > 0.7:
            chunk = _garbled(chunk, at, rng)
        if len(data) < at:
            data.extend(bytes(at - len(data)))
        data[at : at + len(chunk)] = chunk
    return Inode(data=data, durable=bytes(data))


def _garbled(chunk: bytes, at: int, rng: random.Random) -> bytes:
    """The write as a torn sector range: cut short, zeroed, or random."""
    mode = rng.randrange(3)
    if mode == 0:  # only the sectors up to some boundary made it
        boundary = ((at // SECTOR) + rng.randint(0, len(chunk) // SECTOR + 1)) * SECTOR
        return chunk[: max(0, boundary - at)]
    start = rng.randrange(len(chunk)) if chunk else 0
    end = min(len(chunk), start + rng.randint(1, 2 * SECTOR))
    filler = bytes(end - start) if mode == 1 else rng.randbytes(end - start)
    return chunk[:start] + filler + chunk[end:]


class SimIO(FileIO):
    """FileIO over a SimFS; raises Crash instead of its operation number ``crash_at``."""

    def __init__(self, fs: SimFS, crash_at: int | None = None) -> None:
        super().__init__(fsync=True)
        self.fs = fs
        self.crash_at = crash_at
        self.ops = 0
        self._fds: dict[int, Inode] = {}
        self._positions: dict[int, int] = {}
        self._next_fd = itertools.count(1000)
        self._temps = itertools.count(1)

    def _tick(self) -> None:
        self.ops += 1
        if self.crash_at is not None and self.ops >= self.crash_at:
            raise Crash(f"power cut at operation {self.ops}")

    # -- reads ----------------------------------------------------------------

    def makedirs(self, path: str) -> None:
        pass

    def exists(self, path: str) -> bool:
        return path in self.fs.names

    def is_folder(self, path: str) -> bool:
        return True  # the simulated disk is one folder, always there

    def stat(self, path: str) -> types.SimpleNamespace | None:
        inode = self.fs.names.get(path)
        if inode is None:
            return None
        return types.SimpleNamespace(
            st_ino=inode.number, st_mtime_ns=inode.version, st_size=len(inode.data)
        )

    def open_read(self, path: str) -> int | None:
        inode = self.fs.names.get(path)
        if inode is None:
            return None
        fd = next(self._next_fd)
        self._fds[fd] = inode
        self._positions[fd] = 0
        return fd

    def fstat(self, fd: int) -> types.SimpleNamespace:
        inode = self._fds[fd]
        return types.SimpleNamespace(
            st_ino=inode.number, st_mtime_ns=inode.version, st_size=len(inode.data)
        )

    def read_all(self, fd: int) -> bytes:
        return bytes(self._fds[fd].data)

    def size(self, fd: int) -> int:
        return len(self._fds[fd].data)

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        return bytes(self._fds[fd].data[offset : offset + length])

    # -- writes ---------------------------------------------------------------

    def open_rw(self, path: str) -> int:
        inode = self.fs.names.get(path)
        if inode is None:
            self._tick()
            inode = Inode()
            self.fs.link(path, inode)
        fd = next(self._next_fd)
        self._fds[fd] = inode
        self._positions[fd] = 0
        return fd

    def seek(self, fd: int, offset: int) -> None:
        self._positions[fd] = offset

    def write_all(self, fd: int, data: bytes) -> None:
        self._tick()
        inode, at = self._fds[fd], self._positions[fd]
        inode.pending.append(("write", at, bytes(data)))
        if len(inode.data) < at:
            inode.data.extend(bytes(at - len(inode.data)))
        inode.data[at : at + len(data)] = data
        self._positions[fd] = at + len(data)
        inode.version += 1

    def fsync(self, fd: int) -> None:
        self._tick()
        inode = self._fds[fd]
        inode.durable, inode.pending = bytes(inode.data), []

    def truncate(self, fd: int, size: int) -> None:
        self._tick()
        inode = self._fds[fd]
        inode.pending.append(("truncate", size))
        del inode.data[size:]
        inode.version += 1

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)

    def create_temp(self, folder: str, basename: str) -> tuple[int, str]:
        tmp = os.path.join(folder, f".{basename}.{next(self._temps)}.tmp")
        return self.open_rw(tmp), tmp

    def unlink(self, path: str) -> None:
        if path in self.fs.names:
            self._tick()
            self.fs.link(path, None)

    def replace(self, src: str, dst: str) -> None:
        self._tick()
        inode = self.fs.names[src]
        self.fs.link(dst, inode)
        self.fs.link(src, None)

    def fsync_dir(self, folder: str) -> None:
        self._tick()
        self.fs.durable_names = dict(self.fs.names)
        self.fs.folder_pending = []

    def remove_stale_temps(self, folder: str, basename: str) -> None:
        prefix = os.path.join(folder, f".{basename}.")
        for path in [p for p in self.fs.names if p.startswith(prefix)]:
            self.unlink(path)
