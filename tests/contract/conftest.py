"""The engine contract: each test runs once per engine (the ``backend`` fixture).

An engine is what ``store/ports.py`` describes. Adding one is adding a param
here that yields a fresh, initialized store of that engine; every test in
this folder must then pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asyncjobs.store import Store, open_store


def _jsonfile(tmp_path: Path) -> Callable[[], Store]:
    path = tmp_path / "store" / "store.v1.json"
    path.parent.mkdir(mode=0o700)
    return lambda: open_store(str(path), fsync=False)


def _postgres(request: pytest.FixtureRequest) -> Callable[[], Store]:
    url = request.getfixturevalue("pg_url")  # a schema of its own
    return lambda: open_store(url)


ENGINES = {
    "jsonfile": lambda request: _jsonfile(request.getfixturevalue("tmp_path")),
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(ENGINES))
def opener(request: pytest.FixtureRequest) -> Callable[[], Store]:
    """Opens another handle on the same store (as another process would)."""
    return ENGINES[request.param](request)


@pytest.fixture
def backend(opener: Callable[[], Store]) -> Iterator[Store]:
    """A fresh, initialized store of each engine."""
    store = opener()
    store.initialize()
    yield store
    store.close()
