"""The package's layers, checked from its imports: every import points down (or stays in its layer).

From the top: the operator CLI; the embedded runtime (a developer's whole AWS + Vanta on a laptop);
the Lambda adapters and the operator's reads; the run logic; the stores (state table, S3, SQS) and the
statistics; the message vocabulary and the Vanta simulator; the Vanta client; settings and AWS clients.
ARCHITECTURE.md's module map lists the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vanta_vuln_sync

PACKAGE = Path(vanta_vuln_sync.__file__).parent
LAYERS: dict[str, int] = {
    "settings": 0,
    "aws": 0,
    "vanta": 1,
    "messages": 2,
    "simulator": 2,
    "store": 3,
    "stats": 3,
    "run": 4,
    "handlers": 5,
    "ops": 5,
    "local": 6,
    "cli": 7,
}


def _part(module: str) -> str:
    """The top-level part of the package a module belongs to (`run` for vanta_vuln_sync.run.step)."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every vanta_vuln_sync module `path` imports, relative imports resolved."""
    module = "vanta_vuln_sync." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            if name == "vanta_vuln_sync":  # `from vanta_vuln_sync import stats`
                found += [(node.lineno, f"vanta_vuln_sync.{alias.name}") for alias in node.names]
            elif name.startswith("vanta_vuln_sync."):
                found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("vanta_vuln_sync.")]
    return found


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    parts |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts == set(LAYERS)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _part("vanta_vuln_sync." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own == "__init__":
            continue
        for line, target in _imports(path):
            if LAYERS[_part(target)] > LAYERS[own]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({own}) imports {target}")
    assert not upward, "\n".join(upward)


def test_the_operator_cli_does_not_import_the_embedded_runtime_except_to_run_it() -> None:
    """`vuln-sync local` runs the embedded runtime; every other command works on a deployed stack."""
    offenders = [
        f"{path.name}:{line} imports {target}"
        for path in sorted((PACKAGE / "cli").glob("*.py"))
        if path.name != "local.py"
        for line, target in _imports(path)
        if _part(target) == "local"
    ]
    assert not offenders, offenders
