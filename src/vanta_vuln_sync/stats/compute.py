"""One run's statistics from its raw objects: each object streamed exactly once, in resource order.

Vulnerabilities are read first so the assets pass knows which asset names the report needs. Each
resource's tally is reduced to its summary and its artefact (compressed bytes) and dropped before the
next resource is read, so peak memory is the largest single tally, not their sum. The previous run's
artefacts (active ids, remediation snapshot) are streamed, never loaded whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .artifacts import gzip_ndjson, read_ndjson
from .assets import AssetTally
from .history import HistoryEntry
from .model import ASSETS, REMEDIATIONS, SCHEMA_VERSION, SEVERITIES, VULNERABILITIES, RunInfo, severity_map
from .remediations import RemediationTally
from .sources import ByteSource, MissingObjectError, iter_record_batches
from .timestamps import datetime_ms, format_rfc3339
from .vulnerabilities import VulnerabilitySummary, VulnerabilityTally

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunStatistics:
    """The stats.json document and the run's compact artefacts, gzip NDJSON ready to store:
    `active_ids` (`[id, severity]` of every active vulnerability, for the next run's trend) and
    `remediation_snapshot` (every known remediation, for the next incremental merge)."""

    stats: dict[str, Any]
    active_ids: bytes
    remediation_snapshot: bytes


async def compute_run_statistics(
    source: ByteSource, run: RunInfo, previous: HistoryEntry | None
) -> RunStatistics:
    """Statistics of `run` (schema version 1) from its raw objects in `source`.

    `previous` is the previous successful run of the same scope (None on the first run): the trend is
    computed against it, and an incremental remediation sync is merged onto its snapshot.
    Raises RawObjectError for a raw object that is not gzip NDJSON, ValueError for a malformed date.
    """
    vulnerabilities = VulnerabilityTally()
    await _read(source, run, VULNERABILITIES, vulnerabilities.add)
    summary = vulnerabilities.summarize(datetime_ms(run.started_at))
    trend = await _trend(source, previous, vulnerabilities, summary)
    active_ids = gzip_ndjson(vulnerabilities.active_ids())
    vulnerability_records = vulnerabilities.records
    del vulnerabilities  # the largest tally: gone before the next one grows

    assets = AssetTally(wanted=[item["id"] for item in summary.top_assets])
    await _read(source, run, ASSETS, assets.add)
    assets_section = assets.summarize(summary.critical_targets)
    top_assets = _named_top_assets(summary, assets)
    asset_records = assets.records
    del assets

    remediations = RemediationTally()
    if run.mode_of(REMEDIATIONS) == "incremental" and previous is not None:
        await _load_snapshot(source, previous, remediations)
    await _read(source, run, REMEDIATIONS, remediations.add)
    remediations_section = remediations.summarize()
    snapshot = gzip_ndjson(remediations.snapshot_rows())
    remediation_records = remediations.records
    del remediations

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
    }
    return RunStatistics(stats, active_ids, snapshot)


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
        {**item, "name": assets.names.get(item["id"]), "asset_type": assets.asset_type(item["id"])}
        for item in summary.top_assets
    ]


async def _trend(
    source: ByteSource,
    previous: HistoryEntry | None,
    now: VulnerabilityTally,
    summary: VulnerabilitySummary,
) -> dict[str, Any]:
    """New and resolved active vulnerabilities against `previous`, streaming its active-id list.

    new[s] = active now with severity s - those of them that were active then (by current severity);
    resolved[s] = active then with severity s (then) and not active now.
    """
    empty: dict[str, Any] = {"previous_run": None, "new": None, "resolved": None}
    if previous is None:
        return empty
    still_active: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    resolved: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    try:
        async for rid, severity_then in read_ndjson(source, previous.active_key):
            severity_now = now.active_severity(rid)
            if severity_now is None:
                resolved[severity_then] = resolved.get(severity_then, 0) + 1
            else:
                still_active[severity_now] = still_active.get(severity_now, 0) + 1
    except MissingObjectError:
        logger.warning("active ids of run %s are gone; no trend this run", previous.run_id)
        return empty
    active_now: dict[str, int] = summary.section["by_severity"]
    new = severity_map({sev: count - still_active.get(sev, 0) for sev, count in active_now.items()})
    resolved_map = severity_map(resolved)
    return {
        "previous_run": previous.run_id,
        "new": {**new, "total": sum(new.values())},
        "resolved": {**resolved_map, "total": sum(resolved_map.values())},
    }
