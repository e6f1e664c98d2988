"""The token endpoint: client credentials, one live token, 5 requests a minute, expiry, revocation."""

from __future__ import annotations

import aiohttp
import pytest

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

from .conftest import SignIn, StartSimulator
from .helpers import FakeClock, get, mint, token_body


async def test_token_is_bearer_with_documented_lifetime_when_credentials_are_right(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=20)
    async with http.post(sim.auth_url, json=token_body(sim)) as response:
        payload = await response.json()
    assert response.status == 200
    assert payload["token_type"] == "Bearer"
    assert payload["expires_in"] == 3599
    status, body, _ = await get(http, sim, "vulnerabilities", payload["access_token"])
    assert status == 200
    assert body["results"]["data"]


async def test_minting_a_new_token_revokes_the_previous_one(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=20)
    first = await mint(http, sim)
    second = await mint(http, sim)
    assert first != second
    assert (await get(http, sim, "vulnerabilities", first))[0] == 401
    assert (await get(http, sim, "vulnerabilities", second))[0] == 200
    assert sim.counters.tokens_minted == 2
    assert sim.counters.unauthorized == 1


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"client_secret": "wrong"}, 401),
        ({"client_id": "someone-else"}, 401),
        ({"grant_type": "password"}, 400),
        ({"scope": "vanta-api.all:write"}, 400),
    ],
)
async def test_token_request_is_refused_when_body_is_wrong(
    simulator: StartSimulator, http: aiohttp.ClientSession, changes: dict[str, str], status: int
) -> None:
    sim = await simulator(vulnerabilities=20)
    async with http.post(sim.auth_url, json=token_body(sim, **changes)) as response:
        payload = await response.json()
    assert response.status == status
    assert "access_token" not in payload
    assert sim.counters.tokens_minted == 0


@pytest.mark.integration  # its own simulator, on a fake clock
async def test_sixth_token_request_in_a_minute_is_throttled_until_the_window_slides(
    http: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with Simulator(SimulatorConfig(vulnerabilities=20), clock=clock) as sim:
        for _ in range(5):
            await mint(http, sim)
            clock.advance(1)
        async with http.post(sim.auth_url, json=token_body(sim)) as response:
            assert response.status == 429
            # The first request (at t=0) leaves the window at t=60; now is t=5.
            assert response.headers["Retry-After"] == "55"
        clock.advance(55)
        await mint(http, sim)
        assert sim.counters.token_requests == 7
        assert sim.counters.token_throttled == 1
        assert sim.counters.tokens_minted == 6


@pytest.mark.integration  # its own simulator, on a fake clock
async def test_token_expires_after_its_lifetime(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with Simulator(SimulatorConfig(vulnerabilities=20, token_ttl_seconds=10), clock=clock) as sim:
        token = await mint(http, sim)
        clock.advance(9.9)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 200
        clock.advance(0.2)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 401


async def test_revoke_token_makes_the_live_token_fail(signed_in: SignIn, http: aiohttp.ClientSession) -> None:
    sim, token = await signed_in(vulnerabilities=20)
    sim.revoke_token()
    assert (await get(http, sim, "vulnerabilities", token))[0] == 401
    async with http.post(f"{sim.origin}/_sim/revoke-token") as response:
        assert response.status == 200


async def test_api_refuses_requests_without_a_bearer_token(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, _ = await signed_in(vulnerabilities=20)
    async with http.get(f"{sim.base_url}/vulnerabilities") as response:
        assert response.status == 401


async def test_token_endpoint_answers_503_or_504_when_token_errors_are_injected(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=20, token_error_rate=1.0)
    async with http.post(sim.auth_url, json=token_body(sim)) as response:
        assert response.status in (503, 504)
    assert sim.counters.token_errors_injected == 1
    assert sim.counters.tokens_minted == 0


async def test_garbage_authorization_header_is_a_401_not_a_crash(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, _ = await signed_in(vulnerabilities=20)
    for header in ("Bearer ünïcode", "Basic dXNlcjpwYXNz", "Bearer "):
        async with http.get(f"{sim.base_url}/vulnerabilities", headers={"Authorization": header}) as response:
            assert response.status == 401
