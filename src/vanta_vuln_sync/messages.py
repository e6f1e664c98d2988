"""The three queue messages (versioned JSON, orjson) and their validation at the edge.

RequestQueue carries `SyncRequest`; PageQueue carries `PageRange`, `PageRanges` (steps handed on
together, for one invocation) and `Finalize`. Every message is a JSON
object with `"v": 1` and a `"type"`. Anything that does not validate raises `MessageError` with a reason a
person can act on: the handlers park such a message in the queue's DLQ on its first receive (poison).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from vanta_vuln_sync.vanta.errors import InvalidFilterError
from vanta_vuln_sync.vanta.resources import validate_filters

VERSION = 1
# The resources a sync can cover (`integrations` is reference data, not synced).
SYNC_RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
# Scope key of the full scheduled sync (every resource, no filters); only its runs update `latest/`.
FULL_SCOPE = "all"
SyncMode = Literal["full", "incremental"]
_MODES: tuple[SyncMode, ...] = ("full", "incremental")
# Run ids start with the run's UTC start time, so a worker can name the S3 `dt=` partition from the id
# alone (deterministic keys without a lookup).
_RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-z]{1,32}$")
_SHARD = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_MAX_PAGE_BUDGET = 10_000
_MAX_ANCHORS = 100


class MessageError(ValueError):
    """A message that cannot be processed as sent; `reason` says why (it becomes the DLQ attribute)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Sync `resources` (all with their own `filters`, rendered as Vanta wants them).

    `mode="incremental"` syncs remediations from the last successful run's watermark; every other
    resource is always listed in full.
    """

    resources: tuple[str, ...]
    filters: dict[str, dict[str, str]] = field(default_factory=dict)
    mode: SyncMode = "incremental"
    reason: str = "manual"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": VERSION,
                "type": "SyncRequest",
                "resources": list(self.resources),
                "filters": self.filters,
                "mode": self.mode,
                "reason": self.reason,
            }
        )


@dataclass(frozen=True, slots=True)
class PageRange:
    """One step of one range of a run: fetch up to `page_budget` pages, starting at `cursor`.

    Offset ranges (arrayconnection cursors) also carry `offset` (the first item of this step, as the
    list stood when the step before read it) and `end_offset` (the nominal end of the range; the range
    really ends where `next_shard`, the range after it, began: see run/walk.py). Shard chains carry
    only `cursor` (None = the first page). `seq` numbers the steps of a range: 0, 1, 2, ...

    `anchors` are the ids the range read last: the step re-reads from them and accepts only a page that
    still holds one of them, so a list that changed underneath cannot make it skip a record.
    `verify_cursor` (opaque chains) is the start cursor of the last page read: the window after it
    shows the last record read next to the one that follows it now.

    Pieces of a chain (a later run's chain split at the last run's cursor checkpoints, see
    store/checkpoints.py) carry `page_index` (the chain's data page this step begins at, as last counted),
    `end_page` (where the next piece was planned to begin), `stop_ids` (the ids the next piece's page
    began with in the last run: meeting one means the walk is near the next piece) and, for a piece
    starting at a checkpoint, `start_ids` (the ids its first page began with then: a first page
    holding none of them did not land where it did, and the piece steps aside).
    """

    run_id: str
    resource: str
    shard: str
    filters: dict[str, str]
    seq: int
    page_budget: int
    cursor: str | None = None
    offset: int | None = None
    end_offset: int | None = None
    next_shard: str | None = None
    anchors: tuple[str, ...] = ()
    verify_cursor: str | None = None
    page_index: int = 0
    end_page: int | None = None
    stop_ids: tuple[str, ...] = ()
    start_ids: tuple[str, ...] = ()

    @property
    def range_name(self) -> str:
        """`resource#shard`: the range's name within its run (its plan, the run's sets of ranges)."""
        return f"{self.resource}#{self.shard}"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": VERSION,
                "type": "PageRange",
                "run_id": self.run_id,
                "resource": self.resource,
                "shard": self.shard,
                "filters": self.filters,
                "seq": self.seq,
                "page_budget": self.page_budget,
                "cursor": self.cursor,
                "offset": self.offset,
                "end_offset": self.end_offset,
                "next_shard": self.next_shard,
                "anchors": list(self.anchors),
                "verify_cursor": self.verify_cursor,
                "page_index": self.page_index,
                "end_page": self.end_page,
                "stop_ids": list(self.stop_ids),
                "start_ids": list(self.start_ids),
            }
        )


@dataclass(frozen=True, slots=True)
class PageRanges:
    """Steps one invocation handed on together (run/follow_ups.py), for one invocation to run: as one
    message, no event source mapping can share them out among several containers."""

    ranges: tuple[PageRange, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"v": VERSION, "type": "PageRanges", "ranges": [orjson.loads(p.to_json()) for p in self.ranges]}
        )


@dataclass(frozen=True, slots=True)
class Finalize:
    """All ranges of `run_id` have committed: write its manifest and statistics, mark it succeeded."""

    run_id: str

    def to_json(self) -> bytes:
        return orjson.dumps({"v": VERSION, "type": "Finalize", "run_id": self.run_id})


PageMessage = PageRange | PageRanges | Finalize
Message = SyncRequest | PageRange | PageRanges | Finalize
# Steps in one PageRanges: one container's ranges (run/sizing.py, CONTAINER_RANGES), so a compact run
# hands on to one invocation. Fewer when they would not fit MAX_MESSAGE_BYTES (`bundled`, below): a step
# of the largest kind (100 anchors, stop and start ids) is about 12 KB, a usual one under 1 KB.
MAX_BUNDLED = 50
# SQS's limit on a message is 256 KiB; a bundle keeps 16 KiB of it spare (attributes, JSON escaping).
MAX_MESSAGE_BYTES = 240 * 1024


def bundled(steps: list[PageRange]) -> list[PageRange | PageRanges]:
    """The messages that carry `steps` to as few invocations as can be: a PageRange alone, else
    PageRanges of up to MAX_BUNDLED steps that fit MAX_MESSAGE_BYTES, filled in order."""
    if len(steps) == 1:
        return [steps[0]]
    bundles: list[list[PageRange]] = [[]]
    size = 0
    for step in steps:
        # A step's share of the bundle: its JSON and a comma (the bundle's own keys fit the spare).
        step_bytes = len(step.to_json()) + 1
        if bundles[-1] and (len(bundles[-1]) == MAX_BUNDLED or size + step_bytes > MAX_MESSAGE_BYTES):
            bundles.append([])
            size = 0
        bundles[-1].append(step)
        size += step_bytes
    return [PageRanges(tuple(bundle)) if len(bundle) > 1 else bundle[0] for bundle in bundles]


def parse_message(body: str | bytes) -> Message:
    """Any of the messages; raises MessageError (bad JSON, version, type, field or filter)."""
    payload = _load(body)
    kind = payload.get("type")
    if kind == "SyncRequest":
        return _sync_request(payload)
    if kind == "PageRange":
        return _page_range(payload)
    if kind == "PageRanges":
        return _page_ranges(payload)
    if kind == "Finalize":
        return Finalize(run_id=_run_id(payload))
    raise MessageError(
        f"unknown message type {kind!r}; expected SyncRequest, PageRange, PageRanges or Finalize"
    )


def parse_sync_request(body: str | bytes) -> SyncRequest:
    """A RequestQueue message; raises MessageError for anything else."""
    message = parse_message(body)
    if not isinstance(message, SyncRequest):
        raise MessageError(f"{type(message).__name__} does not belong on the request queue")
    return message


def parse_page_message(body: str | bytes) -> PageMessage:
    """A PageQueue message (PageRange or Finalize); raises MessageError for anything else."""
    message = parse_message(body)
    if isinstance(message, SyncRequest):
        raise MessageError("SyncRequest does not belong on the page queue; send it to the request queue")
    return message


def run_id_date(run_id: str) -> str:
    """The `YYYY-MM-DD` a run started on (UTC), from its id."""
    return f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]}"


def _load(body: str | bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MessageError(f"body must be a JSON object, got {type(payload).__name__}")
    version = payload.get("v")
    if version != VERSION or isinstance(version, bool):
        raise MessageError(f"unsupported message version {version!r}; this code reads v={VERSION}")
    return payload


def _sync_request(payload: dict[str, Any]) -> SyncRequest:
    resources = payload.get("resources")
    if not isinstance(resources, list) or not resources:
        raise MessageError("SyncRequest.resources must be a non-empty list of resource names")
    for name in resources:
        if name not in SYNC_RESOURCES:
            raise MessageError(f"unknown resource {name!r}; expected one of {', '.join(SYNC_RESOURCES)}")
    if len(set(resources)) != len(resources):
        raise MessageError("SyncRequest.resources lists a resource twice")
    raw_filters = payload.get("filters") or {}
    if not isinstance(raw_filters, dict):
        raise MessageError("SyncRequest.filters must be an object {resource: {filter: value}}")
    filters: dict[str, dict[str, str]] = {}
    for name, given in raw_filters.items():
        if name not in resources:
            raise MessageError(f"filters given for {name!r}, which is not in resources")
        filters[name] = _filters(name, given)
    mode = payload.get("mode", "incremental")
    if mode not in _MODES:
        raise MessageError(f"SyncRequest.mode must be 'full' or 'incremental', got {mode!r}")
    reason = payload.get("reason", "manual")
    if not isinstance(reason, str) or not reason:
        raise MessageError("SyncRequest.reason must be a non-empty string")
    return SyncRequest(resources=tuple(resources), filters=filters, mode=mode, reason=reason[:200])


def _page_range(payload: dict[str, Any]) -> PageRange:
    resource = payload.get("resource")
    if resource not in SYNC_RESOURCES:
        raise MessageError(f"PageRange.resource must be one of {', '.join(SYNC_RESOURCES)}, got {resource!r}")
    shard = payload.get("shard")
    if not isinstance(shard, str) or not _SHARD.fullmatch(shard):
        raise MessageError(f"PageRange.shard must be a short lower-case name, got {shard!r}")
    cursor = payload.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise MessageError("PageRange.cursor must be a non-empty string or null")
    offset = _optional_int(payload, "offset", minimum=0)
    end_offset = _optional_int(payload, "end_offset", minimum=1)
    if end_offset is not None and offset is None:
        raise MessageError("PageRange.end_offset needs an offset")
    next_shard = payload.get("next_shard")
    if next_shard is not None and (not isinstance(next_shard, str) or not _SHARD.fullmatch(next_shard)):
        raise MessageError(f"PageRange.next_shard must be a short name or null, got {next_shard!r}")
    anchors, stop_ids, start_ids = (_ids(payload, name) for name in ("anchors", "stop_ids", "start_ids"))
    verify_cursor = payload.get("verify_cursor")
    if verify_cursor is not None and (not isinstance(verify_cursor, str) or not verify_cursor):
        raise MessageError("PageRange.verify_cursor must be a non-empty string or null")
    return PageRange(
        run_id=_run_id(payload),
        resource=resource,
        shard=shard,
        filters=_filters(resource, payload.get("filters") or {}),
        seq=_int(payload, "seq", minimum=0),
        page_budget=_int(payload, "page_budget", minimum=1, maximum=_MAX_PAGE_BUDGET),
        cursor=cursor,
        offset=offset,
        end_offset=end_offset,
        next_shard=next_shard,
        anchors=anchors,
        verify_cursor=verify_cursor,
        page_index=_optional_int(payload, "page_index", minimum=0) or 0,
        end_page=_optional_int(payload, "end_page", minimum=1),
        stop_ids=stop_ids,
        start_ids=start_ids,
    )


def _page_ranges(payload: dict[str, Any]) -> PageRanges:
    ranges = payload.get("ranges")
    if not isinstance(ranges, list) or not 0 < len(ranges) <= MAX_BUNDLED:
        raise MessageError(f"PageRanges.ranges must be a list of 1 to {MAX_BUNDLED} PageRange objects")
    for entry in ranges:
        if not isinstance(entry, dict) or entry.get("type") != "PageRange":
            raise MessageError("every entry of PageRanges.ranges must be a PageRange object")
    return PageRanges(tuple(_page_range(entry) for entry in ranges))


def _ids(payload: dict[str, Any], name: str) -> tuple[str, ...]:
    ids = payload.get(name) or []
    if (
        not isinstance(ids, list)
        or len(ids) > _MAX_ANCHORS
        or not all(isinstance(a, str) and 0 < len(a) <= 128 for a in ids)
    ):
        raise MessageError(f"PageRange.{name} must be a list of at most {_MAX_ANCHORS} record ids")
    return tuple(ids)


def _filters(resource: str, given: Any) -> dict[str, str]:
    if not isinstance(given, dict):
        raise MessageError(f"filters for {resource} must be an object {{filter: value}}")
    try:
        return validate_filters(resource, given)
    except InvalidFilterError as exc:
        raise MessageError(f"invalid filter for {resource}: {exc}") from exc


def _run_id(payload: dict[str, Any]) -> str:
    run_id = payload.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise MessageError(f"run_id must look like 20260101T000000Z-abc123, got {run_id!r}")
    return run_id


def _int(payload: dict[str, Any], name: str, *, minimum: int, maximum: int | None = None) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MessageError(f"{name} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise MessageError(f"{name} must be in [{minimum}, {maximum or 'inf'}], got {value}")
    return value


def _optional_int(payload: dict[str, Any], name: str, *, minimum: int) -> int | None:
    return None if payload.get(name) is None else _int(payload, name, minimum=minimum)
