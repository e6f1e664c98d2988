"""The generated tenant: deterministic from the seed, realistic shapes and distributions, evolve()."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from vanta_vuln_sync.simulator import DEFAULT_NOW, RESOURCES, Dataset

VULNERABILITY_FIELDS = {
    "id", "name", "description", "integrationId", "packageIdentifier", "vulnerabilityType", "targetId",
    "firstDetectedDate", "sourceDetectedDate", "lastDetectedDate", "severity", "cvssSeverityScore",
    "scannerScore", "isFixable", "remediateByDate", "relatedVulns", "relatedUrls", "externalURL",
    "deactivateMetadata",
}  # fmt: skip
SLA_DAYS = {"CRITICAL": 7, "HIGH": 30, "MEDIUM": 90, "LOW": 180}
CVSS_BANDS = {"CRITICAL": (9.0, 10.0), "HIGH": (7.0, 8.9), "MEDIUM": (4.0, 6.9), "LOW": (0.1, 3.9)}


def make(seed: int = 3, vulnerabilities: int = 2500) -> Dataset:
    return Dataset(
        seed=seed,
        vulnerabilities=vulnerabilities,
        remediations=vulnerabilities // 2,
        assets=max(1, vulnerabilities // 10),
        now=DEFAULT_NOW,
    )


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def tenant() -> Dataset:
    return make()


def test_same_seed_gives_identical_data_and_another_seed_different_data() -> None:
    first, second, other = (
        make(seed=11, vulnerabilities=300),
        make(seed=11, vulnerabilities=300),
        make(12, 300),
    )
    for resource in RESOURCES:
        assert first.records(resource) == second.records(resource)
    assert first.records("vulnerabilities") != other.records("vulnerabilities")


def test_sizes_follow_the_requested_counts(tenant: Dataset) -> None:
    assert tenant.count("vulnerabilities") == 2500
    assert tenant.count("vulnerability-remediations") == 1250
    assert tenant.count("vulnerable-assets") == 250
    assert 3 <= tenant.count("integrations") <= 10


def test_vulnerabilities_have_documented_fields_and_realistic_distributions(tenant: Dataset) -> None:
    records = tenant.records("vulnerabilities")
    assert all(set(r) >= VULNERABILITY_FIELDS for r in records)
    share = Counter(r["severity"] for r in records)
    for severity, expected in (("CRITICAL", 0.05), ("HIGH", 0.2), ("MEDIUM", 0.45), ("LOW", 0.3)):
        assert abs(share[severity] / len(records) - expected) < 0.04
    without_sla = sum(r["remediateByDate"] is None for r in records) / len(records)
    deactivated = [r for r in records if r["deactivateMetadata"] is not None]
    assert 0.05 < without_sla < 0.11
    assert 0.07 < len(deactivated) / len(records) < 0.13
    for r in deactivated:
        meta = r["deactivateMetadata"]
        assert meta["isVulnDeactivatedIndefinitely"] == (meta["deactivatedUntilDate"] is None)
        assert when(meta["deactivatedOnDate"]) <= DEFAULT_NOW
        assert meta["deactivatedUntilDate"] is None or when(meta["deactivatedUntilDate"]) > DEFAULT_NOW
    assert any(r["packageIdentifier"] is None for r in records)
    assert any("fixedVersion" not in r for r in records)
    assert any("fixedVersion" in r for r in records)
    assert any("scanSource" not in r for r in records)
    assert any(
        set(r) - VULNERABILITY_FIELDS - {"fixedVersion", "scanSource"} for r in records
    )  # extra fields
    assert len({r["integrationId"] for r in records}) >= 5


def test_dates_scores_and_references_are_consistent(tenant: Dataset) -> None:
    now = DEFAULT_NOW
    assets = {a["id"]: a for a in tenant.records("vulnerable-assets")}
    names = Counter(r["name"] for r in tenant.records("vulnerabilities"))
    assert names.most_common(1)[0][1] > 10  # CVEs recur across assets
    for r in tenant.records("vulnerabilities"):
        first = when(r["firstDetectedDate"])
        assert first <= now
        if r["lastDetectedDate"] is not None:
            assert first <= when(r["lastDetectedDate"]) <= now
        if r["remediateByDate"] is not None:
            assert when(r["remediateByDate"]) - first == timedelta(days=SLA_DAYS[r["severity"]])
        if r["cvssSeverityScore"] is not None:
            low, high = CVSS_BANDS[r["severity"]]
            assert low <= r["cvssSeverityScore"] <= high
        assert r["targetId"] in assets
        scanners = {s["integrationId"] for s in assets[r["targetId"]]["scanners"]}
        assert r["integrationId"] in scanners
        assert r["firstDetectedDate"].endswith(".000Z")
        assert len(r["id"]) == 24


def test_remediations_point_at_fixed_vulnerabilities_with_lower_case_severity(tenant: Dataset) -> None:
    open_ids = {r["id"] for r in tenant.records("vulnerabilities")}
    assets = {a["id"] for a in tenant.records("vulnerable-assets")}
    remediations = tenant.records("vulnerability-remediations")
    assert set(remediations[0]) == {
        "id", "vulnerabilityId", "vulnerableAssetId", "severity",
        "detectedDate", "slaDeadlineDate", "remediationDate",
    }  # fmt: skip
    assert {r["severity"] for r in remediations} == {"critical", "high", "medium", "low"}
    assert any(r["slaDeadlineDate"] is None for r in remediations)
    on_time = sum(
        r["slaDeadlineDate"] is None or r["remediationDate"] <= r["slaDeadlineDate"] for r in remediations
    )
    assert 0.6 < on_time / len(remediations) < 0.95
    for r in remediations:
        assert r["vulnerabilityId"] not in open_ids
        assert r["vulnerableAssetId"] in assets
        assert r["detectedDate"] < r["remediationDate"] <= "2026-11-26T00:00:00.000Z"


def test_assets_cover_every_asset_type_with_nullable_lists(tenant: Dataset) -> None:
    assets = tenant.records("vulnerable-assets")
    assert {a["assetType"] for a in assets} == {
        "CODE_REPOSITORY", "CONTAINER_REPOSITORY", "CONTAINER_REPOSITORY_IMAGE", "MANIFEST_FILE", "SERVER",
        "SERVERLESS_FUNCTION", "WORKSTATION",
    }  # fmt: skip
    scanners = [s for a in assets for s in a["scanners"]]
    assert any(s["ipv4s"] is None for s in scanners)
    assert any(s["ipv4s"] for s in scanners)
    assert all(s["targetId"] == a["id"] for a in assets for s in a["scanners"])
    assert any(len(a["scanners"]) > 1 for a in assets)


def test_evolve_fixes_adds_and_deactivates_a_day_of_vulnerabilities() -> None:
    data = make(seed=5, vulnerabilities=2000)
    before = {r["id"]: r for r in data.records("vulnerabilities")}
    remediations_before = {r["id"] for r in data.records("vulnerability-remediations")}
    change = data.evolve(seed=1)
    after = {r["id"]: r for r in data.records("vulnerabilities")}
    assert change.fixed
    assert change.new
    assert change.deactivated
    assert set(after) == (set(before) - set(change.fixed)) | set(change.new)
    new_remediations = [
        r for r in data.records("vulnerability-remediations") if r["id"] not in remediations_before
    ]
    assert {r["id"] for r in new_remediations} == set(change.remediations)
    assert {r["vulnerabilityId"] for r in new_remediations} == set(change.fixed)
    day = (DEFAULT_NOW, DEFAULT_NOW + timedelta(days=1))
    assert all(day[0] <= when(r["remediationDate"]) < day[1] for r in new_remediations)
    assert all(day[0] <= when(after[i]["firstDetectedDate"]) <= day[1] for i in change.new)
    assert all(
        before[i]["deactivateMetadata"] is None and after[i]["deactivateMetadata"] for i in change.deactivated
    )


def test_evolve_is_deterministic_from_its_seed() -> None:
    first, second = make(seed=5, vulnerabilities=500), make(seed=5, vulnerabilities=500)
    first.evolve(seed=9)
    second.evolve(seed=9)
    assert first.records("vulnerabilities") == second.records("vulnerabilities")
    assert first.records("vulnerability-remediations") == second.records("vulnerability-remediations")


def test_data_is_relative_to_now() -> None:
    later = Dataset(
        seed=3, vulnerabilities=50, remediations=10, assets=5, now=datetime(2030, 1, 1, tzinfo=UTC)
    )
    first_dates = [when(r["firstDetectedDate"]) for r in later.records("vulnerabilities")]
    assert max(first_dates) <= datetime(2030, 1, 1, tzinfo=UTC) < max(first_dates) + timedelta(days=365)
