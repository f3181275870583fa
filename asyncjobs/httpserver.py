"""The threaded HTTP server behind ``asyncjobs serve`` (stdlib only).

It serves a WSGI application (``wsgi.App``) with one thread per connection.
Request headers whose names hold an underscore are dropped before the app
sees them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def serve(
    app: Callable[..., Any],
    host: str,
    port: int,
    *,
    on_ready: Callable[[str, int], None],
) -> None:
    """Serve ``app`` with a threaded stdlib server until SIGTERM or SIGINT."""
    import signal
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    class Handler(WSGIRequestHandler):
        def get_environ(self) -> dict[str, Any]:
            # wsgiref maps X_Org_Id and X-Org-Id alike to HTTP_X_ORG_ID, so a
            # client could pass for a header its gateway sets: drop every name
            # with an underscore, as nginx, gunicorn and waitress do.
            for name in {name for name in self.headers if "_" in name}:
                del self.headers[name]
            return super().get_environ()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    server = make_server(host, port, app, server_class=Server, handler_class=Handler)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    on_ready(*server.server_address[:2])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
