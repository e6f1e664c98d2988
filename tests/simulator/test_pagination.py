"""Pagination: pageSize bounds, cursor walks in both styles, forged and foreign cursors."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from vanta_vuln_sync.simulator import RESOURCES

from .conftest import SignIn
from .helpers import fetch_all, get


def offset_cursor(offset: int) -> str:
    return base64.b64encode(f"arrayconnection:{offset}".encode()).decode()


@pytest.mark.parametrize("size", ["0", "101", "-1", "ten", "1.5"])
async def test_page_size_outside_1_to_100_is_a_400(
    signed_in: SignIn, http: aiohttp.ClientSession, size: str
) -> None:
    sim, token = await signed_in(vulnerabilities=50)
    status, payload, _ = await get(http, sim, "vulnerabilities", token, pageSize=size)
    assert status == 400
    assert "pageSize" in payload["message"]


async def test_page_size_defaults_to_10_and_accepts_1_and_100(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=300)
    for params, expected in (({}, 10), ({"pageSize": "1"}, 1), ({"pageSize": "100"}, 100)):
        status, payload, _ = await get(http, sim, "vulnerabilities", token, **params)
        assert status == 200
        assert len(payload["results"]["data"]) == expected


@pytest.mark.parametrize("style", ["arrayconnection", "opaque"])
@pytest.mark.parametrize("resource", RESOURCES)
async def test_cursor_walk_returns_every_record_exactly_once_in_order(
    signed_in: SignIn, http: aiohttp.ClientSession, style: str, resource: str
) -> None:
    sim, token = await signed_in(vulnerabilities=450, cursor_style=style)
    walked = await fetch_all(
        http,
        sim,
        resource,
        token,
        **({"includeVulnerabilitiesWithoutSlas": "true"} if resource == "vulnerabilities" else {}),
    )
    assert walked == sim.dataset.records(resource)
    assert len({record.get("id", record.get("integrationId")) for record in walked}) == len(walked)


async def test_arrayconnection_cursors_name_offsets_and_any_offset_can_be_addressed(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=300)
    everything = sim.dataset.records("vulnerabilities")
    status, first, _ = await get(http, sim, "vulnerabilities", token, pageSize="25")
    assert first["results"]["pageInfo"]["startCursor"] == offset_cursor(0)
    assert first["results"]["pageInfo"]["endCursor"] == offset_cursor(24)
    # A cursor written by hand for item 149 starts the page at item 150.
    status, page, _ = await get(
        http, sim, "vulnerabilities", token, pageSize="25", pageCursor=offset_cursor(149),
        includeVulnerabilitiesWithoutSlas="true",
    )  # fmt: skip
    assert status == 200
    assert page["results"]["data"] == everything[150:175]
    assert page["results"]["pageInfo"]["startCursor"] == offset_cursor(150)
    assert page["results"]["pageInfo"]["hasPreviousPage"] is True


async def test_cursor_past_the_end_gives_an_empty_last_page(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30)
    status, page, _ = await get(http, sim, "vulnerabilities", token, pageCursor=offset_cursor(10_000))
    assert status == 200
    assert page["results"] == {
        "data": [],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": True, "startCursor": None, "endCursor": None},
    }


@pytest.mark.parametrize("cursor", ["not-base64!", base64.b64encode(b"offset:3").decode(), offset_cursor(-1)])
async def test_malformed_arrayconnection_cursor_is_a_400(
    signed_in: SignIn, http: aiohttp.ClientSession, cursor: str
) -> None:
    sim, token = await signed_in(vulnerabilities=30)
    assert (await get(http, sim, "vulnerabilities", token, pageCursor=cursor))[0] == 400


async def test_forged_opaque_cursor_is_a_400(signed_in: SignIn, http: aiohttp.ClientSession) -> None:
    sim, token = await signed_in(vulnerabilities=100, cursor_style="opaque")
    _status, page, _ = await get(http, sim, "vulnerabilities", token)
    issued = page["results"]["pageInfo"]["endCursor"]
    assert issued != offset_cursor(9)
    assert (await get(http, sim, "vulnerabilities", token, pageCursor=offset_cursor(9)))[0] == 400
    forged = issued[:-2] + ("AA" if not issued.endswith("AA") else "BB")
    assert (await get(http, sim, "vulnerabilities", token, pageCursor=forged))[0] == 400
    assert (await get(http, sim, "vulnerabilities", token, pageCursor=issued))[0] == 200


async def test_opaque_cursor_is_refused_with_other_filters(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=200, cursor_style="opaque")
    _, page, _ = await get(http, sim, "vulnerabilities", token, severity="MEDIUM")
    cursor = page["results"]["pageInfo"]["endCursor"]
    assert (await get(http, sim, "vulnerabilities", token, severity="MEDIUM", pageCursor=cursor))[0] == 200
    assert (await get(http, sim, "vulnerabilities", token, severity="LOW", pageCursor=cursor))[0] == 400
    assert (await get(http, sim, "vulnerabilities", token, pageCursor=cursor))[0] == 400
