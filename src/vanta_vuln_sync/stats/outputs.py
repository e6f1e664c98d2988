"""Finalize's statistics step: stats.json, report.html, the per-run artefacts and the history index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .compute import compute_run_statistics
from .exports import (
    CSV_CONTENT_TYPE,
    GZIP_CONTENT_TYPE,
    NDJSON_CONTENT_TYPE,
    MultipartWriter,
    csv_header,
    csv_rows,
    gzip_chunks,
    json_lines_chunks,
    ndjson_lines,
    upload_stream,
)
from .finding_lists import FindingLists
from .findings_section import list_files
from .history import HistoryEntry, load_history, save_history
from .model import FULL_SCOPE, RunInfo, open_findings_key, run_prefix
from .report_html import render_report
from .sources import S3Source
from .timestamps import format_rfc3339

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

STATS_CONTENT_TYPE = "application/json"
REPORT_CONTENT_TYPE = "text/html; charset=utf-8"
TREND_RUNS = 30  # runs the report's trend chart shows
LIST_BATCH = 2000  # list rows rendered and encoded at a time


async def write_run_outputs(s3: S3Client, bucket: str, run: RunInfo) -> dict[str, Any]:
    """Compute `run`'s statistics from its raw objects and publish them; returns the stats.json dict.

    Writes `runs/<id>/stats.json`, `runs/<id>/report.html`, the finding lists
    (`runs/<id>/findings/<list>.csv` and `.ndjson`, and every open finding in `open.ndjson.gz`), the
    run's compact artefacts (`active.ndjson.gz`, `remediations.ndjson.gz`) and its history entry; a
    run of scope "all" also replaces `latest/stats.json` and `latest/report.html` (whose run id names
    the lists, which are not copied). Idempotent: a retried Finalize rewrites the same objects and
    replaces its own history entry. Raises RawObjectError for a corrupt raw object and botocore's
    ClientError when S3 refuses a request.
    """
    history = await load_history(s3, bucket, run.scope)
    started = format_rfc3339(run.started_at)
    previous = history.previous(run.id, started)
    computed = await compute_run_statistics(S3Source(s3, bucket), run, previous)
    stats = computed.stats

    prefix = run_prefix(run.id)
    active_key, remediations_key = f"{prefix}active.ndjson.gz", f"{prefix}remediations.ndjson.gz"
    # Artefacts first, history last: an entry never names artefacts that are not there yet.
    await _put(s3, bucket, active_key, computed.active_ids, "application/gzip")
    await _put(s3, bucket, remediations_key, computed.remediation_snapshot, "application/gzip")
    if computed.findings is not None:
        await write_finding_lists(s3, bucket, prefix, computed.findings)
        await upload_stream(
            s3,
            bucket,
            open_findings_key(run.id),
            gzip_chunks(json_lines_chunks(computed.findings.iter_open()), level=1),
            GZIP_CONTENT_TYPE,
        )
    history.record(
        HistoryEntry(
            run_id=run.id,
            started_at=started,
            finished_at=format_rfc3339(run.finished_at),
            active_key=active_key,
            remediations_key=remediations_key,
            headline=headline(stats),
        )
    )
    stats_body = orjson.dumps(stats, option=orjson.OPT_INDENT_2)
    report_body = render_report(stats, history.entries[-TREND_RUNS:]).encode()
    await _put(s3, bucket, f"{prefix}stats.json", stats_body, STATS_CONTENT_TYPE)
    await _put(s3, bucket, f"{prefix}report.html", report_body, REPORT_CONTENT_TYPE)
    if run.scope == FULL_SCOPE and history.entries[-1].run_id == run.id:
        # `latest/` only moves forward: a late retry of an older run leaves it alone.
        await _put(s3, bucket, "latest/stats.json", stats_body, STATS_CONTENT_TYPE)
        await _put(s3, bucket, "latest/report.html", report_body, REPORT_CONTENT_TYPE)
    await save_history(s3, bucket, history)
    return stats


def headline(stats: dict[str, Any]) -> dict[str, Any]:
    """The few numbers per run the history keeps for the trend chart."""
    vulns = stats["vulnerabilities"]
    trend = stats["trend"]
    return {
        "active": vulns["active"],
        "by_severity": vulns["by_severity"],
        "overdue": vulns["sla"]["overdue"],
        "due_7d": vulns["sla"]["due_7d"],
        "remediations": stats["remediations"]["total"],
        "new": None if trend["new"] is None else trend["new"]["total"],
        "resolved": None if trend["resolved"] is None else trend["resolved"]["total"],
    }


async def write_finding_lists(s3: S3Client, bucket: str, prefix: str, lists: FindingLists) -> None:
    """Each list as `<prefix>findings/<name>.csv` and `.ndjson`, both from one rendering of each row,
    streamed (see exports.py)."""
    for name, found in lists.lists.items():
        csv_name, ndjson_name = list_files(name)
        as_csv = MultipartWriter(s3, bucket, f"{prefix}{csv_name}", CSV_CONTENT_TYPE)
        as_ndjson = MultipartWriter(s3, bucket, f"{prefix}{ndjson_name}", NDJSON_CONTENT_TYPE)
        await as_csv.write(csv_header(found.columns))
        batch: list[dict[str, Any]] = []
        for row in lists.iter_rows(name):
            batch.append(row)
            if len(batch) >= LIST_BATCH:
                await as_csv.write(csv_rows(batch))
                await as_ndjson.write(ndjson_lines(batch))
                batch = []
        if batch:
            await as_csv.write(csv_rows(batch))
            await as_ndjson.write(ndjson_lines(batch))
        await as_csv.close()
        await as_ndjson.close()


async def _put(s3: S3Client, bucket: str, key: str, body: bytes, content_type: str) -> None:
    await s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
