"""What a local run shows while it runs and when it ends: a rich bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of a local run at one moment, from the state table, the simulator and the poller."""

    elapsed: float
    phase: str
    run_id: str | None = None
    ranges_done: int = 0
    ranges_total: int = 0
    pages: int = 0
    records: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    rate_per_minute: float | None = None
    rate_limit: int | None = None
    invocations: int = 0
    in_flight: int = 0
    queued: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def line(self) -> str:
        """One plain line (no colour, no control characters)."""
        parts = [f"[{self.elapsed:6.1f}s] {self.phase}"]
        if self.ranges_total:
            parts.append(f"ranges {self.ranges_done}/{self.ranges_total}")
        parts += [f"pages {self.pages}", f"records {self.records}", f"requests {self.requests}"]
        parts.append(f"429s {self.throttled}")
        if self.rate_per_minute is not None:
            limit = f"/{self.rate_limit}" if self.rate_limit else ""
            parts.append(f"rate {self.rate_per_minute:.0f}{limit} per min")
        parts.append(f"invocations {self.invocations} ({self.in_flight} running)")
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)


class ProgressView(Protocol):
    """Something that shows snapshots as they come, then closes."""

    def show(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """One line every `every` seconds (and on phase changes): for logs, CI and pipes."""

    def __init__(self, stream: IO[str], every: float = 5.0) -> None:
        self._stream = stream
        self._every = every
        self._last = -1e9
        self._phase = ""

    def show(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if snapshot.phase != self._phase or now - self._last >= self._every:
            self._stream.write(snapshot.line() + "\n")
            self._stream.flush()
            self._last, self._phase = now, snapshot.phase

    def close(self) -> None:
        self._stream.flush()


class RichProgress:
    """A live progress bar (ranges done of planned) with the run's counters beside it."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ranges"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counters]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("starting", total=None, counters="")
        self._progress.start()

    def show(self, snapshot: Snapshot) -> None:
        rate = ""
        if snapshot.rate_per_minute is not None:
            limit = f"/{snapshot.rate_limit}" if snapshot.rate_limit else ""
            rate = f" · {snapshot.rate_per_minute:.0f}{limit} req/min"
        counters = (
            f"{snapshot.pages} pages · {snapshot.records:,} records · {snapshot.requests} requests · "
            f"{snapshot.throttled} 429s{rate} · {snapshot.in_flight} λ running"
        )
        if snapshot.note:
            counters += f"\n[yellow]{snapshot.note}[/yellow]"
        self._progress.update(
            self._task,
            description=snapshot.phase,
            total=snapshot.ranges_total or None,
            completed=snapshot.ranges_done,
            counters=counters,
        )

    def close(self) -> None:
        self._progress.stop()


def make_view(stream: IO[str] | None = None, *, style: str = "auto") -> tuple[ProgressView, Console]:
    """The progress view for `stream`: `bar` on a terminal, `plain` lines otherwise (`style` forces one)."""
    stream = stream or sys.stdout
    console = Console(file=stream, highlight=False, soft_wrap=False)
    if style == "bar" or (style == "auto" and console.is_terminal):
        return RichProgress(console), console
    return PlainProgress(stream), console


def summary_table(rows: list[tuple[str, Any]], title: str) -> Table:
    """A two-column table of headline figures."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    return table
