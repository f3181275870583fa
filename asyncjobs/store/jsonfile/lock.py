"""The store lock: a real OS lock on ``store.v1.json.lock``.

The lock file is opened once per process and kept open; each transaction
takes filelock's native lock on that descriptor (``flock``; the same lock a
``filelock.FileLock`` on the path contends with). Opening the file per
acquire, as ``FileLock`` does, costs about 50 µs, a third of a commit; a
kept descriptor costs about 1 µs. There is no soft-lock fallback: a file
system without ``flock`` is an error. Threads of one process share the
descriptor, and a ``flock`` does not exclude them from each other, so a
thread lock is taken first. The lock file is never deleted.

A forked child gets a lock of its own (``os.register_at_fork``): a new
thread lock, no depth, and its own descriptor on first use, since the one it
inherited shares the parent's open file description and with it the
parent's flock. Where the lock file cannot be opened for writing (read-only
media, another user's store) it is locked through a read-only descriptor;
where it cannot even be created on read-only media, nobody can commit, and
reads go without it.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
import weakref

import filelock

from ...errors import StoreError, StoreLocked

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NO_WRITE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_LOCKS: weakref.WeakSet[StoreLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._start_afresh()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class StoreLock:
    """An exclusive lock across processes and threads, with a timeout."""

    def __init__(
        self, path: str, *, timeout: float = 10.0, disabled: bool = False
    ) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._unlockable = False  # no lock file, and none can be made: read-only
        self._depth = 0
        # Threads blocked in acquire(): a committer that sees some waiting
        # lets them add their changes to its line (engine.py, group commit).
        self.waiting = 0
        self._counting = threading.Lock()
        # Test-only switch for the sensitivity check of tests/system/test_concurrency.py
        # (ASYNCJOBS_TEST_DISABLE_LOCK): with it, concurrency tests must fail.
        # Never set it anywhere else.
        self._disabled = disabled
        _LOCKS.add(self)

    def _start_afresh(self) -> None:
        """In a forked child: nothing held, nothing open (the parent's stays the parent's)."""
        self._thread_lock = threading.RLock()
        self._depth = 0
        self.waiting = 0
        self._counting = threading.Lock()
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)  # the parent's descriptor keeps its flock
            except OSError:
                pass

    def _descriptor(self) -> int | None:
        if self._fd is None and not self._unlockable:
            flags = _NONBLOCK | _NOFOLLOW | _CLOEXEC
            try:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | flags, 0o600)
                except OSError as exc:
                    if exc.errno not in _NO_WRITE:
                        raise
                    try:  # a reader of a store it cannot write
                        fd = os.open(self.path, os.O_RDONLY | flags)
                    except FileNotFoundError:
                        if exc.errno != errno.EROFS:
                            raise exc from None
                        self._unlockable = True  # nobody can commit here
                        return None
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise OSError(errno.EINVAL, "not a regular file")
            except OSError as exc:
                raise StoreError(
                    f"cannot open lock file {self.path}: {exc.strerror}"
                ) from exc
            self._fd = fd
        return self._fd

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, or raise StoreLocked after ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._counting:
            self.waiting += 1
        try:
            taken = self._thread_lock.acquire(
                timeout=max(limit, 0) if limit >= 0 else -1
            )
        finally:
            with self._counting:
                self.waiting -= 1
        if not taken:
            raise StoreLocked(f"store is locked: {self.path} (waited {limit:g} s)")
        try:
            self._depth += 1
            if self._depth > 1 or self._disabled:
                return
            fd = self._descriptor()
            if fd is None:
                return
            pause = 0.0001
            while True:
                try:
                    if filelock.lock_descriptor(fd, blocking=False):
                        return
                except OSError as exc:
                    if exc.errno == errno.ENOSYS:
                        raise StoreError(
                            f"cannot lock {self.path}: the file system does not "
                            "support flock"
                        ) from exc
                    raise StoreError(
                        f"cannot lock {self.path}: {exc.strerror}"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise StoreLocked(
                        f"store is locked: {self.path} (waited {limit:g} s)"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.005)
        except BaseException:
            self._depth -= 1
            self._thread_lock.release()
            raise

    @property
    def depth(self) -> int:
        """How many times the thread holding the lock has taken it."""
        return self._depth

    def release(self, *, keep_file_lock: bool = False) -> None:
        """Release; ``keep_file_lock`` hands the lock to another thread of this
        process with no other process let in between (its flock is taken again
        at once, on the descriptor that still holds it)."""
        try:
            self._depth -= 1
            if (
                self._depth == 0
                and not keep_file_lock
                and not self._disabled
                and self._fd is not None
            ):
                filelock.unlock_descriptor(self._fd)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
