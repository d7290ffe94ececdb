"""The layers of DESIGN.md, checked on the imports: handlers and ws -> picshare
-> storage. The core never imports the HTTP or socket layers (only the app
factory, which wires everything, does); storage imports neither; handlers
and ws never reach a pool or a repository (they call a service)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = ROOT / "picshare" / "app.py"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _offending(package: str, forbidden: tuple[str, ...], skip: Path | None = None) -> list[str]:
    found = []
    for path in _modules(package):
        if path == skip:
            continue
        for name in sorted(_imports(path)):
            if name.split(".")[0] in forbidden or name in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_storage_imports_no_upper_layer() -> None:
    assert _offending("storage", ("picshare", "handlers", "ws")) == []


def test_the_core_imports_neither_handlers_nor_ws() -> None:
    assert _offending("picshare", ("handlers", "ws"), skip=COMPOSITION_ROOT) == []


def test_handlers_and_ws_go_through_services() -> None:
    found = []
    for package in ("handlers", "ws"):
        for path in _modules(package):
            for name in _imports(path):
                if name == "storage.db" or name.endswith("_repo") or "_repo." in name:
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
            if "DB_POOL" in path.read_text():
                found.append(f"{path.relative_to(ROOT)} uses the pool")
    assert found == []


def test_no_service_holds_a_pool() -> None:
    """Services reach the database through the storage router only
    (storage/router.py): no pool type, no pool acquire, in the core."""
    found = []
    for path in _modules("picshare"):
        text = path.read_text()
        if "storage.db import" in text and "Pool" in text.split("storage.db import", 1)[1][:80]:
            found.append(f"{path.relative_to(ROOT)} imports the pool type")
        if ".acquire(" in text or "asyncpg.Pool" in text:
            found.append(f"{path.relative_to(ROOT)} acquires from a pool")
    assert found == []
