"""The run's finding lists and the per-owner counts, from one more pass over the in-memory rows.

Lists (each sorted by urgency; ties broken by id so the order is reproducible):

| list | holds | order |
| --- | --- | --- |
| overdue | open, due date before the run's as_of | severity, due date, id |
| due_7d | open, due in [as_of, as_of + 7 days) | due date, severity, id |
| due_30d | open, due in [as_of, as_of + 30 days) (includes due_7d) | due date, severity, id |
| new | open now, not open in the previous run of the scope | severity, due date (none last), id |
| resolved | open in the previous run, not open now | severity, id |
| exceptions | deactivated | deactivation end (indefinite last), severity, id |
| unowned | open, asset without the owner tag (or unknown asset) | severity, due date, id |

Counts equal stats.json's: overdue/due_7d/due_30d = `vulnerabilities.sla`, new/resolved = `trend`,
exceptions = `vulnerabilities.deactivated`, unowned = `owners.by_owner.unowned.open`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .findings import (
    BASE_COLUMNS,
    EXCEPTION_COLUMNS,
    RESOLVED_COLUMNS,
    UNOWNED,
    FindingRows,
)
from .model import SEVERITIES
from .timestamps import MS_PER_DAY, NO_DATE

LIST_TITLES = {
    "overdue": "Overdue",
    "due_7d": "Due within 7 days",
    "due_30d": "Due within 30 days",
    "new": "New since the previous run",
    "resolved": "Resolved since the previous run",
    "exceptions": "Exceptions register (deactivated findings)",
    "unowned": "Unowned open findings",
}
REPORT_ROWS = 25  # rows of each list shown in report.html and kept in stats.json
DIGEST_ROWS = 20  # rows of each digest section kept in stats.json
_TIME_BITS = 43  # epoch ms up to the year 2248
_NO_TIME = (1 << _TIME_BITS) - 1


@dataclass(slots=True)
class FindingList:
    """One list: its columns and either sorted row indexes (`rows`) or ready rows (`ready`)."""

    name: str
    columns: tuple[str, ...]
    render: str
    rows: array[int] = field(default_factory=lambda: array("i"))
    ready: list[dict[str, Any]] | None = None

    @property
    def count(self) -> int:
        return len(self.ready) if self.ready is not None else len(self.rows)


@dataclass(slots=True)
class FindingLists:
    """Every list of a run, the renderer of its rows, and the `owners` section of stats.json."""

    finding_rows: FindingRows
    lists: dict[str, FindingList]
    owners: dict[str, Any]
    open_rows: array[int]

    def iter_rows(self, name: str) -> Iterator[dict[str, Any]]:
        """The rows of list `name`, in order, rendered one at a time."""
        found = self.lists[name]
        if found.ready is not None:
            yield from found.ready
        else:
            yield from self.finding_rows.rows(found.rows, found.render)

    def head(self, name: str, count: int = REPORT_ROWS) -> list[dict[str, Any]]:
        found = self.lists[name]
        if found.ready is not None:
            return found.ready[:count]
        return list(self.finding_rows.rows(found.rows[:count], found.render))

    def iter_open(self) -> Iterator[list[Any]]:
        """Every open finding as OPEN_FIELDS (the artefact the next run's resolved list reads)."""
        record = self.finding_rows.open_record
        for row in self.open_rows:
            yield record(row)


def build_lists(
    rows: FindingRows,
    *,
    was_active: bytearray | None,
    resolved_current: array[int] | None,
    resolved_gone: list[dict[str, Any]] | None,
) -> FindingLists:
    """Classify and sort every row. `was_active` marks rows open in the previous run (None on a
    scope's first run: no new/resolved lists); `resolved_current` are rows open then and deactivated
    now; `resolved_gone` rows (RESOLVED_COLUMNS) describe findings open then that Vanta no longer lists."""
    c = rows.columns
    n = len(c.flags)
    as_of = rows.as_of_ms
    in_7d, in_30d = as_of + 7 * MS_PER_DAY, as_of + 30 * MS_PER_DAY
    rank = [SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES) for s in c.severities]
    owner_names = _target_owners(rows)
    by_owner: dict[str, list[int]] = {}
    picked: dict[str, array[int]] = {name: array("i") for name in LIST_TITLES}
    open_rows = array("i")
    flags, due_col, target_col = c.flags, c.remediate_by, c.target
    for row in range(n):
        if not flags[row] & 1:  # deactivated
            picked["exceptions"].append(row)
            continue
        open_rows.append(row)
        target = target_col[row]
        owner = owner_names[target] if target >= 0 else UNOWNED
        counts = by_owner.get(owner)
        if counts is None:
            counts = by_owner[owner] = [0, 0, 0]
        counts[0] += 1
        if owner == UNOWNED:
            picked["unowned"].append(row)
        if was_active is not None and not was_active[row]:
            picked["new"].append(row)
        due = due_col[row]
        if due == NO_DATE:
            continue
        if due < as_of:
            picked["overdue"].append(row)
            counts[1] += 1
        elif due < in_30d:
            picked["due_30d"].append(row)
            if due < in_7d:
                picked["due_7d"].append(row)
                counts[2] += 1

    id_rank, by_id, id_bits = _id_ranks(rows.ids)

    def time_of(ms: int) -> int:
        return _NO_TIME if ms == NO_DATE else min(max(ms, 0), _NO_TIME - 1)

    def severity_first(row: int, ms: int) -> int:
        return ((rank[c.severity[row]] << _TIME_BITS | time_of(ms)) << id_bits) | id_rank[row]

    def time_first(row: int, ms: int) -> int:
        return ((time_of(ms) << 3 | min(rank[c.severity[row]], 7)) << id_bits) | id_rank[row]

    def ordered(selected: array[int], key: Any) -> array[int]:
        mask = (1 << id_bits) - 1
        keys = [key(row) for row in selected]
        keys.sort()
        return array("i", (by_id[k & mask] for k in keys))

    lists: dict[str, FindingList] = {}
    for name in ("overdue", "new", "unowned"):
        lists[name] = FindingList(
            name, BASE_COLUMNS, "base", ordered(picked[name], lambda r: severity_first(r, due_col[r]))
        )
    for name in ("due_7d", "due_30d"):
        lists[name] = FindingList(
            name, BASE_COLUMNS, "base", ordered(picked[name], lambda r: time_first(r, due_col[r]))
        )
    until = rows.details.until
    lists["exceptions"] = FindingList(
        "exceptions",
        EXCEPTION_COLUMNS,
        "exception",
        ordered(picked["exceptions"], lambda r: time_first(r, until(r))),
    )
    if was_active is None:
        del lists["new"]
    else:
        current = [rows.resolved(row) for row in resolved_current or ()]
        ready = sorted(
            [*current, *(resolved_gone or [])],
            key=lambda item: (_rank_of(item.get("severity")), str(item["id"])),
        )
        lists["resolved"] = FindingList("resolved", RESOLVED_COLUMNS, "resolved", ready=ready)
    ordered_lists = {name: lists[name] for name in LIST_TITLES if name in lists}
    return FindingLists(rows, ordered_lists, _owners_section(by_owner), open_rows)


def _rank_of(severity: object) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _target_owners(rows: FindingRows) -> list[str]:
    """Owner of each targetId code (UNOWNED when the asset is unknown or untagged)."""
    return [rows.target_owner(code) for code in range(len(rows.columns.targets))]


def _id_ranks(ids: list[str]) -> tuple[array[int], list[int], int]:
    """(rank of each row by id, rows in id order, bits a rank needs)."""
    by_id = sorted(range(len(ids)), key=ids.__getitem__)
    id_rank = array("i", bytes(4 * len(ids)))
    for position, row in enumerate(by_id):
        id_rank[row] = position
    return id_rank, by_id, max(1, len(ids).bit_length())


def _owners_section(by_owner: dict[str, list[int]]) -> dict[str, Any]:
    ranked = sorted(
        by_owner.items(), key=lambda item: (item[0] == UNOWNED, -item[1][1], -item[1][0], item[0])
    )
    return {name: {"open": counts[0], "overdue": counts[1], "due_7d": counts[2]} for name, counts in ranked}
