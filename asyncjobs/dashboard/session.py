"""Signing in with an access token, and what every dashboard POST must show.

The session cookie holds the access token itself (``domain/tokens.py``),
``HttpOnly; SameSite=Strict; Path=/dashboard/``: each request checks it
again, so a revoked or expired token ends the session at once, and no
session is kept on the server.

An action is a POST that must come from a page of this very origin:
``Sec-Fetch-Site`` must be ``same-origin`` (a page on another port of the
same host is ``same-site`` and its form would carry the cookie); without
that header, ``Origin`` must be this server's; without either, it is
refused. And the form must carry the synchronizer token, an HMAC of the
session's secret that only a page rendered for that session holds.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from ..errors import Forbidden

COOKIE = "asyncjobs_session"
CSRF_FIELD = "csrf"


def presented(environ: dict[str, Any]) -> str | None:
    """The token the session cookie holds, if any.

    Read by hand: ``http.cookies`` drops every cookie of a header when one
    of them is malformed, and a browser sends this host's cookies of every
    port and path, other applications' too. So another application on this
    host can set a cookie of this name on a longer path, which a browser
    sends first: two different values are no session at all, rather than
    a session someone else chose.
    """
    found = _values(environ)
    return found.pop() if len(found) == 1 else None


def conflicting(environ: dict[str, Any]) -> bool:
    """Whether the request carries two different session cookies."""
    return len(_values(environ)) > 1


def _values(environ: dict[str, Any]) -> set[str]:
    found = set()
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and value.strip('"'):
            found.add(value.strip('"'))
    return found


def cookie(token: str, environ: dict[str, Any]) -> str:
    """The Set-Cookie value that starts a session (Secure behind https)."""
    secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
    return f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard/{secure}"


def cleared() -> str:
    return f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard/; Max-Age=0"


def csrf_token(token: str) -> str:
    """The synchronizer token of a session: only its pages carry it."""
    secret = token.partition(".")[2].encode()
    return hmac.new(secret, b"asyncjobs dashboard csrf", hashlib.sha256).hexdigest()


def check_origin(environ: dict[str, Any]) -> None:
    """Forbidden unless the request comes from a page of this origin."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        if site != "same-origin":
            raise Forbidden(f"a {site} request cannot act here")
        return
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        raise Forbidden("an action needs Sec-Fetch-Site or Origin; scripts use the API")
    if origin != own_origin(environ):
        raise Forbidden("a request from another origin cannot act here")


def check_csrf(token: str, form: dict[str, str]) -> None:
    given = form.get(CSRF_FIELD, "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(given, csrf_token(token).encode()):
        raise Forbidden("the form is not one this session was given; reload the page")


def own_origin(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "")
        port = environ.get("SERVER_PORT", "")
        if port and port != {"http": "80", "https": "443"}.get(scheme):
            host = f"{host}:{port}"
    return f"{scheme}://{host}"
