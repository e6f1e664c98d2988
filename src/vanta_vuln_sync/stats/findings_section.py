"""stats.json's `findings` section: each list's count, files and first rows, and the digest's picks.

```
"findings": {
  "lists": {"overdue": {"title", "count", "csv": "findings/overdue.csv",
                        "ndjson": "findings/overdue.ndjson", "rows": [first 25 rows]}, ...},
  "open": "findings/open.ndjson.gz",
  "digest": {"new_critical_high": {"count", "rows"}, "newly_overdue": {"count", "rows"} | null,
             "expiring_exceptions": {"count", "rows"}}
}
```
File names are relative to the run's prefix (`runs/<id>/`; `latest/` for the latest full run).
"""

from __future__ import annotations

from array import array
from typing import Any

from .finding_lists import DIGEST_ROWS, LIST_TITLES, REPORT_ROWS, FindingLists
from .findings import EXPIRY_WINDOW_DAYS
from .model import FINDINGS_DIR
from .timestamps import MS_PER_DAY, NO_DATE

SEVERE = ("CRITICAL", "HIGH")


def list_files(name: str) -> tuple[str, str]:
    """(CSV, NDJSON) file names of list `name`, relative to the run's prefix."""
    return f"{FINDINGS_DIR}{name}.csv", f"{FINDINGS_DIR}{name}.ndjson"


def findings_section(lists: FindingLists, *, previous_as_of_ms: int | None) -> dict[str, Any]:
    """The `findings` section (see the module docstring). `previous_as_of_ms` is the previous run's
    as_of: a finding became overdue since then when its due date is at or after it (None: first run)."""
    section: dict[str, Any] = {}
    for name, found in lists.lists.items():
        csv_name, ndjson_name = list_files(name)
        section[name] = {
            "title": LIST_TITLES[name],
            "count": found.count,
            "csv": csv_name,
            "ndjson": ndjson_name,
            "rows": lists.head(name, REPORT_ROWS),
        }
    return {
        "lists": section,
        "open": f"{FINDINGS_DIR}open.ndjson.gz",
        "digest": _digest_picks(lists, previous_as_of_ms),
    }


def _digest_picks(lists: FindingLists, previous_as_of_ms: int | None) -> dict[str, Any]:
    rows = lists.finding_rows
    c = rows.columns
    picks: dict[str, Any] = {"new_critical_high": None, "newly_overdue": None}
    if "new" in lists.lists:
        severe = [r for r in lists.lists["new"].rows if c.severities[c.severity[r]] in SEVERE]
        picks["new_critical_high"] = _pick(lists, severe, "base")
    if previous_as_of_ms is not None:
        due = c.remediate_by
        became = [r for r in lists.lists["overdue"].rows if due[r] >= previous_as_of_ms]
        picks["newly_overdue"] = _pick(lists, became, "base")
    window = rows.as_of_ms + EXPIRY_WINDOW_DAYS * MS_PER_DAY
    until = rows.details.until
    expiring = [r for r in lists.lists["exceptions"].rows if until(r) != NO_DATE and until(r) < window]
    picks["expiring_exceptions"] = _pick(lists, expiring, "exception")
    return picks


def _pick(lists: FindingLists, selected: list[int], render: str) -> dict[str, Any]:
    head = array("i", selected[:DIGEST_ROWS])
    return {"count": len(selected), "rows": list(lists.finding_rows.rows(head, render))}
