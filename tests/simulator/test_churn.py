"""Churn: records deleted and inserted between list requests shift offset cursors as a real offset list
would, keep the serve order, match filters, and leave a ground truth a sync can be checked against."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from vanta_vuln_sync.simulator import DEFAULT_NOW, Dataset, Simulator, SimulatorConfigError
from vanta_vuln_sync.simulator.filters import Selector, parse_filters

from .conftest import SignIn, StartSimulator
from .helpers import fetch_all, get

Record = dict[str, Any]
REMEDIATIONS = "vulnerability-remediations"
SLA_DAYS = {"CRITICAL": 7, "HIGH": 30, "MEDIUM": 90, "LOW": 180}
OFFSET = 190  # the walk below stops with its cursor on item 189 of 200 remediations


async def walk_to_offset(http: aiohttp.ClientSession, sim: Simulator, token: str) -> tuple[list[Record], str]:
    """The first OFFSET remediations (pages of 100 and 90) and the endCursor naming item OFFSET - 1."""
    status, first, _ = await get(http, sim, REMEDIATIONS, token, pageSize="100")
    assert status == 200
    cursor = first["results"]["pageInfo"]["endCursor"]
    status, second, _ = await get(http, sim, REMEDIATIONS, token, pageSize="90", pageCursor=cursor)
    assert status == 200
    return first["results"]["data"] + second["results"]["data"], second["results"]["pageInfo"]["endCursor"]


async def walk_on(http: aiohttp.ClientSession, sim: Simulator, token: str, cursor: str) -> list[Record]:
    """Every record after `cursor`, following endCursor to the end."""
    records: list[Record] = []
    while True:
        status, payload, _ = await get(http, sim, REMEDIATIONS, token, pageSize="100", pageCursor=cursor)
        assert status == 200, payload
        records.extend(payload["results"]["data"])
        if not payload["results"]["pageInfo"]["hasNextPage"]:
            return records
        cursor = payload["results"]["pageInfo"]["endCursor"]


def ids(records: list[Record]) -> list[str]:
    return [r["id"] for r in records]


HalfWalk = tuple[Simulator, str, list[Record], str]


@pytest.fixture(params=["arrayconnection", "opaque"])
async def half_walk(
    request: pytest.FixtureRequest, signed_in: SignIn, http: aiohttp.ClientSession
) -> HalfWalk:
    """A tenant (either cursor style) whose remediations a client has listed up to OFFSET: the simulator,
    the token, the records seen and the cursor it stopped at."""
    sim, token = await signed_in(vulnerabilities=400, cursor_style=request.param, churn_seed=5)
    seen, cursor = await walk_to_offset(http, sim, token)
    return sim, token, seen, cursor


async def test_deletions_before_the_cursor_make_the_next_page_skip_as_many_records(
    half_walk: HalfWalk, http: aiohttp.ClientSession
) -> None:
    sim, token, seen, cursor = half_walk
    old = sim.dataset.records(REMEDIATIONS)
    assert ids(seen) == ids(old[:OFFSET])

    event = sim.burst(delete=4, insert=0, resource=REMEDIATIONS)
    assert event is not None
    deleted = {sim.dataset.remediation_id(k) for k in event.deleted}
    deleted_before = sum(r["id"] in deleted for r in old[:OFFSET])
    assert deleted_before >= 1, "the seed should delete at least one record before the cursor"
    rest = await walk_on(http, sim, token, cursor)

    survivors_after = [r["id"] for r in old[OFFSET:] if r["id"] not in deleted]
    assert ids(rest) == survivors_after[deleted_before:]
    missed = set(ids(sim.dataset.records(REMEDIATIONS))) - set(ids(seen + rest))
    assert missed == set(survivors_after[:deleted_before])


async def test_insertions_before_the_cursor_make_the_next_page_repeat_as_many_records(
    half_walk: HalfWalk, http: aiohttp.ClientSession
) -> None:
    sim, token, seen, cursor = half_walk

    event = sim.burst(delete=0, insert=4, resource=REMEDIATIONS)
    assert event is not None
    new = sim.dataset.records(REMEDIATIONS)
    inserted = {sim.dataset.remediation_id(k) for k in event.inserted}
    inserted_before = sum(r["id"] in inserted for r in new[:OFFSET])
    assert inserted_before >= 1, "the seed should insert at least one record before the cursor"
    rest = await walk_on(http, sim, token, cursor)

    assert ids(rest) == ids(new[OFFSET:])
    repeated = [i for i, n in Counter(ids(seen + rest)).items() if n > 1]
    assert sorted(repeated) == ids(seen[OFFSET - inserted_before :])


def serve_order_key(resource: str, record: Record) -> tuple[str, str]:
    if resource == "vulnerabilities":  # remediateByDate first (none last), then id
        return (record["remediateByDate"] or "~", record["id"])
    return ("", record["id"])


FILTERS: list[tuple[str, dict[str, str], Callable[[Record], bool]]] = [
    (
        "vulnerabilities",
        {"severity": "LOW", "isDeactivated": "false", "includeVulnerabilitiesWithoutSlas": "true"},
        lambda r: r["severity"] == "LOW" and r["deactivateMetadata"] is None,
    ),
    (
        "vulnerabilities",
        {"isFixAvailable": "true"},
        lambda r: r["isFixable"] and r["remediateByDate"] is not None,
    ),
    (
        "vulnerabilities",
        {"integrationId": "aws"},
        lambda r: r["integrationId"] == "aws" and r["remediateByDate"],
    ),
    (REMEDIATIONS, {"severity": "MEDIUM"}, lambda r: r["severity"] == "medium"),
    ("vulnerable-assets", {"assetType": "SERVER"}, lambda r: r["assetType"] == "SERVER"),
    (
        "vulnerable-assets",
        {"integrationId": "aws"},
        lambda r: any(s["integrationId"] == "aws" for s in r["scanners"]),
    ),
]


async def test_inserted_records_keep_serve_order_look_real_and_match_filters_like_any_record(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=1000, churn_seed=11)
    original = {resource: set(ids(sim.dataset.records(resource))) for resource, _, _ in FILTERS}
    for resource, filters, _ in FILTERS:  # cache the selections: churn must bring them up to date
        assert (await get(http, sim, resource, token, **filters))[0] == 200

    for resource in original:
        event = sim.burst(delete=30, insert=60, resource=resource)
        assert event is not None
        assert len(event.inserted) == 60

    for resource, filters, keep in FILTERS:
        records = sim.dataset.records(resource)
        assert records == sorted(records, key=lambda r: serve_order_key(resource, r))
        new = [r for r in records if r["id"] not in original[resource]]
        assert len(new) == 60  # fresh ids, never served before
        served = await fetch_all(http, sim, resource, token, **filters)
        assert served == [r for r in records if keep(r)]
        assert any(r["id"] not in original[resource] for r in served)
    for record in sim.dataset.records("vulnerabilities"):
        if record["remediateByDate"] is not None:  # as generated: detection plus the severity's SLA
            days = datetime.fromisoformat(record["remediateByDate"]) - datetime.fromisoformat(
                record["firstDetectedDate"]
            )
            assert days.days == SLA_DAYS[record["severity"]]


async def test_churn_every_counts_list_requests_across_endpoints_and_churns_before_answering(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(
        vulnerabilities=300,
        churn_every=3,
        churn_delete=2,
        churn_insert=0,
        churn_resources=("vulnerable-assets",),
    )
    assets = sim.dataset.count("vulnerable-assets")
    answered = []
    for resource, params in (
        ("vulnerabilities", {}),
        (REMEDIATIONS, {"severity": "HIGH"}),
        ("integrations", {}),  # not a churned list: not counted
        ("vulnerabilities", {"pageSize": "0"}),  # a 400: not counted
        ("vulnerable-assets", {"pageSize": "100"}),  # the third: churns first
        ("vulnerable-assets", {"pageSize": "100"}),
        ("vulnerabilities", {"isDeactivated": "true"}),
        ("vulnerable-assets", {"pageSize": "100"}),  # the sixth
    ):
        status, payload, _ = await get(http, sim, resource, token, **params)
        if resource == "vulnerable-assets":
            answered.append(len(payload["results"]["data"]))
    assert answered == [assets - 2, assets - 2, assets - 4]
    status = sim.churn_status()
    assert (status["list_requests"], status["events"], status["deleted"]) == (6, 2, 4)
    assert sim.dataset.count("vulnerable-assets") == assets - 4


async def test_a_burst_of_100_and_100_over_http_then_a_delayed_one(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=2000, assets=60)
    before = sim.dataset.count("vulnerabilities")
    body = {"burst": {"delete": 100, "insert": 100, "resource": "vulnerabilities"}}
    async with http.post(f"{sim.origin}/_sim/churn", json=body) as response:
        assert response.status == 200
        status = await response.json()
    assert status["applied"] == {"resource": "vulnerabilities", "deleted": 100, "inserted": 100}
    assert status["truth"]["vulnerabilities"] == {
        "served": before, "stable": before - 100, "transient": 200, "inserted": 100, "deleted": 100,
    }  # fmt: skip
    walked = await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
    assert walked == sim.dataset.records("vulnerabilities")

    delayed = {"burst": {"delete": 5, "insert": 0, "after_requests": 2, "resource": "vulnerable-assets"}}
    async with http.post(f"{sim.origin}/_sim/churn", json=delayed) as response:
        assert (await response.json())["pending_bursts"][0]["after_requests"] == 2
    assets = sim.dataset.count("vulnerable-assets")
    counts = []
    for _ in range(3):
        _, payload, _ = await get(http, sim, "vulnerable-assets", token, pageSize="100")
        counts.append(len(payload["results"]["data"]))
    assert counts == [assets, assets, assets - 5]
    async with http.get(f"{sim.origin}/_sim/churn") as response:
        assert (await response.json())["pending_bursts"] == []


async def test_truth_holds_stable_and_transient_ids_and_a_naive_walk_under_churn_invents_nothing(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(
        vulnerabilities=600, churn_every=2, churn_delete=3, churn_insert=3, churn_seed=2,
        churn_resources=("vulnerabilities",),
    )  # fmt: skip
    start = set(ids(sim.dataset.records("vulnerabilities")))
    walked = await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
    sim.churn(every=0)
    truth = sim.dataset.churn_truth("vulnerabilities")
    now = set(ids(sim.dataset.records("vulnerabilities")))
    assert truth.stable == start & now
    assert start ^ now <= truth.transient
    assert not truth.stable & truth.transient
    events = sim.churn_status()["events"]
    assert events >= 3
    assert len(truth.transient) == 6 * events
    served = set(ids(walked))
    assert served <= truth.stable | truth.transient  # a walk never meets an id outside the truth
    assert served - truth.stable  # it met inserted records
    assert len(truth.stable - served) <= 3 * events  # and skipped at most one per deletion
    # evolve's changes are churn too; a reset starts over.
    change = sim.dataset.evolve(seed=4)
    truth = sim.dataset.churn_truth("vulnerabilities")
    assert set(change.fixed) <= truth.transient
    assert set(change.new) <= truth.transient
    assert set(change.remediations) <= sim.dataset.churn_truth(REMEDIATIONS).transient
    async with http.post(f"{sim.origin}/_sim/churn", json={"reset_truth": True}) as response:
        assert (await response.json())["truth"]["vulnerabilities"]["transient"] == 0
    truth = sim.dataset.churn_truth("vulnerabilities")
    assert truth.stable == set(ids(sim.dataset.records("vulnerabilities")))
    assert not truth.transient


async def test_case_sensitive_remediation_severity_matches_only_the_lower_case_values(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=400, remediation_severity_case_sensitive=True)
    upper = await fetch_all(http, sim, REMEDIATIONS, token, severity="CRITICAL")
    lower = await fetch_all(http, sim, REMEDIATIONS, token, severity="critical")
    assert upper == []
    assert lower
    assert lower == [r for r in sim.dataset.records(REMEDIATIONS) if r["severity"] == "critical"]
    assert (await get(http, sim, REMEDIATIONS, token, severity="urgent"))[0] == 400
    sim.configure(remediation_severity_case_sensitive=False)  # the default: the upper-case enum
    assert await fetch_all(http, sim, REMEDIATIONS, token, severity="CRITICAL") == lower
    assert (await get(http, sim, REMEDIATIONS, token, severity="critical"))[0] == 400


async def test_churn_settings_are_checked_and_shown(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=100)
    with pytest.raises(SimulatorConfigError, match="churn_resources"):
        sim.churn(resources=["integrations"])
    with pytest.raises(SimulatorConfigError, match="delete"):
        sim.burst(delete=-1, insert=0)
    for body in ({"every": -1}, {"burst": {"delete": "many"}}, {"often": 1}, [1]):
        async with http.post(f"{sim.origin}/_sim/churn", json=body) as response:
            assert response.status == 400
    async with http.post(
        f"{sim.origin}/_sim/churn",
        json={"every": 5, "delete": 2, "insert": 3, "resources": ["vulnerable-assets"]},
    ) as response:
        status = await response.json()
    assert (status["every"], status["delete"], status["insert"]) == (5, 2, 3)
    assert status["resources"] == ["vulnerable-assets"]
    assert sim.config.churn_resources == ("vulnerable-assets",)


async def test_evolve_after_churn_keeps_deleted_records_gone_and_inserted_ones_in_place(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=500, churn_seed=4)
    events = [sim.burst(delete=10, insert=10, resource=r) for r in ("vulnerabilities", REMEDIATIONS)]
    events.append(sim.burst(delete=5, insert=5, resource="vulnerable-assets"))
    sim.dataset.evolve(seed=2)  # rebuilds every serve order from the columns
    for event in events:
        assert event is not None
        served = set(ids(sim.dataset.records(event.resource)))
        assert not served & {sim.dataset.record_id(event.resource, k) for k in event.deleted}
        assert {sim.dataset.record_id(event.resource, k) for k in event.inserted} <= served
    walked = await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
    assert walked == sim.dataset.records("vulnerabilities")


def test_churn_down_to_empty_lists_and_back_keeps_serve_order_and_cached_selections_exact() -> None:
    data = Dataset(seed=3, vulnerabilities=4, remediations=2, assets=1, now=DEFAULT_NOW)
    selector = Selector(data)
    filters = {
        "vulnerabilities": parse_filters("vulnerabilities", {"severity": "LOW"}),
        REMEDIATIONS: parse_filters(REMEDIATIONS, {"isRemediatedOnTime": "true"}),
        "vulnerable-assets": parse_filters("vulnerable-assets", {"assetType": "SERVER"}),
    }
    rng = random.Random(8)
    for step in range(90):
        resource = ("vulnerabilities", REMEDIATIONS, "vulnerable-assets")[step % 3]
        selector.select(resource, filters[resource])  # fills the cache: apply must bring it up to date
        delete, insert = (6, 0) if step < 9 else (rng.randrange(4), rng.randrange(4))  # empty first
        selector.apply(data.churn(resource, delete=delete, insert=insert, rng=rng))
        if step < 9:
            assert data.count(resource) == 0
        records = data.records(resource)
        assert records == sorted(records, key=lambda r: serve_order_key(resource, r))
        fresh = Selector(data).select(resource, filters[resource])
        assert list(selector.select(resource, filters[resource])) == list(fresh)
    assert all(data.count(r) > 0 for r in filters)
