"""Model-based test of the JSON file store: random transactions, reopens, compactions
and crashes mid-append, compared after every step with a plain dict of what was committed."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asyncjobs.store import JsonFileStore

KINDS = ("jobs", "events", "counters")
KEYS = st.sampled_from([f"k{i}" for i in range(6)])
VALUES = st.dictionaries(
    st.sampled_from(["a", "b", "org_id", "job_id"]),
    st.one_of(st.integers(-5, 5), st.text(max_size=5), st.none()),
    max_size=3,
)
OPERATION = st.tuples(
    st.sampled_from(["put", "delete"]), st.sampled_from(KINDS), KEYS, VALUES
)


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="asyncjobs-model-")
        self.path = Path(self.folder) / "store.v1.json"
        self.journal = Path(f"{self.path}.journal")
        self.store = self._open()
        self.store.initialize()  # as `asyncjobs store init` does
        self.model: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
        self.before_last: dict[str, dict[str, dict]] | None = None
        self.last_append: tuple[int, int] | None = None  # journal size before, after

    def _open(self) -> JsonFileStore:
        return JsonFileStore(self.path, fsync=False, compact_min_bytes=700)

    def _journal_size(self) -> int:
        """Bytes of lines: the zeros reserved after them are not counted."""
        if not self.journal.exists():
            return 0
        return len(self.journal.read_bytes().rstrip(b"\0"))

    @rule(operations=st.lists(OPERATION, min_size=1, max_size=4))
    def commit(self, operations):
        before = copy.deepcopy(self.model)
        size_before = self._journal_size()
        with self.store.transaction() as tx:
            for op, kind, key, value in operations:
                if op == "put":
                    record = {**value, "key": key}
                    tx.put(kind, key, record)
                    self.model[kind][key] = record
                else:
                    tx.delete(kind, key)
                    self.model[kind].pop(key, None)
        size_after = self._journal_size()
        self.before_last = before
        # Only a commit that appended a line (not folded by a compaction) can tear.
        self.last_append = (
            (size_before, size_after) if size_after > size_before else None
        )

    @rule(failing=OPERATION)
    def failed_transaction(self, failing):
        op, kind, key, value = failing
        try:
            with self.store.transaction() as tx:
                tx.put(kind, key, value) if op == "put" else tx.delete(kind, key)
                raise KeyError("a rule refused")
        except KeyError:
            pass

    @rule()
    def reopen(self):
        self.store.close()
        self.store = self._open()

    @rule()
    def compact(self):
        self.store.compact()
        self.last_append = None

    @precondition(lambda self: self.last_append is not None)
    @rule(
        data=st.data(),
        tail=st.sampled_from(["cut", "zeros", "garbage"]),
        in_place=st.booleans(),
    )
    def crash_during_last_append(self, data, tail, in_place):
        """The last line torn: over the zeros reserved for it, or the file cut."""
        size_before, size_after = self.last_append
        if self._journal_size() != size_after:
            return
        keep = data.draw(st.integers(size_before, size_after - 1), label="bytes kept")
        self.store.close()
        filler = b""
        if tail == "zeros":
            filler = b"\0" * data.draw(st.integers(1, 600))
        elif tail == "garbage":
            filler = data.draw(st.binary(min_size=1, max_size=300))
        content = self.journal.read_bytes()
        if in_place:  # what the write did not reach is still the reserved zeros
            rest = bytes(max(0, size_after - keep - len(filler)))
            done = keep + len(filler) + len(rest)
            content = content[:keep] + filler + rest + content[done:]
        else:
            content = content[:keep] + filler
        self.journal.write_bytes(content)
        self.model = self.before_last
        self.last_append = None
        self.store = self._open()

    @invariant()
    def store_equals_model(self):
        with self.store.read() as tx:
            for kind in KINDS:
                assert {r["key"]: r for r in tx.scan(kind)} == self.model[kind]

    @invariant()
    def a_fresh_process_view_equals_model(self):
        with JsonFileStore(self.path, fsync=False) as fresh:
            if self.path.exists() or self.journal.exists():
                assert fresh.verify().problems == []
            with fresh.read() as tx:
                for kind in KINDS:
                    assert {r["key"]: r for r in tx.scan(kind)} == self.model[kind]

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


StoreModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("ASYNCJOBS_MODEL_EXAMPLES", "60")),
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
)
test_store_matches_model = StoreModel.TestCase
