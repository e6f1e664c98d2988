"""The request funnel against the real simulator over loopback: faults, limits, tokens, filters."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from vanta_helpers import SimulatedVanta, VirtualClock, make_client, max_in_any_window

from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.vanta import (
    AuthError,
    DeadlineReached,
    InProcessTokenProvider,
    InvalidFilterError,
    LocalRateLimiter,
    RateLimitedError,
    RecentDurations,
    RequestRejectedError,
    RetryPolicy,
    ServerError,
    Token,
    VantaClient,
    VantaError,
    token_fetcher,
)

SimulatorFactory = Callable[..., Awaitable[Simulator]]
SimulatedVantaFactory = Callable[..., Awaitable[SimulatedVanta]]
RESOURCE_NAMES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets", "integrations")


class RequestLog:
    """What went over the wire, seen through aiohttp tracing: start times, answers, bearer tokens."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock
        self.events: list[tuple[str, float, int, str | None]] = []  # (kind, time, status, retry-after)
        self.bearers: set[str] = set()
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_end.append(self._end)

    def _now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    async def _start(self, _: Any, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        auth = params.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.bearers.add(auth[len("Bearer ") :])
        if "/oauth/" not in str(params.url):
            self.events.append(("start", self._now(), 0, None))

    async def _end(self, _: Any, __: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        if "/oauth/" not in str(params.url):
            self.events.append(
                ("end", self._now(), params.response.status, params.response.headers.get("Retry-After"))
            )


async def list_all(
    client: VantaClient, resource: str, filters: dict[str, str] | None = None, page_size: int = 100
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    async for page in client.iter_pages(resource, filters, page_size=page_size):
        records.extend(page.records)
    return records


async def list_with_a_pause(client: VantaClient, clock: VirtualClock, seconds: float) -> list[dict[str, Any]]:
    """The vulnerabilities, listed with a pause of `seconds` on the virtual clock after the first page."""
    pages = client.iter_pages("vulnerabilities", page_size=100)
    records = (await anext(pages)).records
    await clock.sleep(seconds)
    async for page in pages:
        records.extend(page.records)
    return records


@pytest.fixture
def virtual_sim(virtual_clock: VirtualClock, simulator: SimulatorFactory) -> SimulatorFactory:
    """Factory of simulators running on the virtual clock (their rate windows pass in virtual time)."""
    return functools.partial(simulator, clock=virtual_clock)


async def test_each_resource_is_listed_completely_and_once_when_vanta_fails_truncates_and_throttles(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    # Given opaque cursors, 5 % server errors, 5 % truncated bodies and a 600/min limit that the
    # four concurrent listings (about 700 requests at 5 records a page) must run into
    sim = await virtual_sim(
        vulnerabilities=2000,
        cursor_style="opaque",
        error_rate=0.05,
        truncate_rate=0.05,
        rate_limit_per_minute=600,
    )
    client, _ = make_client(
        http,
        sim,
        **virtual_clock.client_options(),
        retry=RetryPolicy(base=0.5, cap=20, attempts=8, total_seconds=300),
    )
    # When every resource is listed at once
    listed = await asyncio.gather(*(list_all(client, name, page_size=5) for name in RESOURCE_NAMES))
    # Then each is exactly the dataset, in order, nothing missing and nothing twice
    for name, records in zip(RESOURCE_NAMES, listed, strict=True):
        assert records == sim.dataset.records(name), name
    assert sim.counters.errors_injected > 0
    assert sim.counters.truncated > 0
    assert sim.counters.throttled > 0
    assert client.counters.throttled == sim.counters.throttled
    assert client.counters.requests == sim.counters.requests


async def test_no_request_is_sent_before_retry_after_has_passed(
    virtual_sim: Any, virtual_clock: VirtualClock
) -> None:
    sim = await virtual_sim(vulnerabilities=100, rate_limit_per_minute=10)
    wire = RequestLog(virtual_clock)
    async with aiohttp.ClientSession(trace_configs=[wire.config]) as session:
        client, _ = make_client(
            session,
            sim,
            **virtual_clock.client_options(),
            retry=RetryPolicy(base=0.01, cap=0.05, attempts=8, total_seconds=600),
        )
        records = await list_all(client, "vulnerabilities", page_size=4)
    assert records == sim.dataset.records("vulnerabilities")
    throttled = [(i, t, after) for i, (kind, t, status, after) in enumerate(wire.events) if status == 429]
    assert len(throttled) >= 2
    for index, answered_at, retry_after in throttled:
        assert retry_after is not None
        next_start = next(t for kind, t, _, _ in wire.events[index + 1 :] if kind == "start")
        assert next_start >= answered_at + float(retry_after)


async def test_client_re_authenticates_when_vanta_expires_the_token_first(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    # Given a token Vanta expires after 60 s while the client's clock says it is still fresh
    sim = await virtual_sim(vulnerabilities=300, token_ttl_seconds=60)
    client, _ = make_client(http, sim)
    # When the listing goes on 120 s after its first page, Vanta answers 401 once and the client mints anew
    records = await list_with_a_pause(client, virtual_clock, 120)
    assert records == sim.dataset.records("vulnerabilities")
    assert sim.counters.unauthorized == 1
    assert sim.counters.tokens_minted == 2


async def test_client_replaces_an_expiring_token_before_vanta_rejects_it(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    sim = await virtual_sim(vulnerabilities=300, token_ttl_seconds=60)
    tokens = InProcessTokenProvider(
        token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret, clock=virtual_clock),
        clock=virtual_clock,
        sleep=virtual_clock.sleep,
    )
    client, _ = make_client(http, sim, tokens=tokens)
    # a pause that ends inside the safety margin (a tenth of the 60 s lifetime)
    records = await list_with_a_pause(client, virtual_clock, 57)
    assert records == sim.dataset.records("vulnerabilities")
    assert sim.counters.unauthorized == 0
    assert sim.counters.tokens_minted == 2


async def test_client_recovers_when_the_token_is_revoked_mid_listing(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    sim, client, tokens = await simulated_vanta(vulnerabilities=500)
    records: list[dict[str, Any]] = []
    async for page in client.iter_pages("vulnerabilities", page_size=100):
        records.extend(page.records)
        if len(records) == 200:
            sim.revoke_token()
    assert records == sim.dataset.records("vulnerabilities")
    assert sim.counters.unauthorized == 1
    assert tokens.minted == 2


async def test_misspelled_filter_is_rejected_before_any_request(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    sim, client, _ = await simulated_vanta(vulnerabilities=50)
    with pytest.raises(InvalidFilterError, match="slaDeadlineAfterDate"):
        client.iter_pages("vulnerabilities", {"slaDeadlineAfter": "2024-01-01T00:00:00Z"})
    with pytest.raises(InvalidFilterError, match="isRemediatedOnTime"):
        await client.fetch_page("vulnerability-remediations", {"remediatedOnTime": "true"})
    with pytest.raises(InvalidFilterError):
        await client.fetch_page("vulnerabilities", page_size=101)
    assert sim.counters.requests == 0
    assert sim.counters.token_requests == 0


async def test_filters_reach_vanta_and_narrow_the_listing(simulated_vanta: SimulatedVantaFactory) -> None:
    sim, client, _ = await simulated_vanta(vulnerabilities=400)
    critical = await list_all(client, "vulnerabilities", {"severity": "critical"})
    expected = [r for r in sim.dataset.records("vulnerabilities") if r["severity"] == "CRITICAL"]
    assert critical == expected
    assert 0 < len(critical) < 400


async def test_a_rejected_request_raises_client_error_without_retrying(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    sim, client, _ = await simulated_vanta(vulnerabilities=50, cursor_style="opaque")
    with pytest.raises(RequestRejectedError, match="400") as caught:
        await client.fetch_page("vulnerabilities", cursor="forged-cursor")
    assert "not issued" in str(caught.value)  # Vanta's own message is passed on
    assert sim.counters.requests == 1


async def test_client_gives_up_with_server_error_when_vanta_keeps_failing(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    sim, client, _ = await simulated_vanta(
        vulnerabilities=50,
        error_rate=1.0,
        client_options={"retry": RetryPolicy(base=0.001, cap=0.01, attempts=3, total_seconds=10)},
    )
    with pytest.raises(ServerError, match="gave up after 3 attempts"):
        await client.fetch_page("vulnerabilities")
    assert sim.counters.requests == 3
    assert client.counters.retries == 2


async def test_client_gives_up_at_once_when_a_503_says_the_outage_outlasts_the_retry_budget(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    # Given Vanta down for an hour on the next page (503 with Retry-After: 3600)
    sim, client, _ = await simulated_vanta(
        vulnerabilities=150,
        failed_cursor_requests=1,
        client_options={"retry": RetryPolicy(base=0.001, cap=0.01, attempts=8, total_seconds=120)},
    )
    first = await client.fetch_page("vulnerabilities", page_size=100)
    # Then the client does not try again within its budget: the step fails, and its record comes back later
    with pytest.raises(ServerError, match="within 120s"):
        await client.fetch_page("vulnerabilities", cursor=first.end_cursor, page_size=100)
    assert sim.counters.requests == 2
    assert client.counters.retries == 0


async def test_client_retries_requests_that_stall_past_the_timeout(
    simulated_vanta: SimulatedVantaFactory,
) -> None:
    sim, client, _ = await simulated_vanta(
        vulnerabilities=300, stall_rate=0.3, stall_seconds=5, client_options={"timeout": 0.2}
    )
    assert await list_all(client, "vulnerabilities", page_size=50) == sim.dataset.records("vulnerabilities")
    assert sim.counters.stalled > 0


async def test_wrong_credentials_raise_auth_error_naming_the_settings(
    simulator: Any, http: aiohttp.ClientSession
) -> None:
    sim = await simulator(vulnerabilities=10)
    tokens = InProcessTokenProvider(token_fetcher(http, sim.auth_url, sim.client_id, "wrong-secret"))
    client, _ = make_client(http, sim, tokens=tokens)
    with pytest.raises(AuthError, match="VANTA_CLIENT_SECRET"):
        await client.fetch_page("vulnerabilities")
    assert sim.counters.requests == 0


async def test_secret_and_tokens_never_appear_in_logs_or_errors(
    simulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = await simulator(
        vulnerabilities=300, error_rate=0.1, truncate_rate=0.1, token_error_rate=0.3, rate_limit_per_minute=0
    )
    wire = RequestLog()
    errors: list[str] = []
    async with aiohttp.ClientSession(trace_configs=[wire.config]) as session:
        client, _ = make_client(session, sim)
        records: list[dict[str, Any]] = []
        async for page in client.iter_pages("vulnerabilities", page_size=20):
            records.extend(page.records)
            if len(records) % 100 == 0:
                sim.revoke_token()
        assert records == sim.dataset.records("vulnerabilities")
        for bad in (
            client.fetch_page("vulnerabilities", cursor="not-a-cursor"),
            make_client(
                session,
                sim,
                tokens=InProcessTokenProvider(
                    token_fetcher(session, sim.auth_url, sim.client_id, "nope"), attempts=1
                ),
            )[0].fetch_page("vulnerabilities"),
        ):
            with pytest.raises(Exception) as caught:
                await bad
            errors.append(f"{caught.value!r} {caught.value} {caught.value.__cause__!r}")
    assert len(wire.bearers) >= 3
    text = caplog.text + "\n".join(errors)
    assert sim.client_secret not in text
    for token in wire.bearers:
        assert token not in text


async def test_retry_after_given_as_an_http_date_is_waited_out_before_the_next_request(
    simulator: Any, http: aiohttp.ClientSession
) -> None:
    # Given Vanta allowing 2 requests a minute and answering 429 with an HTTP-date Retry-After
    sim = await simulator(vulnerabilities=300, rate_limit_per_minute=2, retry_after_format="http-date")
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:  # note the wait, skip it: the window stays full
        waits.append(seconds)

    client, _ = make_client(
        http, sim, sleep=record_wait, retry=RetryPolicy(base=0.01, cap=0.1, attempts=3, total_seconds=600)
    )
    await client.fetch_page("vulnerabilities", page_size=100)
    await client.fetch_page("vulnerabilities", page_size=100)
    # When a third request is throttled until the window frees, about a minute later
    with pytest.raises(RateLimitedError, match="VANTA_RATE_LIMIT_PER_MINUTE"):
        await client.fetch_page("vulnerabilities", page_size=100)
    # Then each retry waited for the date, not just the jittered backoff (at most 0.1 s here)
    assert len(waits) == 2
    assert all(55 <= wait <= 62 for wait in waits)
    assert client.counters.throttled == 3


async def test_in_process_provider_never_requests_more_than_five_tokens_a_minute(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    sim = await virtual_sim(vulnerabilities=10)
    requested_at: list[float] = []
    vanta_fetch = token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret, clock=virtual_clock)

    async def fetch() -> Token:
        requested_at.append(virtual_clock())
        return await vanta_fetch()

    tokens = InProcessTokenProvider(fetch, clock=virtual_clock, sleep=virtual_clock.sleep)
    for _ in range(7):  # every token rejected as soon as it arrives
        await tokens.invalidate(await tokens.token())
    assert len(requested_at) == 7
    assert max_in_any_window(requested_at) <= 5
    assert sim.counters.token_throttled == 0
    assert sim.counters.tokens_minted == 7


async def test_client_gives_up_with_server_error_when_vanta_cannot_be_reached(
    http: aiohttp.ClientSession, simulator: Any
) -> None:
    sim = await simulator(vulnerabilities=10)
    tokens = InProcessTokenProvider(token_fetcher(http, sim.auth_url, sim.client_id, sim.client_secret))
    client = VantaClient(
        http,
        "http://127.0.0.1:9/v1",  # the discard port: nothing listens there
        tokens=tokens,
        limiter=None,
        retry=RetryPolicy(base=0.001, cap=0.01, attempts=3, total_seconds=10),
        timeout=2.0,
    )
    with pytest.raises(ServerError, match="connection to Vanta failed") as caught:
        await client.fetch_page("integrations")
    assert client.counters.requests == 3
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)


async def test_a_request_whose_rate_slot_comes_after_the_deadline_is_not_sent_and_nothing_waits(
    virtual_sim: Any,
    virtual_clock: VirtualClock,
    spent_limiter: LocalRateLimiter,
    http: aiohttp.ClientSession,
) -> None:
    # Given a limiter of 1 request/min whose start this minute is already taken
    sim = await virtual_sim(vulnerabilities=50)
    client, _ = make_client(http, sim, limiter=spent_limiter, **virtual_clock.client_options())
    start = virtual_clock()
    # When the request must end within 40 s (its slot is 60.5 s away)
    with pytest.raises(DeadlineReached):
        await client.fetch_page("vulnerabilities", deadline=start + 40)
    # Then nothing was sent and no time passed: the caller still has its 40 s to hand the work on
    assert virtual_clock() == start
    assert sim.counters.requests == 0
    # And a deadline that leaves room for the slot and the request timeout (5 s) is met
    page = await client.fetch_page("vulnerabilities", deadline=start + 66)
    assert page.records
    assert virtual_clock() == pytest.approx(start + 60.5)


async def test_a_retry_that_could_not_end_by_the_deadline_raises_deadline_reached_from_the_failure(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    # Given a Vanta that always fails at once, backoffs of up to 1 s, and a request that must end one
    # timeout (5 s) from now
    sim = await virtual_sim(vulnerabilities=10, error_rate=1.0)
    client, _ = make_client(
        http,
        sim,
        **virtual_clock.client_options(),
        retry=RetryPolicy(base=1.0, cap=1.0, attempts=100, total_seconds=300),
    )
    start = virtual_clock()
    # When every attempt fails
    with pytest.raises(DeadlineReached) as caught:
        await client.fetch_page("vulnerabilities", deadline=start + 5.0)
    # Then retries went on while the backoff and the attempt allowance (a tenth of the timeout, as the
    # answers took no time) fitted before the deadline, and stopped when they no longer did
    assert client.attempt_allowance() == pytest.approx(0.5)
    assert sim.counters.requests >= 2
    assert start + 5.0 - 0.5 - 1.0 <= virtual_clock() <= start + 5.0 - 0.5
    # And the failure it would have retried is the cause
    assert isinstance(caught.value.__cause__, ServerError)
    assert not isinstance(caught.value, VantaError)


async def test_an_attempt_starts_closer_to_the_deadline_than_the_timeout_once_answers_are_fast(
    simulator: Callable[..., Awaitable[Simulator]], http: aiohttp.ClientSession
) -> None:
    # Given a Vanta answering in 20 ms and two clients (two steps of one container) whose request
    # timeout is 5 s, sharing their answers' times
    sim = await simulator(vulnerabilities=50, latency_seconds=0.02)
    answers = RecentDurations()
    client, _ = make_client(http, sim, answers=answers)
    other, _ = make_client(http, sim, answers=answers)
    # Then before any answer an attempt needs the whole timeout before the deadline
    assert client.attempt_allowance() == 5.0
    with pytest.raises(DeadlineReached):
        await client.fetch_page("vulnerabilities", deadline=time.time() + 4.0)
    assert sim.counters.requests == 0
    # And after a fast answer, a tenth of it: a page is read with 1 s left
    await client.fetch_page("vulnerabilities")
    assert client.attempt_allowance() == pytest.approx(0.5)
    assert other.attempt_allowance() == pytest.approx(0.5), "the container's clients share what they saw"
    page = await client.fetch_page("vulnerabilities", deadline=time.time() + 1.0)
    assert page.records
    # When Vanta slows to 3 s, an attempt started 1 s before the deadline is cut at the deadline
    sim.configure(latency_seconds=3.0)
    sent = sim.counters.requests
    began = time.monotonic()
    with pytest.raises(DeadlineReached, match="before the deadline"):
        await client.fetch_page("vulnerabilities", deadline=time.time() + 1.0)
    assert sim.counters.requests == sent + 1
    assert 0.9 <= time.monotonic() - began < 2.5


async def test_the_retry_budget_counts_from_the_first_rate_slot_not_from_the_call(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    # Given a fleet budget of 2 requests/min already used this minute, a Vanta that always fails,
    # and a retry budget of 10 s
    sim = await virtual_sim(vulnerabilities=10, error_rate=1.0)
    limiter = LocalRateLimiter(2, clock=virtual_clock, sleep=virtual_clock.sleep)
    await limiter.acquire()
    await limiter.acquire()
    client, _ = make_client(
        http,
        sim,
        limiter=limiter,
        **virtual_clock.client_options(),
        retry=RetryPolicy(base=0.01, cap=0.01, attempts=2, total_seconds=10),
    )
    # When a request first waits a minute for its slot, then fails
    with pytest.raises(ServerError, match="gave up after 2 attempts"):
        await virtual_clock.gather(client.fetch_page("vulnerabilities"))
    # Then the minute spent waiting did not use up the budget: the failure was retried
    assert sim.counters.requests == 2


async def test_a_429_seen_by_one_client_pauses_every_client_sharing_the_limiter(
    virtual_sim: Any, virtual_clock: VirtualClock, http: aiohttp.ClientSession
) -> None:
    # Given two clients sharing one limiter (100/min) and a Vanta that allows 1 request a minute
    sim = await virtual_sim(vulnerabilities=50, rate_limit_per_minute=1)
    limiter = LocalRateLimiter(100, clock=virtual_clock, sleep=virtual_clock.sleep)
    options: dict[str, Any] = {
        "limiter": limiter,
        **virtual_clock.client_options(),
        "retry": RetryPolicy(base=0.01, cap=0.01, attempts=1, total_seconds=10),
    }
    first, _ = make_client(http, sim, **options)
    second, _ = make_client(http, sim, **options)
    await first.fetch_page("vulnerabilities")
    # When the first client's next request is refused with Retry-After
    with pytest.raises(RateLimitedError):
        await first.fetch_page("vulnerabilities")
    refused_at = virtual_clock()
    # Then the second client, which never saw a 429, waits out the pause and is served
    await virtual_clock.gather(second.fetch_page("vulnerabilities"))
    assert virtual_clock() >= refused_at + 59
    assert second.counters.throttled == 0
    assert sim.counters.throttled == 1
