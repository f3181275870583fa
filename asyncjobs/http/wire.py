"""What the API and the dashboard share on the wire: status lines, reading a body."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput, PayloadTooLarge

STATUS_TEXT = {
    200: "OK",
    202: "Accepted",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BodyTimedOut(Exception):
    """The body did not arrive by the server's read deadline (or the client left)."""


def read_body(environ: dict[str, Any], limit: int, what: str = "body") -> bytes:
    """The request's body: InvalidInput for a bad Content-Length,
    PayloadTooLarge over ``limit`` bytes, BodyTimedOut when it stops coming."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidInput("Content-Length is not a number") from None
    if length > limit:
        raise PayloadTooLarge(f"{what}: {length} bytes is over the limit of {limit}")
    try:
        return environ["wsgi.input"].read(length) if length > 0 else b""
    except OSError as exc:
        raise BodyTimedOut(f"{what}: did not arrive in time") from exc
