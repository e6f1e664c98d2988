"""Helpers for the statistics tests: raw objects in S3, reading outputs back, comparing with the reference."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson

from vanta_vuln_sync.stats import RawObject


def gz_ndjson(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records))


async def put_raw(
    s3: Any,
    bucket: str,
    run_id: str,
    resource: str,
    records: list[dict[str, Any]],
    *,
    per_object: int = 250,
) -> list[RawObject]:
    """Write `records` as the pipeline does (gzip NDJSON objects of `per_object` records); the manifest
    entries for them."""
    objects = []
    for seq, start in enumerate(range(0, len(records), per_object)):
        chunk = records[start : start + per_object]
        key = f"raw/resource={resource}/dt=2026-11-26/run={run_id}/all-{seq:05d}.ndjson.gz"
        await s3.put_object(Bucket=bucket, Key=key, Body=gz_ndjson(chunk))
        objects.append(RawObject(resource=resource, key=key, records=len(chunk)))
    return objects


def utc_from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


async def get_json(s3: Any, bucket: str, key: str) -> Any:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return orjson.loads(await body.read())


async def get_text(s3: Any, bucket: str, key: str) -> str:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data.decode()


def assert_matches(actual: Any, expected: Any, path: str = "stats") -> None:
    """Field-by-field equality; a float must be the reference's exact value rounded to 2 decimals
    (|actual - exact| <= 0.005, and actual has at most 2 decimals)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_matches(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, (int, float)), f"{path}: expected a number, got {actual!r}"
        assert abs(actual - expected) <= 0.005 + 1e-9, f"{path}: {actual} is not {expected} rounded"
        assert round(actual, 2) == actual, f"{path}: {actual} has more than 2 decimals"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


async def sync_runs(
    s3: Any, bucket: str, *, runs: int, vulnerabilities: int, seed: int = 5, scope: str = "all"
) -> list[dict[str, Any]]:
    """Full syncs of a simulated tenant that changes by a day between runs, through write_run_outputs;
    the stats of each run, oldest first."""
    from datetime import timedelta

    from vanta_vuln_sync.simulator import Simulator, SimulatorConfig
    from vanta_vuln_sync.stats import RunInfo, write_run_outputs

    dataset = Simulator(SimulatorConfig(seed=seed, vulnerabilities=vulnerabilities)).dataset
    results = []
    for number in range(runs):
        if number:
            dataset.evolve(seed=number)
        started = utc_from_ts(dataset.now_ts)
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{scope}-{number}"
        objects = []
        for resource in ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets"):
            objects += await put_raw(s3, bucket, run_id, resource, dataset.records(resource), per_object=1000)
        run = RunInfo(run_id, scope, started, started + timedelta(minutes=5), 120, 2, 1, objects)
        results.append(await write_run_outputs(s3, bucket, run))
    return results
