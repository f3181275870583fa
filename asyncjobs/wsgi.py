"""``asyncjobs.wsgi:application``: the HTTP API for WSGI servers (gunicorn, waitress).

The application lives in ``http/app.py``; this module keeps the documented
entry point where deployments name it.
"""

from __future__ import annotations

from .http.app import App, application, create_app

__all__ = ["App", "application", "create_app"]
