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
