"""Every documented filter matches a brute-force filter of `dataset.records` (the unfiltered list)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from vanta_vuln_sync.simulator import Simulator

from .conftest import SignIn
from .helpers import fetch_all, get

Record = dict[str, Any]


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def in_window(value: str | None, after: str | None = None, before: str | None = None) -> bool:
    moment = when(value)
    if moment is None:
        return False
    return (after is None or moment >= datetime.fromisoformat(after)) and (
        before is None or moment < datetime.fromisoformat(before)
    )


def remediated_on_time(remediation: Record) -> bool:
    deadline = remediation["slaDeadlineDate"]
    return deadline is None or datetime.fromisoformat(
        remediation["remediationDate"]
    ) <= datetime.fromisoformat(deadline)


def with_sla(records: list[Record]) -> list[Record]:
    return [r for r in records if r["remediateByDate"] is not None]


@pytest.fixture
async def tenant(signed_in: SignIn) -> tuple[Simulator, str]:
    return await signed_in(vulnerabilities=400, seed=7)


VULNERABILITY_CASES: list[
    tuple[str, Callable[[list[Record]], dict[str, str]], Callable[[Record, dict[str, str]], bool]]
] = [
    ("severity", lambda rs: {"severity": "HIGH"}, lambda r, f: r["severity"] == "HIGH"),
    ("isDeactivated", lambda rs: {"isDeactivated": "true"}, lambda r, f: r["deactivateMetadata"] is not None),
    (
        "isDeactivated-false",
        lambda rs: {"isDeactivated": "false"},
        lambda r, f: r["deactivateMetadata"] is None,
    ),
    ("isFixAvailable", lambda rs: {"isFixAvailable": "true"}, lambda r, f: r["isFixable"] is True),
    ("isFixAvailable-false", lambda rs: {"isFixAvailable": "false"}, lambda r, f: r["isFixable"] is False),
    ("integrationId", lambda rs: {"integrationId": "snyk"}, lambda r, f: r["integrationId"] == "snyk"),
    (
        "externalVulnerabilityId",
        lambda rs: {"externalVulnerabilityId": rs[0]["name"]},
        lambda r, f: r["name"] == f["externalVulnerabilityId"],
    ),
    (
        "packageIdentifier",
        lambda rs: {"packageIdentifier": next(r["packageIdentifier"] for r in rs if r["packageIdentifier"])},
        lambda r, f: r["packageIdentifier"] == f["packageIdentifier"],
    ),
    (
        "vulnerableAssetId",
        lambda rs: {"vulnerableAssetId": rs[0]["targetId"]},
        lambda r, f: r["targetId"] == f["vulnerableAssetId"],
    ),
    (
        "q",
        lambda rs: {"q": "OPENSSL"},
        lambda r, f: any(
            "openssl" in (r[k] or "").lower() for k in ("name", "description", "packageIdentifier")
        ),
    ),
    (
        "slaDeadline-window",
        lambda rs: {
            "slaDeadlineAfterDate": "2026-03-01T00:00:00Z",
            "slaDeadlineBeforeDate": "2026-09-01T00:00:00Z",
        },
        lambda r, f: in_window(r["remediateByDate"], f["slaDeadlineAfterDate"], f["slaDeadlineBeforeDate"]),
    ),
    (
        "slaDeadlineAfterDate-at-a-record",
        lambda rs: {"slaDeadlineAfterDate": with_sla(rs)[40]["remediateByDate"]},
        lambda r, f: in_window(r["remediateByDate"], after=f["slaDeadlineAfterDate"]),
    ),
    (
        "slaDeadlineBeforeDate-at-a-record",
        lambda rs: {"slaDeadlineBeforeDate": with_sla(rs)[40]["remediateByDate"]},
        lambda r, f: in_window(r["remediateByDate"], before=f["slaDeadlineBeforeDate"]),
    ),
    (
        "combined",
        lambda rs: {"severity": "MEDIUM", "isDeactivated": "false", "integrationId": "aws"},
        lambda r, f: (
            r["severity"] == "MEDIUM" and r["deactivateMetadata"] is None and r["integrationId"] == "aws"
        ),
    ),
]


@pytest.mark.parametrize("include", [None, "true"])
@pytest.mark.parametrize(
    ("case", "make", "keep"), VULNERABILITY_CASES, ids=[c[0] for c in VULNERABILITY_CASES]
)
async def test_vulnerability_filter_matches_brute_force(
    tenant: tuple[Simulator, str],
    http: aiohttp.ClientSession,
    case: str,
    make: Callable[[list[Record]], dict[str, str]],
    keep: Callable[[Record, dict[str, str]], bool],
    include: str | None,
) -> None:
    sim, token = tenant
    everything = sim.dataset.records("vulnerabilities")
    filters = make(everything)
    if include is not None:
        filters["includeVulnerabilitiesWithoutSlas"] = include
    expected = [r for r in (everything if include == "true" else with_sla(everything)) if keep(r, filters)]
    served = await fetch_all(http, sim, "vulnerabilities", token, **filters)
    assert served == expected
    assert 0 < len(served) < len(everything)


async def test_vulnerabilities_without_sla_are_left_out_by_default_and_come_with_the_rest_when_asked(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession
) -> None:
    sim, token = tenant
    everything = sim.dataset.records("vulnerabilities")
    without_sla = [r for r in everything if r["remediateByDate"] is None]
    assert without_sla
    assert await fetch_all(http, sim, "vulnerabilities", token) == with_sla(everything)
    assert await fetch_all(
        http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="false"
    ) == with_sla(everything)
    assert (
        await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
        == everything
    )


async def test_vulnerabilities_are_sorted_by_remediate_by_date_then_id_with_nulls_last(
    tenant: tuple[Simulator, str],
) -> None:
    sim, _ = tenant
    records = sim.dataset.records("vulnerabilities")
    keys = [(r["remediateByDate"] is None, r["remediateByDate"] or "", r["id"]) for r in records]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


async def test_misspelled_filter_is_ignored_and_returns_the_unfiltered_list(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession
) -> None:
    sim, token = tenant
    served = await fetch_all(
        http, sim, "vulnerabilities", token, slaDeadlineAfter="2030-01-01T00:00:00Z", sevrity="LOW"
    )
    assert served == with_sla(sim.dataset.records("vulnerabilities"))


@pytest.mark.parametrize(
    ("resource", "params"),
    [
        ("vulnerabilities", {"severity": "critical"}),
        ("vulnerabilities", {"isDeactivated": "True"}),
        ("vulnerabilities", {"includeVulnerabilitiesWithoutSlas": "1"}),
        ("vulnerabilities", {"slaDeadlineAfterDate": "yesterday"}),
        ("vulnerabilities", {"slaDeadlineBeforeDate": "2026-01-01T00:00:00"}),
        ("vulnerability-remediations", {"isRemediatedOnTime": "yes"}),
        ("vulnerability-remediations", {"remediatedAfterDate": "2026-13-01T00:00:00Z"}),
        ("vulnerable-assets", {"assetType": "LAPTOP"}),
    ],
)
async def test_malformed_filter_value_is_a_400(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession, resource: str, params: dict[str, str]
) -> None:
    sim, token = tenant
    status, payload, _ = await get(http, sim, resource, token, **params)
    assert status == 400
    assert next(iter(params)) in payload["message"]


# (resource, case, filters, the brute-force filter); the vulnerabilities' cases are VULNERABILITY_CASES
FilterCase = tuple[str, str, dict[str, str], Callable[[Simulator, Record], bool]]
REMEDIATION_AND_ASSET_CASES: list[FilterCase] = [
    (
        "vulnerability-remediations",
        "severity",
        {"severity": "CRITICAL"},
        lambda sim, r: r["severity"] == "critical",
    ),
    (
        "vulnerability-remediations",
        "integrationId",
        {"integrationId": "aws"},
        lambda sim, r: sim.dataset.remediation_integration(r["id"]) == "aws",
    ),
    (
        "vulnerability-remediations",
        "isRemediatedOnTime",
        {"isRemediatedOnTime": "true"},
        lambda sim, r: remediated_on_time(r),
    ),
    (
        "vulnerability-remediations",
        "isRemediatedOnTime-false",
        {"isRemediatedOnTime": "false"},
        lambda sim, r: not remediated_on_time(r),
    ),
    (
        "vulnerability-remediations",
        "remediated-window",
        {
            "remediatedAfterDate": "2026-05-01T00:00:00.000Z",
            "remediatedBeforeDate": "2026-08-01T00:00:00+00:00",
        },
        lambda sim, r: in_window(r["remediationDate"], "2026-05-01T00:00:00Z", "2026-08-01T00:00:00Z"),
    ),
    ("vulnerable-assets", "assetType", {"assetType": "SERVER"}, lambda sim, r: r["assetType"] == "SERVER"),
    (
        "vulnerable-assets",
        "integrationId",
        {"integrationId": "github"},
        lambda sim, r: any(s["integrationId"] == "github" for s in r["scanners"]),
    ),
    (
        "vulnerable-assets",
        "assetExternalAccountId",
        {"assetExternalAccountId": "123456789012"},
        lambda sim, r: any(s["parentAccountOrOrganization"] == "123456789012" for s in r["scanners"]),
    ),
    ("vulnerable-assets", "q", {"q": "ACME/"}, lambda sim, r: "acme/" in r["name"].lower()),
]


@pytest.mark.parametrize(
    ("resource", "case", "filters", "keep"),
    REMEDIATION_AND_ASSET_CASES,
    ids=[f"{c[0]}-{c[1]}" for c in REMEDIATION_AND_ASSET_CASES],
)
async def test_remediation_and_asset_filters_match_brute_force(
    tenant: tuple[Simulator, str],
    http: aiohttp.ClientSession,
    resource: str,
    case: str,
    filters: dict[str, str],
    keep: Callable[[Simulator, Record], bool],
) -> None:
    sim, token = tenant
    everything = sim.dataset.records(resource)
    served = await fetch_all(http, sim, resource, token, **filters)
    assert served == [r for r in everything if keep(sim, r)]
    assert 0 < len(served) < len(everything)


async def test_remediation_date_windows_partition_the_remediations(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession
) -> None:
    sim, token = tenant
    everything = sim.dataset.records("vulnerability-remediations")
    boundary = everything[len(everything) // 2]["remediationDate"]  # a date some record has exactly
    before = await fetch_all(http, sim, "vulnerability-remediations", token, remediatedBeforeDate=boundary)
    after = await fetch_all(http, sim, "vulnerability-remediations", token, remediatedAfterDate=boundary)
    assert before + after == everything
    assert after[0]["remediationDate"] == boundary


async def test_unknown_integration_id_matches_nothing(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession
) -> None:
    sim, token = tenant
    assert await fetch_all(http, sim, "vulnerabilities", token, integrationId="jira") == []


async def test_severity_by_integration_shards_partition_the_full_list(
    tenant: tuple[Simulator, str], http: aiohttp.ClientSession
) -> None:
    sim, token = tenant
    everything = sim.dataset.records("vulnerabilities")
    shards: list[Record] = []
    for severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW"):
        for integration in ("aws", "snyk", "github", "qualys", "crowdstrike", "azure"):
            shards += await fetch_all(
                http, sim, "vulnerabilities", token,
                severity=severity, integrationId=integration, includeVulnerabilitiesWithoutSlas="true",
            )  # fmt: skip
    assert sorted(r["id"] for r in shards) == sorted(r["id"] for r in everything)
