"""What a finding list row says about one vulnerability, and the compact columns it is rendered from.

The statistics keep only what they count (vulnerabilities.py); a list row also needs the Vanta link,
the fixed version, the CVE ids and, for the exceptions register, the deactivation. `FindingDetails`
keeps those per row in the same single pass, compactly: links as UTF-8 in one byte buffer, repeated
strings interned, dates as epoch ms; about 130 bytes a vulnerability. Rows are rendered as dicts only
when a list is written, a batch at a time.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator
from typing import Any

from .assets import AssetTally
from .interning import Interner
from .timestamps import MS_PER_DAY, NO_DATE, parse_ms
from .vulnerabilities import NONE, VulnerabilityColumns

UNOWNED = "unowned"

# Every list has these columns, in this order (CSV header and NDJSON keys alike).
BASE_COLUMNS = (
    "id",
    "name",
    "cve_ids",
    "severity",
    "asset_id",
    "asset_name",
    "asset_type",
    "integration",
    "owner",
    "first_detected",
    "due_date",
    "days_overdue",
    "fix_available",
    "fixed_version",
    "vanta_url",
)
EXCEPTION_COLUMNS = (
    *BASE_COLUMNS,
    "deactivation_reason",
    "deactivated_by",
    "deactivated_since",
    "deactivated_until",
    "expires_within_14d",
    "fix_now_available",
)
RESOLVED_COLUMNS = (*BASE_COLUMNS, "resolution")
# One open finding in `findings/open.ndjson.gz` (a JSON array a line, dates as epoch ms or null): what
# the next run needs to list the finding as resolved once Vanta stops listing it. Compact and cheap to
# write, since it holds every open finding.
OPEN_FIELDS = (
    "id",
    "severity",
    "name",
    "cve_ids",
    "asset_id",
    "asset_name",
    "asset_type",
    "integration",
    "owner",
    "first_ms",
    "due_ms",
    "fix_available",
    "fixed_version",
    "vanta_url",
)
# `resolution` of a resolved finding: still listed by Vanta but deactivated, or no longer listed at all
# (remediated, or its asset went away).
DEACTIVATED, NO_LONGER_REPORTED = "deactivated", "no_longer_reported"
EXPIRY_WINDOW_DAYS = 14


_DAYS: dict[int, str] = {}  # day number -> `YYYY-MM-DD`: a few thousand distinct days, millions of rows


def iso_day(ms: int) -> str | None:
    """`YYYY-MM-DD` (UTC) of epoch milliseconds; None for NO_DATE."""
    if ms == NO_DATE:
        return None
    day = ms // MS_PER_DAY
    text = _DAYS.get(day)
    if text is None:
        text = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
    return text


def cve_ids(record: dict[str, Any]) -> list[str]:
    """The CVE ids of a record: its name when that is a CVE id, then `relatedVulns` entries that are,
    without repeats, in that order."""
    out: list[str] = []
    candidates = [record.get("name"), *(record.get("relatedVulns") or ())]
    for value in candidates:
        if isinstance(value, str) and value.upper().startswith("CVE-") and value not in out:
            out.append(value)
    return out


class FindingDetails:
    """Per-row columns the lists need beyond the statistics; rows numbered as VulnerabilityTally's."""

    def __init__(self) -> None:
        self._links = bytearray()
        self._link_at = array("q")
        self._link_len = array("i")
        self._fixed_versions = Interner()
        self._fixed_version = array("i")
        self._cve_sets = Interner()
        self._cve_set = array("i")
        self._cve_lists: list[list[str]] = []  # cve_ids() of each code, made on first use
        self._strings = Interner()  # deactivation reasons and who deactivated: few distinct values
        self._reason = array("i")
        self._by = array("i")
        self._since = array("q")
        self._until = array("q")

    def put(self, row: int, record: dict[str, Any]) -> None:
        """Record `record`'s details at `row` (a new row must be the next one; an old row is
        overwritten, as the tally overwrites it). Raises ValueError for a malformed date."""
        raw_link = record.get("externalURL")
        link = raw_link.encode() if type(raw_link) is str else str(raw_link or "").encode()
        fixed = record.get("fixedVersion")
        fixed_code = NONE if fixed is None or fixed == "" else self._fixed_versions.code(str(fixed))
        name, related = record.get("name"), record.get("relatedVulns")
        if not related or (len(related) == 1 and related[0] == name):  # the common shapes, cheaply
            cves = name if type(name) is str and name[:4].upper() == "CVE-" else ""
        else:
            cves = " ".join(cve_ids(record))
        cve_code = self._cve_sets.code(cves)
        meta = record.get("deactivateMetadata")
        if isinstance(meta, dict):
            reason = self._optional(meta.get("deactivationReason"))
            by = self._optional(meta.get("deactivatedBy"))
            since, until = parse_ms(meta.get("deactivatedOnDate")), parse_ms(meta.get("deactivatedUntilDate"))
        else:
            reason, by, since, until = NONE, NONE, NO_DATE, NO_DATE
        if row == len(self._link_at):
            self._link_at.append(len(self._links))
            self._link_len.append(len(link))
            self._links += link
            self._fixed_version.append(fixed_code)
            self._cve_set.append(cve_code)
            self._reason.append(reason)
            self._by.append(by)
            self._since.append(since)
            self._until.append(until)
            return
        if link != self.link(row).encode():
            self._link_at[row] = len(self._links)
            self._link_len[row] = len(link)
            self._links += link
        self._fixed_version[row] = fixed_code
        self._cve_set[row] = cve_code
        self._reason[row] = reason
        self._by[row] = by
        self._since[row] = since
        self._until[row] = until

    def _optional(self, value: object) -> int:
        return NONE if value is None or value == "" else self._strings.code(str(value))

    def link(self, row: int) -> str:
        start = self._link_at[row]
        return self._links[start : start + self._link_len[row]].decode()

    def until(self, row: int) -> int:
        """When the row's deactivation ends (epoch ms); NO_DATE when indefinite or not deactivated."""
        return self._until[row]

    def fixed_version(self, row: int) -> str | None:
        code = self._fixed_version[row]
        return None if code == NONE else self._fixed_versions.values[code]

    def cve_ids(self, row: int) -> list[str]:
        """The row's CVE ids (one shared list per distinct set: callers must not change it)."""
        code = self._cve_set[row]
        lists = self._cve_lists
        while len(lists) <= code:
            joined = self._cve_sets.values[len(lists)]
            lists.append(joined.split(" ") if joined else [])
        return lists[code]

    def deactivation(self, row: int) -> tuple[str | None, str | None, int, int]:
        """(reason, who, since ms, until ms) of the row's deactivation."""
        strings = self._strings.values
        reason, by = self._reason[row], self._by[row]
        return (
            None if reason == NONE else strings[reason],
            None if by == NONE else strings[by],
            self._since[row],
            self._until[row],
        )


class FindingRows:
    """Renders rows of the run's vulnerabilities as list rows (dicts keyed by the list's columns)."""

    def __init__(
        self, columns: VulnerabilityColumns, details: FindingDetails, assets: AssetTally, as_of_ms: int
    ) -> None:
        self.columns = columns
        self.details = details
        self.as_of_ms = as_of_ms
        # targetId code -> asset row (-1 when the asset was not read): one lookup per target, not per row.
        self.asset_row = array("i", (_or_none(assets.row_of(tid)) for tid in columns.targets))
        # targetId code -> (asset name, type, owner): rendered rows share these.
        self._target_facts: list[tuple[str | None, str | None, str | None]] = [
            (None, None, None) if row == NONE else assets.row_facts(row) for row in self.asset_row
        ]
        self.ids = list(columns.rows)  # row -> id (rows are numbered in insertion order)

    def target_owner(self, target: int) -> str:
        """The owner of the asset with targetId code `target`, or UNOWNED (no tag, or not read)."""
        return self._target_facts[target][2] or UNOWNED

    def base(self, row: int) -> dict[str, Any]:
        """The BASE_COLUMNS of `row`; `days_overdue` is whole days past the due date at the run's
        as_of (None when not overdue or without a due date)."""
        c = self.columns
        target, name = c.target[row], c.name[row]
        asset_name, asset_type, owner = (None, None, None) if target == NONE else self._target_facts[target]
        due = c.remediate_by[row]
        overdue = due != NO_DATE and due < self.as_of_ms
        return {
            "id": self.ids[row],
            "name": None if name == NONE else c.names[name],
            "cve_ids": self.details.cve_ids(row),
            "severity": c.severities[c.severity[row]],
            "asset_id": None if target == NONE else c.targets[target],
            "asset_name": asset_name,
            "asset_type": asset_type,
            "integration": c.integrations[c.integration[row]],
            "owner": owner or UNOWNED,
            "first_detected": iso_day(c.first_detected[row]),
            "due_date": iso_day(due),
            "days_overdue": (self.as_of_ms - due) // MS_PER_DAY if overdue else None,
            "fix_available": c.is_fixable(row),
            "fixed_version": self.details.fixed_version(row),
            "vanta_url": self.details.link(row) or None,
        }

    def open_record(self, row: int) -> list[Any]:
        """The OPEN_FIELDS of `row`."""
        c = self.columns
        target, name = c.target[row], c.name[row]
        asset_name, asset_type, owner = (None, None, None) if target == NONE else self._target_facts[target]
        first, due = c.first_detected[row], c.remediate_by[row]
        return [
            self.ids[row],
            c.severities[c.severity[row]],
            None if name == NONE else c.names[name],
            self.details.cve_ids(row),
            None if target == NONE else c.targets[target],
            asset_name,
            asset_type,
            c.integrations[c.integration[row]],
            owner or UNOWNED,
            None if first == NO_DATE else first,
            None if due == NO_DATE else due,
            c.is_fixable(row),
            self.details.fixed_version(row),
            self.details.link(row) or None,
        ]

    def exception(self, row: int) -> dict[str, Any]:
        """The EXCEPTION_COLUMNS of a deactivated row."""
        reason, by, since, until = self.details.deactivation(row)
        fixable = self.columns.is_fixable(row)
        window = self.as_of_ms + EXPIRY_WINDOW_DAYS * MS_PER_DAY
        return {
            **self.base(row),
            "deactivation_reason": reason,
            "deactivated_by": by,
            "deactivated_since": iso_day(since),
            "deactivated_until": iso_day(until),
            "expires_within_14d": until != NO_DATE and until < window,
            "fix_now_available": fixable,
        }

    def resolved(self, row: int) -> dict[str, Any]:
        """A resolved finding that Vanta still lists (deactivated since the previous run)."""
        return {**self.base(row), "days_overdue": None, "resolution": DEACTIVATED}

    def rows(self, indexes: array[int], render: str) -> Iterator[dict[str, Any]]:
        """`render` ("base", "exception" or "resolved") of each row in `indexes`, in order."""
        method = getattr(self, render)
        for row in indexes:
            yield method(row)


def resolved_from_previous(record: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """A resolved finding Vanta no longer lists, from the previous run's open record (OPEN_FIELDS), or
    from `{"id", "severity"}` when that run left no record of it."""
    if isinstance(record, dict):
        out: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
        out.update(id=record["id"], severity=record["severity"], cve_ids=[], fix_available=False)
    else:
        fields = dict(zip(OPEN_FIELDS, record, strict=True))
        out = {column: fields.get(column) for column in BASE_COLUMNS}
        out["first_detected"] = None if fields["first_ms"] is None else iso_day(fields["first_ms"])
        out["due_date"] = None if fields["due_ms"] is None else iso_day(fields["due_ms"])
        out["cve_ids"] = list(fields["cve_ids"] or [])
    out["days_overdue"] = None
    out["resolution"] = NO_LONGER_REPORTED
    return out


def _or_none(row: int | None) -> int:
    return NONE if row is None else row
