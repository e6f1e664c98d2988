"""Planning: shards are disjoint and complete, offset ranges tile the list, incremental uses the watermark.

Checked against the simulator's data over loopback: the union of a plan's ranges, fetched, must be
exactly the unfiltered (or targeted) list, with no record twice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vanta_vuln_sync.messages import PageRange, SyncRequest
from vanta_vuln_sync.run.planner import (
    MAX_RANGES,
    MIN_PAGES_PER_RANGE,
    ListingRequest,
    effective_filters,
    offset_ranges,
    plan_resource,
    plan_run,
    probe_length,
    range_counts,
    shard_ranges,
    survey,
)
from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.vanta import InProcessTokenProvider, NoRateLimit, VantaClient, token_fetcher
from vanta_vuln_sync.vanta.cursors import cursor_before, decode_offset
from vanta_vuln_sync.vanta.resources import validate_filters

RUN_ID = "20261126T020000Z-planner"
SimulatorFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


VantaFactory = Callable[..., Awaitable[tuple[Simulator, VantaClient]]]


@pytest.fixture
def vanta(simulator: SimulatorFactory, session: aiohttp.ClientSession) -> VantaFactory:
    """Factory: `sim, client = await vanta(vulnerabilities=900, seed=9)` starts a simulator with these
    settings and gives a client on it (its own tokens, no rate limit)."""

    async def start(**settings: Any) -> tuple[Simulator, VantaClient]:
        sim = await simulator(**settings)
        fetch = token_fetcher(session, sim.auth_url, sim.client_id, sim.client_secret)
        return sim, VantaClient(
            session, sim.base_url, tokens=InProcessTokenProvider(fetch), limiter=NoRateLimit()
        )

    return start


async def fetch_range(client: VantaClient, p: PageRange) -> list[dict[str, Any]]:
    """Walk one range as the worker does: from its cursor until its end offset or the list's end."""
    records: list[dict[str, Any]] = []
    cursor, offset = p.cursor, p.offset
    while True:
        size = 100 if p.end_offset is None or offset is None else min(100, p.end_offset - offset)
        page = await client.fetch_page(p.resource, p.filters, cursor=cursor, page_size=size)
        records += page.records
        if offset is not None:
            offset += len(page.records)
        if not page.has_next_page or (
            p.end_offset is not None and offset is not None and offset >= p.end_offset
        ):
            return records
        cursor = page.end_cursor


async def fetch_plan(client: VantaClient, plan: list[PageRange]) -> list[str]:
    """The ids of every range's records, range after range in the plan's order."""
    fetched: list[str] = []
    for p in plan:
        fetched += ids(await fetch_range(client, p))
    return fetched


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in records]


@pytest.mark.parametrize("resource", ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"])
async def test_shards_cover_the_unfiltered_list_exactly_once_when_cursors_are_opaque(
    vanta: VantaFactory, resource: str
) -> None:
    sim, client = await vanta(vulnerabilities=1200, cursor_style="opaque", seed=7)
    plan = await plan_resource(
        client,
        RUN_ID,
        resource,
        validate_filters(resource, {}),
        previous_count=None,
        page_budget=5,
        page_size=100,
    )
    assert len(plan) > 1
    assert all(p.offset is None for p in plan)
    fetched = await fetch_plan(client, plan)
    expected = ids(sim.dataset.records(resource))
    assert len(fetched) == len(set(fetched)), "a record is in two shards"
    assert sorted(fetched) == sorted(expected), "the shards' union is not the full list"


async def test_targeted_resync_shards_within_its_filter(vanta: VantaFactory) -> None:
    sim, client = await vanta(vulnerabilities=800, cursor_style="opaque", seed=3)
    filters = validate_filters("vulnerabilities", {"severity": "CRITICAL"})
    plan = await plan_resource(
        client, RUN_ID, "vulnerabilities", filters, previous_count=None, page_budget=5, page_size=100
    )
    assert {p.shard for p in plan} == {
        "active-fixable",
        "active-nofix",
        "deactivated-fixable",
        "deactivated-nofix",
    }
    fetched = await fetch_plan(client, plan)
    expected = [r for r in sim.dataset.records("vulnerabilities") if r["severity"] == "CRITICAL"]
    assert sorted(fetched) == sorted(ids(expected))


async def test_offset_ranges_tile_the_list_in_order_when_cursors_are_arrayconnection(
    vanta: VantaFactory,
) -> None:
    sim, client = await vanta(vulnerabilities=2345, seed=5)
    filters = validate_filters("vulnerabilities", {})
    plan = await plan_resource(
        client,
        RUN_ID,
        "vulnerabilities",
        filters,
        previous_count=len(sim.dataset.records("vulnerabilities")),
        page_budget=3,
        page_size=100,
        slots=4,
    )
    assert len(plan) == 4
    assert all(p.offset is not None for p in plan)
    assert plan[-1].end_offset is None  # the last range runs to the end of the list
    fetched = await fetch_plan(client, plan)
    assert fetched == ids(sim.dataset.records("vulnerabilities"))


async def test_last_offset_range_reads_records_added_since_the_previous_count(vanta: VantaFactory) -> None:
    sim, client = await vanta(vulnerabilities=900, seed=9)
    filters = validate_filters("vulnerable-assets", {})
    plan = offset_ranges(
        RUN_ID,
        "vulnerable-assets",
        filters,
        expected_records=40,
        pages_per_range=2,
        page_budget=2,
        page_size=10,
    )
    fetched = await fetch_plan(client, plan)
    assert fetched == ids(sim.dataset.records("vulnerable-assets"))  # 90 records, planned for 40


@pytest.mark.parametrize(("resource", "count"), [("vulnerable-assets", 7), ("vulnerabilities", 16)])
def test_shard_names_are_distinct_and_key_safe(resource: str, count: int) -> None:
    plan = shard_ranges(RUN_ID, resource, {}, page_budget=5)
    names = [p.shard for p in plan]
    assert len(set(names)) == len(names) == count
    assert all(name.replace("-", "").isalnum() and name.islower() for name in names)


@pytest.mark.parametrize("slots", [1, 10, 20, 50, 100, 1000])
@pytest.mark.parametrize(
    "pages", [{"a": 1}, {"a": 7, "b": 1}, {"a": 120, "b": 60, "c": 12}, {"a": 1250, "b": 625, "c": 125}]
)
def test_ranges_fill_the_fleets_slots_once_and_the_longest_is_as_short_as_can_be(
    pages: dict[str, int], slots: int
) -> None:
    counts = range_counts(pages, slots)
    total = sum(pages.values())
    assert set(counts) == set(pages)
    assert all(n >= 1 for n in counts.values())
    assert sum(counts.values()) <= max(len(pages), min(slots, MAX_RANGES))
    if total // MIN_PAGES_PER_RANGE >= min(slots, MAX_RANGES) >= len(pages):
        assert sum(counts.values()) == min(slots, MAX_RANGES)  # every slot has a range

    # the longest range is as short as the number of ranges allows: no range moved from one resource
    # to another would shorten it
    def longest(c: dict[str, int]) -> int:
        return max(math.ceil(pages[n] / c[n]) for n in pages)

    for giver in pages:
        for taker in pages:
            if giver != taker and counts[giver] > 1:
                moved = {**counts, giver: counts[giver] - 1, taker: counts[taker] + 1}
                assert longest(moved) >= longest(counts)


async def test_a_run_surveys_its_resources_at_once_and_fills_the_slots(vanta: VantaFactory) -> None:
    sim, client = await vanta(vulnerabilities=6000, seed=3, latency_seconds=0.05)
    names = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
    counts = {name: len(sim.dataset.records(name)) for name in names}
    # a later run, planned from the last run's counts
    requests = [ListingRequest(name, validate_filters(name, {}), counts[name]) for name in names]
    started = asyncio.get_running_loop().time()
    plan, _ = await plan_run(client, RUN_ID, requests, slots=5, page_budget=50, page_size=100)
    elapsed = asyncio.get_running_loop().time() - started
    assert len(plan) == 5
    assert client.counters.requests == 3  # one survey request a resource
    for resource in names:
        records = sim.dataset.records(resource)
        mine = [p for p in plan if p.resource == resource]
        fetched = await fetch_plan(client, mine)
        assert fetched == ids(records)
        assert all((p.offset or 0) < len(records) for p in mine)
    # the surveys overlapped: less than the sum of their requests' latency, one after another
    assert elapsed < client.counters.requests * 0.05


def test_incremental_remediations_start_a_day_before_the_last_success() -> None:
    request = SyncRequest(resources=("vulnerability-remediations", "vulnerabilities"), mode="incremental")
    last = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    filters, mode = effective_filters(request, "vulnerability-remediations", last)
    assert (filters, mode) == ({"remediatedAfterDate": "2026-11-24T02:00:00Z"}, "incremental")
    assert effective_filters(request, "vulnerabilities", last) == ({}, "full")
    assert effective_filters(request, "vulnerability-remediations", None) == ({}, "full")
    full = SyncRequest(resources=("vulnerability-remediations",), mode="full")
    assert effective_filters(full, "vulnerability-remediations", last) == ({}, "full")


class _ListOf:
    """A PageSource over a list of `length` records with arrayconnection cursors; counts round trips."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.requests = 0

    async def fetch_page(
        self, resource: str, filters: Any, cursor: str | None = None, page_size: int = 100
    ) -> Any:
        self.requests += 1
        start = 0 if cursor is None else (decode_offset(cursor) or 0) + 1
        count = max(0, min(page_size, self.length - start))
        end = cursor_before(start + count) if count else None
        return SimpleNamespace(
            records=[{"id": str(start + i)} for i in range(count)],
            has_next_page=start + count < self.length,
            end_cursor=end,
        )


@given(length=st.integers(min_value=2, max_value=3_000_000))
@settings(max_examples=50, deadline=None)
def test_a_compact_first_run_plans_one_open_range_from_one_request(length: int) -> None:
    """No survey of the list's length: the range splits itself as it reads (run/split.py)."""
    source = _ListOf(length)
    plan = asyncio.run(
        plan_resource(source, RUN_ID, "vulnerabilities", {}, previous_count=None, page_budget=50,
                      page_size=100, slots=4, probe_above=5)
    )  # fmt: skip
    assert source.requests == 1
    assert [(p.offset, p.end_offset, p.next_shard) for p in plan] == [(0, None, None)]


@given(length=st.integers(min_value=2, max_value=3_000_000))
@settings(max_examples=100, deadline=None)
def test_a_first_run_with_many_slots_probes_the_length_within_a_sixteenth(length: int) -> None:
    source = _ListOf(length)
    listing = asyncio.run(survey(source, ListingRequest("vulnerabilities", {}), page_size=100))
    assert listing.style == "offsets"
    length_found = asyncio.run(probe_length(source, "vulnerabilities", {}, start=5000, page_size=100))
    assert length <= length_found <= length + max(100, length // 16)
    # one survey request, then probes that double from 5,000 records past the end and halve to 1/16
    assert source.requests <= math.log2(max(length, 5000) / 5000) + 8
