"""Walking one step of a range while Vanta's list changes underneath: every page is joined to the one
before it by record id, never by position alone.

Vanta's cursors name positions in the list as it is when a request arrives, so a record removed before
a range's position makes its next page skip one record, and one inserted makes it repeat one. Nothing
in a reply says so; only ids can. The rules, per cursor style:

- **Offset ranges** (`arrayconnection` cursors, which can be written for any position): each page is
  requested from the last record already read (an overlap of one), and is accepted only if it holds one
  of the range's `anchors` (the ids read last). A page without any anchor means records were removed
  before it: the step steps back a page at a time (pages overlapping, up to ten pages) until a page
  holds an anchor again. Records after the first anchor that were not read before are the new ones.
  On a static list this costs one record a page (about 1 % more requests).
- **The join between ranges**: a range does not stop at its planned end offset, which means nothing once
  records move. It stops where the range after it began: at the first id of that range's first page
  (its `head`, committed together with that page, so a redelivered first step can never begin past
  a head the range before has already stopped at), and writes only the records before
  it. Everything from the head on is the next range's, which is stitched the same way. A range whose
  successor has not committed its first page when it gets there claims it instead (a conditional write
  on the successor's item that excludes its head) and ends: the successor then starts where this
  range's committed progress ends (offset and anchors), stitched, so no slot waits for a range still
  queued and no range grows serial. The place is read from the commit, never from the delivery that
  claimed: a delivery that dies after claiming leaves the place to whichever delivery commits.
- **Shard chains** (opaque cursors, which can only be followed): a page that holds none of the records
  read last (no insertion pushed them into it) is checked through a window: the page after the start
  cursor of the page before, which shows the last record read next to whatever follows it now, so a
  record that slipped between two pages is seen and written (windows are as long as Vanta allows, 100
  records, and later tries start a page further back each, so records that slipped back by more than a
  small page between two requests are still seen). With only start and end cursors there is no cheaper
  way to see across a page boundary: on a static list this doubles an opaque chain's requests.
- **Pieces of a chain** (a later run starting a chain at the last run's cursor checkpoints, see
  store/checkpoints.py) join as offset ranges do, by id: a piece publishes its head as soon as its first page
  is read, committed with that page; the piece before it asks for that head once a page holds one of
  the ids the checkpoint began with last run (`stop_ids`) or it has read the pages planned
  (`end_page`), and stops at the head, or
  claims a piece not begun yet, which then starts where this piece's committed progress ends (the next
  data page's cursor, the ids read last and the last page's start cursor: it goes on exactly as this
  one would have). An old cursor is never
  trusted: a piece whose cursor Vanta refuses, or whose first page holds none of the ids it began with
  last run, steps aside (a conditional write that also bars a hand-over), and the piece before walks on
  through its part to the piece after it.

Where a join cannot be made (a burst removed more records than the step-back reaches, every anchor was
removed, or a window cannot reach the next page), the walk goes on as best it can and returns a
warning: the run is then flagged inexact, never published as exact. Duplicates that a join could not
avoid are removed by id when the run is finalized (see run/dedupe.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vanta_vuln_sync.store.checkpoints import IDS_KEPT, Checkpoint
from vanta_vuln_sync.vanta.client import MAX_PAGE_SIZE
from vanta_vuln_sync.vanta.cursors import cursor_before, decode_offset
from vanta_vuln_sync.vanta.errors import RequestRejectedError

# Ids kept from the end of the last page read (anchors) and from the start of a range (its head).
ANCHORS = 20
# How far an offset range steps back to find its anchors again: ten pages, at most 1,000 records.
MAX_STEP_BACK = 1_000
# A range that has read this many records past its planned end without meeting the next range's head
# (every head record removed) stops and flags the run.
MAX_OVERRUN_PAGES = 5
# Pairs of windows an opaque chain reads to see across one page boundary while the list keeps moving.
WINDOW_TRIES = 3
# A window is as long as Vanta allows (whatever the data pages' size): the further it reaches, the
# further records may slip back between two requests and still be seen; it costs one request either way.
WINDOW_SIZE = MAX_PAGE_SIZE

Record = dict[str, Any]


class PageSource(Protocol):
    """What a walk or a plan needs from the Vanta client: one page (VantaClient and DeadlineSource
    satisfy it)."""

    async def fetch_page(
        self, resource: str, filters: Mapping[str, str], cursor: str | None = None, page_size: int = 100
    ) -> _Page: ...


class _Page(Protocol):
    @property
    def records(self) -> list[Record]: ...
    @property
    def has_next_page(self) -> bool: ...
    @property
    def end_cursor(self) -> str | None: ...
    @property
    def start_cursor(self) -> str | None: ...


@dataclass(slots=True)
class Walk:
    """Where a range stands: what the step read so far and where the next page starts.

    `offset` is the position after the last record read (offset ranges; None for shard chains),
    `end_offset` and `next_shard` where the range is planned to end and the range that follows it,
    `cursor` the next data page's cursor (shard chains), `anchors` the ids read last, `verify_cursor`
    the start cursor of the last page (shard chains), `head` the first ids of the range (set by its first
    step), `done` whether the range has ended, `warnings` the joins it could not make.
    """

    offset: int | None
    cursor: str | None
    anchors: tuple[str, ...]
    verify_cursor: str | None = None
    end_offset: int | None = None
    next_shard: str | None = None
    records: list[Record] = field(default_factory=list)
    requests: int = 0
    done: bool = False
    head: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    # Chain pieces (store/checkpoints.py): the next data page's number in the chain, the piece's planned end
    # and the ids its successor began with last run, the checkpoints read, and whether it stepped aside.
    page_index: int = 0
    end_page: int | None = None
    stop_ids: tuple[str, ...] = ()
    checkpoints: list[Checkpoint] = field(default_factory=list)
    void: bool = False
    began: bool = False  # a piece's first page was read in this step (its head is to be committed)


class HandedOver(Exception):
    """The range before this one handed its end over before this one read its first page: the step
    must start again from where that range stopped (its progress says where)."""


def next_page_start(walk: Walk) -> int:
    """Where an offset range's next page starts: at the last record read, which it overlaps to find its
    place by id (`walk.anchors`), or at `walk.offset` before anything was read."""
    assert walk.offset is not None
    return walk.offset - 1 if walk.anchors and walk.offset > 0 else walk.offset


def step_back_limit(page_size: int) -> int:
    """Records an offset range may step back to find its place again (ten pages, at most 1,000)."""
    return min(MAX_STEP_BACK, 10 * page_size)


def ids_of(records: Sequence[Record]) -> list[str]:
    """The records' ids, in order (a record without a string id is kept, but cannot anchor)."""
    return [r["id"] for r in records if isinstance(r.get("id"), str)]


def after_anchor(records: Sequence[Record], anchors: Sequence[str]) -> list[Record] | None:
    """The records of a page that follow its first anchor and are not anchors themselves; None when
    the page holds no anchor. With no anchors (a range's first page) every record is new."""
    if not anchors:
        return list(records)
    known = set(anchors)
    first = next((i for i, r in enumerate(records) if r.get("id") in known), None)
    if first is None:
        return None
    return [r for r in records[first + 1 :] if r.get("id") not in known]


def cut_at_head(records: Sequence[Record], head: set[str]) -> tuple[list[Record], bool]:
    """The records before the first one in `head`, and whether a head record was met."""
    for index, record in enumerate(records):
        if record.get("id") in head:
            return list(records[:index]), True
    return list(records), False


def across_boundary(
    window: Sequence[Record], anchors: Sequence[str], following: set[str], *, list_ends: bool
) -> tuple[list[Record], bool]:
    """Check the boundary between the last page (whose last ids are `anchors`) and the page read after
    it (ids `following`) in a `window` read across both. Returns the records that slipped between them
    (in the window after the last anchor, before any record of the following page, and not anchors),
    and whether the boundary was seen whole: the window reached a following record, or the list's end.
    """
    known = set(anchors)
    last = max((i for i, r in enumerate(window) if r.get("id") in known), default=None)
    if last is None:
        return [], False
    slipped: list[Record] = []
    for record in window[last + 1 :]:
        if record.get("id") in following:
            return slipped, True
        if record.get("id") not in known:
            slipped.append(record)
    return slipped, list_ends


async def walk_offsets(
    client: PageSource,
    resource: str,
    filters: Mapping[str, str],
    walk: Walk,
    *,
    first_step: bool,
    page_budget: int,
    page_size: int,
    keep_going: Callable[[], bool],
    join: Callable[[str], Awaitable[list[str] | None]],
    publish_head: Callable[[list[str]], Awaitable[bool]],
    split: Callable[[], Awaitable[bool]] | None = None,
) -> Walk:
    """Read up to `page_budget` pages of an offset range from `walk`, joined by id (module doc).

    `publish_head(ids)` is called once the range's first page is in `walk` (its records, offset and
    anchors): it makes that page and the head (its first ids) durable together, so the range before
    never joins a head whose records are not committed (False: the range before handed its end over
    first; HandedOver is raised). `join(shard)` is called when the walk nears `walk.end_offset`: it
    returns the head of the next range `shard`, or, when that range has not committed its first page,
    claims it (None: the walk ends here, and the next range begins where this one's committed progress
    ends: this offset and these anchors). Raises what the client raises.
    """
    assert walk.offset is not None
    head: set[str] | None = None if walk.next_shard is not None else set()
    pages = 0
    while pages < page_budget and keep_going():
        # A range's first page is always read (it is the range's head, which the range before it
        # looks for); after that the next range's head must be known before reading into it.
        near_end = walk.end_offset is not None and walk.offset + page_size > walk.end_offset
        if head is None and near_end and walk.next_shard and not (first_step and walk.requests == 0):
            found = await join(walk.next_shard)
            if found is None:
                walk.done = True  # handed over: the next range goes on from where this one ends
                return walk
            head = set(found)
        start = next_page_start(walk)
        page = await client.fetch_page(resource, filters, cursor=cursor_before(start), page_size=page_size)
        walk.requests += 1
        pages += 1
        fresh = after_anchor(page.records, walk.anchors)
        if fresh is None and start > 0:
            # Records were removed before this point: step back, a page less two records at a time
            # (consecutive pages overlap), until a page holds one of the records read last.
            first_page, first_start, back = page, start, max(1, page_size - 2)
            while fresh is None and start > 0 and first_start - start < step_back_limit(page_size):
                start = max(0, start - back)
                page = await client.fetch_page(
                    resource, filters, cursor=cursor_before(start), page_size=page_size
                )
                walk.requests += 1
                fresh = after_anchor(page.records, walk.anchors)
            if fresh is None:
                page, start = first_page, first_start
        if fresh is None:
            walk.warnings.append(
                f"{resource}: lost its place near offset {walk.offset} (every record it had read last "
                "was removed or moved too far); records there may be missing"
            )
            fresh = [r for r in page.records if r.get("id") not in set(walk.anchors)]
        publishing = first_step and walk.head is None
        if publishing:
            walk.head = ids_of(page.records)[:ANCHORS]
        reached = False
        if head:
            fresh, reached = cut_at_head(fresh, head)
            if not reached and any(r.get("id") in head for r in page.records):
                fresh, reached = [], True  # the next range began before the records this page adds
        walk.records += fresh
        decoded = decode_offset(page.end_cursor) if page.end_cursor else None
        walk.offset = decoded + 1 if decoded is not None else start + len(page.records)
        if page.records:
            walk.anchors = tuple(ids_of(page.records)[-ANCHORS:])
        if publishing and not await publish_head(walk.head or []):
            raise HandedOver("the range before this one stopped short and handed its end over")
        if reached or not page.has_next_page or page.end_cursor is None:
            walk.done = True
            return walk
        end_offset = walk.end_offset
        if head and end_offset is not None and walk.offset > end_offset + MAX_OVERRUN_PAGES * page_size:
            walk.warnings.append(
                f"{resource}: read {MAX_OVERRUN_PAGES} pages past its end without meeting the next "
                f"range's first records (all removed?); records near offset {end_offset} may be missing"
            )
            walk.done = True
            return walk
        if split is not None and (head is None or walk.next_shard is None) and await split():
            head = None  # a new successor: its head is asked for near the new end
    return walk


@dataclass(frozen=True, slots=True)
class Successor:
    """The piece after a chain piece, as its progress shows it: `head` (the ids its first page began
    with; None before it read one), or `void` (it stepped aside; `next_shard`, `stop_ids` and
    `end_page` say where it would have walked to)."""

    head: list[str] | None = None
    void: bool = False
    next_shard: str | None = None
    stop_ids: tuple[str, ...] = ()
    end_page: int | None = None


# join(shard, claim): the successor `shard` as it stands; with `claim`, a successor that has not begun is
# claimed instead (None: handed over, the walk ends here and the successor starts where its committed
# progress ends). A successor claimed already (by an earlier delivery of this range) is None too.
ChainJoin = Callable[[str, bool], Awaitable[Successor | None]]


@dataclass(frozen=True, slots=True)
class PieceStart:
    """What a chain piece that starts at a checkpoint needs: the ids its page began with last run,
    `publish_head(ids)` (called once the first page is in the walk: commits it with the head; False:
    the piece before handed over first) and `step_aside()` (mark the piece void; False: the piece
    before handed over first)."""

    start_ids: tuple[str, ...]
    publish_head: Callable[[list[str]], Awaitable[bool]]
    step_aside: Callable[[], Awaitable[bool]]


async def walk_chain(
    client: PageSource,
    resource: str,
    filters: Mapping[str, str],
    walk: Walk,
    *,
    first_step: bool,
    page_budget: int,
    page_size: int,
    keep_going: Callable[[], bool],
    join: ChainJoin | None = None,
    piece_start: PieceStart | None = None,
) -> Walk:
    """Read up to `page_budget` data pages of a shard chain from `walk.cursor`, checking each page
    boundary through a window (module doc), and keeping every data page's cursor and first ids in
    `walk.checkpoints`. Raises what the client raises.

    A piece of a chain (store/checkpoints.py) with a successor (`walk.next_shard`, `join`) ends where that
    one began, by id: once a page holds one of `walk.stop_ids` or reaches `walk.end_page`, it asks for
    the successor's head and stops at it, or claims the successor if it has not begun (it starts where
    this piece's committed progress ends), or, if it stepped aside, walks on to the piece after it. A
    piece starting at a checkpoint (`piece_start`) whose cursor Vanta refuses (400) or whose first page
    holds none of its `start_ids` steps aside (`walk.void`): the piece before walks through its part.
    Raises HandedOver when the piece before handed over first.
    """
    head: set[str] | None = None
    if walk.next_shard is not None and join is not None:
        handed, head = await _meet(join, walk, (), handing=False)
        if handed:
            # An earlier delivery of this range claimed the successor and was not committed: end here;
            # the successor starts where this range's committed progress ends.
            walk.done = True
            return walk
    pages = 0
    while pages < page_budget and keep_going():
        data_cursor = walk.cursor
        starting = piece_start is not None and first_step and walk.head is None
        try:
            page = await client.fetch_page(resource, filters, cursor=data_cursor, page_size=page_size)
        except RequestRejectedError:
            if not starting or walk.requests > 0:
                raise
            return await _step_aside(walk, piece_start)
        walk.requests += 1
        pages += 1
        ids = ids_of(page.records)
        publishing = False
        if starting and piece_start is not None:
            if not set(piece_start.start_ids) & set(ids):
                return await _step_aside(walk, piece_start)
            walk.head, walk.began, publishing = ids[:ANCHORS], True, True
        elif first_step and walk.head is None:
            walk.head = ids[:ANCHORS]
        if data_cursor is not None and ids:
            walk.checkpoints.append(Checkpoint(walk.page_index, data_cursor, tuple(ids[:IDS_KEPT])))
        walk.page_index += 1
        fresh = after_anchor(page.records, walk.anchors)
        new: list[Record] = []
        if fresh is None:
            # The page holds none of the records read last: check the boundary through windows.
            if walk.anchors and walk.verify_cursor is not None and data_cursor is not None:
                new += await _verify_boundary(client, resource, filters, walk, page, data_cursor)
            known = set(walk.anchors)
            fresh = [r for r in page.records if r.get("id") not in known]
        new += fresh
        ends = not page.has_next_page or page.end_cursor is None
        if page.records:
            walk.anchors = tuple(ids[-ANCHORS:])
            walk.verify_cursor = page.start_cursor
        if not ends:
            walk.cursor = page.end_cursor
        if publishing and piece_start is not None:
            # The head is published with the page it heads, committed (a piece before this one may
            # stop at it at once): a redelivery can never begin past a head the piece before has used.
            walk.records += new
            new = []
            if not await piece_start.publish_head(walk.head or []):
                raise HandedOver("the piece before this one handed its end over first")
        if head is None and walk.next_shard is not None and join is not None and _near_next(walk, ids):
            handed, head = await _meet(join, walk, ids, handing=not ends)
            if handed:
                walk.records += new
                walk.done = True  # handed over: the next piece goes on from here
                return walk
        if head:
            # The successor began at one of these ids: keep only the records before it (it may have
            # begun in a page this step read already, when its checkpoint moved back).
            walk.records, met = cut_at_head(walk.records, head)
            if met:
                walk.done = True
                return walk
            new, met = cut_at_head(new, head)
            if met or any(i in head for i in ids):
                walk.records += new
                walk.done = True
                return walk
        walk.records += new
        if ends:
            walk.done = True
            return walk
    return walk


def _near_next(walk: Walk, ids: Sequence[str]) -> bool:
    """Whether the walk is where its successor was planned to begin: a page held one of the ids that
    piece began with last run, or the walk read as many pages as the plan gave it."""
    return bool(set(walk.stop_ids) & set(ids)) or (
        walk.end_page is not None and walk.page_index >= walk.end_page
    )


async def _meet(
    join: ChainJoin, walk: Walk, ids: Sequence[str], *, handing: bool
) -> tuple[bool, set[str] | None]:
    """Learn the successor's head (None: it has not begun), claiming it when `handing` and it has not
    begun, or finding it claimed already (then (True, None)). A successor that stepped aside is walked
    through: the walk takes over its successor, stop ids and planned end, and asks again if it is near
    that one."""
    while walk.next_shard is not None:
        found = await join(walk.next_shard, handing)
        if found is None:
            return True, None
        if not found.void:
            return False, None if found.head is None else set(found.head)
        walk.next_shard, walk.stop_ids, walk.end_page = found.next_shard, found.stop_ids, found.end_page
        if not _near_next(walk, ids):
            handing = False
    return False, set()


async def _step_aside(walk: Walk, piece_start: PieceStart | None) -> Walk:
    """Mark the piece void (its checkpoint did not hold): it ends with nothing read. Raises HandedOver
    when the piece before handed over to it first."""
    assert piece_start is not None
    if not await piece_start.step_aside():
        raise HandedOver("the piece before this one handed its end over first")
    walk.records.clear()
    walk.checkpoints.clear()
    walk.void = True
    walk.done = True
    return walk


async def _verify_boundary(
    client: PageSource,
    resource: str,
    filters: Mapping[str, str],
    walk: Walk,
    page: _Page,
    data_cursor: str,
) -> list[Record]:
    """The records that slipped between the last page and `page`, seen through windows read across the
    boundary: after the last page's start cursor (which shows the boundary unless records were added
    before it since), else after its end cursor (which then starts at or before its last record). The
    list may move again between two windows, so the pair is tried up to WINDOW_TRIES times, each try
    first reading from one more page back (the cursors of the pages this step read before): records
    removed before the boundary move the last records read back past the first window's start. Windows
    are as long as Vanta allows (WINDOW_SIZE) whatever the pages' size, so one that starts a page or two
    back still reaches across the boundary."""
    following = set(ids_of(page.records))
    slipped: list[Record] = []
    # The records seen so far after the last page, in order: a later window may start among them (one
    # window shows the last record read and a slipped one, the next that one and the following page).
    known = list(walk.anchors)
    # The cursors the step's earlier pages were requested with, nearest first: the last page's, then
    # the one before it (the newest checkpoint is `page`'s own).
    earlier = [c.cursor for c in reversed(walk.checkpoints) if c.page < walk.page_index - 1]
    for attempt in range(WINDOW_TRIES):
        for cursor in (*reversed(earlier[:attempt]), walk.verify_cursor, data_cursor):
            window = await client.fetch_page(resource, filters, cursor=cursor, page_size=WINDOW_SIZE)
            walk.requests += 1
            found, whole = across_boundary(
                window.records, known, following, list_ends=not window.has_next_page
            )
            new = [r for r in found if r.get("id") not in set(ids_of(slipped))]
            slipped += new
            known += ids_of(new)
            if whole:
                return slipped
    walk.warnings.append(
        f"{resource}: could not check a page boundary of a cursor chain (the list kept moving there); "
        "records near it may be missing"
    )
    return slipped
