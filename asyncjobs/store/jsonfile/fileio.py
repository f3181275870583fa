"""Every file operation of the JSON file backend, in one small class.

The backend calls nothing in ``os`` for its data files except through a
``FileIO``, so that a test can swap it for a simulator that keeps, drops or
garbles each write not yet fsynced, or fails an operation on purpose.
Errors are the plain ``OSError`` of the operation; the backend wraps them.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections import deque

from ...errors import StoreError, UntrustedLink

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# A FIFO planted at a store path would block open() until a writer came.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_MAX_LINK_HOPS = 40  # as the kernel's ELOOP limit


def not_a_regular_file(path: str) -> OSError:
    return OSError(errno.EINVAL, "not a regular file", path)


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
        for created in reversed(missing):
            # Each level 0700, not only the last (os.makedirs gives the
            # parents the umask's mode).
            try:
                os.mkdir(created, 0o700)
            except FileExistsError:
                if not os.path.isdir(created):
                    raise
            self.fsync_dir(os.path.dirname(created))  # its name lives in its parent

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_folder(self, path: str) -> bool:
        return os.path.isdir(path)

    def stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None

    def open_read(self, path: str) -> int | None:
        """Open a regular file for reading, or None when it does not exist.

        Raises OSError for anything else there (a FIFO, a device, a folder,
        a symlink swapped in after the path was resolved).
        """
        try:
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | _NOFOLLOW | _CLOEXEC)
        except FileNotFoundError:
            return None
        return _regular(fd, path)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def read_all(self, fd: int) -> bytes:
        """Every byte of an open file.

        Read, not mapped: a mapping of a file that someone else truncates in
        place kills the reader with SIGBUS at the first page past the new
        end, where a read only comes back short (and the parser says what
        is wrong). One read of the whole size: no zero-filled buffer, no
        copies of chunks.
        """
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        chunks = [data]
        offset = len(data)
        while chunk := os.pread(fd, 1 << 20, offset):  # longer than it was
            chunks.append(chunk)
            offset += len(chunk)
        return data if len(chunks) == 1 else b"".join(chunks)

    def open_rw(self, path: str) -> int:
        """Open (creating, 0600) a file for reading and writing at chosen offsets.

        Not O_APPEND: on Linux that sends every write to the end of the file,
        and the journal writes into zeros reserved ahead of its end. Raises
        OSError for anything but a regular file there.
        """
        flags = os.O_RDWR | os.O_CREAT | _NONBLOCK | _NOFOLLOW | _CLOEXEC
        return _regular(os.open(path, flags, 0o600), path)

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


def _regular(fd: int, path: str) -> int:
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_a_regular_file(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def trusted_realpath(path: str) -> str:
    """The real path of ``path``, following only links that this user or root owns.

    Every component is checked, not only the last: a link that another user
    planted in a parent folder would otherwise choose where the store or an
    artifact goes. The part of the path that does not exist yet is kept as
    written. Raises UntrustedLink naming the link, StoreError on a loop.
    """
    trusted = {os.geteuid(), 0}
    pending = deque(os.path.abspath(path).split(os.sep)[1:])
    current = os.sep
    hops = 0
    while pending:
        name = pending.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return os.path.normpath(os.path.join(candidate, *pending))
        except OSError as exc:
            raise StoreError(f"cannot resolve {path}: {exc.strerror or exc}") from exc
        if not stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        if st.st_uid not in trusted:
            raise UntrustedLink(
                f"{candidate} is a symlink owned by another user (uid {st.st_uid}): "
                f"not following it to reach {path}"
            )
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise StoreError(f"cannot resolve {path}: too many levels of symlinks")
        try:
            target = os.readlink(candidate)
        except OSError as exc:
            raise StoreError(f"cannot resolve {path}: {exc.strerror or exc}") from exc
        if os.path.isabs(target):
            current = os.sep
        pending.extendleft(reversed(target.split(os.sep)))
    return current


def private_file_target(path: str) -> str:
    """Where ``write_private_file(path, ...)`` would write, its folders made (0700).

    Creates and removes a temp file there, as a write does up to its
    rename, so that a path that cannot take the file fails now. Raises
    UntrustedLink (a StoreError) for a folder reached through another
    user's symlink, and OSError when the folder cannot take a file.
    """
    path = os.path.abspath(path)
    real = os.path.join(trusted_realpath(os.path.dirname(path)), os.path.basename(path))
    if os.path.isdir(real):
        raise IsADirectoryError(errno.EISDIR, "is a folder", path)
    io = FileIO(fsync=True)
    io.makedirs(os.path.dirname(real))
    fd, tmp = io.create_temp(os.path.dirname(real), os.path.basename(real))
    io.close(fd)
    io.unlink(tmp)
    return real


def write_private_file(path: str, data: bytes) -> None:
    """Write an artifact durably and atomically, creating its folders (0700, file 0600).

    A symlink planted at ``path`` is replaced, never followed; one another
    user owns on the way to it is refused. Raises StoreError naming the file.
    """
    path = os.path.abspath(path)
    real = os.path.join(trusted_realpath(os.path.dirname(path)), os.path.basename(path))
    try:
        io = FileIO(fsync=True)
        io.makedirs(os.path.dirname(real))
        io.write_atomic(real, data)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
