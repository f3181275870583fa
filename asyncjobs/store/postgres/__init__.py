"""The PostgreSQL engine: one database, workers and servers on many machines.

Optional: it needs the ``postgres`` extra (psycopg 3). See docs/postgres.md.
"""
