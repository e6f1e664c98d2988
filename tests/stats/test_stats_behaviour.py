"""Smaller promises of the stats step: quantiles, reading raw objects, scopes, retries, the snapshot."""

from __future__ import annotations

import gzip
import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics
from hypothesis import given
from hypothesis import strategies as st

from vanta_vuln_sync.stats import (
    DirectorySource,
    RawObject,
    RawObjectError,
    RunInfo,
    compute_run_statistics,
    emit_metrics,
    write_run_outputs,
)
from vanta_vuln_sync.stats.quantiles import quantile
from vanta_vuln_sync.stats.sources import iter_records

from .helpers import get_json, get_text, gz_ndjson, put_raw

START = datetime(2026, 11, 26, 6, tzinfo=UTC)
REMS = "vulnerability-remediations"


def remediation(rid: str, severity: str, days_to_fix: float) -> dict[str, Any]:
    detected = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "id": rid,
        "severity": severity,
        "detectedDate": detected.isoformat().replace("+00:00", "Z"),
        "slaDeadlineDate": (detected + timedelta(days=7)).isoformat().replace("+00:00", "Z"),
        "remediationDate": (detected + timedelta(days=days_to_fix)).isoformat().replace("+00:00", "Z"),
    }


def vulnerability(rid: str, severity: str = "HIGH", **fields: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "name": f"CVE-2026-{rid}",
        "severity": severity,
        "targetId": "asset-1",
        "integrationId": "aws",
        "firstDetectedDate": "2026-11-01T00:00:00.000Z",
        "remediateByDate": "2026-12-01T00:00:00.000Z",
        "deactivateMetadata": None,
        **fields,
    }


def run(run_id: str, objects: list[RawObject], *, scope: str = "all", day: int = 0, **mode: Any) -> RunInfo:
    started = START + timedelta(days=day)
    return RunInfo(run_id, scope, started, started + timedelta(minutes=1), objects=objects, mode=mode)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0, 2.0, 3.0, 4.0], 0.5, 2.5), ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7), ([5.0], 0.9, 5.0), ([], 0.5, None)],
)
def test_quantile_interpolates_linearly_between_closest_ranks(
    values: list[float], q: float, expected: float | None
) -> None:
    assert quantile(values, q) == pytest.approx(expected)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=2, max_size=60))
def test_quantile_agrees_with_statistics_inclusive_method_for_any_data(values: list[float]) -> None:
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    ordered = sorted(values)
    assert quantile(ordered, 0.5) == pytest.approx(cuts[4], abs=1e-6)
    assert quantile(ordered, 0.9) == pytest.approx(cuts[8], abs=1e-6)
    assert ordered[0] <= quantile(ordered, 0.9) <= ordered[-1]  # type: ignore[operator]


async def test_records_are_read_across_gzip_members_and_chunk_boundaries(s3: Any, bucket: str) -> None:
    from vanta_vuln_sync.stats import S3Source

    records = [vulnerability(str(i), description="x" * 900) for i in range(3000)]
    body = gz_ndjson(records[:1000]) + gz_ndjson(records[1000:])  # two members, > 1 MiB chunks
    await s3.put_object(Bucket=bucket, Key="raw/two-members.gz", Body=body)

    read = [r async for r in iter_records(S3Source(s3, bucket), "raw/two-members.gz")]

    assert read == records


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (gz_ndjson([{"id": "1"}])[:-12], "truncated"),
        (gzip.compress(b'{"id": "1"}\n{"id": \n'), "line 2 is not valid JSON"),
        (gzip.compress(b"[1, 2]\n"), "line 1 is not a JSON object"),
        (b"plain text", "not a gzip object"),
    ],
    ids=["truncated", "bad-json", "not-an-object", "not-gzip"],
)
async def test_corrupt_raw_object_fails_naming_the_object_when_read(
    s3: Any, bucket: str, body: bytes, message: str
) -> None:
    await s3.put_object(Bucket=bucket, Key="raw/bad.gz", Body=body)

    with pytest.raises(RawObjectError, match=message) as caught:
        await write_run_outputs(s3, bucket, run("r", [RawObject("vulnerabilities", "raw/bad.gz", 1)]))

    assert "raw/bad.gz" in str(caught.value)


async def test_targeted_scope_keeps_its_own_history_and_leaves_latest_alone(s3: Any, bucket: str) -> None:
    full = await put_raw(s3, bucket, "full", "vulnerabilities", [vulnerability("1"), vulnerability("2")])
    targeted = await put_raw(s3, bucket, "crit", "vulnerabilities", [vulnerability("9", "CRITICAL")])

    await write_run_outputs(s3, bucket, run("full", full))
    stats = await write_run_outputs(s3, bucket, run("crit", targeted, scope="severity=CRITICAL", day=1))

    assert stats["trend"]["previous_run"] is None  # the full run is another scope
    assert (await get_json(s3, bucket, "latest/stats.json"))["run"]["id"] == "full"
    history = await get_json(s3, bucket, "history/scope=severity%3DCRITICAL.json")
    assert [entry["run_id"] for entry in history["runs"]] == ["crit"]


async def test_retried_finalize_gives_the_same_stats_and_one_history_entry(s3: Any, bucket: str) -> None:
    first = await put_raw(s3, bucket, "a", "vulnerabilities", [vulnerability("1"), vulnerability("2")])
    second = await put_raw(s3, bucket, "b", "vulnerabilities", [vulnerability("2"), vulnerability("3")])
    await write_run_outputs(s3, bucket, run("a", first))

    once = await write_run_outputs(s3, bucket, run("b", second, day=1))
    again = await write_run_outputs(s3, bucket, run("b", second, day=1))

    assert once == again
    assert once["trend"]["new"]["total"] == 1
    assert once["trend"]["resolved"]["total"] == 1
    history = await get_json(s3, bucket, "history/scope=all.json")
    assert [entry["run_id"] for entry in history["runs"]] == ["a", "b"]


async def test_full_remediation_sync_replaces_what_increments_merged(s3: Any, bucket: str) -> None:
    # Given: a full sync of two remediations, then an increment that updates one and adds another
    day0 = await put_raw(s3, bucket, "r0", REMS, [remediation("a", "high", 3), remediation("b", "low", 30)])
    day1 = await put_raw(
        s3, bucket, "r1", REMS, [remediation("b", "low", 5), remediation("c", "critical", 1)]
    )
    day2 = await put_raw(s3, bucket, "r2", REMS, [remediation("c", "critical", 2)])
    await write_run_outputs(s3, bucket, run("r0", day0, **{REMS: "full"}))

    # When
    merged = await write_run_outputs(s3, bucket, run("r1", day1, day=1, **{REMS: "incremental"}))
    replaced = await write_run_outputs(s3, bucket, run("r2", day2, day=2, **{REMS: "full"}))

    # Then: the increment merged by id (newer wins), the full run starts over
    assert merged["remediations"]["total"] == 3
    assert merged["remediations"]["by_severity"] == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 0, "LOW": 1}
    assert merged["remediations"]["on_time"] == 3  # b's newer record (5 days) replaced the late one
    assert merged["remediations"]["late"] == 0
    assert merged["run"]["mode"] == {REMS: "incremental"}
    assert replaced["remediations"]["total"] == 1
    assert replaced["remediations"]["mttr_days"]["CRITICAL"] == {"p50": 2.0, "p90": 2.0, "mean": 2.0}


async def test_metrics_carry_open_and_overdue_counts_per_severity(
    s3: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overdue = {"remediateByDate": "2026-11-01T00:00:00.000Z"}
    objects = await put_raw(
        s3, bucket, "m", "vulnerabilities", [vulnerability("1", "CRITICAL", **overdue), vulnerability("2")]
    )
    stats = await write_run_outputs(s3, bucket, run("m", objects))
    metrics = Metrics(namespace="VantaVulnSyncTest", service="vanta-vuln-sync")

    emit_metrics(metrics, stats)
    metrics.flush_metrics()

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert all(blob["service"] == "vanta-vuln-sync" for blob in blobs)  # the dashboard's dimensions
    per_severity = {
        (name, blob["Severity"]): blob[name][0]
        for blob in blobs
        if "Severity" in blob
        for name in ("OpenVulnerabilities", "OverdueVulnerabilities")
        if name in blob
    }
    assert per_severity[("OpenVulnerabilities", "CRITICAL")] == 1
    assert per_severity[("OpenVulnerabilities", "HIGH")] == 1
    assert per_severity[("OpenVulnerabilities", "LOW")] == 0
    assert per_severity[("OverdueVulnerabilities", "CRITICAL")] == 1
    assert per_severity[("OverdueVulnerabilities", "HIGH")] == 0
    assert any(blob.get("OverdueVulnerabilities") == [1.0] and "Severity" not in blob for blob in blobs)


async def test_empty_run_gives_zeros_nulls_and_a_report(s3: Any, bucket: str) -> None:
    stats = await write_run_outputs(s3, bucket, run("empty", []))

    vulns = stats["vulnerabilities"]
    assert vulns["by_severity"] == {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0}
    assert vulns["age_days"]["CRITICAL"] == {"p50": None, "p90": None}
    assert vulns["cvss_mean"]["LOW"] is None
    assert stats["remediations"]["mttr_days"]["HIGH"] == {"p50": None, "p90": None, "mean": None}
    assert stats["top"] == {"cves": [], "assets": []}
    html = await get_text(s3, bucket, "runs/empty/report.html")
    assert "No open vulnerabilities." in html


async def test_trend_is_null_when_previous_run_artefacts_have_expired(s3: Any, bucket: str) -> None:
    first = await put_raw(s3, bucket, "a", "vulnerabilities", [vulnerability("1")])
    await write_run_outputs(s3, bucket, run("a", first))
    await s3.delete_object(Bucket=bucket, Key="runs/a/active.ndjson.gz")

    stats = await write_run_outputs(s3, bucket, run("b", first, day=1))

    assert stats["trend"] == {"previous_run": None, "new": None, "resolved": None}


async def test_directory_source_computes_what_s3_does_for_the_benchmark(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    records = [vulnerability(str(i), ["LOW", "HIGH", "CRITICAL"][i % 3]) for i in range(50)]
    objects = await put_raw(s3, bucket, "d", "vulnerabilities", records, per_object=20)
    for seq, obj in enumerate(objects):
        (tmp_path / obj.key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / obj.key).write_bytes(gz_ndjson(records[seq * 20 : seq * 20 + 20]))

    from_s3 = await write_run_outputs(s3, bucket, run("d", objects))
    from_directory = await compute_run_statistics(DirectorySource(tmp_path), run("d", objects), None)

    assert from_directory.stats == from_s3
