"""OAuth client credentials for Vanta: the token, the token request, and the in-process provider.

Vanta keeps one live token per application (a new one revokes the old) and allows 5 token requests a
minute, so tokens are cached until shortly before they expire and minted single-flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from .errors import AuthError, TokenUnavailableError

log = logging.getLogger(__name__)

SCOPE = "vanta-api.all:read"
MINTS_PER_MINUTE = 5
# Spacing of fetch_token's own retries: 5 a minute with half a second to spare.
MIN_MINT_INTERVAL = 12.5
# A token is retired this long before Vanta's expiry (capped at a tenth of its lifetime for short TTLs),
# so a request never starts with a token about to die in flight.
SAFETY_MARGIN_SECONDS = 300.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
TokenFetch = Callable[[], Awaitable["Token"]]


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the epoch second after which we no longer use it (safety margin included)."""

    value: str
    expires_at: float

    def usable(self, now: float) -> bool:
        """True while the token may still be sent."""
        return now < self.expires_at

    def __repr__(self) -> str:  # the value never appears in logs or tracebacks
        return f"Token(value=<redacted>, expires_at={self.expires_at:.0f})"

    __str__ = __repr__


class TokenProvider(Protocol):
    """Where the client gets its bearer token from."""

    async def token(self) -> str:
        """A token believed valid now (minting one if needed)."""
        ...

    async def invalidate(self, failed: str) -> None:
        """Vanta answered 401 to `failed`: forget it, unless it was already replaced."""
        ...


async def fetch_token(
    session: aiohttp.ClientSession,
    auth_url: str,
    client_id: str,
    client_secret: str,
    *,
    attempts: int = 3,
    min_interval: float = MIN_MINT_INTERVAL,
    request_timeout: float = 30.0,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> Token:
    """Mint a token with the client-credentials grant.

    Retries 503/504/429, timeouts and connection errors up to `attempts` requests in all, never two
    requests closer than `min_interval` seconds (Vanta allows 5 token requests a minute). Raises
    AuthError for 400/401/403 (wrong credentials) at once, TokenUnavailableError (an AuthError) when
    the attempts run out. Token providers call it with `attempts=1` and pace retries themselves.
    """
    body = orjson.dumps(
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        }
    )
    attempts = max(1, attempts)
    for attempt in range(attempts):
        started = clock()
        try:
            return await _token_request(session, auth_url, body, request_timeout, started)
        except TokenUnavailableError as exc:
            if attempt + 1 == attempts:
                raise
            log.warning("Vanta token request failed (%s); attempt %d of %d", exc, attempt + 1, attempts)
            await sleep(max(0.0, started + min_interval - clock()))
    raise AssertionError("unreachable")


def token_fetcher(
    session: aiohttp.ClientSession,
    auth_url: str,
    client_id: str,
    client_secret: str,
    *,
    request_timeout: float = 30.0,
    clock: Clock = time.time,
) -> TokenFetch:
    """A one-request-per-call token mint for InProcessTokenProvider and TokenBroker, which count and
    pace every token request themselves."""

    async def fetch() -> Token:
        return await fetch_token(
            session,
            auth_url,
            client_id,
            client_secret,
            attempts=1,
            request_timeout=request_timeout,
            clock=clock,
        )

    return fetch


async def _token_request(
    session: aiohttp.ClientSession, auth_url: str, body: bytes, seconds: float, started: float
) -> Token:
    try:
        async with session.post(
            auth_url,
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            status = response.status
            payload = await response.read()
    except TimeoutError as exc:
        raise TokenUnavailableError(
            f"the Vanta token endpoint did not answer within {seconds:g}s; try again later"
        ) from exc
    except aiohttp.ClientError as exc:
        raise TokenUnavailableError(
            f"could not reach the Vanta token endpoint ({type(exc).__name__}); check VANTA_AUTH_URL"
        ) from exc
    if status in (400, 401, 403):
        raise AuthError(
            f"Vanta refused the client credentials (HTTP {status}); check VANTA_CLIENT_ID/"
            "VANTA_CLIENT_SECRET and that the app has the vanta-api.all:read scope"
        )
    if status == 429 or status >= 500:
        raise TokenUnavailableError(f"the Vanta token endpoint answered HTTP {status}; try again later")
    if status != 200:
        raise AuthError(f"unexpected HTTP {status} from the Vanta token endpoint; check VANTA_AUTH_URL")
    try:
        document = orjson.loads(payload)
        value = document["access_token"]
        lifetime = float(document.get("expires_in", 3600))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TokenUnavailableError("the Vanta token endpoint sent a malformed answer") from exc
    if not isinstance(value, str) or not value:
        raise TokenUnavailableError("the Vanta token endpoint answered without an access_token")
    margin = min(SAFETY_MARGIN_SECONDS, lifetime / 10)
    return Token(value=value, expires_at=started + lifetime - margin)


class CachedToken:
    """The token in memory while usable; when it is not, one refresh for every waiter (single-flight).

    Both providers keep their token this way; they differ only in where a fresh one comes from.
    """

    def __init__(self, refresh: TokenFetch, clock: Clock) -> None:
        self._refresh = refresh
        self._clock = clock
        self._current: Token | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """The current token's value, refreshed first if it is missing or no longer usable."""
        current = self._current
        if current is not None and current.usable(self._clock()):
            return current.value
        async with self._lock:
            current = self._current
            if current is None or not current.usable(self._clock()):
                current = await self._refresh()
                self._current = current
            return current.value

    def forget(self, failed: str) -> bool:
        """Drop `failed` if it is still the current token; False if another coroutine replaced it."""
        current = self._current
        if current is None or current.value != failed:
            return False
        self._current = None
        return True


class InProcessTokenProvider:
    """Caches one token in memory for this process (the CLI); refreshes single-flight.

    `fetch` mints a token with one request (see `token_fetcher`). Transient token failures are retried
    up to `attempts` times, `retry_delay` apart; never more than 5 token requests start in any 60 s.
    """

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        attempts: int = 3,
        retry_delay: float = 2.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._sleep = sleep
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._cache = CachedToken(self._mint, clock)
        self._requests: deque[float] = deque(maxlen=MINTS_PER_MINUTE)
        self.minted = 0

    async def token(self) -> str:
        """The cached token while usable, else a freshly minted one (one mint for all waiters).

        Raises AuthError when Vanta refuses the credentials or the token endpoint stays unavailable.
        """
        return await self._cache.get()

    async def invalidate(self, failed: str) -> None:
        """Forget the token Vanta rejected, unless another coroutine already replaced it."""
        self._cache.forget(failed)

    async def _mint(self) -> Token:
        for attempt in range(self._attempts):
            await self._wait_for_mint_slot()
            try:
                token = await self._fetch()
            except TokenUnavailableError as exc:
                failure: TokenUnavailableError | None = exc
            else:
                failure = None
            finally:
                # Recorded when it ended: Vanta counted it at some moment before that.
                self._requests.append(self._clock())
            if failure is None:
                self.minted += 1
                log.info("minted a Vanta access token (valid until %.0f)", token.expires_at)
                return token
            if attempt + 1 == self._attempts:
                raise failure
            log.warning("Vanta token request failed (%s); retrying", failure)
            await self._sleep(self._retry_delay)
        raise AssertionError("unreachable")

    async def _wait_for_mint_slot(self) -> None:
        # Sliding window: the 6th request starts over 60 s after the 1st of the last five ended.
        if len(self._requests) == MINTS_PER_MINUTE:
            wait = self._requests[0] + 60.5 - self._clock()
            if wait > 0:
                log.warning("5 Vanta token requests within a minute; waiting %.0fs", wait)
                await self._sleep(wait)
