"""Churn: records deleted and inserted while a client pages, as scanners resolve and add findings.

A churn event deletes records at random positions of a resource's served list, then inserts brand-new
records (fresh ids, fields drawn as the dataset draws them) at random positions. An inserted record
gets the sort key of its position: a vulnerability a `remediateByDate` (and detection time) between its
neighbours', a remediation a remediation time, an asset a creation time, and since ids start with that
time and end with a never-used serial, its id falls between its neighbours' ids too. So the list keeps
its serve order and an offset cursor shifts exactly as in any offset-paged list: a deletion before the
offset makes the next page skip a record, an insertion before it makes the page repeat one.

Serve orders are replaced, never changed in place (a splice costs one copy of an int array), so a
selection handed out before an event stays what it was.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vanta_vuln_sync.simulator import generation
from vanta_vuln_sync.simulator.vocabulary import SEVERITY_WEIGHTS, SLA_DAYS

if TYPE_CHECKING:
    from vanta_vuln_sync.simulator.dataset import Dataset

DAY = 86_400
NO_SLA = 1 << 40  # the date key of a vulnerability without remediateByDate: after every real date
SLOT_TRIES = 16  # random slots tried for an insertion before walking to the next one that has room


@dataclass(frozen=True, slots=True)
class ChurnTruth:
    """What a sync of one resource must find: `stable` ids (served without a break since the truth was
    reset: a correct sync holds every one) and `transient` ids (inserted or deleted since: a sync may or
    may not hold them). A sync holding an id in neither set invented it."""

    stable: frozenset[str]
    transient: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChurnEvent:
    """One churn event on `resource`: internal indexes deleted and inserted, and the resource's
    revision before and after (selection caches move from one to the other)."""

    resource: str
    deleted: tuple[int, ...]
    inserted: tuple[int, ...]
    revision_before: int
    revision_after: int


class ChurnLedger:
    """Internal indexes inserted into and deleted from each resource since the truth was last reset
    (by churn or `Dataset.evolve`): what `ChurnTruth` is made from."""

    def __init__(self, resources: Iterable[str]) -> None:
        self._inserted: dict[str, set[int]] = {resource: set() for resource in resources}
        self._deleted: dict[str, set[int]] = {resource: set() for resource in self._inserted}

    def note(self, resource: str, *, deleted: Iterable[int] = (), inserted: Iterable[int] = ()) -> None:
        self._deleted[resource].update(deleted)
        self._inserted[resource].update(inserted)

    def reset(self) -> None:
        for resource in self._inserted:
            self._inserted[resource].clear()
            self._deleted[resource].clear()

    def _changes(self, resource: str) -> tuple[set[int], set[int]]:
        if resource not in self._inserted:
            raise ValueError(f"no churn truth for {resource!r}; expected one of {', '.join(self._inserted)}")
        return self._inserted[resource], self._deleted[resource]

    def truth(self, data: Dataset, resource: str) -> ChurnTruth:
        """The ids of `resource` served without a break since the reset, and those inserted or deleted."""
        inserted, deleted = self._changes(resource)
        stable = frozenset(data.record_id(resource, k) for k in data.order(resource) if k not in inserted)
        return ChurnTruth(stable, frozenset(data.record_id(resource, k) for k in inserted | deleted))

    def counts(self, data: Dataset, resource: str) -> dict[str, int]:
        """`truth` as counts, plus `served`, `inserted` and `deleted`: JSON-ready."""
        inserted, deleted = self._changes(resource)
        served = data.count(resource)
        return {
            "served": served,
            "stable": served - sum(1 for k in inserted if data.is_served(resource, k)),
            "transient": len(inserted | deleted),
            "inserted": len(inserted),
            "deleted": len(deleted),
        }


def splice(
    rows: Sequence[int], key: Callable[[int], int], *, remove: Collection[int] = (), add: Iterable[int] = ()
) -> array[int]:
    """`rows` (sorted by `key`) without the indexes in `remove` and with those in `add`, still sorted by
    `key`: a new array. Indexes of `remove` that `rows` does not hold are ignored."""
    cuts: list[tuple[int, int, int]] = []  # (position in rows, 0 = insert before it / 1 = drop it, index)
    for index in remove:
        position = bisect_left(rows, key(index), key=key)
        if position < len(rows) and rows[position] == index:
            cuts.append((position, 1, index))
    cuts.extend((bisect_left(rows, key(index), key=key), 0, index) for index in add)
    cuts.sort(key=lambda cut: (cut[0], cut[1], key(cut[2])))
    out, start = array("i"), 0
    for position, drop, index in cuts:
        out.extend(rows[start:position])
        if drop:
            start = position + 1
        else:
            start = position
            out.append(index)
    out.extend(rows[start:])
    return out


def apply(data: Dataset, resource: str, *, delete: int, insert: int, rng: random.Random) -> ChurnEvent:
    """Delete `delete` records at random positions of `resource`'s served list (fewer if it holds fewer),
    then insert `insert` new records at random positions of what is left; the dataset's serve order is
    replaced and its revision of `resource` moves on. Internal to `Dataset.churn`."""
    key = data.serve_key(resource)
    rows: Sequence[int] = data.order(resource)
    deleted = tuple(rows[p] for p in rng.sample(range(len(rows)), min(delete, len(rows))))
    for index in deleted:
        _tombstone(data, resource, index)
    if deleted:
        rows = splice(rows, key, remove=deleted)
    inserted = []
    for _ in range(insert):
        new = _insert_somewhere(data, resource, rows, rng)
        if new is not None:
            inserted.append(new)
    if inserted:
        rows = splice(rows, key, add=inserted)
    _set_order(data, resource, rows if isinstance(rows, array) else array("i", rows))
    before = data.revision[resource]
    data.revision[resource] = before + 1
    return ChurnEvent(resource, deleted, tuple(inserted), before, before + 1)


def _tombstone(data: Dataset, resource: str, index: int) -> None:
    if resource == "vulnerabilities":
        data.v_open[index] = 0  # gone without a remediation: no longer in any rebuilt order
    else:
        data.removed[resource].add(index)


def _set_order(data: Dataset, resource: str, rows: array[int]) -> None:
    if resource == "vulnerabilities":
        data.vuln_order = rows
        rb = data.v_remediate_by
        # Those without an SLA are the tail: the first of them is where the with-SLA prefix ends.
        data.vulns_with_sla = bisect_left(rows, True, key=lambda s: rb[s] < 0)
    elif resource == "vulnerability-remediations":
        data.remediation_order = rows
    else:
        data.asset_order = rows


def _insert_somewhere(data: Dataset, resource: str, rows: Sequence[int], rng: random.Random) -> int | None:
    """Append a new record whose key falls in a random gap of `rows`; None when no gap has room (every
    neighbouring pair shares one date to the second)."""
    slot = rng.randrange(len(rows) + 1)
    for attempt in range(SLOT_TRIES + len(rows) + 1):
        if attempt >= SLOT_TRIES:  # few gaps with room: walk on from the last random slot
            slot = (slot + 1) % (len(rows) + 1)
        before = rows[slot - 1] if slot > 0 else None
        after = rows[slot] if slot < len(rows) else None
        index = _insert_between(data, resource, before, after, rng)
        if index is not None:
            return index
        if attempt < SLOT_TRIES:
            slot = rng.randrange(len(rows) + 1)
    return None


def _insert_between(
    data: Dataset, resource: str, before: int | None, after: int | None, rng: random.Random
) -> int | None:
    if resource == "vulnerabilities":
        return _vulnerability_between(data, before, after, rng)
    if resource == "vulnerability-remediations":
        return _remediation_between(data, before, after, rng)
    return _asset_between(data, before, after, rng)


def _vulnerability_between(
    data: Dataset, before: int | None, after: int | None, rng: random.Random
) -> int | None:
    """A new open vulnerability that sorts after `before` and before `after`, or None if none can.

    With an SLA its `remediateByDate` is drawn between the neighbours' and its detection time is that
    date less its severity's SLA (a severity whose detection would lie in the future is not drawn), so
    the record looks like every other; when that ties with a neighbour it takes its predecessor's timing
    and severity. Without an SLA (the list's tail) its detection time is drawn between the neighbours'."""
    rb, first, now = data.v_remediate_by, data.v_first, data.now_ts
    key = data.serve_key("vulnerabilities")
    low = None if before is None else key(before) >> 32  # (date, detection) of the neighbours
    high = None if after is None else key(after) >> 32

    def fits(date: int, detected: int) -> bool:
        placed = ((date if date >= 0 else NO_SLA) << 32) | detected
        return (low is None or low <= placed) and (high is None or placed < high)

    if before is not None and rb[before] < 0:
        with_sla = False
    elif after is not None and rb[after] >= 0:
        with_sla = True
    else:  # where the SLA section ends: no SLA as often as the dataset draws none
        with_sla = rng.random() >= 0.08
    if with_sla:
        after_has_sla = after is not None and rb[after] >= 0
        if before is not None:
            start = rb[before]
        else:  # at the head: up to a day before the first date (or from now if none has one)
            start = rb[after] - DAY if after is not None and after_has_sla else now
        end = rb[after] if after is not None and after_has_sla else max(start, now + SLA_DAYS[-1] * DAY)
        date = rng.randint(start, end)
        feasible = [s for s in range(len(SLA_DAYS)) if date - SLA_DAYS[s] * DAY <= now] or [len(SLA_DAYS) - 1]
        severity = rng.choices(feasible, [SEVERITY_WEIGHTS[s] for s in feasible])[0]
        detected = date - SLA_DAYS[severity] * DAY
        if not fits(date, detected) and before is not None:
            date, detected = rb[before], first[before]
            severity = data.flaws[data.v_flaw[before]].severity
    else:
        date, severity = -1, generation.draw_severity(rng)
        if before is not None and rb[before] < 0:
            start = first[before]
        else:
            start = first[after] - DAY if after is not None else now - DAY
        end = min(first[after] - 1 if after is not None else now, now)
        if end < start:
            return None
        detected = rng.randint(start, end)
    if not fits(date, detected):
        return None
    serials = generation.add_vulnerabilities(
        data, rng, [now - detected], bytearray(b"\x01"), severities=[severity], remediate_by=[date]
    )
    return serials[0]


def _remediation_between(
    data: Dataset, before: int | None, after: int | None, rng: random.Random
) -> int | None:
    """A new remediation dated between its neighbours' (never after now), closing a brand-new
    vulnerability detected a severity-typical fix time earlier (that one is not open, so not listed)."""
    r_date, now = data.r_date, data.now_ts
    start = (
        r_date[before] if before is not None else (r_date[after] - DAY if after is not None else now - DAY)
    )
    end = r_date[after] - 1 if after is not None else max(start, now)
    if end < start:
        return None
    date = rng.randint(start, end)
    severity = generation.draw_severity(rng)
    detected = date - generation.fix_seconds(rng, severity)
    closed = generation.add_vulnerabilities(data, rng, [now - detected], bytearray(1), severities=[severity])
    return data.add_remediation(closed[0], date)


def _asset_between(data: Dataset, before: int | None, after: int | None, rng: random.Random) -> int | None:
    """A new asset created between its neighbours (drawn as the dataset draws assets otherwise)."""
    created, now = data.asset_created, data.now_ts
    start = (
        created[before]
        if before is not None
        else (created[after] - 30 * DAY if after is not None else now - 30 * DAY)
    )
    end = created[after] - 1 if after is not None else max(start, now - 30 * DAY)
    if end < start:
        return None
    when = rng.randint(start, end)
    index = len(created)
    generation.add_asset(data, rng, index)
    created[index] = when
    return index
