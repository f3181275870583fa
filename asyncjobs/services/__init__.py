"""Transaction scripts over the engine: read what a rule needs, call the rule, save.

``running`` holds the worker's operations (claim, finish, heartbeat,
release, lease expiry, periodic runs); ``Client`` (client.py) holds the
others for now and is their facade.
"""
