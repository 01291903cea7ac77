"""The layers: `crs` above `services` above `shared`; services never import each other's code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


SERVICES = sorted(path.name for path in (ROOT / "services").iterdir() if (path / "app.py").is_file())


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_not_the_tool(service: str) -> None:
    for path in (ROOT / "services" / service).rglob("*.py"):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1:
                assert parts[1] == service, f"{path.relative_to(ROOT)} imports {module}"
            assert parts[0] != "crs", f"{path.relative_to(ROOT)} imports {module}"


def test_shared_imports_neither_services_nor_the_tool() -> None:
    for path in (ROOT / "shared").rglob("*.py"):
        for module in _imports(path):
            assert module.split(".")[0] not in {"services", "crs"}, (
                f"{path.relative_to(ROOT)} imports {module}"
            )


AUDIT_READ_SIDE = frozenset({"services.audit.reader", "services.audit.chain", "services.audit.record"})
"""What of audit the tool may use: its reader and the pure code that checks and assembles entries."""
STORE_HANDLERS = {
    "crs/stack.py": "starts the database servers and checks that they answer",
    "crs/bench.py": "counts each service's statements and database CPU (the throughput bench)",
    "crs/chaos_fuzz.py": "checks, by design, that every valid message is in the stores that read it",
    "crs/dlq.py": "keeps its replay record in the operator's own database",
}


def test_the_tool_reads_services_data_only_through_audits_reader_or_the_workspace_api() -> None:
    """`crs record|trace|stats|requests|audit|approve` and the chaos kills read no service's
    collections: audit's entries through its reader, the rest through the workspace's API."""
    for path in sorted((ROOT / "crs").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in STORE_HANDLERS:
            continue
        for module in _imports(path):
            if module == "pymongo" or (module.startswith("pymongo.") and module != "pymongo.errors"):
                raise AssertionError(f"{relative} imports {module}: read through AuditReader or the API")
            if module.startswith("services."):
                assert module in AUDIT_READ_SIDE, f"{relative} imports {module}"
