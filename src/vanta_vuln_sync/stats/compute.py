"""One run's statistics from its raw objects: each object streamed exactly once, in resource order.

Remediations are read first and reduced to their summary and snapshot (the tally is dropped), then
vulnerabilities, then assets (whose names, types and owners the finding lists join onto the
vulnerabilities' rows). The vulnerability columns and the assets live until the finding lists are
written (the lists are a second pass over those columns, no re-read). The previous run's artefacts
(active ids, open findings, remediation snapshot) are streamed, never loaded whole.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .artifacts import gzip_ndjson, read_ndjson
from .assets import AssetTally
from .finding_lists import FindingLists, build_lists
from .findings import FindingDetails, FindingRows, resolved_from_previous
from .findings_section import findings_section
from .history import HistoryEntry
from .model import (
    ASSETS,
    REMEDIATIONS,
    SCHEMA_VERSION,
    SEVERITIES,
    VULNERABILITIES,
    RunInfo,
    open_findings_key,
    severity_map,
)
from .remediations import RemediationTally
from .sources import ByteSource, MissingObjectError, iter_record_batches
from .timestamps import datetime_ms, format_rfc3339
from .vulnerabilities import VulnerabilitySummary, VulnerabilityTally

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunStatistics:
    """The stats.json document and the run's compact artefacts, gzip NDJSON ready to store:
    `active_ids` (`[id, severity]` of every active vulnerability, for the next run's trend) and
    `remediation_snapshot` (every known remediation, for the next incremental merge); `findings` are
    the run's finding lists, rendered when written (see finding_lists.py)."""

    stats: dict[str, Any]
    active_ids: bytes
    remediation_snapshot: bytes
    findings: FindingLists | None = None


async def compute_run_statistics(
    source: ByteSource, run: RunInfo, previous: HistoryEntry | None
) -> RunStatistics:
    """Statistics of `run` (schema version 1) from its raw objects in `source`.

    `previous` is the previous successful run of the same scope (None on the first run): the trend is
    computed against it, and an incremental remediation sync is merged onto its snapshot.
    Raises RawObjectError for a raw object that is not gzip NDJSON, ValueError for a malformed date.
    """
    remediations = RemediationTally()
    if run.mode_of(REMEDIATIONS) == "incremental" and previous is not None:
        await _load_snapshot(source, previous, remediations)
    await _read(source, run, REMEDIATIONS, remediations.add)
    remediations_section = remediations.summarize()
    snapshot = gzip_ndjson(remediations.snapshot_rows())
    remediation_records = remediations.records
    del remediations  # summarized and encoded: gone before the vulnerabilities grow

    vulnerabilities = VulnerabilityTally()
    details = FindingDetails()

    def add_vulnerability(record: dict[str, Any]) -> None:
        row = vulnerabilities.add(record)
        if row is not None:
            details.put(row, record)

    await _read(source, run, VULNERABILITIES, add_vulnerability)
    as_of_ms = datetime_ms(run.started_at)
    summary = vulnerabilities.summarize(as_of_ms)
    changes = await _trend(source, previous, vulnerabilities, summary)
    trend = changes.trend
    active_ids = gzip_ndjson(vulnerabilities.active_ids())
    vulnerability_records = vulnerabilities.records
    columns = vulnerabilities.columns()  # the columns live on for the finding lists

    assets = AssetTally(run.owner_tag_key)
    await _read(source, run, ASSETS, assets.add)
    assets_section = assets.summarize(summary.critical_targets)
    top_assets = _named_top_assets(summary, assets)
    asset_records = assets.records

    resolved_gone = None
    if changes.gone:
        resolved_gone = await _previous_details(source, previous, changes.gone)
    lists = build_lists(
        FindingRows(columns, details, assets, as_of_ms),
        was_active=changes.was_active,
        resolved_current=changes.resolved_current,
        resolved_gone=resolved_gone,
    )
    del assets

    stats: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scope": run.scope,
        "run": {
            "id": run.id,
            "started_at": format_rfc3339(run.started_at),
            "finished_at": format_rfc3339(run.finished_at),
            "as_of": format_rfc3339(run.started_at),
            "requests": run.requests,
            "retries": run.retries,
            "throttled": run.throttled,
            "records": {
                VULNERABILITIES: vulnerability_records,
                REMEDIATIONS: remediation_records,
                ASSETS: asset_records,
            },
            "mode": {REMEDIATIONS: run.mode_of(REMEDIATIONS)},
            "exact": not run.warnings,
            "warnings": list(run.warnings),
        },
        "vulnerabilities": summary.section,
        "remediations": remediations_section,
        "assets": assets_section,
        "top": {"cves": summary.top_cves, "assets": top_assets},
        "trend": trend,
        "owners": {"tag_key": run.owner_tag_key, "by_owner": lists.owners},
        "findings": findings_section(lists, previous_as_of_ms=_ms_or_none(previous)),
    }
    return RunStatistics(stats, active_ids, snapshot, lists)


async def _read(
    source: ByteSource, run: RunInfo, resource: str, add: Callable[[dict[str, Any]], None]
) -> None:
    for obj in run.objects:
        if obj.resource == resource:
            async for batch in iter_record_batches(source, obj.key):
                for record in batch:
                    add(record)


async def _load_snapshot(source: ByteSource, previous: HistoryEntry, tally: RemediationTally) -> None:
    try:
        async for row in read_ndjson(source, previous.remediations_key):
            tally.add_snapshot_row(row)
    except MissingObjectError:
        # Lifecycle rules may expire old artefacts; the stats then cover this increment only.
        logger.warning("remediation snapshot of run %s is gone; merging from empty", previous.run_id)


def _named_top_assets(summary: VulnerabilitySummary, assets: AssetTally) -> list[dict[str, Any]]:
    return [
        {**item, "name": assets.name(item["id"]), "asset_type": assets.asset_type(item["id"])}
        for item in summary.top_assets
    ]


@dataclass(slots=True)
class _Changes:
    """The trend section, and which findings it counted, for the new and resolved lists."""

    trend: dict[str, Any]
    was_active: bytearray | None = None  # per row: open in the previous run
    resolved_current: array[int] | None = None  # rows open then, listed but deactivated now
    gone: dict[str, str] | None = None  # id -> severity then, of findings open then and not listed now


async def _trend(
    source: ByteSource,
    previous: HistoryEntry | None,
    now: VulnerabilityTally,
    summary: VulnerabilitySummary,
) -> _Changes:
    """New and resolved active vulnerabilities against `previous`, streaming its active-id list.

    new[s] = active now with severity s - those of them that were active then (by current severity);
    resolved[s] = active then with severity s (then) and not active now.
    """
    empty: dict[str, Any] = {"previous_run": None, "new": None, "resolved": None}
    if previous is None:
        return _Changes(empty)
    columns = now.columns()
    was_active = bytearray(len(columns.flags))
    resolved_current = array("i")
    gone: dict[str, str] = {}
    still_active: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    resolved: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    try:
        async for rid, severity_then in read_ndjson(source, previous.active_key):
            row = columns.rows.get(rid)
            if row is None or not columns.is_active(row):
                resolved[severity_then] = resolved.get(severity_then, 0) + 1
                if row is None:
                    gone[rid] = severity_then
                else:
                    resolved_current.append(row)
            else:
                was_active[row] = 1
                severity_now = columns.severities[columns.severity[row]]
                still_active[severity_now] = still_active.get(severity_now, 0) + 1
    except MissingObjectError:
        logger.warning("active ids of run %s are gone; no trend this run", previous.run_id)
        return _Changes(empty)
    active_now: dict[str, int] = summary.section["by_severity"]
    new = severity_map({sev: count - still_active.get(sev, 0) for sev, count in active_now.items()})
    resolved_map = severity_map(resolved)
    trend = {
        "previous_run": previous.run_id,
        "new": {**new, "total": sum(new.values())},
        "resolved": {**resolved_map, "total": sum(resolved_map.values())},
    }
    return _Changes(trend, was_active, resolved_current, gone)


async def _previous_details(
    source: ByteSource, previous: HistoryEntry | None, gone: dict[str, str]
) -> list[dict[str, Any]]:
    """Resolved rows for findings Vanta no longer lists, from the previous run's open findings; a
    finding that file does not describe (a run from before the lists) keeps its id and severity."""
    found: list[dict[str, Any]] = []
    if previous is not None:
        try:
            async for record in read_ndjson(source, open_findings_key(previous.run_id)):
                if gone.pop(str(record[0]), None) is not None:  # OPEN_FIELDS: the id first
                    found.append(resolved_from_previous(record))
        except MissingObjectError:
            logger.info(
                "run %s has no open-findings file; resolved rows carry id and severity", previous.run_id
            )
    for rid, severity in gone.items():
        found.append(resolved_from_previous({"id": rid, "severity": severity}))
    return found


def _ms_or_none(previous: HistoryEntry | None) -> int | None:
    """The previous run's as_of in epoch ms; None without a previous run (or a start it cannot read)."""
    if previous is None:
        return None
    try:
        return datetime_ms(datetime.fromisoformat(previous.started_at))
    except ValueError:
        logger.warning("previous run %s has no readable start; no newly-overdue list", previous.run_id)
        return None
