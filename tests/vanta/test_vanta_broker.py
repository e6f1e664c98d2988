"""The fleet's one token (TokenBroker) on a real DynamoDB API (moto server) and the real simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from vanta_helpers import VirtualClock, make_client, max_in_any_window

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig
from vanta_vuln_sync.store.token import TokenBroker
from vanta_vuln_sync.vanta import AuthError, Token, token_fetcher


async def test_twenty_coroutines_in_five_containers_mint_once_after_a_401(
    simulator: Any, ddb_clients: Any, state_table: str
) -> None:
    # Given five containers, each with its own HTTP session, DynamoDB client and broker, all warm
    sim = await simulator(vulnerabilities=2000)
    async with contextlib_sessions(5) as sessions:
        clients = []
        for session in sessions:
            broker = TokenBroker(
                await ddb_clients(),
                state_table,
                token_fetcher(session, sim.auth_url, sim.client_id, sim.client_secret),
            )
            clients.append(make_client(session, sim, tokens=broker)[0])
        await asyncio.gather(*(client.fetch_page("integrations") for client in clients))
        assert sim.counters.tokens_minted == 1
        # When Vanta revokes the token and 20 coroutines per container each hit the 401
        sim.revoke_token()
        pages = await asyncio.gather(
            *(client.fetch_page("vulnerabilities", page_size=10) for client in clients for _ in range(20))
        )
    # Then exactly one new token was minted for the whole fleet, and every request succeeded
    assert sim.counters.tokens_minted == 2
    assert sim.counters.unauthorized == 100
    assert all(len(page.records) == 10 for page in pages)


async def test_a_401_on_an_already_replaced_token_does_not_mint_again(
    simulator: Any, ddb_clients: Any, state_table: str, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=10)
    fetch = token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret)
    first = TokenBroker(await ddb_clients(), state_table, fetch)
    second = TokenBroker(await ddb_clients(), state_table, fetch)
    stale = await second.token()
    await first.invalidate(await first.token())
    fresh = await first.token()  # the first container replaced the token...
    await second.invalidate(stale)  # ...then the second sees its own 401 on the old one
    assert await second.token() == fresh
    assert sim.counters.tokens_minted == 2


async def test_fleet_never_requests_more_than_five_tokens_a_minute_when_fifty_containers_see_401s(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str, http: aiohttp.ClientSession
) -> None:
    # Given 50 containers (brokers) and a simulator whose token limit runs on the same virtual clock
    async with Simulator(SimulatorConfig(vulnerabilities=10), clock=virtual_clock) as sim:
        mints: list[float] = []
        vanta_fetch = token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret, clock=virtual_clock)

        async def fetch() -> Token:
            mints.append(virtual_clock())
            return await vanta_fetch()

        ddbs = [await ddb_clients() for _ in range(5)]
        brokers = [
            TokenBroker(ddbs[i % 5], state_table, fetch, virtual_clock, sleep=virtual_clock.sleep)
            for i in range(50)
        ]
        # When, five times over, every container sees a 401 on the current token at once
        rounds = 5
        for _ in range(rounds):
            current = await virtual_clock.gather(*(broker.token() for broker in brokers))
            assert len(set(current)) == 1
            for broker, token in zip(brokers, current, strict=True):
                await broker.invalidate(token)
            await virtual_clock.gather(*(broker.token() for broker in brokers))
    # Then each round minted once, never more than five in any minute, and Vanta never said 429
    assert len(mints) == rounds + 1
    assert max_in_any_window(mints) <= 5
    assert max(mints) - min(mints) > 60
    assert sim.counters.token_throttled == 0
    assert sim.counters.tokens_minted == rounds + 1


async def test_broker_replaces_the_token_when_it_expires(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str, http: aiohttp.ClientSession
) -> None:
    async with Simulator(
        SimulatorConfig(vulnerabilities=10, token_ttl_seconds=100), clock=virtual_clock
    ) as sim:
        fetch = token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret, clock=virtual_clock)
        broker = TokenBroker(
            await ddb_clients(), state_table, fetch, virtual_clock, sleep=virtual_clock.sleep
        )
        other = TokenBroker(await ddb_clients(), state_table, fetch, virtual_clock, sleep=virtual_clock.sleep)
        first = await broker.token()
        assert await other.token() == first
        await virtual_clock.sleep(95)  # past the safety margin (a tenth of the lifetime)
        second = await broker.token()
        assert second != first
        assert await other.token() == second
        assert sim.counters.tokens_minted == 2


async def test_broker_raises_auth_error_and_frees_the_lease_when_credentials_are_wrong(
    simulator: Any, ddb_clients: Any, state_table: str, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=10)
    ddb = await ddb_clients()
    wrong = TokenBroker(ddb, state_table, token_fetcher(http, sim.auth_url, sim.client_id, "wrong"))
    with pytest.raises(AuthError, match="VANTA_CLIENT_SECRET"):
        await wrong.token()
    right = TokenBroker(ddb, state_table, token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret))
    assert await right.token()  # not blocked by a lease the failed container left behind
    assert sim.counters.tokens_minted == 1


class contextlib_sessions:
    """`async with contextlib_sessions(n) as sessions`: n aiohttp sessions, all closed at the end."""

    def __init__(self, count: int) -> None:
        self._sessions = [aiohttp.ClientSession() for _ in range(count)]

    async def __aenter__(self) -> list[aiohttp.ClientSession]:
        return self._sessions

    async def __aexit__(self, *exc: object) -> None:
        for session in self._sessions:
            await session.close()


async def test_broker_mints_after_the_lease_of_a_container_that_died_mid_mint_runs_out(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str, http: aiohttp.ClientSession
) -> None:
    # Given a lease taken 10 s ago by a container that then died (it never stored a token)
    ddb = await ddb_clients()
    await ddb.put_item(
        TableName=state_table,
        Item={
            "pk": {"S": "token#vanta"},
            "sk": {"S": "token"},
            "lease_holder": {"S": "dead-container"},
            "lease_until": {"N": str(virtual_clock() + 35)},
            "mints": {"L": [{"N": str(virtual_clock() - 10)}]},
            "rev": {"N": "7"},
        },
    )
    async with Simulator(SimulatorConfig(vulnerabilities=10), clock=virtual_clock) as sim:
        fetch = token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret, clock=virtual_clock)
        broker = TokenBroker(ddb, state_table, fetch, virtual_clock, sleep=virtual_clock.sleep)
        started = virtual_clock()
        # When a live container needs the token, it waits the lease out, then mints
        assert await virtual_clock.gather(broker.token())
        assert 35 <= virtual_clock() - started < 40
        assert sim.counters.tokens_minted == 1
