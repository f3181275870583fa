"""Transaction scripts over the engine: read what a rule needs, call the rule, save.

``jobs`` (submit, read, cancel, retry), ``running`` (the worker protocol),
``delivery`` (results, notifications, inbox), ``maintenance`` (operating a
store) and ``artifacts`` (result files); ``Client`` (client.py) is their
facade. Each works through the engine contract of ``store/ports.py`` only.
"""
