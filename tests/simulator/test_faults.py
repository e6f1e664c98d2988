"""Injected faults: server errors, truncated bodies, stalls, latency, and changing them at runtime."""

from __future__ import annotations

import time

import aiohttp
import orjson
import pytest

from vanta_vuln_sync.simulator import SimulatorConfigError

from .conftest import SignIn, StartSimulator
from .helpers import get


async def test_error_rate_is_roughly_honoured_with_5xx_json_errors(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30, error_rate=0.3)
    results = [await get(http, sim, "vulnerabilities", token) for _ in range(200)]
    errors = [(status, payload) for status, payload, _ in results if status != 200]
    assert 35 <= len(errors) <= 85
    assert {status for status, _ in errors} == {500, 502, 503}
    assert all(payload["error"] for _, payload in errors)
    assert sim.counters.errors_injected == len(errors)


async def test_truncated_body_is_a_200_whose_json_stops_midway(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30, truncate_rate=1.0)
    async with http.get(
        f"{sim.base_url}/vulnerabilities", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        body = await response.read()
        assert response.status == 200
        assert response.content_length == len(body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    assert body.startswith(b'{"results"')
    assert sim.counters.truncated == 1


async def test_stalled_request_answers_only_after_stall_seconds(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30, stall_rate=1.0, stall_seconds=0.4)
    started = time.monotonic()
    status, _, _ = await get(http, sim, "vulnerabilities", token)
    assert status == 200
    assert time.monotonic() - started >= 0.4
    assert sim.counters.stalled == 1


async def test_stalled_request_times_out_a_client_and_does_not_block_close(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30, stall_rate=1.0, stall_seconds=60)
    with pytest.raises(TimeoutError):
        async with http.get(
            f"{sim.base_url}/vulnerabilities",
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    started = time.monotonic()
    await sim.close()
    assert time.monotonic() - started < 2


async def test_latency_with_jitter_delays_each_request_within_bounds(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=30, latency_seconds=0.1, latency_jitter=0.05)
    for _ in range(3):
        started = time.monotonic()
        await get(http, sim, "vulnerabilities", token)
        assert 0.05 <= time.monotonic() - started < 2.0


async def test_configure_changes_faults_while_running(signed_in: SignIn, http: aiohttp.ClientSession) -> None:
    sim, token = await signed_in(vulnerabilities=30)
    assert (await get(http, sim, "vulnerabilities", token))[0] == 200
    sim.configure(error_rate=1.0)
    assert (await get(http, sim, "vulnerabilities", token))[0] >= 500
    async with http.post(
        f"{sim.origin}/_sim/config", json={"error_rate": 0.0, "rate_limit_per_minute": 3}
    ) as response:
        assert response.status == 200
        assert (await response.json())["rate_limit_per_minute"] == 3
    statuses = [(await get(http, sim, "vulnerabilities", token))[0] for _ in range(4)]
    assert statuses == [200, 429, 429, 429]  # two accepted requests already sit in the window


async def test_configure_refuses_data_fields_and_bad_values(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=30)
    with pytest.raises(SimulatorConfigError):
        sim.configure(vulnerabilities=10)
    with pytest.raises(SimulatorConfigError):
        sim.configure(error_rate=1.5)
    async with http.post(f"{sim.origin}/_sim/config", json={"seed": 3}) as response:
        assert response.status == 400


async def test_config_endpoint_never_shows_the_client_secret(
    simulator: StartSimulator, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=30)
    async with http.get(f"{sim.origin}/_sim/config") as response:
        text = await response.text()
    assert sim.client_secret not in text
    assert '"cursor_style":"arrayconnection"' in text
    assert sim.client_secret not in repr(sim.config)
