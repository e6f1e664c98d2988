"""The chain walk (run/walk.py) against an in-memory list with opaque cursors that changes between
requests, as a busy tenant does: no server, each change made just before a chosen request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from vanta_vuln_sync.run.walk import Walk, walk_chain


class MovingList:
    """A list served in pages with opaque cursors that name positions (as the simulator's do); `changes`
    maps a request number (1 = the first) to a change made to the list just before it is served."""

    def __init__(self, ids: list[str], changes: Mapping[int, Callable[[list[str]], None]]) -> None:
        self.ids = ids
        self.changes = changes
        self.requests = 0
        self._cursors: dict[str, int] = {}

    def _cursor(self, position: int) -> str:
        cursor = f"c{len(self._cursors)}"
        self._cursors[cursor] = position
        return cursor

    async def fetch_page(
        self, resource: str, filters: Mapping[str, str], cursor: str | None = None, page_size: int = 100
    ) -> Any:
        self.requests += 1
        if self.requests in self.changes:
            self.changes[self.requests](self.ids)
        start = 0 if cursor is None else self._cursors[cursor] + 1
        chosen = self.ids[start : start + page_size]
        return SimpleNamespace(
            records=[{"id": i} for i in chosen],
            has_next_page=start + len(chosen) < len(self.ids),
            start_cursor=self._cursor(start) if chosen else None,
            end_cursor=self._cursor(start + len(chosen) - 1) if chosen else None,
        )


def walk(source: MovingList, page_size: int) -> Walk:
    state = Walk(offset=None, cursor=None, anchors=())
    asyncio.run(
        walk_chain(
            source,
            "vulnerability-remediations",
            {},
            state,
            first_step=True,
            page_budget=1_000,
            page_size=page_size,
            keep_going=lambda: True,
        )
    )
    return state


def losing(gone: set[str]) -> Callable[[list[str]], None]:
    def change(items: list[str]) -> None:
        items[:] = [i for i in items if i not in gone]

    return change


IDS = [f"r{i:04}" for i in range(800)]


def test_a_static_chain_reads_every_record_once_with_one_window_a_boundary() -> None:
    source = MovingList(IDS[:430], {})
    state = walk(source, page_size=100)
    assert [r["id"] for r in state.records] == IDS[:430]
    assert not state.warnings
    # 5 data pages, and one window for each of the 4 boundaries
    assert source.requests == 9


def test_records_that_slip_back_past_the_first_window_are_seen_from_an_earlier_page() -> None:
    # Pages of 5: requests 1-3 are pages 1-2 (r0000-r0009) and the window across their boundary. Then
    # four records before them go, just before page 3 is served: it starts at r0014, and r0010-r0013
    # have slipped back behind it by nearly a page. The window after page 2's start cursor (r0010 on)
    # holds none of the records read last (r0005-r0009); the next try's window from page 2's own cursor
    # (r0009 on, 100 records) shows r0009, what slipped, and page 3's first record.
    gone = {"r0001", "r0002", "r0003", "r0004"}
    source = MovingList(IDS[:40], {4: losing(gone)})
    state = walk(source, page_size=5)
    got = [r["id"] for r in state.records]
    # every record there all along once, in order (those gone were read before they went)
    assert [i for i in got if i not in gone] == [i for i in IDS[:40] if i not in gone]
    assert len(got) == len(set(got))
    assert not state.warnings


def test_records_that_slip_back_further_than_a_window_flag_the_run_and_nothing_is_read_twice() -> None:
    # Pages of 100: requests 1-5 are pages 1-3 and a window across each boundary. Then 120 records
    # before them go, just before page 4 is served: r0300-r0419 slip back behind it by more than a
    # window can reach across, so the walk cannot see them and must say so.
    gone = {f"r{i:04}" for i in range(1, 121)}
    source = MovingList(list(IDS), {6: losing(gone)})
    state = walk(source, page_size=100)
    got = [r["id"] for r in state.records]
    assert len(got) == len(set(got))
    assert set(got) <= set(IDS)
    assert [i for i in IDS if i not in gone and i not in got]  # records were missed ...
    assert state.warnings == [  # ... and the run knows
        "vulnerability-remediations: could not check a page boundary of a cursor chain (the list kept "
        "moving there); records near it may be missing"
    ]
