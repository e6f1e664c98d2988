"""`vuln-sync report` against a bucket in moto server, found directly or through a stack's outputs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import statistics
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

from .helpers import assert_matches, sync_runs
from .reference import days, last_by_id, pct, per_severity, sev, when
from .test_finding_lists import COLUMNS


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


def test_report_as_of_a_day_saves_that_days_full_run_with_its_lists(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: three daily full runs
    bucket, stats = published_runs(endpoint, runs=3)
    second = stats[1]
    day = second["run"]["as_of"][:10]

    # When: the auditor asks for the state on the second day
    code = main(["report", "--as-of", day, "--bucket", bucket, "--out", str(tmp_path)])

    # Then: that run's stats, report and every list, as stored, with the documented CSV columns
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads((tmp_path / "stats.json").read_text()) == second
    assert second["run"]["id"] in out
    lists = second["findings"]["lists"]
    assert set(lists) >= {"overdue", "due_7d", "due_30d", "new", "resolved", "exceptions"}
    for name, listed in lists.items():
        text = (tmp_path / listed["csv"]).read_bytes().decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert len(rows) == listed["count"], name
        assert list(rows[0] if rows else COLUMNS[name]) == list(COLUMNS[name])
        ndjson = (tmp_path / listed["ndjson"]).read_text().splitlines()
        assert [json.loads(line) for line in ndjson][:25] == listed["rows"]


def test_report_as_of_a_day_before_any_run_fails_with_one_line(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, _ = published_runs(endpoint, runs=1)

    code = main(["report", "--as-of", "2020-01-01", "--bucket", bucket])

    assert code == 2
    assert capsys.readouterr().err.startswith("vuln-sync: error: no successful full run started on or before")


def test_report_window_gives_on_time_rate_and_mttr_by_severity_as_the_tenants_remediations_say(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: three daily runs, and the tenant's own remediations (the same tenant, evolved the same way)
    bucket, _ = published_runs(endpoint, runs=3)
    dataset = Simulator(SimulatorConfig(seed=5, vulnerabilities=200)).dataset
    for number in (1, 2):
        dataset.evolve(seed=number)
    start, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC)

    # When
    code = main(
        ["report", "--from", "2026-06-01", "--to", "2026-11-27", "--bucket", bucket, "--out", str(tmp_path)]
    )

    # Then
    assert code == 0
    window = json.loads((tmp_path / "remediation-window.json").read_text())
    expected = reference_window(dataset.records("vulnerability-remediations"), start, end)
    assert_matches(window["by_severity"], expected["by_severity"], "by_severity")
    assert_matches(window["total"], expected["total"], "total")
    assert window["total"]["remediated"] > 0
    out = capsys.readouterr().out
    assert "remediations fixed from 2026-06-01T00:00:00+00:00 to 2026-11-28T00:00:00+00:00" in out


def reference_window(remediations: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """On-time counts and days to fix of remediations fixed in [start, end), by brute force."""
    picked = [
        r
        for r in last_by_id(remediations).values()
        if r["remediationDate"] and start <= when(r["remediationDate"]) < end
    ]

    def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
        on_time = sum(
            1
            for r in items
            if r["slaDeadlineDate"] and when(r["remediationDate"]) <= when(r["slaDeadlineDate"])
        )
        late = sum(
            1
            for r in items
            if r["slaDeadlineDate"] and when(r["remediationDate"]) > when(r["slaDeadlineDate"])
        )
        days_ = sorted(
            days(when(r["remediationDate"]), when(r["detectedDate"])) for r in items if r["detectedDate"]
        )
        return {
            "remediated": len(items),
            "on_time": on_time,
            "late": late,
            "no_sla": sum(1 for r in items if not r["slaDeadlineDate"]),
            "on_time_percent": round(100 * on_time / (on_time + late), 1) if on_time + late else None,
            "mttr_days": {
                "p50": pct(days_, 0.5),
                "p90": pct(days_, 0.9),
                "mean": statistics.fmean(days_) if days_ else None,
            },
        }

    severities = per_severity({sev(r): 1 for r in picked})
    return {
        "by_severity": {s: summary([r for r in picked if sev(r) == s]) for s in severities},
        "total": summary(picked),
    }
