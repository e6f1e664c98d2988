"""The async Vanta API client: every request goes through one funnel that applies the token, the rate
limit, the timeout, the retry policy and the error mapping."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from ..settings import DEFAULT_BASE_URL
from .auth import TokenProvider
from .errors import (
    AuthError,
    DeadlineReached,
    InvalidFilterError,
    ProtocolError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    VantaError,
)
from .ratelimit import LocalRateLimiter, RateLimiter
from .resources import FilterValue, resource_spec, validate_filters
from .retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class Page:
    """One page of a list endpoint: the records exactly as Vanta sent them, and where the next starts."""

    records: list[dict[str, Any]]
    has_next_page: bool
    end_cursor: str | None
    start_cursor: str | None = None


class RecentDurations:
    """How long the last `size` events of one kind took (Vanta's answers, a step's hand-offs), for
    whoever shares it: the clients of one container share their answers' times. `slowest()` and
    `mean()` are 0.0 before the first; `len()` counts what is kept."""

    def __init__(self, size: int = 32) -> None:
        self._seconds: deque[float] = deque(maxlen=size)

    def record(self, seconds: float) -> None:
        self._seconds.append(seconds)

    def slowest(self) -> float:
        return max(self._seconds, default=0.0)

    def mean(self) -> float:
        return sum(self._seconds) / len(self._seconds) if self._seconds else 0.0

    def __len__(self) -> int:
        return len(self._seconds)


@dataclass(slots=True)
class ClientCounters:
    """Requests sent (every attempt), retries made, and 429 answers received."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


class VantaClient:
    """Lists Vanta resources page by page.

    The aiohttp `session` is injected (one per event loop) and never closed here. `tokens` supplies
    bearer tokens (InProcessTokenProvider or TokenBroker), `limiter` paces request starts
    (LocalRateLimiter(50) unless given; a FleetRateLimiter in Lambda), `retry` says how often and how
    long to retry 429, 5xx, timeouts, connection errors and truncated or invalid JSON; every 429 also
    penalizes the limiter (the whole fleet pauses). `clock` and `sleep` are monotonic time for the retry
    budget, `wall_clock` (epoch seconds) reads deadlines and HTTP-date Retry-After headers.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = DEFAULT_BASE_URL,
        *,
        tokens: TokenProvider,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        answers: RecentDurations | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._limiter: RateLimiter = limiter if limiter is not None else LocalRateLimiter(50)
        self._retry = retry or RetryPolicy()
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._urls: dict[str, URL] = {}
        self._answers = answers if answers is not None else RecentDurations()
        self._auth_token = ""
        self._auth_headers: dict[str, str] = {}
        self.counters = ClientCounters()

    @property
    def answers(self) -> RecentDurations:
        """How long Vanta took to answer this client's requests, or its container's when shared."""
        return self._answers

    def attempt_allowance(self) -> float:
        """Seconds an attempt is expected to need, to decide whether one can still end by a deadline:
        twice the slowest of the last answers (`answers`: this client's, or its container's when
        shared; slow failures and timeouts included), at least a tenth of the request timeout, at most
        all of it (before the first answer too). An attempt that starts less than the request timeout
        before the deadline runs with its timeout cut to the deadline."""
        if not self._answers:
            return self._timeout_seconds
        slowest = 2 * self._answers.slowest()
        return min(self._timeout_seconds, max(slowest, self._timeout_seconds / 10))

    async def fetch_page(
        self,
        resource: str,
        filters: Mapping[str, FilterValue] | None = None,
        cursor: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        *,
        deadline: float | None = None,
    ) -> Page:
        """The page of `resource` after `cursor` (the first page when None).

        Filters are validated first (InvalidFilterError, before any request). Raises AuthError,
        RateLimitedError, ServerError, RequestRejectedError or ProtocolError when Vanta fails beyond retrying.
        With a `deadline` (epoch seconds on `wall_clock`) the request, retries included, ends by then:
        an attempt whose rate slot (or backoff) falls later than `attempt_allowance()` before the
        deadline is not started, one that starts less than the request timeout before it is cut at the
        deadline, and DeadlineReached is raised instead (chained from the failure it would retry).
        The retry budget (`RetryPolicy.total_seconds`) counts from the first attempt's rate slot.
        """
        params = self._params(resource, filters, page_size)
        if cursor is not None:
            params["pageCursor"] = cursor
        return await self._request("GET", resource_spec(resource).path, params, deadline)

    def iter_pages(
        self,
        resource: str,
        filters: Mapping[str, FilterValue] | None = None,
        cursor: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        *,
        deadline: float | None = None,
    ) -> AsyncIterator[Page]:
        """Pages of `resource` from the one after `cursor` to the last, following `endCursor`.

        Filters are validated here, at the call, before any request (InvalidFilterError); iterating
        raises what `fetch_page` raises, DeadlineReached included: every page's request must end by
        `deadline`.
        """
        params = self._params(resource, filters, page_size)
        return self._walk(resource_spec(resource).path, params, cursor, deadline)

    async def _walk(
        self, path: str, params: dict[str, str], cursor: str | None, deadline: float | None
    ) -> AsyncIterator[Page]:
        while True:
            if cursor is not None:
                params["pageCursor"] = cursor
            page = await self._request("GET", path, params, deadline)
            more, cursor = page.has_next_page, page.end_cursor
            yield page
            if not more:
                return
            del page  # let the consumer's page go before the next one is parsed

    def _params(
        self, resource: str, filters: Mapping[str, FilterValue] | None, page_size: int
    ) -> dict[str, str]:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidFilterError(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        params = validate_filters(resource, filters)
        params["pageSize"] = str(page_size)
        return params

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base_url + path)
        return url

    def _headers(self, token: str) -> dict[str, str]:
        # Reused while the token is unchanged: no per-request header dict.
        if token != self._auth_token:
            self._auth_token = token
            self._auth_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return self._auth_headers

    async def _request(
        self, method: str, path: str, params: Mapping[str, str], deadline: float | None
    ) -> Page:
        """The funnel: token, rate limit, request with timeout, status mapping, parse, envelope check,
        retries. Returns the page or raises a VantaError (DeadlineReached when time runs out)."""
        url = self._url(path)
        started: float | None = None  # when the first attempt's slot was granted: the budget starts
        failures = 0
        reauthenticated = False
        last: VantaError | None = None
        while True:
            token = await self._tokens.token()
            await self._acquire(path, deadline, last)
            sent = self._clock()
            started = sent if started is None else started
            self.counters.requests += 1
            retry_after: float | None = None
            cause: BaseException | None = None
            timeout, cut = self._timeout, False
            left = None if deadline is None else deadline - self._wall_clock()
            if left is not None and left < self._timeout_seconds:
                # Started less than a timeout before the deadline: it may run to the deadline only
                # (never 0: aiohttp reads a total of 0 as no timeout at all)
                timeout, cut = aiohttp.ClientTimeout(total=max(0.001, left)), True
            try:
                async with self._session.request(
                    method, url, params=params, headers=self._headers(token), timeout=timeout
                ) as response:
                    status = response.status
                    body = await response.read()
                    if status in (429, 503):  # 503: how long the outage lasts (RFC 9110, 10.2.3)
                        retry_after = parse_retry_after(
                            response.headers.get("Retry-After"), self._wall_clock()
                        )
            except TimeoutError as exc:
                if cut:  # how long it would have taken is unknown: no latency recorded
                    raise DeadlineReached(
                        f"Vanta did not answer {path} before the deadline; hand the rest on"
                    ) from exc
                self._answers.record(self._clock() - sent)
                failure: VantaError = ServerError(
                    f"Vanta did not answer {path} within {self._timeout_seconds:g}s"
                )
                cause = exc
            except aiohttp.ClientPayloadError as exc:
                failure, cause = ProtocolError(f"Vanta's answer to {path} was cut short"), exc
            except aiohttp.ClientError as exc:
                failure = ServerError(f"the connection to Vanta failed ({type(exc).__name__}) on {path}")
                cause = exc
            else:
                self._answers.record(self._clock() - sent)
                if status == 200:
                    # A body that is not JSON, or JSON without the page envelope, is retried like a
                    # 5xx: both were seen mid-chain from proxies and overloaded backends. A wrong base
                    # URL still fails after the retries, with the same message.
                    try:
                        return _page(orjson.loads(body), path)
                    except orjson.JSONDecodeError as exc:
                        failure, cause = ProtocolError(f"Vanta's answer to {path} was not valid JSON"), exc
                    except ProtocolError as exc:
                        failure, cause = exc, exc.__cause__
                elif status == 401:
                    if reauthenticated:
                        raise AuthError(
                            "Vanta rejected a freshly minted token (HTTP 401); check that the app's "
                            "credentials are valid and have the vanta-api.all:read scope"
                        )
                    reauthenticated = True
                    self.counters.retries += 1
                    log.info("Vanta answered 401 on %s; re-authenticating once", path)
                    await self._tokens.invalidate(token)
                    continue
                elif status == 429:
                    self.counters.throttled += 1
                    failure = RateLimitedError(
                        f"Vanta kept answering 429 on {path}; lower VANTA_RATE_LIMIT_PER_MINUTE"
                    )
                elif status >= 500:
                    failure = ServerError(f"Vanta answered HTTP {status} on {path}; try again later", status)
                else:
                    raise RequestRejectedError(_client_error_message(status, path, body, token), status)
            failures += 1
            delay = self._retry.delay(failures - 1, self._rng, retry_after)
            if isinstance(failure, RateLimitedError):
                # The whole fleet pauses, not only this request: its neighbours would be refused too.
                if retry_after is None:
                    await self._limiter.penalize(delay, guessed=True)
                else:
                    await self._limiter.penalize(retry_after)
            if failures >= self._retry.attempts:
                raise _gave_up(failure, f"after {failures} attempts") from cause
            if self._clock() - started + delay > self._retry.total_seconds:
                raise _gave_up(failure, f"within {self._retry.total_seconds:g}s") from cause
            if deadline is not None and self._wall_clock() + delay + self.attempt_allowance() > deadline:
                raise DeadlineReached(
                    f"no retry of {path} can end before the deadline (after: {failure})"
                ) from failure
            last = failure
            self.counters.retries += 1
            log.debug("retrying %s in %.2fs after: %s", path, delay, failure)
            await self._sleep(delay)

    async def _acquire(self, path: str, deadline: float | None, last: VantaError | None) -> None:
        """A rate slot for an attempt that can still end by `deadline` (epoch seconds): one starting
        no later than the deadline less the attempt allowance, read on the limiter's own clock."""
        if deadline is None:
            await self._limiter.acquire()
            return
        allowance = self.attempt_allowance()
        left = deadline - allowance - self._wall_clock()
        try:
            if left < 0:
                raise DeadlineReached(
                    f"no request to {path} can end before the deadline "
                    f"(an attempt is allowed {allowance:.3g}s); hand the rest on"
                )
            await self._limiter.acquire(self._limiter.now() + left)
        except DeadlineReached as exc:
            if last is None:
                raise
            raise DeadlineReached(f"{exc} (retrying after: {last})") from last


def _gave_up(failure: VantaError, how: str) -> VantaError:
    failure.args = (f"{failure.args[0]} (gave up {how})",)
    return failure


def _page(document: Any, path: str) -> Page:
    """Validates the list envelope once, where the payload enters."""
    try:
        results = document["results"]
        records = results["data"]
        info = results["pageInfo"]
        has_next = info["hasNextPage"]
        end_cursor = info.get("endCursor")
        start_cursor = info.get("startCursor")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(
            f"Vanta's answer to {path} lacks results.data/results.pageInfo; check VANTA_BASE_URL"
        ) from exc
    if (
        type(records) is not list
        or type(has_next) is not bool
        or (end_cursor is not None and type(end_cursor) is not str)
        or (has_next and not end_cursor)
    ):
        raise ProtocolError(f"Vanta's answer to {path} has a malformed page envelope")
    if start_cursor is not None and type(start_cursor) is not str:
        start_cursor = None
    return Page(records, has_next, end_cursor, start_cursor)


def _client_error_message(status: int, path: str, body: bytes, token: str) -> str:
    detail = ""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(document.get(key), str):
                detail = document[key]
                break
    detail = detail.replace(token, "<redacted>")[:300] if detail else "no details"
    return f"Vanta rejected the request to {path} (HTTP {status}): {detail}; retrying cannot help"
