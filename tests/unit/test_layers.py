"""The layers of docs/architecture.md hold: imports run one way, services use only the engine contract."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from asyncjobs.store import ports

PACKAGE = Path(__file__).resolve().parents[2] / "asyncjobs"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The asyncjobs modules a file imports at its top level (not under an ``if``)."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                as_path = PACKAGE.parent / candidate.replace(".", "/")
                if (
                    as_path.with_suffix(".py").exists()
                    or (as_path / "__init__.py").exists()
                ):
                    found.add(candidate)
                else:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.startswith("asyncjobs")}


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_itself_through_others():
    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [d for d in GRAPH.get(start, ()) if d != start]
        while todo:
            module = todo.pop()
            if module not in seen and module in GRAPH:
                seen.add(module)
                todo += GRAPH[module]
        return seen

    cyclic = sorted(m for m in GRAPH if m in reaches(m))
    assert cyclic == []


def test_rules_import_nothing_above_them():
    allowed = {
        "asyncjobs.clock",
        "asyncjobs.ids",
        "asyncjobs.errors",
        "asyncjobs.records",
    }
    for module, deps in GRAPH.items():
        if module.startswith("asyncjobs.domain"):
            above = {
                d
                for d in deps
                if d not in allowed and not d.startswith("asyncjobs.domain")
            }
            assert above == set(), module


def test_services_and_engines_never_import_the_edges():
    edges = ("asyncjobs.cli", "asyncjobs.http", "asyncjobs.client")
    for module, deps in GRAPH.items():
        if module.startswith(
            ("asyncjobs.services", "asyncjobs.store", "asyncjobs.domain")
        ):
            assert not [d for d in deps if d.startswith(edges)], module


def test_outside_the_engines_a_transaction_is_used_only_through_the_contract():
    contract = {
        name
        for name, _ in inspect.getmembers(ports.Transaction)
        if not name.startswith("_")
    }
    misuses = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "store" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "tx"
                and node.attr not in contract
            ):
                misuses.append(
                    f"{path.relative_to(PACKAGE)}:{node.lineno} tx.{node.attr}"
                )
    assert misuses == []
    assert {"get", "put", "scan", "find"}.isdisjoint(contract)  # no key-value seam


def test_only_services_open_transactions():
    openers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.relative_to(PACKAGE).parts
        and any(
            isinstance(node, ast.Attribute) and node.attr == "transaction"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert openers and all(name.startswith("services/") for name in openers), openers
