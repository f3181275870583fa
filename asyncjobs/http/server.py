"""The threaded HTTP server behind ``asyncjobs serve`` (stdlib only).

It serves a WSGI application (``wsgi.App``) with one thread per connection and
one request per connection, and keeps a crowd of clients from taking it
offline:

- at most ``max_connections`` connections at once; one more is answered
  ``503 {"error": {"code": "busy", ...}}`` with ``Connection: close`` by the
  accepting thread itself, and closed;
- a connection that sends nothing for ``idle_timeout_seconds``, or whose
  request head and body have not all arrived ``request_timeout_seconds``
  after it was taken, is closed (a body cut off is answered 408 by the app);
- when ``accept()`` fails for want of file descriptors, the accept loop
  pauses instead of spinning, and at start the soft ``RLIMIT_NOFILE`` is
  raised toward the hard one to fit the connection cap.

Request headers whose names hold an underscore are dropped before the app
sees them. Each request is logged at INFO once answered (``asyncjobs serve
-l info``), with the request id the app gave it (``X-Request-ID``). An
address it cannot listen on is an ``InvalidInput`` naming the option of
``asyncjobs serve`` at fault.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from ..errors import InvalidInput

log = logging.getLogger("asyncjobs.http")

# Beyond one per connection: the listening socket, stdio, the store's files,
# refusals being written.
SPARE_DESCRIPTORS = 64
ACCEPT_BACKOFF_SECONDS = 0.1
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
WRITE_CHUNK_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class Limits:
    """How many connections at once, and how long each may take to send its request."""

    max_connections: int = 256
    idle_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 30.0


class _RequestReader(io.RawIOBase):
    """A connection's incoming bytes, each read waiting at most ``idle_seconds``
    and none past ``deadline`` (``time.monotonic()``): a client that sends one
    byte every few seconds is cut off as surely as a silent one."""

    def __init__(self, sock: socket.socket, idle_seconds: float, deadline: float):
        self._sock, self._idle, self._deadline = sock, idle_seconds, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(min(self._idle, left))
        return self._sock.recv_into(buffer)


class _ResponseWriter(io.BufferedIOBase):
    """A connection's outgoing bytes, cut off when the client does not take a
    64 KiB chunk within ``idle_seconds``: one that stops reading does not keep
    its thread and its slot for ever."""

    def __init__(self, sock: socket.socket, idle_seconds: float):
        self._sock, self._idle = sock, idle_seconds

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.settimeout(self._idle)
        with memoryview(data) as view:
            for start in range(0, view.nbytes, WRITE_CHUNK_BYTES):
                self._sock.sendall(view[start : start + WRITE_CHUNK_BYTES])
            return view.nbytes


# What the app answered on this thread's connection (one request each): the
# access line names the request by the X-Request-ID its client was given.
_answered = threading.local()


def _noting_request_ids(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app``, noting the X-Request-ID of each answer for the access line."""

    def noted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            _answered.request_id = next(
                (v for k, v in headers if k.lower() == "x-request-id"), None
            )
            return start_response(status, headers, *exc_info)

        return app(environ, start)

    return noted


class Handler(WSGIRequestHandler):
    """One request per connection, as wsgiref does, under the server's limits."""

    server: Server

    def setup(self) -> None:
        _answered.request_id = None
        limits = self.server.limits
        self.connection = self.request
        deadline = time.monotonic() + limits.request_timeout_seconds
        self.rfile = io.BufferedReader(
            _RequestReader(self.request, limits.idle_timeout_seconds, deadline)
        )
        self.wfile = _ResponseWriter(self.request, limits.idle_timeout_seconds)

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("closing %s: %s", self.address_string(), exc)

    def get_environ(self) -> dict[str, Any]:
        # wsgiref maps X_Org_Id and X-Org-Id alike to HTTP_X_ORG_ID, so a
        # client could pass for a header its gateway sets: drop every name
        # with an underscore, as nginx, gunicorn and waitress do.
        for name in {name for name in self.headers if "_" in name}:
            del self.headers[name]
        return super().get_environ()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.info(
            '%s "%s" %s %s',
            self.address_string(),
            self.requestline,
            code,
            size,
            extra={"request_id": getattr(_answered, "request_id", None)},
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class Server(ThreadingMixIn, WSGIServer):
    """A listening socket of its host's address family, a thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    # Connections over the cap are taken and refused at once; a short queue
    # would leave clients waiting for SYN retries instead.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[Any, ...], family: socket.AddressFamily, limits: Limits
    ) -> None:
        self.address_family = family  # read by TCPServer.__init__ to make the socket
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._busy = _busy_answer(limits.max_connections)
        self._accept_failing = False
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            taken = super().get_request()
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                # The listening socket stays readable, so going straight back
                # to select() would spin a core until a descriptor is freed.
                if not self._accept_failing:
                    log.warning("cannot accept connections: %s", exc.strerror)
                self._accept_failing = True
                time.sleep(ACCEPT_BACKOFF_SECONDS)
            raise
        self._accept_failing = False
        return taken

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()  # after the socket is closed: one descriptor each

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("error serving %s", client_address)

    def _refuse(self, request: socket.socket) -> None:
        """Answer busy without a thread and close: the accept loop must not wait."""
        try:
            request.setblocking(False)
            request.send(self._busy)  # a new socket's send buffer takes it whole
            request.shutdown(socket.SHUT_WR)
            # Closing with the client's request unread would reset the
            # connection, and the client could lose the answer with it.
            request.recv(65536)
        except OSError as exc:
            log.debug("refusing a connection: %s", exc)
        request.close()


def _busy_answer(max_connections: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "busy",
                "message": f"the server is at its limit of {max_connections} "
                "connections; try again",
            }
        }
    )
    return (
        "HTTP/1.0 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body) + 1}\r\n"
        "Cache-Control: no-store\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        f"\r\n{body}\n"
    ).encode()


def fit_descriptor_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE toward the hard one to fit ``max_connections``.

    Logs a warning when even the hard limit is too low: connections beyond it
    then wait in the listen queue while the accept loop pauses.
    """
    needed = max_connections + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:  # a platform cap below the hard limit
        log.debug("cannot raise RLIMIT_NOFILE to %d: %s", target, exc)
        target = soft
    if target < needed:
        log.warning(
            "--max-connections %d needs %d file descriptors but this process may "
            "open %d; raise the limit (ulimit -n) or lower --max-connections",
            max_connections,
            needed,
            target,
        )


def listen(host: str, port: int, limits: Limits) -> Server:
    """A server bound to ``host`` and ``port``.

    Raises InvalidInput naming ``--host`` for a name that does not resolve or
    an address not of this machine, and ``--port`` for a port in use or one
    this user may not take.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:  # gaierror; idna refuses long labels
        raise InvalidInput(
            f"--host: cannot listen on {host!r}: {_reason(exc)}"
        ) from exc
    try:
        return Server(address, family, limits)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise InvalidInput(
                f"--port: cannot listen on {host}:{port}: {_reason(exc)}"
            ) from exc
        raise InvalidInput(
            f"--host: cannot listen on {host!r}: {_reason(exc)}"
        ) from exc


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def serve(
    app: Callable[..., Any],
    host: str,
    port: int,
    *,
    limits: Limits = Limits(),
    on_ready: Callable[[str, int], None],
) -> None:
    """Serve ``app`` on ``host`` and ``port`` until SIGTERM or SIGINT."""
    fit_descriptor_limit(limits.max_connections)
    server = listen(host, port, limits)
    server.set_app(_noting_request_ids(app))

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    on_ready(*server.server_address[:2])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
