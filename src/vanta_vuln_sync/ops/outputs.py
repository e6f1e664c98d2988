"""Copying a run's outputs out of the embedded bucket, and reading what sits in a DLQ."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# What a run leaves under runs/<run_id>/; copied to the top of the output folder.
RUN_FILES = ("stats.json", "report.html", "manifest.json")


@dataclass(frozen=True, slots=True)
class CopiedOutputs:
    """Where the copied files are; `report`/`stats` are None when the run did not write them."""

    files: list[Path]
    report: Path | None
    stats: dict[str, Any] | None


def copy_run_outputs(s3: S3Client, bucket: str, run_id: str, out: Path) -> CopiedOutputs:
    """Copy `runs/<run_id>/*` to `out/` and the run's raw objects to `out/raw/...` (the S3 layout).

    A `raw/` folder left in `out/` by an earlier run (one with a manifest.json beside it) is replaced,
    so `out/raw/` always holds exactly one run's records.
    """
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists() and (out / "raw").is_dir():
        shutil.rmtree(out / "raw")
    files: list[Path] = []
    for key in _keys(s3, bucket, f"runs/{run_id}/"):
        files.append(_download(s3, bucket, key, out / key.removeprefix(f"runs/{run_id}/")))
    manifest_path = out / "manifest.json"
    raw_keys: list[str]
    if manifest_path in files:
        manifest = orjson.loads(manifest_path.read_bytes())
        raw_keys = [str(o["key"]) for o in manifest.get("objects", [])]
    else:
        raw_keys = [k for k in _keys(s3, bucket, "raw/") if f"/run={run_id}/" in k]
    files += [_download(s3, bucket, key, out / key) for key in raw_keys]
    stats_path = out / "stats.json"
    report_path = out / "report.html"
    return CopiedOutputs(
        files=files,
        report=report_path if report_path in files else None,
        stats=orjson.loads(stats_path.read_bytes()) if stats_path in files else None,
    )


def _keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    return [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]


def _download(s3: S3Client, bucket: str, key: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return path


def peek_dlq(sqs: SQSClient, queue_url: str, limit: int = 10) -> list[str]:
    """Up to `limit` messages of a DLQ as one line each (reason attribute, then the body, shortened),
    without taking them off the queue (they become visible again at once)."""
    lines: list[str] = []
    seen: set[str] = set()
    while len(lines) < limit:
        reply = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(lines)),
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
        if not messages:
            return lines
        for message in messages:
            seen.add(message["MessageId"])
            attribute = message.get("MessageAttributes", {}).get("reason")
            reason = attribute.get("StringValue") if attribute else None
            body = message.get("Body", "")
            body = body if len(body) <= 160 else body[:157] + "..."
            lines.append(f"{reason}: {body}" if reason else body)
    return lines
