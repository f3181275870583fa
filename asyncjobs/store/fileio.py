"""Every file operation of the JSON file backend, in one small class.

The backend calls nothing in ``os`` for its data files except through a
``FileIO``, so that a test can swap it for a simulator that keeps, drops or
garbles each write not yet fsynced, or fails an operation on purpose.
Errors are the plain ``OSError`` of the operation; the backend wraps them.
"""

from __future__ import annotations

import mmap
import os
import tempfile

from ..errors import StoreError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_MAP_MIN_BYTES = 8 << 20  # below this, a copy costs less than a mapping


class FileIO:
    """The real file system, with durability switched on or off."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.fsync_enabled = fsync

    def makedirs(self, path: str) -> None:
        """Create the folder and any missing parents (0700), durably."""
        missing = []
        folder = os.path.abspath(path)
        while not os.path.isdir(folder):
            missing.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        if not missing:
            return
        os.makedirs(path, mode=0o700, exist_ok=True)
        for created in reversed(missing):  # its name lives in its parent
            self.fsync_dir(os.path.dirname(created))

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None

    def read(self, path: str) -> bytes | memoryview | None:
        """The whole file, or None when it does not exist.

        A large file comes back as a read-only view of a private mapping:
        the page cache is read in place instead of being copied into a new
        200 MB object, and that memory costs the same page faults again.
        The snapshot is only ever replaced by a rename, never rewritten in
        place, so the mapped bytes cannot change under the reader.
        """
        try:
            fd = os.open(path, os.O_RDONLY | _CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size >= _MAP_MIN_BYTES:
                mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                mapping.madvise(mmap.MADV_SEQUENTIAL)
                return memoryview(mapping)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def open_rw(self, path: str) -> int:
        """Open (creating, 0600) a file for reading and writing at chosen offsets.

        Not O_APPEND: on Linux that sends every write to the end of the file,
        and the journal writes into zeros reserved ahead of its end.
        """
        return os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)

    def seek(self, fd: int, offset: int) -> None:
        os.lseek(fd, offset, os.SEEK_SET)

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        """Write every byte of ``data`` starting at ``offset``."""
        self.seek(fd, offset)
        self.write_all(fd, data)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        chunks = []
        while length > 0:
            chunk = os.pread(fd, min(length, 1 << 24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def write_all(self, fd: int, data: bytes) -> None:
        """Write every byte: ``os.write`` may write fewer without an error."""
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def fsync(self, fd: int) -> None:
        if self.fsync_enabled:
            os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data``: temp file, fsync, rename, fsync folder.

        The temp file comes from ``mkstemp`` (O_EXCL, a random name, 0600) in
        the same folder, so the rename never crosses file systems and a
        planted symlink at ``path`` is replaced, never followed.
        """
        folder = os.path.dirname(path) or "."
        fd, tmp = self.create_temp(folder, os.path.basename(path))
        try:
            try:
                self.write_all(fd, data)
                self.fsync(fd)
            finally:
                self.close(fd)
            self.replace(tmp, path)
        except BaseException:
            self.unlink(tmp)
            raise
        self.fsync_dir(folder)

    def create_temp(self, folder: str, basename: str) -> tuple[int, str]:
        """A new private temp file beside ``basename``: (descriptor, path)."""
        return tempfile.mkstemp(dir=folder, prefix=f".{basename}.", suffix=".tmp")

    def unlink(self, path: str) -> None:
        """Delete a file; a missing one is fine."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def fsync_dir(self, folder: str) -> None:
        if not self.fsync_enabled:
            return
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_stale_temps(self, folder: str, basename: str) -> None:
        """Delete temp files a crash left behind (called with the lock held)."""
        prefix = f".{basename}."
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(prefix) and name.endswith(".tmp"):
                self.unlink(os.path.join(folder, name))


def write_private_file(path: str, data: bytes) -> None:
    """Write an artifact durably and atomically, creating its folders (0700, file 0600).

    A symlink planted at ``path`` is replaced, never followed. Raises
    StoreError naming the file.
    """
    path = os.path.abspath(path)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        FileIO(fsync=True).write_atomic(path, data)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
