"""Copying a run's outputs out of the bucket, peeking at DLQs, and naming the run a request starts."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3

from vanta_vuln_sync.local.progress import PlainProgress, Snapshot
from vanta_vuln_sync.ops.outputs import copy_run_outputs, peek_dlq
from vanta_vuln_sync.ops.runs import candidate_run_ids
from vanta_vuln_sync.run.schedule import run_id_for

RUN = "20261126T060000Z-abcdef0123"


def _bucket_with_a_run(aws: str) -> tuple[object, str]:
    s3 = boto3.client("s3")
    bucket = f"data-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    raw = f"raw/resource=vulnerabilities/dt=2026-11-26/run={RUN}/o00000-00000.ndjson.gz"
    manifest = {"run_id": RUN, "objects": [{"resource": "vulnerabilities", "key": raw, "records": 1}]}
    s3.put_object(Bucket=bucket, Key=f"runs/{RUN}/manifest.json", Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=bucket, Key=f"runs/{RUN}/stats.json", Body=b'{"vulnerabilities": {"total": 1}}')
    s3.put_object(Bucket=bucket, Key=f"runs/{RUN}/report.html", Body=b"<!doctype html>")
    s3.put_object(Bucket=bucket, Key=raw, Body=b"gz")
    other = (
        "raw/resource=vulnerabilities/dt=2026-11-25/run=20261125T060000Z-0000000000/o00000-00000.ndjson.gz"
    )
    s3.put_object(Bucket=bucket, Key=other, Body=b"another run")
    return s3, bucket


def test_copy_mirrors_the_s3_layout_and_only_this_runs_raw_objects(aws: str, tmp_path: Path) -> None:
    s3, bucket = _bucket_with_a_run(aws)
    copied = copy_run_outputs(s3, bucket, RUN, tmp_path)  # type: ignore[arg-type]
    assert copied.report == tmp_path / "report.html"
    assert copied.stats == {"vulnerabilities": {"total": 1}}
    raw = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "raw").rglob("*.gz"))
    assert raw == [f"raw/resource=vulnerabilities/dt=2026-11-26/run={RUN}/o00000-00000.ndjson.gz"]


def test_copy_replaces_raw_of_an_earlier_run_when_out_already_holds_one(aws: str, tmp_path: Path) -> None:
    s3, bucket = _bucket_with_a_run(aws)
    (tmp_path / "manifest.json").write_text("{}")
    stale = tmp_path / "raw/resource=vulnerabilities/dt=2020-01-01/run=old/o.ndjson.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    copy_run_outputs(s3, bucket, RUN, tmp_path)  # type: ignore[arg-type]
    assert not stale.exists()


def test_peek_shows_reason_and_leaves_messages_on_the_dlq(aws: str) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"v": 2}',
        MessageAttributes={"reason": {"DataType": "String", "StringValue": "unsupported message version 2"}},
    )
    assert peek_dlq(sqs, url) == ['unsupported message version 2: {"v": 2}']
    assert peek_dlq(sqs, url) == ['unsupported message version 2: {"v": 2}'], "still there"


def test_candidate_run_ids_include_the_id_the_scheduler_gives_when_sent_within_the_window() -> None:
    sent = datetime(2026, 11, 26, 6, 0, 1, tzinfo=UTC)
    candidates = candidate_run_ids("message-1", sent.timestamp() - 0.4, sent.timestamp() + 0.3)
    assert run_id_for("message-1", sent) in candidates
    assert len(candidates) <= 8


def test_plain_progress_prints_a_line_per_phase_and_at_most_every_interval() -> None:
    stream = io.StringIO()
    view = PlainProgress(stream, every=60.0)
    view.show(Snapshot(elapsed=0.0, phase="planning"))
    view.show(Snapshot(elapsed=0.5, phase="planning"))
    view.show(
        Snapshot(
            elapsed=1.0,
            phase="syncing",
            ranges_done=3,
            ranges_total=10,
            pages=7,
            records=700,
            requests=9,
            throttled=1,
            rate_per_minute=540.0,
            rate_limit=600,
        )
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "ranges 3/10 | pages 7 | records 700 | requests 9 | 429s 1 | rate 540/600 per min" in lines[1]
