"""Finding lists (CSV and NDJSON), owners and the digest's picks, record by record against the
brute-force reference, from the simulator's tenant in moto S3, including a tenant that evolved."""

from __future__ import annotations

import copy
import csv
import gzip
import io
from datetime import timedelta
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig
from vanta_vuln_sync.stats import RunInfo, write_run_outputs
from vanta_vuln_sync.stats.exports import PART_BYTES, upload_stream
from vanta_vuln_sync.stats.finding_lists import LIST_TITLES
from vanta_vuln_sync.stats.findings import BASE_COLUMNS, EXCEPTION_COLUMNS, RESOLVED_COLUMNS

from .helpers import put_raw, utc_from_ts
from .reference import last_by_id, reference_lists
from .test_stats_reference import awkward_extras

VULNS, REMS, ASSETS = "vulnerabilities", "vulnerability-remediations", "vulnerable-assets"
COLUMNS = {name: BASE_COLUMNS for name in LIST_TITLES} | {
    "exceptions": EXCEPTION_COLUMNS,
    "resolved": RESOLVED_COLUMNS,
}


async def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


def expected_cell(value: Any) -> str:
    """What the CSV should hold for a reference value (the documented rules, written apart)."""
    if value is None:
        return ""
    if value is True or value is False:
        return str(value).lower()
    text = " ".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def assert_lists_match(
    s3: Any, bucket: str, run_id: str, stats: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Every list's NDJSON and CSV equal the reference row by row; stats.json's first rows too."""
    section = stats["findings"]["lists"]
    assert list(section) == [name for name in LIST_TITLES if name in expected["lists"]]
    for name, rows in expected["lists"].items():
        ndjson = await get_bytes(s3, bucket, f"runs/{run_id}/findings/{name}.ndjson")
        actual = [orjson.loads(line) for line in ndjson.splitlines()]
        assert len(actual) == len(rows), f"{run_id} {name}: {len(actual)} rows != {len(rows)}"
        for i, (got, want) in enumerate(zip(actual, rows, strict=True)):
            assert got == want, f"{run_id} {name}[{i}]: {got} != {want}"
            assert list(got) == list(COLUMNS[name])
        raw = await get_bytes(s3, bucket, f"runs/{run_id}/findings/{name}.csv")
        assert raw.endswith(b"\r\n")
        table = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        assert table[0] == list(COLUMNS[name])
        assert table[1:] == [[expected_cell(row[c]) for c in COLUMNS[name]] for row in rows], name
        assert section[name]["count"] == len(rows)
        assert section[name]["rows"] == rows[:25]


@pytest.mark.exactness
async def test_lists_owners_and_csv_match_the_reference_when_records_are_awkward(
    s3: Any, bucket: str
) -> None:
    # Given: a tenant's full sync plus what real data holds: re-fetched pages, untagged and unknown
    # assets, an exception about to expire, and names a spreadsheet would run as formulas
    dataset = Simulator(SimulatorConfig(seed=11, vulnerabilities=1200)).dataset
    started = utc_from_ts(dataset.now_ts)
    vulns = dataset.records(VULNS)
    vulns = vulns + awkward_extras(vulns)
    assets = dataset.records(ASSETS)
    untagged = copy.deepcopy(assets[0])
    for scanner in untagged["scanners"]:
        scanner["assetTags"] = [tag for tag in scanner["assetTags"] if tag["key"] != "team"]
    odd = copy.deepcopy(vulns[50:54])
    odd[0]["targetId"] = "asset-nobody-knows"
    odd[1]["name"] = '=HYPERLINK("http://evil.example","click")'
    odd[1]["relatedVulns"] = ["CVE-2024-0001", "-CVE-like"]
    odd[2]["deactivateMetadata"] = {
        "deactivatedBy": "user-1",
        "deactivatedOnDate": "2026-11-01T00:00:00.000Z",
        "deactivationReason": 'Risk accepted, "temporary"\nuntil the migration',
        "deactivatedUntilDate": (started + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "isVulnDeactivatedIndefinitely": False,
    }
    odd[2]["isFixable"] = True
    odd[3]["targetId"] = None
    vulns += odd
    assets += [untagged]
    objects = [
        *await put_raw(s3, bucket, "run-1", VULNS, vulns, per_object=500),
        *await put_raw(s3, bucket, "run-1", REMS, dataset.records(REMS)),
        *await put_raw(s3, bucket, "run-1", ASSETS, assets, per_object=60),
    ]
    run = RunInfo("run-1", "all", started, started + timedelta(minutes=2), objects=objects)

    # When
    stats = await write_run_outputs(s3, bucket, run)

    # Then: every list row by row, the owners, and counts that agree with the statistics
    expected = reference_lists(vulns, assets, started)
    await assert_lists_match(s3, bucket, "run-1", stats, expected)
    lists, sla = stats["findings"]["lists"], stats["vulnerabilities"]["sla"]
    assert (lists["overdue"]["count"], lists["due_7d"]["count"], lists["due_30d"]["count"]) == (
        sla["overdue"],
        sla["due_7d"],
        sla["due_30d"],
    )
    assert lists["exceptions"]["count"] == stats["vulnerabilities"]["deactivated"]
    assert "new" not in lists
    assert "resolved" not in lists
    by_owner = stats["owners"]["by_owner"]
    assert by_owner == expected["owners"]
    assert list(by_owner)[-1] == "unowned"
    assert by_owner["unowned"]["open"] == lists["unowned"]["count"] >= 3
    assert sum(o["open"] for o in by_owner.values()) == stats["vulnerabilities"]["active"]
    assert sum(o["overdue"] for o in by_owner.values()) == sla["overdue"]
    assert stats["owners"]["tag_key"] == "team"
    digest = stats["findings"]["digest"]
    assert digest["expiring_exceptions"]["count"] == expected["digest"]["expiring_exceptions"] == 1
    assert digest["expiring_exceptions"]["rows"][0]["id"] == odd[2]["id"]
    assert digest["new_critical_high"] is None
    assert digest["newly_overdue"] is None
    # Every open finding is kept (full rows) for the next run's resolved list
    open_rows = gzip.decompress(await get_bytes(s3, bucket, "runs/run-1/findings/open.ndjson.gz"))
    open_ids = [orjson.loads(line)[0] for line in open_rows.splitlines()]
    assert sorted(open_ids) == sorted(
        v["id"] for v in last_by_id(vulns).values() if not v["deactivateMetadata"]
    )


async def test_upload_stream_sends_parts_of_the_part_size_and_stores_the_bytes_in_order(
    s3: Any, bucket: str
) -> None:
    # Given: 20 MiB in uneven chunks (more than two parts' worth)
    chunks = [bytes([i % 251]) * (1_000_000 + i) for i in range(20)]

    # When
    size = await upload_stream(s3, bucket, "big.bin", iter(chunks), "application/octet-stream")

    # Then: one object of every byte, in order, made of 8 MiB parts and the rest
    assert size == sum(map(len, chunks))
    assert await get_bytes(s3, bucket, "big.bin") == b"".join(chunks)
    head = await s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=1)
    first_part = sum(map(len, chunks[:9]))  # the first 9 chunks are the first to reach PART_BYTES
    assert sum(map(len, chunks[:8])) < PART_BYTES <= first_part
    assert head["ContentLength"] == first_part
    assert head["PartsCount"] == 3


async def test_a_file_smaller_than_a_part_is_one_put_request(s3: Any, bucket: str) -> None:
    # Given: a list of a few rows, through an S3 client that counts what it is asked
    calls: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(s3, name)

    # When
    size = await upload_stream(Counting(), bucket, "small.csv", iter([b"a,b\r\n", b"1,2\r\n"]), "text/csv")

    # Then: one PutObject stored every byte with its content type (a multipart upload took three)
    assert calls == ["put_object"]
    assert size == 10
    assert await get_bytes(s3, bucket, "small.csv") == b"a,b\r\n1,2\r\n"
    assert (await s3.head_object(Bucket=bucket, Key="small.csv"))["ContentType"] == "text/csv"


@pytest.mark.exactness
async def test_new_and_resolved_lists_equal_the_simulators_evolution_when_the_tenant_changes(
    s3: Any, bucket: str
) -> None:
    # Given: a tenant synced, then synced again after each of two days of change
    sim = Simulator(SimulatorConfig(seed=4, vulnerabilities=1500))
    dataset = sim.dataset
    previous: tuple[list[dict[str, Any]], list[dict[str, Any]], Any] | None = None
    for number in (1, 2, 3):
        change = dataset.evolve(seed=number) if number > 1 else None
        run_id = f"run-{number}"
        started = utc_from_ts(dataset.now_ts)
        vulns, assets = dataset.records(VULNS), dataset.records(ASSETS)
        objects = [
            *await put_raw(s3, bucket, run_id, VULNS, vulns, per_object=400),
            *await put_raw(s3, bucket, run_id, REMS, dataset.records(REMS)),
            *await put_raw(s3, bucket, run_id, ASSETS, assets),
        ]
        run = RunInfo(run_id, "all", started, started + timedelta(minutes=3), objects=objects)

        # When
        stats = await write_run_outputs(s3, bucket, run)

        # Then: the lists are the reference's, row by row
        expected = reference_lists(vulns, assets, started, previous)
        await assert_lists_match(s3, bucket, run_id, stats, expected)
        if change is not None and previous is not None:
            # ... and new / resolved are exactly what the simulator changed, and what the trend counts
            active_now = {v["id"] for v in vulns if v["deactivateMetadata"] is None}
            active_then = {v["id"] for v in previous[0] if v["deactivateMetadata"] is None}
            new_ids = {row["id"] for row in expected["lists"]["new"]}
            resolved_ids = {row["id"] for row in expected["lists"]["resolved"]}
            assert new_ids == {rid for rid in change.new if rid in active_now}
            assert resolved_ids == {rid for rid in change.fixed + change.deactivated if rid in active_then}
            assert len(new_ids) == stats["trend"]["new"]["total"] > 0
            assert len(resolved_ids) == stats["trend"]["resolved"]["total"] > 0
            resolutions = {row["resolution"] for row in expected["lists"]["resolved"]}
            assert resolutions == {"deactivated", "no_longer_reported"}
            digest = stats["findings"]["digest"]
            assert digest["new_critical_high"]["count"] == expected["digest"]["new_critical_high"]
            assert digest["newly_overdue"]["count"] == expected["digest"]["newly_overdue"] > 0
            assert all(row["severity"] in ("CRITICAL", "HIGH") for row in digest["new_critical_high"]["rows"])
        previous = (vulns, assets, started)
