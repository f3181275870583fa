"""The store lock: a real OS lock on ``store.v1.json.lock``.

The lock file is opened once per process and kept open; each transaction
takes filelock's native lock on that descriptor (``flock``; the same lock a
``filelock.FileLock`` on the path contends with). Opening the file per
acquire, as ``FileLock`` does, costs about 50 µs, a third of a commit; a
kept descriptor costs about 1 µs. There is no soft-lock fallback: a file
system without ``flock`` is an error. Threads of one process share the
descriptor, and a ``flock`` does not exclude them from each other, so a
thread lock is taken first. The lock file is never deleted.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import filelock

from ..errors import StoreError, StoreLocked

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class StoreLock:
    """An exclusive lock across processes and threads, with a timeout."""

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._pid = os.getpid()
        self._depth = 0
        # Test-only switch for the sensitivity check (RELIABILITY.md T8): with
        # it, concurrency tests must fail. Never set it anywhere else.
        self._disabled = os.environ.get("ASYNCJOBS_TEST_DISABLE_LOCK") == "1"

    def _descriptor(self) -> int:
        if self._fd is not None and self._pid != os.getpid():
            # A forked child shares the parent's open file description, and
            # with it the parent's flock: it needs a descriptor of its own.
            self._fd, self._depth = None, 0
            self._thread_lock = threading.RLock()
        if self._fd is None:
            try:
                try:
                    self._fd = os.open(
                        self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600
                    )
                except PermissionError:  # a reader of a store it cannot write
                    self._fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
            except OSError as exc:
                raise StoreError(
                    f"cannot open lock file {self.path}: {exc.strerror}"
                ) from exc
            self._pid = os.getpid()
        return self._fd

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, or raise StoreLocked after ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        if not self._thread_lock.acquire(timeout=max(limit, 0) if limit >= 0 else -1):
            raise StoreLocked(f"store is locked: {self.path} (waited {limit:g} s)")
        try:
            self._depth += 1
            if self._depth > 1 or self._disabled:
                return
            fd = self._descriptor()
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

    def release(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and not self._disabled and self._fd is not None:
                filelock.unlock_descriptor(self._fd)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
