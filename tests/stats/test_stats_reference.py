"""stats.json against a brute-force reference, from raw objects of the simulator's tenant in moto S3."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig
from vanta_vuln_sync.stats import SEVERITIES, RunInfo, write_run_outputs

from .helpers import assert_matches, get_json, put_raw, utc_from_ts
from .reference import reference_stats

VULNS, REMS, ASSETS = "vulnerabilities", "vulnerability-remediations", "vulnerable-assets"


def awkward_extras(vulns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records real syncs produce besides the simulator's: a page fetched twice (same ids, the later
    copy changed), lower-case severity, a record with no id, nulls where Vanta allows them."""
    again = [copy.deepcopy(v) for v in vulns[:40]]
    for v in again[:10]:
        v["deactivateMetadata"] = {"deactivatedOnDate": "2026-11-20T00:00:00.000Z"}
    for v in again[10:20]:
        v["severity"] = v["severity"].lower()
        v["remediateByDate"] = None
        v["cvssSeverityScore"] = None
    return [*again, {"name": "CVE-0000-0000", "severity": "LOW"}]


@pytest.mark.exactness
async def test_stats_match_brute_force_reference_when_computed_from_a_full_sync(s3: Any, bucket: str) -> None:
    # Given: raw objects of a full sync of a simulated tenant, including duplicates and odd records
    dataset = Simulator(SimulatorConfig(seed=7, vulnerabilities=3000)).dataset
    vulns = dataset.records(VULNS)
    vulns = vulns + awkward_extras(vulns)
    rems, assets = dataset.records(REMS), dataset.records(ASSETS)
    started = utc_from_ts(dataset.now_ts)
    objects = [
        *await put_raw(s3, bucket, "run-1", VULNS, vulns, per_object=700),
        *await put_raw(s3, bucket, "run-1", REMS, rems),
        *await put_raw(s3, bucket, "run-1", ASSETS, assets),
    ]
    run = RunInfo(
        id="run-1",
        scope="all",
        started_at=started,
        finished_at=started + timedelta(minutes=4),
        requests=61,
        retries=2,
        throttled=1,
        objects=objects,
    )

    # When
    stats = await write_run_outputs(s3, bucket, run)

    # Then: every field agrees with the reference, and what was stored is what was returned
    expected = reference_stats(vulns, rems, assets, started)
    for section in ("vulnerabilities", "remediations", "assets", "top"):
        assert_matches(stats[section], expected[section], section)
    assert stats["trend"] == {"previous_run": None, "new": None, "resolved": None}
    assert stats["run"] == {
        "id": "run-1",
        "started_at": "2026-11-26T00:00:00.000Z",
        "finished_at": "2026-11-26T00:04:00.000Z",
        "as_of": "2026-11-26T00:00:00.000Z",
        "requests": 61,
        "retries": 2,
        "throttled": 1,
        "records": {VULNS: len(vulns), REMS: len(rems), ASSETS: len(assets)},
        "mode": {REMS: "full"},
        "exact": True,
        "warnings": [],
    }
    assert list(stats["vulnerabilities"]["by_severity"])[:4] == list(SEVERITIES)
    assert stats["vulnerabilities"]["sla"]["overdue"] > 0  # the data exercises every SLA bucket
    assert stats["vulnerabilities"]["sla"]["due_7d"] > 0
    assert stats["vulnerabilities"]["sla"]["no_sla"] > 0
    assert await get_json(s3, bucket, "runs/run-1/stats.json") == stats
    assert await get_json(s3, bucket, "latest/stats.json") == stats


@pytest.mark.exactness
async def test_trend_and_remediations_follow_the_tenant_when_it_changes_over_three_runs(
    s3: Any, bucket: str
) -> None:
    # Given: a tenant synced fully, then twice more after a day of changes each, remediations
    # incrementally (only those remediated since the previous run's start)
    sim = Simulator(SimulatorConfig(seed=3, vulnerabilities=1500))
    dataset = sim.dataset
    all_remediations: list[dict[str, Any]] = []
    previous_vulns: list[dict[str, Any]] | None = None
    previous_start = None
    results = []
    for number in (1, 2, 3):
        if number > 1:
            change = dataset.evolve(seed=number)
            assert change.new
            assert change.fixed
        run_id = f"run-{number}"
        started = utc_from_ts(dataset.now_ts)
        vulns, assets = dataset.records(VULNS), dataset.records(ASSETS)
        rems = dataset.records(REMS)
        if previous_start is not None:
            rems = [r for r in rems if r["remediationDate"] >= previous_start]
        objects = [
            *await put_raw(s3, bucket, run_id, VULNS, vulns),
            *await put_raw(s3, bucket, run_id, REMS, rems),
            *await put_raw(s3, bucket, run_id, ASSETS, assets),
        ]
        mode: dict[str, Any] = {REMS: "full" if number == 1 else "incremental"}
        run = RunInfo(run_id, "all", started, started + timedelta(minutes=3), objects=objects, mode=mode)

        # When
        stats = await write_run_outputs(s3, bucket, run)

        # Then: trend against the previous run and remediations merged over every run so far
        all_remediations += rems
        expected = reference_stats(vulns, all_remediations, assets, started, previous_vulns)
        assert_matches(stats["trend"]["new"], expected["trend"]["new"], f"{run_id}.trend.new")
        assert_matches(stats["trend"]["resolved"], expected["trend"]["resolved"], f"{run_id}.trend.resolved")
        assert_matches(stats["remediations"], expected["remediations"], f"{run_id}.remediations")
        assert_matches(stats["vulnerabilities"], expected["vulnerabilities"], f"{run_id}.vulnerabilities")
        # The merge is the whole truth: the tenant's full remediation list gives the same numbers
        truth = reference_stats(vulns, dataset.records(REMS), assets, started)
        assert_matches(stats["remediations"], truth["remediations"], f"{run_id}.remediations(full)")
        assert stats["run"]["records"][REMS] == len(rems)
        results.append(stats)
        previous_vulns, previous_start = vulns, stats["run"]["as_of"]

    assert [s["trend"]["previous_run"] for s in results] == [None, "run-1", "run-2"]
    assert all(s["trend"]["new"]["total"] > 0 and s["trend"]["resolved"]["total"] > 0 for s in results[1:])
    history = await get_json(s3, bucket, "history/scope=all.json")
    assert [entry["run_id"] for entry in history["runs"]] == ["run-1", "run-2", "run-3"]
    assert (await get_json(s3, bucket, "latest/stats.json"))["run"]["id"] == "run-3"
