"""Statistics, trends and the HTML report of a run (see ARCHITECTURE.md, "Stats").

Finalize calls `write_run_outputs(s3, bucket, run)`, then `emit_metrics(metrics, stats)` and
`send_digest(s3, bucket, stats, topic_arn=...)` once the run is marked succeeded.
"""

from __future__ import annotations

from .compute import RunStatistics, compute_run_statistics
from .digest import send_digest
from .metrics import emit_metrics
from .model import FULL_SCOPE, SCHEMA_VERSION, SEVERITIES, RawObject, RunInfo
from .outputs import write_run_outputs
from .report_html import render_report
from .sources import ByteSource, DirectorySource, MissingObjectError, RawObjectError, S3Source

__all__ = [
    "FULL_SCOPE",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "ByteSource",
    "DirectorySource",
    "MissingObjectError",
    "RawObject",
    "RawObjectError",
    "RunInfo",
    "RunStatistics",
    "S3Source",
    "compute_run_statistics",
    "emit_metrics",
    "render_report",
    "send_digest",
    "write_run_outputs",
]
