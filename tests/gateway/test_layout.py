"""The gateway's layers point one way (docs/architecture.md): what each package may import of
the others, read from the source with `ast`, so a new module cannot quietly reach upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "forecast_gateway"

#: Where a module lives -> the packages of the gateway it must never import. (config/ reaches
#: the SageMaker layout and settings lazily, inside its checks: a value type and a validator.)
FORBIDDEN = {
    "domain.py": ("api", "http", "dataplane", "backends", "store", "server", "main"),
    "errors.py": ("api", "http", "dataplane", "backends", "store", "server", "main"),
    "config": ("api", "http", "dataplane", "store", "server", "main"),
    "store": ("api", "http", "dataplane", "backends", "server", "main"),
    "backends": ("api", "http", "dataplane", "server", "main"),
    "dataplane": ("api", "http", "server", "main"),
    "api": ("http", "server", "main"),
}
#: The product never imports the test launcher (crashpoints is its documented hook).
LAUNCHER = "forecast_gateway.testing.process"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("forecast_gateway")}


def _modules(where: str) -> list[Path]:
    path = PACKAGE / where
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_layers_point_one_way(where: str) -> None:
    bad = []
    for module in _modules(where):
        for name in _imports(module):
            top = name.split(".")[1] if "." in name else ""
            if top in FORBIDDEN[where] or top.removesuffix(".py") in FORBIDDEN[where]:
                bad.append(f"{module.relative_to(PACKAGE)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_product_never_imports_the_test_launcher() -> None:
    users = [str(m.relative_to(PACKAGE)) for m in PACKAGE.rglob("*.py")
             if "testing" not in m.parts and any(n.startswith(LAUNCHER) for n in _imports(m))]
    assert users == []


def test_the_top_level_holds_only_the_entry_points_and_the_bottom_layer() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "domain.py", "errors.py", "logs.py", "main.py", "memory.py",
                    "metrics.py", "server.py", "tls.py"]
