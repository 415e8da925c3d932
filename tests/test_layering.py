"""DESIGN 2 dependency rules, checked on the source: who may import what."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", files("mm/core"), ids=lambda p: p.name)
def test_core_is_pure_standard_library(path):
    allowed_stdlib = sys.stdlib_module_names - {
        "asyncio",
        "sqlite3",
        "socket",
        "logging",
        "time",
        "random",
        "threading",
        "subprocess",
        "os",
    }
    for name in imports(path):
        if name.startswith("mm."):
            assert name.startswith("mm.core"), f"{path.name} imports {name}"
        else:
            assert top(name) in allowed_stdlib or name == "__future__", f"{path.name}: {name}"


def test_the_engine_knows_no_concrete_adapter():
    for path in files("mm/engine", "mm/store", "mm/core"):
        for name in imports(path):
            assert top(name) not in {"connectors", "ray", "ccxt", "grpc", "starlette"}, (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_only_the_composition_root_picks_connectors():
    for path in files("mm"):
        if path.name in ("cli.py", "composition.py"):  # the CLI and the factories it hands out
            continue
        bad = {n for n in imports(path) if top(n) == "connectors"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize(
    ("library", "home"),
    [("ray", "mm/actors"), ("ccxt", "connectors/ccxt"), ("grpc", "connectors/remote")],
)
def test_foreign_libraries_stay_in_their_adapter(library, home):
    for path in files("mm", "connectors"):
        if str(path.relative_to(ROOT)).startswith(home):
            continue
        assert library not in {top(n) for n in imports(path)}, f"{path.relative_to(ROOT)}"
