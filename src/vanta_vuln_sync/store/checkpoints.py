"""Cursor checkpoints: places in an opaque-cursor chain that a later run may start a piece of it from.

A shard chain (opaque cursors, which can only be followed) is walked page after page, so a run is as
long as its longest chain. While a chain is walked, every few data pages the cursor the page was
requested with is kept with the first ids the page returned (a `Checkpoint`). When the run succeeds,
Finalize stores at most MAX_KEPT of them per chain, evenly spaced (`ChainCheckpoints`). The next run
of the scope plans each chain as pieces that start at checkpoints and join by id (run/walk.py):
nothing assumes an old cursor still lands where it did; a piece whose cursor is refused, or lands where
its recorded ids are not, steps aside and the piece before it walks on through its part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# Checkpoints kept per chain (in a range's progress and in the stored item): about 150 bytes each.
MAX_KEPT = 50
# Ids kept from the start of a checkpoint's page: the stitch needs only one of them to survive.
IDS_KEPT = 5
_PIECE = re.compile(r"^(?P<chain>.+)_p(?P<piece>\d{2,3})$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Data page number `page` of a chain was requested with `cursor` and began with `ids`."""

    page: int
    cursor: str
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChainCheckpoints:
    """What a successful run left for one chain: its filters (a checkpoint is only used with the same
    ones), its length in data pages, and its checkpoints in page order."""

    resource: str
    chain: str
    filters: dict[str, str]
    pages: int
    checkpoints: tuple[Checkpoint, ...]


def piece_name(chain: str, piece: int) -> str:
    """The shard name of piece `piece` of `chain` (piece 0 keeps the chain's own name)."""
    return chain if piece == 0 else f"{chain}_p{piece:02d}"


def chain_of(shard: str) -> str:
    """The chain a shard name belongs to (the inverse of `piece_name`)."""
    match = _PIECE.fullmatch(shard)
    return match["chain"] if match else shard


def thinned(checkpoints: Iterable[Checkpoint], limit: int = MAX_KEPT) -> list[Checkpoint]:
    """At most `limit` checkpoints, one per page, in page order, spread evenly over the pages they cover
    (the stride between kept pages doubles until they fit)."""
    by_page = {c.page: c for c in sorted(checkpoints, key=lambda c: c.page)}
    kept = list(by_page.values())
    stride = 1
    while len(kept) > limit:
        stride *= 2
        first = kept[0].page
        kept = [c for c in kept if (c.page - first) % stride == 0]
    return kept


def evenly_chosen(checkpoints: Sequence[Checkpoint], pages: int, pieces: int) -> list[Checkpoint]:
    """`pieces - 1` checkpoints (fewer if there are not enough) that cut `pages` pages most evenly:
    the starts of pieces 1 .. pieces-1 (piece 0 starts at the chain's first page)."""
    usable = [c for c in checkpoints if c.page > 0]
    chosen: list[Checkpoint] = []
    for index in range(1, pieces):
        target = index * pages / pieces
        left = [c for c in usable if c not in chosen and (not chosen or c.page > chosen[-1].page)]
        if not left:
            break
        chosen.append(min(left, key=lambda c: abs(c.page - target)))
    return chosen


def to_text(checkpoints: Iterable[Checkpoint]) -> str:
    """Checkpoints as stored (a JSON list of [page, cursor, ids])."""
    return orjson.dumps([[c.page, c.cursor, list(c.ids)] for c in checkpoints]).decode()


def from_text(text: str | None) -> list[Checkpoint]:
    """The inverse of `to_text` (empty for None or anything malformed: checkpoints are only a hint)."""
    if not text:
        return []
    try:
        raw: Any = orjson.loads(text)
        return [Checkpoint(int(p), str(c), tuple(str(i) for i in ids)) for p, c, ids in raw]
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return []
