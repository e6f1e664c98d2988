"""The state table's records as typed values: runs, ranges, scopes, and what a range step commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from vanta_vuln_sync.messages import PageRange, parse_message
from vanta_vuln_sync.store.checkpoints import Checkpoint, from_text

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
OPEN, DONE = "open", "done"


@dataclass(frozen=True, slots=True)
class RunState:
    """A run as the state table holds it. `plan` is filled only where the scheduler needs it (it is kept
    in its own item, so the run item that every step reads and counts into stays small)."""

    run_id: str
    scope: str
    status: str
    started_at: datetime
    plan: list[PageRange]
    modes: dict[str, str]
    reason: str = ""
    ranges_done: int = 0
    # Requests made while planning; the ranges' own counts live on their items (see RangeState).
    requests: int = 0
    finalize_sent: bool = False
    finished_at: datetime | None = None
    failure: str | None = None
    planned_ranges: int | None = None  # as stored; None: count `plan`
    # Joins the run could not make while the list changed (run/walk.py): the run is not exact.
    warnings: tuple[str, ...] = ()
    # What planning changed and why (a shard filter that did not split its list, so it was not used).
    notices: tuple[str, ...] = ()
    # The ranges the run keeps in flight (run/sizing.py): a range splits itself while fewer are open
    # (run/split.py); 0 for a run planned before ranges split. `added_ranges`: the ranges split off.
    range_slots: int = 0
    added_ranges: frozenset[str] = frozenset()

    @property
    def ranges_total(self) -> int:
        return len(self.plan) if self.planned_ranges is None else self.planned_ranges

    @property
    def all_ranges_done(self) -> bool:
        return self.ranges_done >= self.ranges_total


@dataclass(frozen=True, slots=True)
class RangeState:
    """One range's committed progress: the next step to run and where it starts."""

    resource: str
    shard: str
    next_seq: int
    status: str
    next_cursor: str | None
    next_offset: int | None
    handed_on: int
    records: int
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    objects: list[dict[str, Any]] = field(default_factory=list)
    next_anchors: tuple[str, ...] = ()
    next_verify: str | None = None
    head: list[str] | None = None  # the ids its first page began with; None before that step commits
    end_offset: int | None = None
    next_shard: str | None = None
    # The range before this one, when it stopped where this one was to begin and claimed it: this one
    # starts where that range's committed progress ends (run/walk.py).
    handed_by: str | None = None
    # Chain pieces (store/checkpoints.py): the next step's page number, stop ids and planned end, and the
    # checkpoints recorded so far.
    next_page_index: int = 0
    next_stop_ids: tuple[str, ...] = ()
    next_end_page: int | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    # A piece whose checkpoint did not hold stepped aside: the piece before it walks on to `void_next`.
    void: bool = False
    void_next: str | None = None
    void_stop_ids: tuple[str, ...] = ()
    void_end_page: int | None = None
    # The last range this one split off (run/split.py), and whether its message was sent.
    spawn: PageRange | None = None
    spawn_sent: bool = True

    @property
    def handed_over(self) -> bool:
        """The range before this one handed its end over (this one starts from there)."""
        return self.handed_by is not None


@dataclass(frozen=True, slots=True)
class ScopeState:
    """Who runs a scope now, and what its last successful run left behind."""

    scope: str
    running_run_id: str | None = None
    running_since: int = 0
    last_success_run_id: str | None = None
    last_success_started_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepCommit:
    """What one range step did, to be committed at once with the run's counters."""

    seq: int
    records: int
    pages: int
    object_key: str | None
    done: bool
    next_cursor: str | None
    next_offset: int | None
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    next_anchors: tuple[str, ...] = ()
    next_verify: str | None = None
    head: list[str] | None = None  # set by a range's first step only
    # The first page of a range that was not handed over, committing its head: only if the range
    # before has not handed over to it meanwhile.
    publishes_head: bool = False
    # The range's planned end and successor as the step left them.
    end_offset: int | None = None
    next_shard: str | None = None
    wait_seconds: int = 0  # how long the continuation waits on the queue (a step that read nothing)
    # Chains: the next step's first data page number, the stop ids and planned end the range goes on
    # to (a piece that took over a void successor ends where that one would have), and the range's
    # checkpoints so far (this step's merged into the committed ones, thinned).
    next_page_index: int = 0
    next_stop_ids: tuple[str, ...] = ()
    next_end_page: int | None = None
    checkpoints: list[Checkpoint] | None = None


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the state table and the manifest store times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The datetime `iso` wrote."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def plan_from_text(text: str) -> list[PageRange]:
    """The page ranges of a stored plan (a JSON list of PageRange messages)."""
    messages = [parse_message(orjson.dumps(raw)) for raw in orjson.loads(text)]
    return [p for p in messages if isinstance(p, PageRange)]


def plan_to_text(plan: list[PageRange]) -> str:
    """A plan as stored: the inverse of `plan_from_text`."""
    return orjson.dumps([orjson.loads(p.to_json()) for p in plan]).decode()


def run_from_item(run_id: str, item: dict[str, Any]) -> RunState:
    """A run from its item's plain values (see `dynamo.from_item`); its plan is a separate item."""
    finished = item.get("finished_at")
    return RunState(
        run_id=run_id,
        scope=item["scope"],
        status=item["status"],
        started_at=parse_iso(item["started_at"]),
        plan=[],
        modes=dict(item.get("modes") or {}),
        reason=item.get("reason", ""),
        ranges_done=int(item.get("ranges_done", 0)),
        requests=int(item.get("requests", 0)),
        finalize_sent=bool(item.get("finalize_sent", False)),
        finished_at=parse_iso(finished) if finished else None,
        failure=item.get("failure"),
        planned_ranges=int(item.get("ranges_total", 0)),
        warnings=tuple(sorted(item.get("warnings") or ())),
        notices=tuple(item.get("notices") or ()),
        range_slots=int(item.get("range_slots", 0)),
        added_ranges=frozenset(item.get("added_ranges") or ()),
    )


def range_from_item(item: dict[str, Any]) -> RangeState:
    """A range from its item's plain values."""
    return RangeState(
        resource=item["resource"],
        shard=item["shard"],
        next_seq=int(item.get("next_seq", 0)),
        status=item.get("status", OPEN),
        next_cursor=item.get("next_cursor"),
        next_offset=item.get("next_offset"),
        handed_on=int(item.get("handed_on", -1)),
        records=int(item.get("records", 0)),
        pages=int(item.get("pages", 0)),
        requests=int(item.get("requests", 0)),
        retries=int(item.get("retries", 0)),
        throttled=int(item.get("throttled", 0)),
        objects=list(item.get("objects") or []),
        next_anchors=tuple(item.get("next_anchors") or ()),
        next_verify=item.get("next_verify"),
        head=list(item["head"]) if item.get("head") is not None else None,
        end_offset=item.get("end_offset"),
        next_shard=item.get("next_shard"),
        handed_by=item.get("handed_by"),
        next_page_index=int(item.get("next_page_index", 0)),
        next_stop_ids=tuple(item.get("next_stop_ids") or ()),
        next_end_page=item.get("next_end_page"),
        checkpoints=from_text(item.get("checkpoints")),
        void=bool(item.get("void", False)),
        void_next=item.get("void_next"),
        void_stop_ids=tuple(item.get("void_stop_ids") or ()),
        void_end_page=item.get("void_end_page"),
        spawn=_page_range(item["spawn"]) if item.get("spawn") else None,
        spawn_sent=bool(item.get("spawn_sent", True)),
    )


def _page_range(text: str) -> PageRange:
    message = parse_message(text)
    assert isinstance(message, PageRange)
    return message
