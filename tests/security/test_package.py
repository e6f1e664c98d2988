"""The Lambda package holds only what the two functions import: no simulator, no embedded runtime or
fault injector, no CLI. `nox -s build` prunes `sam build`'s copy of `src/` with `noxfile.lambda_modules`;
this runs the same pruning on a copy of the package and imports the handlers from what is left.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vanta_vuln_sync

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(vanta_vuln_sync.__file__).resolve().parent
NEVER_IN_LAMBDA = ("simulator/", "local/", "cli/")


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)

    def error(self, text: str) -> None:
        raise AssertionError(text)


def test_the_handlers_import_none_of_the_laptop_side_modules(noxfile: Any) -> None:
    modules = noxfile.lambda_modules(str(PACKAGE))
    assert "vanta_vuln_sync/handlers/scheduler.py" in modules
    assert "vanta_vuln_sync/handlers/worker.py" in modules
    assert "vanta_vuln_sync/handlers/finalize.py" in modules
    # imported inside a function (Finalize's statistics) still counts
    assert "vanta_vuln_sync/stats/__init__.py" in modules
    assert "vanta_vuln_sync/run/finalize.py" in modules
    leaked = sorted(m for m in modules if m.removeprefix("vanta_vuln_sync/").startswith(NEVER_IN_LAMBDA))
    assert leaked == []


@pytest.mark.integration  # a subprocess
def test_the_pruned_package_is_smaller_and_still_runs_every_handler(
    noxfile: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given sam build's layout: the package copied into a function's build directory
    function = tmp_path / "build" / "WorkerFunction"
    shutil.copytree(PACKAGE, function / "vanta_vuln_sync", ignore=shutil.ignore_patterns("__pycache__"))
    size: Callable[[Path], int] = noxfile._zip_size
    before = size(function)
    # When the build prunes it
    log = _Log()
    noxfile._prune_to_lambda_modules(log, str(tmp_path / "build"))
    # Then the laptop-side modules are gone and the zip is smaller
    left = {p.relative_to(function).as_posix() for p in function.rglob("*.py")}
    assert not [p for p in left if p.removeprefix("vanta_vuln_sync/").startswith(NEVER_IN_LAMBDA)]
    after = size(function)
    assert after < before
    with capsys.disabled():
        print(f"\nLambda package (sources only): {before:,} bytes zipped before pruning, {after:,} after")
    assert log.lines == [f"WorkerFunction: Lambda zip {before:,} bytes before pruning, {after:,} after"]
    # and the three handlers import from the pruned copy alone, in a fresh interpreter
    check = (
        "import vanta_vuln_sync, vanta_vuln_sync.handlers.scheduler, vanta_vuln_sync.handlers.worker;"
        "import vanta_vuln_sync.handlers.finalize;"
        "import vanta_vuln_sync.stats, vanta_vuln_sync.run.finalize;"
        "print(vanta_vuln_sync.__file__)"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        check=False,
        cwd=function,
        env={"PYTHONPATH": str(function), "POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(function))
