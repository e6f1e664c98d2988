"""Where a range splits itself (run/split.py): on one of its own page boundaries, leaving both parts at
least the smallest range; the open end of a list doubles; and only while the run has a range slot free."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.planner import MAX_RANGES, MIN_PAGES_PER_RANGE
from vanta_vuln_sync.run.split import has_most_left, spawn_of, split_offset, wants_range
from vanta_vuln_sync.store.models import FAILED, RUNNING, RunState
from vanta_vuln_sync.vanta.cursors import cursor_before

PAGE_SIZE = 100
PER_PAGE = PAGE_SIZE - 1  # new records a page adds (each overlaps the one before by a record)


@given(offset=st.integers(0, 10**7), pages=st.integers(0, 10**4))
def test_a_range_with_an_end_gives_away_the_second_half_of_what_it_has_left(offset: int, pages: int) -> None:
    end = offset + pages * PER_PAGE
    at = split_offset(offset, end, PAGE_SIZE)
    if pages < 2 * MIN_PAGES_PER_RANGE:
        assert at is None
        return
    assert at is not None
    # on a page boundary of the range (its last page then ends on the new range's first record)
    assert (at - offset) % PER_PAGE == 0
    kept, given_away = (at - offset) // PER_PAGE, (end - at) // PER_PAGE
    assert kept >= MIN_PAGES_PER_RANGE
    assert given_away >= MIN_PAGES_PER_RANGE
    assert abs(kept - given_away) <= 1


@given(offset=st.integers(0, 10**7))
def test_the_open_end_of_a_list_keeps_as_much_again_as_the_list_before_it(offset: int) -> None:
    at = split_offset(offset, None, PAGE_SIZE)
    assert at is not None
    assert (at - offset) % PER_PAGE == 0
    kept = (at - offset) // PER_PAGE
    assert kept == max(MIN_PAGES_PER_RANGE, offset // PER_PAGE)
    # so a list of n records is reached in about log2(n / (5 pages)) splits
    assert at >= min(2 * offset - PER_PAGE, offset + MIN_PAGES_PER_RANGE * PER_PAGE)


def _run(total: int, done: int, slots: int, status: str = RUNNING) -> RunState:
    return RunState(
        run_id="r",
        scope="all",
        status=status,
        started_at=datetime(2026, 11, 30, tzinfo=UTC),
        plan=[],
        modes={},
        ranges_done=done,
        planned_ranges=total,
        range_slots=slots,
    )


def test_a_range_splits_only_while_the_run_has_a_slot_free() -> None:
    assert wants_range(_run(total=3, done=0, slots=4))
    assert wants_range(_run(total=9, done=6, slots=4))
    assert not wants_range(_run(total=4, done=0, slots=4))
    assert not wants_range(_run(total=3, done=0, slots=0))  # planned before ranges split
    assert not wants_range(_run(total=3, done=0, slots=4, status=FAILED))
    assert not wants_range(_run(total=MAX_RANGES, done=MAX_RANGES - 1, slots=4))
    assert not wants_range(None)


def test_the_new_range_starts_where_the_split_is_and_ends_where_the_range_was_to_end() -> None:
    parent = PageRange(
        run_id="20261130T000000Z-abc",
        resource="vulnerabilities",
        shard="o00001",
        filters={"x": "y"},
        seq=3,
        page_budget=50,
        cursor=cursor_before(1000),
        offset=1000,
        end_offset=5000,
        next_shard="o00002",
        anchors=("a", "b"),
    )
    spawn = spawn_of(parent, 2980, end_offset=5000, next_shard="o00002")
    assert (spawn.shard, spawn.seq, spawn.offset, spawn.cursor) == (
        "x000002980",
        0,
        2980,
        cursor_before(2980),
    )
    assert (spawn.end_offset, spawn.next_shard, spawn.anchors) == (5000, "o00002", ())
    assert (spawn.resource, spawn.filters, spawn.page_budget) == (parent.resource, parent.filters, 50)


def test_only_the_range_with_the_most_left_halves_itself() -> None:
    def named(shard: str) -> PageRange:
        return PageRange(
            run_id="r", resource="vulnerabilities", shard=shard, filters={}, seq=1, page_budget=5
        )

    lefts: dict[str, int | None] = {
        "vulnerabilities#a": 500,
        "vulnerabilities#b": 900,
        "vulnerabilities#c": 900,
        "vulnerabilities#d": None,  # open to the list's end: splits on its own terms
    }
    assert [s for s in "abcd" if has_most_left(named(s), lefts)] == ["b"]
    # a range whose progress is not committed yet does not split
    assert not has_most_left(named("e"), lefts)
