"""Turning a SyncRequest into the page ranges of a run.

Per resource, chosen at run time by fetching one record:
- **Offset ranges** when the cursor decodes to `arrayconnection:<offset>`: any page can be addressed, so
  the list is cut into ranges `[offset, offset + k pages)`, sized from the previous run's count (or, on
  a first run, from a few one-record probes that find where the list ends). The last range is open:
  it goes on until `hasNextPage` is false, so a list that grew since is still read to its end.
- **Shard chains** otherwise (opaque cursors): the resource is split by filters whose values partition
  it (every record has exactly one severity, one `isDeactivated`, one asset type), so the chains are
  disjoint and their union is the unfiltered list. Dimensions the request already filters on are kept
  as given (a targeted resync plans within its filter).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from vanta_vuln_sync.messages import PageRange, SyncRequest
from vanta_vuln_sync.vanta.cursors import cursor_before, decode_offset
from vanta_vuln_sync.vanta.resources import ASSET_TYPES, SEVERITIES

REMEDIATIONS = "vulnerability-remediations"
# Filters that partition each resource: every record has exactly one of these values (checked against
# the simulator's data in tests/test_planner.py). The vulnerabilities list passes
# includeVulnerabilitiesWithoutSlas=true (validate_filters adds it), so records without an SLA are in it.
SHARD_DIMENSIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "vulnerabilities": (("severity", SEVERITIES), ("isDeactivated", ("false", "true"))),
    REMEDIATIONS: (("severity", SEVERITIES),),
    "vulnerable-assets": (("assetType", ASSET_TYPES),),
}
# Incremental remediations re-read this much before the last success's start: records that Vanta
# dates slightly in the past (ingestion lag) are not missed. Re-read records are the same objects.
WATERMARK_OVERLAP = timedelta(days=1)
# Enough ranges that the fleet always has work queued for the rate budget, few enough to stay cheap.
TARGET_RANGES = 32


class PageSource(Protocol):
    """What planning needs from the Vanta client: one page (VantaClient satisfies it)."""

    async def fetch_page(
        self, resource: str, filters: Mapping[str, str], cursor: str | None = None, page_size: int = 100
    ) -> _Page: ...


class _Page(Protocol):
    @property
    def records(self) -> list[dict[str, object]]: ...
    @property
    def has_next_page(self) -> bool: ...
    @property
    def end_cursor(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ResourcePlan:
    """The ranges of one resource, and whether it is listed in full or only since a watermark."""

    resource: str
    mode: str
    ranges: list[PageRange]


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


def shard_ranges(run_id: str, resource: str, filters: Mapping[str, str], page_budget: int) -> list[PageRange]:
    """Disjoint filter shards of `resource` within `filters`, one cursor chain each.

    A dimension already fixed by `filters` is not split further, so the shards' union is exactly the
    list `filters` selects.
    """
    free = [(name, values) for name, values in SHARD_DIMENSIONS.get(resource, ()) if name not in filters]
    ranges: list[PageRange] = []
    for combo in itertools.product(*(values for _, values in free)):
        shard_filters = dict(filters)
        for (name, _), value in zip(free, combo, strict=True):
            shard_filters[name] = value
        ranges.append(
            PageRange(
                run_id=run_id,
                resource=resource,
                shard=_shard_name(combo),
                filters=shard_filters,
                seq=0,
                page_budget=page_budget,
            )
        )
    return ranges


def offset_ranges(
    run_id: str,
    resource: str,
    filters: Mapping[str, str],
    *,
    expected_records: int,
    page_budget: int,
    page_size: int,
) -> list[PageRange]:
    """Ranges of whole pages covering `[0, expected_records)`; the last one is open-ended, so the union
    is the whole list whatever its size now."""
    pages = max(1, math.ceil(expected_records / page_size))
    pages_per_range = max(1, min(page_budget, math.ceil(pages / TARGET_RANGES)))
    span = pages_per_range * page_size
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
        )
        for index in range(count)
    ]


async def plan_resource(
    client: PageSource,
    run_id: str,
    resource: str,
    filters: Mapping[str, str],
    *,
    previous_count: int | None,
    page_budget: int,
    page_size: int,
) -> list[PageRange]:
    """The ranges for one resource: offset ranges if its cursors are arrayconnection cursors, else
    shard chains. Costs one request, plus a few one-record probes when `previous_count` is unknown.

    Raises the client's VantaError when Vanta refuses (for example a 400 on a filter value).
    """
    first = await client.fetch_page(resource, filters, page_size=1)
    if not first.records or not first.has_next_page:
        # Empty or a single record: one chain from the start reads it whatever the cursor style.
        return [
            PageRange(
                run_id=run_id,
                resource=resource,
                shard="all",
                filters=dict(filters),
                seq=0,
                page_budget=page_budget,
            )
        ]
    if first.end_cursor is None or decode_offset(first.end_cursor) is None:
        return shard_ranges(run_id, resource, filters, page_budget)
    expected = previous_count
    if expected is None:
        expected = await _probe_length(client, resource, filters, granularity=page_budget * page_size)
    return offset_ranges(
        run_id, resource, filters, expected_records=expected, page_budget=page_budget, page_size=page_size
    )


async def _probe_length(
    client: PageSource, resource: str, filters: Mapping[str, str], *, granularity: int
) -> int:
    """A length within `granularity` above the list's true length, found by one-record probes at
    doubling offsets and then by bisection (about 2 * log2(length / granularity) requests)."""

    async def present(offset: int) -> bool:
        page = await client.fetch_page(resource, filters, cursor=cursor_before(offset), page_size=1)
        return bool(page.records)

    low, high = 1, granularity  # an item exists at offset 1 (has_next_page after the first)
    while await present(high):
        low, high = high, high * 2
    while high - low > granularity:
        middle = (low + high) // 2
        if await present(middle):
            low = middle
        else:
            high = middle
    return high


def _shard_name(values: tuple[str, ...]) -> str:
    if not values:
        return "all"
    names = {"true": "deactivated", "false": "active"}
    return "-".join(names.get(v, v.lower().replace("_", "")) for v in values)
