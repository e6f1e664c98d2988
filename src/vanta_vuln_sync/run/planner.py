"""Turning a SyncRequest into the page ranges of a run.

Per resource, chosen at run time by fetching one record (all resources are surveyed at once):
- **Offset ranges** when the cursor decodes to `arrayconnection:<offset>`: any page can be addressed, so
  the list is cut into ranges `[offset, offset + k pages)`, sized from the previous run's count. A
  first run, which knows none, plans one range from the start when the run is compact (run/split.py):
  that range splits itself as it reads; otherwise it finds the length with one-record probes (within
  1/16) and plans one wave. The last range is open: it goes on until `hasNextPage` is false, so a list
  that grew since is still read to its end.
  The ranges of a run fill the run's range slots (run/sizing.py: what the rate limit needs, at most
  workers x ranges in flight) once, and have about the same number of pages whatever their resource:
  all start at once, share the rate budget evenly and end together, so no slot idles behind a longer
  range and no wave of hand-offs stalls the fleet mid-run.
- **Shard chains** otherwise (opaque cursors): the resource is split by filters whose values partition
  it (every record has exactly one severity, one `isDeactivated`, one `isFixable`, one asset type), so
  the chains are disjoint and their union is the unfiltered list. Dimensions the request already
  filters on are kept as given (a targeted resync plans within its filter). From the scope's second
  run on, a chain the last successful run walked is planned as pieces that start at its cursor
  checkpoints (store/checkpoints.py) and join by id, so chains fill the run's slots as offset ranges do.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vanta_vuln_sync.messages import PageRange, SyncRequest
from vanta_vuln_sync.run.walk import PageSource
from vanta_vuln_sync.store.checkpoints import ChainCheckpoints, evenly_chosen, piece_name
from vanta_vuln_sync.vanta.cursors import cursor_before, decode_offset
from vanta_vuln_sync.vanta.resources import ASSET_TYPES, SEVERITIES, validate_filters

REMEDIATIONS = "vulnerability-remediations"
# Filters that partition each resource: every record has exactly one of these values (checked against
# the simulator's data in tests/test_planner.py). The vulnerabilities list passes
# includeVulnerabilitiesWithoutSlas=true (validate_filters adds it), so records without an SLA are in it.
# `isFixAvailable` is the documented filter of `isFixable`, a boolean every vulnerability carries.
SHARD_DIMENSIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "vulnerabilities": (
        ("severity", SEVERITIES),
        ("isDeactivated", ("false", "true")),
        ("isFixAvailable", ("true", "false")),
    ),
    REMEDIATIONS: (("severity", SEVERITIES),),
    "vulnerable-assets": (("assetType", ASSET_TYPES),),
}
# Incremental remediations re-read this much before the last success's start: records that Vanta
# dates slightly in the past (ingestion lag) are not missed. Re-read records are the same objects.
WATERMARK_OVERLAP = timedelta(days=1)
# Offset ranges: no fewer pages than MIN_PAGES_PER_RANGE (each range costs a few DynamoDB, SQS and S3
# requests), and no more than MAX_RANGES in a run (the plan is one DynamoDB item).
MIN_PAGES_PER_RANGE = 5
MAX_RANGES = 240


def effective_filters(
    request: SyncRequest, resource: str, last_success: datetime | None
) -> tuple[dict[str, str], str]:
    """The filters a resource is listed with in this run, and its mode (`full` or `incremental`).

    Remediations of an incremental request with a previous success are listed from that success's
    start minus WATERMARK_OVERLAP, unless the request sets its own remediation date filter.
    """
    filters = dict(request.filters.get(resource, {}))
    if (
        resource == REMEDIATIONS
        and request.mode == "incremental"
        and last_success is not None
        and "remediatedAfterDate" not in filters
    ):
        since = last_success - WATERMARK_OVERLAP
        filters["remediatedAfterDate"] = since.isoformat().replace("+00:00", "Z")
        return filters, "incremental"
    return filters, "full"


def free_dimensions(resource: str, filters: Mapping[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """The shard dimensions of `resource` that `filters` leaves free to split on."""
    return [(name, values) for name, values in SHARD_DIMENSIONS.get(resource, ()) if name not in filters]


def shard_ranges(
    run_id: str,
    resource: str,
    filters: Mapping[str, str],
    page_budget: int,
    dimensions: list[tuple[str, tuple[str, ...]]] | None = None,
) -> list[PageRange]:
    """Disjoint filter shards of `resource` within `filters`, one cursor chain each.

    A dimension already fixed by `filters` is not split further, so the shards' union is exactly the
    list `filters` selects. `dimensions` (default: every free one) are the ones checked to partition it.
    """
    free = free_dimensions(resource, filters) if dimensions is None else dimensions
    ranges: list[PageRange] = []
    for combo in itertools.product(*(values for _, values in free)):
        shard_filters = dict(filters)
        for (name, _), value in zip(free, combo, strict=True):
            shard_filters[name] = value
        ranges.append(
            PageRange(
                run_id=run_id,
                resource=resource,
                shard=_shard_name([name for name, _ in free], combo),
                filters=shard_filters,
                seq=0,
                page_budget=page_budget,
            )
        )
    return ranges


def range_counts(pages: Mapping[str, int], slots: int) -> dict[str, int]:
    """How many offset ranges each resource gets: one wave that fills the run's `slots` (run/sizing.py),
    shared so that the longest range is as short as it can be; no range under MIN_PAGES_PER_RANGE, no
    more than MAX_RANGES in all.

    One wave: every range starts at once and, sharing the rate budget evenly, all end together; a range
    cut short by its page budget or its invocation's time goes on in a later invocation.
    """
    total = sum(pages.values())
    wanted = max(len(pages), min(slots, MAX_RANGES, total // MIN_PAGES_PER_RANGE))
    counts = dict.fromkeys(pages, 1)
    # One more range at a time to the resource whose ranges are longest: the longest range of the run,
    # which sets its end, is as short as `wanted` ranges allow (a resource with one range of 125 pages
    # beside ranges of 97 kept one range walking alone for the last 28 pages).
    for _ in range(wanted - len(pages)):
        longest = max(pages, key=lambda name: math.ceil(pages[name] / counts[name]))
        counts[longest] += 1
    return counts


def records_per_page(page_size: int) -> int:
    """New records a page of an offset range adds: one less than it holds (it overlaps the last one)."""
    return max(1, page_size - 1)


def offset_ranges(
    run_id: str,
    resource: str,
    filters: Mapping[str, str],
    *,
    expected_records: int,
    pages_per_range: int,
    page_budget: int,
    page_size: int,
) -> list[PageRange]:
    """Ranges of `pages_per_range` pages covering `[0, expected_records)`; the last one is open-ended,
    so the union is the whole list whatever its size now. Each range but the last names the range after
    it (`next_shard`): it ends where that one began, by id (run/walk.py). A page adds
    `page_size - 1` records (each overlaps the one before by a record), so a range spans that many a
    page, and its last page ends on the next range's first record: no request is spent on a join."""
    span = max(1, pages_per_range) * records_per_page(page_size)
    count = max(1, math.ceil(expected_records / span))
    return [
        PageRange(
            run_id=run_id,
            resource=resource,
            shard=f"o{index:05d}",
            filters=dict(filters),
            seq=0,
            page_budget=page_budget,
            cursor=cursor_before(index * span),
            offset=index * span,
            end_offset=None if index == count - 1 else (index + 1) * span,
            next_shard=None if index == count - 1 else f"o{index + 1:05d}",
        )
        for index in range(count)
    ]


def chain_pieces(chain: PageRange, saved: ChainCheckpoints, pieces: int) -> list[PageRange]:
    """Shard chain `chain` as up to `pieces` pieces that start at the last run's checkpoints `saved`
    (piece 0 at the chain's start), cutting its pages most evenly. Each piece names the one after it
    (`next_shard`), where that one was planned to begin (`end_page`) and the ids it began with then
    (`stop_ids`): it ends where that piece began, by id (run/walk.py), however the list moved."""
    starts = evenly_chosen(saved.checkpoints, saved.pages, pieces)
    count = len(starts) + 1
    out: list[PageRange] = []
    for index in range(count):
        start = starts[index - 1] if index else None
        following = starts[index] if index < count - 1 else None
        out.append(
            replace(
                chain,
                shard=piece_name(chain.shard, index),
                cursor=start.cursor if start else None,
                start_ids=start.ids if start else (),
                page_index=start.page if start else 0,
                next_shard=piece_name(chain.shard, index + 1) if following else None,
                end_page=following.page if following else None,
                stop_ids=following.ids if following else (),
            )
        )
    return out


def _saved_for(chain: PageRange, saved: tuple[ChainCheckpoints, ...]) -> ChainCheckpoints | None:
    """The checkpoints left for `chain` by a run that listed it with the same filters (a cursor is only
    valid with the filters it was issued for), if there are any to split it at."""
    wanted = validate_filters(chain.resource, chain.filters)  # as the stored plan holds them
    for found in saved:
        if found.resource == chain.resource and found.chain == chain.shard and found.filters == wanted:
            return found if any(c.page > 0 for c in found.checkpoints) else None
    return None


@dataclass(frozen=True, slots=True)
class Listing:
    """What a resource's survey found: its filters, and its expected length when its cursors are
    arrayconnection cursors (None: shard chains, or one chain for an empty or one-record list)."""

    resource: str
    filters: dict[str, str]
    style: str  # "offsets", "shards" or "single"
    expected_records: int = 0
    # Shards: the dimensions that were checked to partition the list, and what the check found.
    dimensions: list[tuple[str, tuple[str, ...]]] | None = None
    notices: tuple[str, ...] = ()
    # Shards: the cursor checkpoints the scope's last successful run left for its chains.
    checkpoints: tuple[ChainCheckpoints, ...] = ()


@dataclass(frozen=True, slots=True)
class ListingRequest:
    """A resource to plan: its effective filters and the record count of its last full run, if any."""

    resource: str
    filters: Mapping[str, str]
    previous_count: int | None = None
    checkpoints: tuple[ChainCheckpoints, ...] = ()


async def survey(client: PageSource, request: ListingRequest, *, page_size: int) -> Listing:
    """One request to learn how to split a resource (shard chains: and one page per filter value,
    to check that the filters split it).

    Raises the client's VantaError when Vanta refuses (for example a 400 on a filter value).
    """
    filters = dict(request.filters)
    first = await client.fetch_page(request.resource, filters, page_size=1)
    if not first.records or not first.has_next_page:
        return Listing(request.resource, filters, "single")
    if first.end_cursor is None or decode_offset(first.end_cursor) is None:
        dimensions, notices = await checked_dimensions(client, request.resource, filters, page_size=page_size)
        return Listing(
            request.resource,
            filters,
            "shards",
            dimensions=dimensions,
            notices=notices,
            checkpoints=request.checkpoints,
        )
    # A first run does not know the list's length: plan_run probes it, unless the run is compact (then
    # one open range splits itself as it reads: run/split.py).
    return Listing(request.resource, filters, "offsets", request.previous_count or 0)


def ranges_for(
    run_id: str, listings: list[Listing], *, slots: int, page_budget: int, page_size: int
) -> list[PageRange]:
    """The run's ranges for surveyed resources; offset ranges all of one size (see the module doc)."""
    per_page = records_per_page(page_size)
    pages = {x.resource: math.ceil(x.expected_records / per_page) for x in listings if x.style == "offsets"}
    chains: dict[str, tuple[PageRange, ChainCheckpoints]] = {}
    unsplit = 0
    for listing in listings:
        if listing.style == "shards":
            for chain in shard_ranges(
                run_id, listing.resource, listing.filters, page_budget, dimensions=listing.dimensions
            ):
                saved = _saved_for(chain, listing.checkpoints)
                if saved is None:
                    unsplit += 1
                else:
                    key = f"{chain.resource}#{chain.shard}"
                    chains[key], pages[key] = (chain, saved), saved.pages
    counts = range_counts(pages, max(1, slots - unsplit))
    plan: list[PageRange] = []
    for listing in listings:
        if listing.style == "offsets":
            plan += offset_ranges(
                run_id,
                listing.resource,
                listing.filters,
                expected_records=listing.expected_records,
                pages_per_range=math.ceil(pages[listing.resource] / counts[listing.resource]),
                page_budget=page_budget,
                page_size=page_size,
            )
        elif listing.style == "shards":
            for chain in shard_ranges(
                run_id, listing.resource, listing.filters, page_budget, dimensions=listing.dimensions
            ):
                key = f"{chain.resource}#{chain.shard}"
                if key in chains:
                    plan += chain_pieces(chain, chains[key][1], counts[key])
                else:
                    plan.append(chain)
        else:
            # Empty or a single record: one chain from the start reads it whatever the cursor style.
            plan.append(
                PageRange(
                    run_id=run_id,
                    resource=listing.resource,
                    shard="all",
                    filters=dict(listing.filters),
                    seq=0,
                    page_budget=page_budget,
                )
            )
    return plan


async def plan_run(
    client: PageSource,
    run_id: str,
    requests: list[ListingRequest],
    *,
    slots: int | Callable[[], int],
    page_budget: int,
    page_size: int,
    probe_above: int = 0,
) -> tuple[list[PageRange], tuple[str, ...]]:
    """The ranges of a run: every resource surveyed at once (their requests share the rate budget and
    overlap their latency), then split (see the module doc); and the notices its survey raised (a
    filter that does not split a list, so it was listed without splitting on it). `slots`: the run's
    range slots, or a function that gives them once the survey is done (the scheduler sizes them from
    how fast Vanta answered it: run/sizing.py). A list whose length no earlier run counted is planned
    as one open range that splits itself (run/split.py) when the run has at most `probe_above` slots;
    with more, its length is probed and one wave planned (see run/split.py: `compact`).

    Raises the client's VantaError when Vanta refuses (for example a 400 on a filter value).
    """
    listings = list(await asyncio.gather(*(survey(client, r, page_size=page_size) for r in requests)))
    wanted = slots() if callable(slots) else slots
    unknown = [
        i for i, x in enumerate(listings) if x.style == "offsets" and requests[i].previous_count is None
    ]
    if unknown and wanted > probe_above:
        lengths = await asyncio.gather(
            *(
                probe_length(
                    client,
                    listings[i].resource,
                    listings[i].filters,
                    start=page_budget * page_size,
                    page_size=page_size,
                )
                for i in unknown
            )
        )
        for i, length in zip(unknown, lengths, strict=True):
            listings[i] = replace(listings[i], expected_records=length)
    plan = ranges_for(run_id, listings, slots=wanted, page_budget=page_budget, page_size=page_size)
    return plan, tuple(notice for listing in listings for notice in listing.notices)


async def plan_resource(
    client: PageSource,
    run_id: str,
    resource: str,
    filters: Mapping[str, str],
    *,
    previous_count: int | None,
    page_budget: int,
    page_size: int,
    slots: int = 1,
    probe_above: int = 0,
) -> list[PageRange]:
    """The ranges for one resource alone (see plan_run)."""
    request = ListingRequest(resource, filters, previous_count)
    plan, _ = await plan_run(
        client,
        run_id,
        [request],
        slots=slots,
        page_budget=page_budget,
        page_size=page_size,
        probe_above=probe_above,
    )
    return plan


async def checked_dimensions(
    client: PageSource, resource: str, filters: Mapping[str, str], *, page_size: int
) -> tuple[list[tuple[str, tuple[str, ...]]], tuple[str, ...]]:
    """The shard dimensions that really partition `resource` here, and a notice for each that does not.

    Nothing official says that a filter's values split a list (for instance that the remediations'
    `severity` filter matches the lower-case values Vanta's own records carry), so it is checked with
    one page of the unfiltered list and one page of each value: the records of a value keep the list's
    order, so each record of the unfiltered page must be in exactly one value's page. A dimension that
    fails is not split on (its chains would miss or double records); the run says so in its notices.
    """
    free = free_dimensions(resource, filters)
    if not free:
        return [], ()
    sample = await client.fetch_page(resource, filters, page_size=page_size)
    wanted = [str(r["id"]) for r in sample.records if isinstance(r.get("id"), str)]
    pages = await asyncio.gather(
        *(
            client.fetch_page(resource, {**filters, name: value}, page_size=page_size)
            for name, values in free
            for value in values
        )
    )
    kept: list[tuple[str, tuple[str, ...]]] = []
    notices: list[str] = []
    position = 0
    for name, values in free:
        seen: dict[str, int] = {}
        for page in pages[position : position + len(values)]:
            for record in page.records:
                if isinstance(record.get("id"), str):
                    rid = str(record["id"])
                    seen[rid] = seen.get(rid, 0) + 1
        position += len(values)
        missing = sum(1 for rid in wanted if rid not in seen)
        doubled = sum(1 for rid in wanted if seen.get(rid, 0) > 1)
        if missing or doubled:
            notices.append(
                f"{resource}: the {name} filter does not split the list ({missing} of {len(wanted)} "
                f"records in no {name} value, {doubled} in two); listed without splitting on it"
            )
        else:
            kept.append((name, values))
    return kept, tuple(notices)


async def probe_length(
    client: PageSource, resource: str, filters: Mapping[str, str], *, start: int, page_size: int
) -> int:
    """A length at most 1/16 (and at least one page) above the list's true length, from one-record
    probes one at a time: at doubling offsets from `start` until one is past the end, then halving the
    interval that holds the end. For 125,000 records: 10 requests (0.5 % of a 2,000-page sync).

    Each probe spends one request of the rate budget, which at 50 a minute is the planning's cost, so
    probes halve (the most a request can tell) rather than go several at once. A 1/16 estimate leaves
    at most one range past the end on a wave of 16 ranges a resource (it reads one empty page) or a
    last range a sixteenth of the list longer at worst: the last range is open, so none is missed."""

    async def present(offset: int) -> bool:
        page = await client.fetch_page(resource, filters, cursor=cursor_before(offset), page_size=1)
        return bool(page.records)

    low, high = 1, max(2, start)  # an item exists at offset 1 (has_next_page after the first)
    while await present(high):
        low, high = high, high * 2
    while high - low > max(page_size, low // 16):
        middle = (low + high) // 2
        if await present(middle):
            low = middle
        else:
            high = middle
    return high


_BOOLEAN_SHARD_NAMES = {
    ("isDeactivated", "true"): "deactivated",
    ("isDeactivated", "false"): "active",
    ("isFixAvailable", "true"): "fixable",
    ("isFixAvailable", "false"): "nofix",
}


def _shard_name(dimensions: list[str], values: tuple[str, ...]) -> str:
    if not values:
        return "all"
    return "-".join(
        _BOOLEAN_SHARD_NAMES.get((name, value), value.lower().replace("_", ""))
        for name, value in zip(dimensions, values, strict=True)
    )
