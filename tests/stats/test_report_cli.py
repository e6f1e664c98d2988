"""`vuln-sync report` against a bucket in moto server, found directly or through a stack's outputs."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from vanta_vuln_sync.cli import main

from .helpers import sync_runs


def published_runs(endpoint: str, runs: int) -> tuple[str, list[dict[str, Any]]]:
    """A fresh bucket holding `runs` finished runs (none: just the bucket); (bucket, their stats)."""

    async def publish() -> tuple[str, list[dict[str, Any]]]:
        async with get_session().create_client("s3", endpoint_url=endpoint) as s3:
            bucket = f"data-{uuid.uuid4().hex[:12]}"
            await s3.create_bucket(Bucket=bucket)
            return bucket, await sync_runs(s3, bucket, runs=runs, vulnerabilities=200) if runs else []

    return asyncio.run(publish())


@pytest.fixture
def endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def test_report_prints_headline_and_saves_files_when_stack_names_the_bucket(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: two runs in a bucket that a deployed stack names in its outputs
    bucket, stats = published_runs(endpoint, runs=2)
    stack = f"vuln-sync-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"DataBucketName": {"Value": bucket}},
    }
    boto3.client("cloudformation", endpoint_url=endpoint).create_stack(
        StackName=stack, TemplateBody=json.dumps(template)
    )
    monkeypatch.setenv("VULN_SYNC_STACK", stack)
    monkeypatch.setenv("COLUMNS", "160")

    # When
    code = main(["report", "--run", "latest", "--out", str(tmp_path)])

    # Then
    out = capsys.readouterr().out
    latest = stats[-1]
    assert code == 0
    assert latest["run"]["id"] in out
    assert f"{latest['vulnerabilities']['by_severity']['MEDIUM']:,}" in out
    assert f"{latest['trend']['new']['total']:,}" in out
    assert json.loads((tmp_path / "stats.json").read_text()) == latest
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_report_fetches_an_older_run_by_id_in_plain_text_when_rich_is_missing(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, stats = published_runs(endpoint, runs=2)
    first = stats[0]["run"]["id"]
    monkeypatch.setitem(sys.modules, "rich.console", None)  # `import rich.console` now fails

    code = main(["report", "--run", first, "--bucket", bucket, "--out", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert json.loads((tmp_path / "stats.json").read_text())["run"]["id"] == first
    assert out.startswith(f"run {first}")
    critical = next(line for line in out.splitlines() if line.startswith("Critical"))
    assert critical.split()[1] == f"{stats[0]['vulnerabilities']['by_severity']['CRITICAL']:,}"


@pytest.mark.parametrize("run", ["no-such-run", "../latest", "runs/x"])
def test_report_fails_with_one_line_and_exit_2_when_run_is_unknown_or_malformed(
    endpoint: str, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, _ = published_runs(endpoint, runs=0)

    code = main(["report", "--run", run, "--bucket", bucket])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vuln-sync: error: ")
    assert err.count("\n") == 1


def test_report_says_which_stack_is_missing_when_no_stack_or_bucket_is_given(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--run", "latest"]) == 2
    assert "--stack" in capsys.readouterr().err
