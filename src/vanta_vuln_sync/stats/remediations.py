"""Remediation statistics over every remediation known to the project.

Remediations are the one resource synced incrementally, so a run's raw objects may hold only what
changed. The tally therefore starts from the previous run's compact snapshot (one `[id, severity,
detected, sla_deadline, remediated]` line per remediation, dates as epoch ms) and applies this run's
records on top, merged by `id`, newer wins; a full run starts empty. The merged snapshot is written back
per run, so a retried Finalize recomputes the same result. Memory: typed arrays plus one id -> row dict,
as for vulnerabilities (see vulnerabilities.py).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

from .interning import Interner
from .model import SEVERITIES, severity_key, severity_map
from .quantiles import mean, quantile, rounded
from .timestamps import MS_PER_DAY, NO_DATE, parse_ms

SnapshotRow = tuple[str, str, int | None, int | None, int | None]


class RemediationTally:
    """Compact, deduplicated state of every remediation (snapshot rows and raw records alike)."""

    def __init__(self) -> None:
        self.records = 0
        self._rows: dict[str, int] = {}
        self._severities = Interner(SEVERITIES)
        self._severity = array("b")
        self._detected = array("q")
        self._deadline = array("q")
        self._remediated = array("q")

    def add(self, record: dict[str, Any]) -> None:
        """Apply one raw Vanta record (counted as read; skipped without an `id`).

        Raises ValueError when a date field is not an RFC 3339 date.
        """
        self.records += 1
        rid = record.get("id")
        if rid is None:
            return
        self._put(
            str(rid),
            severity_key(record.get("severity")),
            parse_ms(record.get("detectedDate")),
            parse_ms(record.get("slaDeadlineDate")),
            parse_ms(record.get("remediationDate")),
        )

    def add_snapshot_row(self, row: list[Any]) -> None:
        """Apply one line of a previous snapshot (see `snapshot_rows`); raises ValueError if malformed."""
        try:
            rid, severity, detected, deadline, remediated = row
        except (TypeError, ValueError) as exc:
            raise ValueError(f"remediation snapshot row has the wrong shape: {row!r}") from exc

        def ms(value: Any) -> int:
            return NO_DATE if value is None else int(value)

        self._put(str(rid), str(severity), ms(detected), ms(deadline), ms(remediated))

    def _put(self, rid: str, severity: str, detected: int, deadline: int, remediated: int) -> None:
        code = self._severities.code(severity)
        row = self._rows.get(rid)
        if row is None:
            self._rows[rid] = len(self._severity)
            self._severity.append(code)
            self._detected.append(detected)
            self._deadline.append(deadline)
            self._remediated.append(remediated)
        else:
            self._severity[row] = code
            self._detected[row] = detected
            self._deadline[row] = deadline
            self._remediated[row] = remediated

    def snapshot_rows(self) -> Iterator[SnapshotRow]:
        """Every remediation as a compact snapshot row (None for a missing date)."""
        names = self._severities.values

        def opt(value: int) -> int | None:
            return None if value == NO_DATE else value

        for rid, row in self._rows.items():
            yield (
                rid,
                names[self._severity[row]],
                opt(self._detected[row]),
                opt(self._deadline[row]),
                opt(self._remediated[row]),
            )

    def summarize(self) -> dict[str, Any]:
        """The `remediations` section of stats.json."""
        names = self._severities.values
        n_sev = len(names)
        by_severity = [0] * n_sev
        durations: list[array[float]] = [array("d") for _ in range(n_sev)]
        allowed: list[array[float]] = [array("d") for _ in range(n_sev)]
        on_time = late = no_sla = 0
        for row in range(len(self._severity)):
            sev = self._severity[row]
            by_severity[sev] += 1
            detected, deadline, remediated = self._detected[row], self._deadline[row], self._remediated[row]
            if deadline == NO_DATE:
                no_sla += 1
            else:
                if remediated != NO_DATE:
                    if remediated <= deadline:
                        on_time += 1
                    else:
                        late += 1
                if detected != NO_DATE:
                    allowed[sev].append((deadline - detected) / MS_PER_DAY)
            if detected != NO_DATE and remediated != NO_DATE:
                durations[sev].append((remediated - detected) / MS_PER_DAY)
        order = list(severity_map(dict.fromkeys(names, 0)))

        def mttr(code: int) -> dict[str, float | None]:
            values = sorted(durations[code])
            return {
                "p50": rounded(quantile(values, 0.5)),
                "p90": rounded(quantile(values, 0.9)),
                "mean": rounded(mean(values)),
            }

        return {
            "total": len(self._rows),
            "by_severity": severity_map({names[s]: by_severity[s] for s in range(n_sev)}),
            "on_time": on_time,
            "late": late,
            "no_sla": no_sla,
            "mttr_days": {sev: mttr(names.index(sev)) for sev in order},
            # Not in the list: the SLA the report draws MTTR against, read from the data itself
            # (median of slaDeadlineDate - detectedDate), since the SLA policy lives in Vanta.
            "sla_days": {sev: rounded(quantile(sorted(allowed[names.index(sev)]), 0.5)) for sev in order},
        }
