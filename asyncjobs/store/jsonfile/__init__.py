"""The JSON file engine: ``engine`` (``JsonFileStore``), ``format`` (journal lines
and the snapshot), ``fileio`` (every file operation, swappable in tests) and
``lock`` (the store lock)."""
