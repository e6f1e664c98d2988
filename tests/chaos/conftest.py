"""The chaos bench (one moto server for the session) and the results table printed at the end.

`VVS_CHAOS=full` (set by `nox -s chaos`) runs every scenario and writes the table to
tests/chaos/last_run.md; without it only the short, combined scenarios run.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .harness import ChaosBench, Outcome

FULL = os.environ.get("VVS_CHAOS") == "full"
TABLE_PATH = Path(__file__).with_name("last_run.md")
OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="session")
def bench() -> Iterator[ChaosBench]:
    bench = ChaosBench()
    bench.start()
    try:
        yield bench
    finally:
        bench.stop()


def table(outcomes: list[Outcome]) -> list[str]:
    """The results as a markdown table."""
    lines = [
        "| scenario | faults injected | retries | duration | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        result = o.result().replace("|", "/")
        lines.append(f"| {o.scenario} | {o.faults()} | {o.retries()} | {o.seconds:.0f} s | {result} |")
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not OUTCOMES:
        return
    lines = table(OUTCOMES)
    terminalreporter.section("chaos scenarios")
    for line in lines:
        terminalreporter.write_line(line)
    if FULL:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        header = f"Chaos run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}.\n\n"
        TABLE_PATH.write_text(header + "\n".join(lines) + "\n")
        terminalreporter.write_line(f"table written to {TABLE_PATH}")
