"""Vulnerability statistics, computed by streaming.

Approach (the 1 GB / 1,000,000-record budget): every record is reduced on arrival to a compact row in
typed arrays (severity, integration, asset and CVE as interned codes; dates as epoch milliseconds; CVSS
as a double) and the JSON dict is dropped. Rows are deduplicated by `id` through one id -> row dict
(the last record read wins), so memory grows with the number of distinct vulnerabilities (about 150
bytes each) and never with the number of S3 objects. `summarize` makes one pass over the rows.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .interning import Interner
from .model import SEVERITIES, severity_key, severity_map
from .quantiles import mean, quantile, rounded
from .timestamps import MS_PER_DAY, NO_DATE, parse_ms

TOP_N = 10
UNKNOWN_INTEGRATION = "unknown"
ACTIVE = 1
FIXABLE = 2
NONE = -1
_ACTIVE, _FIXABLE, _NONE = ACTIVE, FIXABLE, NONE
_NUMBER = (int, float)
_CRITICAL, _HIGH = 0, 1  # codes of the first two entries of SEVERITIES


@dataclass(frozen=True, slots=True)
class VulnerabilitySummary:
    """The `vulnerabilities` and `top` sections, and what the asset statistics need from them."""

    section: dict[str, Any]
    top_cves: list[dict[str, Any]]
    top_assets: list[dict[str, Any]]
    critical_targets: frozenset[str]


@dataclass(frozen=True, slots=True)
class VulnerabilityColumns:
    """The tally's rows as columns: `rows` maps id -> row; coded columns index their value lists;
    `target` and `name` hold -1 (NONE) when the record had none; dates are epoch ms or NO_DATE."""

    rows: dict[str, int]
    severity: array[int]
    severities: list[str]
    integration: array[int]
    integrations: list[str]
    target: array[int]
    targets: list[str]
    name: array[int]
    names: list[str]
    flags: array[int]
    remediate_by: array[int]
    first_detected: array[int]

    def is_active(self, row: int) -> bool:
        return bool(self.flags[row] & ACTIVE)

    def is_fixable(self, row: int) -> bool:
        return bool(self.flags[row] & FIXABLE)


class VulnerabilityTally:
    """Compact, deduplicated state of every vulnerability read; see the module docstring."""

    def __init__(self) -> None:
        self.records = 0
        self._rows: dict[str, int] = {}
        self._severities = Interner(SEVERITIES)
        self._integrations = Interner()
        self._targets = Interner()
        self._cves = Interner()
        self._severity = array("b")
        self._integration = array("i")
        self._target = array("i")
        self._cve = array("i")
        self._flags = array("B")
        self._cvss = array("d")
        self._remediate_by = array("q")
        self._first_detected = array("q")

    def add(self, record: dict[str, Any]) -> int | None:
        """Reduce one raw record to its row and return the row's index (rows are numbered 0, 1, 2, ...
        in order of first sight; a later record with the same id overwrites its row). A record without
        an `id` is counted as read and skipped (None).

        Raises ValueError when a date field is not an RFC 3339 date.
        """
        self.records += 1
        rid = record.get("id")
        if rid is None:
            return None
        rid = str(rid)
        severity = self._severities.code(severity_key(record.get("severity")))
        integration = self._integrations.code(str(record.get("integrationId") or UNKNOWN_INTEGRATION))
        target = record.get("targetId")
        name = record.get("name")
        score = record.get("cvssSeverityScore")
        flags = (_ACTIVE if record.get("deactivateMetadata") is None else 0) | (
            _FIXABLE if record.get("isFixable") is True else 0
        )
        target_code = self._targets.code(str(target)) if target is not None else _NONE
        cve_code = self._cves.code(str(name)) if name else _NONE
        cvss = float(score) if type(score) in _NUMBER else math.nan  # type: ignore[arg-type]  # bool is no score
        remediate_by = parse_ms(record.get("remediateByDate"))
        first_detected = parse_ms(record.get("firstDetectedDate"))
        row = self._rows.get(rid)
        if row is None:
            self._rows[rid] = len(self._flags)
            self._severity.append(severity)
            self._integration.append(integration)
            self._target.append(target_code)
            self._cve.append(cve_code)
            self._flags.append(flags)
            self._cvss.append(cvss)
            self._remediate_by.append(remediate_by)
            self._first_detected.append(first_detected)
            return len(self._flags) - 1
        else:
            self._severity[row] = severity
            self._integration[row] = integration
            self._target[row] = target_code
            self._cve[row] = cve_code
            self._flags[row] = flags
            self._cvss[row] = cvss
            self._remediate_by[row] = remediate_by
            self._first_detected[row] = first_detected
            return row

    def columns(self) -> VulnerabilityColumns:
        """Read-only view of the rows, for the finding lists (a second pass over what is in memory)."""
        return VulnerabilityColumns(
            rows=self._rows,
            severity=self._severity,
            severities=self._severities.values,
            integration=self._integration,
            integrations=self._integrations.values,
            target=self._target,
            targets=self._targets.values,
            name=self._cve,
            names=self._cves.values,
            flags=self._flags,
            remediate_by=self._remediate_by,
            first_detected=self._first_detected,
        )

    def active_ids(self) -> Iterator[tuple[str, str]]:
        """(id, severity) of every active vulnerability, for the trend."""
        flags, severity, names = self._flags, self._severity, self._severities.values
        for rid, row in self._rows.items():
            if flags[row] & _ACTIVE:
                yield rid, names[severity[row]]

    def summarize(self, as_of_ms: int) -> VulnerabilitySummary:
        """The statistics of every row at `as_of_ms` (epoch ms); see stats.json's `vulnerabilities`."""
        n_sev = len(self._severities)
        active_by = [0] * n_sev
        overdue, due_7d, due_8_30d, on_track, no_sla = ([0] * n_sev for _ in range(5))
        cvss: list[array[float]] = [array("d") for _ in range(n_sev)]
        ages: list[array[float]] = [array("d") for _ in range(n_sev)]
        by_integration: Counter[tuple[int, int]] = Counter()
        targets: set[int] = set()
        cve_assets: set[int] = set()  # cve << 32 | target: an int per pair is half a tuple's memory
        cve_vulns: Counter[int] = Counter()
        cve_worst: dict[int, int] = {}
        severe_by_target: Counter[tuple[int, int]] = Counter()
        fixable = 0
        in_7d, in_30d = as_of_ms + 7 * MS_PER_DAY, as_of_ms + 30 * MS_PER_DAY
        sev_col, flags_col, target_col, cve_col = self._severity, self._flags, self._target, self._cve
        cvss_col, due_col, first_col, integ_col = (
            self._cvss,
            self._remediate_by,
            self._first_detected,
            self._integration,
        )
        for row in range(len(flags_col)):
            flags = flags_col[row]
            if not flags & _ACTIVE:
                continue
            sev = sev_col[row]
            active_by[sev] += 1
            by_integration[integ_col[row], sev] += 1
            if flags & _FIXABLE:
                fixable += 1
            score = cvss_col[row]
            if score == score:  # not NaN
                cvss[sev].append(score)
            due = due_col[row]
            if due == NO_DATE:
                no_sla[sev] += 1
            elif due < as_of_ms:
                overdue[sev] += 1
            elif due < in_7d:
                due_7d[sev] += 1
            elif due < in_30d:
                due_8_30d[sev] += 1
            else:
                on_track[sev] += 1
            first = first_col[row]
            if first != NO_DATE:
                ages[sev].append((as_of_ms - first) / MS_PER_DAY)
            target, cve = target_col[row], cve_col[row]
            if cve != _NONE:
                cve_vulns[cve] += 1
                cve_worst[cve] = min(sev, cve_worst.get(cve, sev))
            if target != _NONE:
                targets.add(target)
                if cve != _NONE:
                    cve_assets.add(cve << 32 | target)
                if sev <= _HIGH:
                    severe_by_target[target, sev] += 1
        names = self._severities.values

        def per_severity(counts: list[int]) -> dict[str, int]:
            return severity_map({names[code]: counts[code] for code in range(n_sev)})

        def age_quantiles(code: int) -> dict[str, float | None]:
            values = sorted(ages[code])
            return {"p50": rounded(quantile(values, 0.5)), "p90": rounded(quantile(values, 0.9))}

        sev_order = [names.index(s) for s in severity_map({n: 0 for n in names})]
        integrations: dict[str, dict[str, int]] = {}
        for integ in sorted(range(len(self._integrations)), key=self._integrations.values.__getitem__):
            counts = {names[s]: by_integration[integ, s] for s in range(n_sev) if by_integration[integ, s]}
            if counts:
                integrations[self._integrations.values[integ]] = severity_map(counts)
        due_30d = [due_7d[s] + due_8_30d[s] for s in range(n_sev)]
        section: dict[str, Any] = {
            "total": len(self._rows),
            "active": sum(active_by),
            "deactivated": len(self._rows) - sum(active_by),
            "by_severity": per_severity(active_by),
            "by_integration": integrations,
            "fixable": fixable,
            "unique_assets": len(targets),
            "unique_cves": len(cve_vulns),
            "cvss_mean": {names[s]: rounded(mean(cvss[s])) for s in sev_order},
            "sla": {
                "overdue": sum(overdue),
                "due_7d": sum(due_7d),
                "due_30d": sum(due_30d),
                "no_sla": sum(no_sla),
                "overdue_by_severity": per_severity(overdue),
                "by_severity": {
                    names[s]: {
                        "overdue": overdue[s],
                        "due_7d": due_7d[s],
                        "due_30d": due_30d[s],
                        "on_track": on_track[s],
                        "no_sla": no_sla[s],
                    }
                    for s in sev_order
                },
            },
            "age_days": {names[s]: age_quantiles(s) for s in sev_order},
        }
        return VulnerabilitySummary(
            section=section,
            top_cves=self._top_cves(cve_assets, cve_vulns, cve_worst),
            top_assets=self._top_assets(severe_by_target),
            critical_targets=frozenset(
                self._targets.values[target] for target, sev in severe_by_target if sev == _CRITICAL
            ),
        )

    def _top_cves(
        self, cve_assets: set[int], cve_vulns: Counter[int], cve_worst: dict[int, int]
    ) -> list[dict[str, Any]]:
        assets_per_cve: Counter[int] = Counter(pair >> 32 for pair in cve_assets)
        cves = self._cves.values
        ranked = sorted(assets_per_cve, key=lambda cve: (-assets_per_cve[cve], cves[cve]))[:TOP_N]
        return [
            {
                "name": cves[cve],
                "assets": assets_per_cve[cve],
                "vulnerabilities": cve_vulns[cve],
                "severity": self._severities.values[cve_worst[cve]],
            }
            for cve in ranked
        ]

    def _top_assets(self, severe_by_target: Counter[tuple[int, int]]) -> list[dict[str, Any]]:
        per_target: dict[int, list[int]] = {}
        for (target, sev), count in severe_by_target.items():
            per_target.setdefault(target, [0, 0])[sev] += count
        ids = self._targets.values
        ranked = sorted(per_target, key=lambda t: (-sum(per_target[t]), -per_target[t][0], ids[t]))[:TOP_N]
        return [
            {
                "id": ids[t],
                "critical": per_target[t][0],
                "high": per_target[t][1],
                "open_critical_high": sum(per_target[t]),
            }
            for t in ranked
        ]
