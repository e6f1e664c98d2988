"""Audit questions over published runs: which full run stood on a given date, and how remediation went
over a window of time (on-time rate by severity, MTTR), from a run's merged remediation snapshot."""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import ClientError

from .model import FULL_SCOPE, severity_map
from .quantiles import mean, quantile, rounded
from .timestamps import MS_PER_DAY

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

RUN_STAMP = "%Y%m%dT%H%M%SZ"  # run ids start with their start time (run/schedule.py)


def run_started(run_id: str) -> datetime | None:
    """The start time a run id begins with, None when it does not begin with one."""
    try:
        return datetime.strptime(run_id[:16], RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


async def run_ids(s3: S3Client, bucket: str) -> AsyncIterator[str]:
    """Every run with outputs under `runs/` (successful or not, any scope)."""
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix="runs/", Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            yield prefix["Prefix"][len("runs/") : -1]


async def full_run_as_of(s3: S3Client, bucket: str, cutoff: datetime) -> dict[str, Any] | None:
    """stats.json of the last successful full run (scope "all") that started at or before `cutoff`;
    None when there is none. Runs are tried newest first; one without stats.json did not succeed."""
    candidates = []
    async for run_id in run_ids(s3, bucket):
        started = run_started(run_id)
        if started is not None and started <= cutoff:
            candidates.append((started, run_id))
    for _, run_id in sorted(candidates, reverse=True):
        try:
            response = await s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/stats.json")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                continue
            raise
        async with response["Body"] as body:
            stats: dict[str, Any] = orjson.loads(await body.read())
        if stats.get("scope") == FULL_SCOPE:
            return stats
    return None


def remediation_window(rows: Iterable[list[Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Remediations fixed in [start, end) from snapshot rows `[id, severity, detected_ms, deadline_ms,
    remediated_ms]`: per severity (and in total) how many, how many on time / late / without an SLA,
    the on-time rate among those with an SLA (percent, 1 decimal), and days to fix (p50, p90, mean)."""
    start_ms, end_ms = _ms(start), _ms(end)
    counts: dict[str, list[int]] = {}
    days: dict[str, array[float]] = {}
    for _, severity, detected, deadline, remediated in rows:
        if remediated is None or not start_ms <= remediated < end_ms:
            continue
        tally = counts.setdefault(severity, [0, 0, 0, 0])
        tally[0] += 1
        if deadline is None:
            tally[3] += 1
        elif remediated <= deadline:
            tally[1] += 1
        else:
            tally[2] += 1
        if detected is not None:
            days.setdefault(severity, array("d")).append((remediated - detected) / MS_PER_DAY)
    order = list(severity_map(dict.fromkeys(counts, 0)))
    by_severity = {sev: _summary(counts.get(sev, [0, 0, 0, 0]), days.get(sev, array("d"))) for sev in order}
    everything = [sum(c[i] for c in counts.values()) for i in range(4)]
    all_days = array("d", (d for values in days.values() for d in values))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "by_severity": by_severity,
        "total": _summary(everything, all_days),
    }


def _summary(tally: list[int], days: array[float]) -> dict[str, Any]:
    fixed, on_time, late, no_sla = tally
    ordered = sorted(days)
    decided = on_time + late
    return {
        "remediated": fixed,
        "on_time": on_time,
        "late": late,
        "no_sla": no_sla,
        "on_time_percent": None if not decided else round(100 * on_time / decided, 1),
        "mttr_days": {
            "p50": rounded(quantile(ordered, 0.5)),
            "p90": rounded(quantile(ordered, 0.9)),
            "mean": rounded(mean(ordered)),
        },
    }


def _ms(moment: datetime) -> int:
    return round(moment.astimezone(UTC).timestamp() * 1000)
