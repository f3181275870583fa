"""The web dashboard, served by ``http/app.py`` under ``/dashboard/`` when turned on.

``html.py`` builds pages that escape every value by construction;
``session.py`` turns an access token into a session and guards every
action; ``views.py`` holds the pages and the actions.
"""
