"""The threaded HTTP server behind ``asyncjobs serve`` (stdlib only).

It serves a WSGI application (``wsgi.App``) with one thread per connection.
Request headers whose names hold an underscore are dropped before the app
sees them. An address it cannot listen on is an ``InvalidInput`` naming the
option of ``asyncjobs serve`` at fault.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .errors import InvalidInput

log = logging.getLogger(__name__)


class Handler(WSGIRequestHandler):
    """One request per connection, as wsgiref does."""

    def get_environ(self) -> dict[str, Any]:
        # wsgiref maps X_Org_Id and X-Org-Id alike to HTTP_X_ORG_ID, so a
        # client could pass for a header its gateway sets: drop every name
        # with an underscore, as nginx, gunicorn and waitress do.
        for name in {name for name in self.headers if "_" in name}:
            del self.headers[name]
        return super().get_environ()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class Server(ThreadingMixIn, WSGIServer):
    """A listening socket of the address family of its host, a thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[Any, ...], family: socket.AddressFamily) -> None:
        self.address_family = family  # read by TCPServer.__init__ to make the socket
        super().__init__(address, Handler)


def listen(host: str, port: int) -> Server:
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
        return Server(address, family)
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
    on_ready: Callable[[str, int], None],
) -> None:
    """Serve ``app`` on ``host`` and ``port`` until SIGTERM or SIGINT."""
    server = listen(host, port)
    server.set_app(app)

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    on_ready(*server.server_address[:2])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
