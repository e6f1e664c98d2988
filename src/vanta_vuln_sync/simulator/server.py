"""The Vanta API simulator: an aiohttp app with Vanta's auth, pagination, limits and injected faults.

Order of checks for an API request (`GET /v1/<resource>`): rate limit (429, answered at once) →
latency → token (401) → `pageSize`, filters and cursor (400) → churn due (the request is counted; see
`churn_schedule.py`) → injected fault (5xx, stall, truncated body) → page. Every request that passes
the rate limit counts against it, whatever its answer; throttled ones count in `counters.requests` and
`counters.throttled` but use up no budget.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import orjson
from aiohttp import web

from vanta_vuln_sync.simulator.churn import ChurnEvent
from vanta_vuln_sync.simulator.churn_schedule import ChurnSchedule, PlannedChurn, checked_burst
from vanta_vuln_sync.simulator.config import SimulatorConfig
from vanta_vuln_sync.simulator.control import add_control_routes, error_response, json_response
from vanta_vuln_sync.simulator.counters import SimCounters, SlidingWindow, retry_after_header
from vanta_vuln_sync.simulator.dataset import CHURNED, RESOURCES, Dataset, Evolution, Resource
from vanta_vuln_sync.simulator.filters import FilterError, Selector, filter_key, parse_filters
from vanta_vuln_sync.simulator.paging import CursorBook, CursorError, paginate

SCOPE = "vanta-api.all:read"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


@dataclass(slots=True)
class _LiveToken:
    value: str
    expires_at: float


class Simulator:
    """A running simulated Vanta tenant on loopback.

    `async with Simulator(SimulatorConfig(vulnerabilities=500)) as sim:` then point a client at
    `sim.base_url` and `sim.auth_url` with `sim.client_id` / `sim.client_secret`.
    `clock` (monotonic seconds) drives token expiry, rate windows and the request log.
    The data may be changed from another thread (`churn`, `burst`) while it serves: one lock guards it.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._config = config or SimulatorConfig()
        self._clock = clock
        self._host = host
        self._port = port
        self.dataset = Dataset(
            seed=self._config.seed,
            vulnerabilities=self._config.vulnerabilities,
            remediations=self._config.remediation_count,
            assets=self._config.asset_count,
            now=self._config.now,
        )
        self.counters = SimCounters()
        self._selector = Selector(self.dataset)
        self._cursors = CursorBook(self._config.cursor_style)
        self._api_window = SlidingWindow(
            self._config.rate_limit_per_minute, window=self._config.rate_window_seconds
        )
        self._token_window = SlidingWindow(self._config.token_requests_per_minute)
        self._rng = random.Random(self._config.seed ^ 0x5EED)
        self._token: _LiveToken | None = None
        self._runner: web.AppRunner | None = None
        self._data_lock = threading.Lock()
        self._churn = ChurnSchedule(self._config)
        self._churn_armed = False  # the truth is reset the first time churn is switched on
        self._arm_churn(self._config.churn_every > 0)
        self.app = self._make_app()

    # -- lifecycle ----------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self._token_endpoint)
        for resource in RESOURCES:
            app.router.add_get(f"/v1/{resource}", self._list_handler(resource))
        add_control_routes(app, self)
        return app

    async def start(self) -> None:
        """Listen on the configured host and port (a free port by default)."""
        # A short shutdown timeout: a stalled request must not hold up close().
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = cast(tuple[str, int], self._runner.addresses[0])[1]

    async def close(self) -> None:
        """Stop listening; in-flight requests are cancelled."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- public knobs -------------------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def auth_url(self) -> str:
        return f"{self.origin}/oauth/token"

    @property
    def client_id(self) -> str:
        return self._config.client_id

    @property
    def client_secret(self) -> str:
        return self._config.client_secret

    def revoke_token(self) -> None:
        """Revoke the live token now: requests using it get 401 until a new one is minted."""
        self._token = None

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change limits and fault rates while running (see config.RUNTIME_FIELDS); returns the new config.

        Raises SimulatorConfigError for an unknown, unchangeable or out-of-range value.
        """
        with self._data_lock:
            old, self._config = self._config, self._config.with_changes(changes)
            self._churn.reconfigured(old, self._config)
            self._arm_churn(self._config.churn_every > 0)
        self._api_window.limit = self._config.rate_limit_per_minute
        self._token_window.limit = self._config.token_requests_per_minute
        self._cursors.style = self._config.cursor_style
        return self._config

    def evolve(self, seed: int) -> Evolution:
        """`dataset.evolve(seed)` under the data lock (thread-safe while serving)."""
        with self._data_lock:
            return self.dataset.evolve(seed)

    def churn(
        self,
        *,
        every: int | None = None,
        delete: int | None = None,
        insert: int | None = None,
        resources: Sequence[str] | None = None,
        seed: int | None = None,
        reset_truth: bool = False,
    ) -> dict[str, Any]:
        """Set the periodic churn (the given settings only; `every=0` stops it) and, with `reset_truth`,
        start the ground truth afresh; returns `churn_status()`. Raises SimulatorConfigError for a bad
        value. Thread-safe."""
        given = {
            "churn_every": every,
            "churn_delete": delete,
            "churn_insert": insert,
            "churn_resources": None if resources is None else tuple(resources),
            "churn_seed": seed,
        }
        self.configure(**{name: value for name, value in given.items() if value is not None})
        if reset_truth:
            with self._data_lock:
                self.dataset.reset_churn_truth()
        return self.churn_status()

    def burst(
        self, *, delete: int, insert: int, after_requests: int = 0, resource: str | None = None
    ) -> ChurnEvent | None:
        """Delete `delete` and insert `insert` records of `resource` (None: one of the config's
        `churn_resources`, drawn) now, returning the event, or once `after_requests` more list requests
        have been answered (then None). Raises SimulatorConfigError for a bad value. Thread-safe."""
        planned = checked_burst(delete, insert, after_requests, resource)
        with self._data_lock:
            self._arm_churn(True)
            if after_requests:
                self._churn.schedule(planned, after_requests)
                return None
            return self._apply_churn(planned)

    def churn_status(self) -> dict[str, Any]:
        """The churn settings, what churn did, pending bursts, and per churned resource the ground-truth
        counts (`served`, `stable`, `transient`, `inserted`, `deleted`). JSON-ready; thread-safe."""
        with self._data_lock:
            status = self._churn.status(self._config)
            status["truth"] = {resource: self.dataset.churn_counts(resource) for resource in CHURNED}
        return status

    def _arm_churn(self, switched_on: bool) -> None:
        if switched_on and not self._churn_armed:
            self._churn_armed = True
            self.dataset.reset_churn_truth()

    def _apply_churn(self, planned: PlannedChurn) -> ChurnEvent:
        """Apply one churn event to the dataset and the cached selections (the lock is held)."""
        resource = planned.resource or self._churn.rng.choice(self._config.churn_resources)
        event = self.dataset.churn(
            resource, delete=planned.delete, insert=planned.insert, rng=self._churn.rng
        )
        self._selector.apply(event)
        self._churn.events += 1
        self._churn.deleted += len(event.deleted)
        self._churn.inserted += len(event.inserted)
        return event

    # -- token endpoint -----------------------------------------------------------------------------

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        response = await self._mint(request)
        counts = self.counters.token_by_status
        counts[response.status] = counts.get(response.status, 0) + 1
        return response

    async def _mint(self, request: web.Request) -> web.Response:
        config, counters = self._config, self.counters
        counters.token_requests += 1
        wait = self._token_window.try_acquire(self._clock())
        if wait is not None:
            counters.token_throttled += 1
            headers = self._retry_after(wait)
            limit = config.token_requests_per_minute
            return error_response(
                429, "rate_limited", f"Too many token requests: at most {limit} a minute.", headers
            )
        if config.token_error_rate and self._rng.random() < config.token_error_rate:
            counters.token_errors_injected += 1
            status = self._rng.choice((503, 504))
            return error_response(status, "unavailable", "The token service is temporarily unavailable.")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error_response(400, "invalid_request", "The body must be a JSON object.")
        if not isinstance(body, dict):
            return error_response(400, "invalid_request", "The body must be a JSON object.")
        if body.get("client_id") != config.client_id or body.get("client_secret") != config.client_secret:
            return error_response(401, "invalid_client", "Client authentication failed.")
        if body.get("grant_type") != "client_credentials":
            return error_response(400, "unsupported_grant_type", "grant_type must be client_credentials.")
        if body.get("scope") != SCOPE:
            return error_response(400, "invalid_scope", f"scope must be {SCOPE}.")
        # One live token per application: minting replaces (revokes) the previous one.
        self._token = _LiveToken(f"vat_{secrets.token_urlsafe(32)}", self._clock() + config.token_ttl_seconds)
        counters.tokens_minted += 1
        return json_response(
            200,
            {
                "access_token": self._token.value,
                "expires_in": int(config.token_ttl_seconds),
                "token_type": "Bearer",
            },
        )

    # -- API endpoints ------------------------------------------------------------------------------

    def _list_handler(self, resource: Resource) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            response = await self._serve_list(resource, request)
            counts = self.counters.by_status
            counts[response.status] = counts.get(response.status, 0) + 1
            return response

        return handle

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = self._token
        if token is None or not header.startswith("Bearer "):
            return False
        if not secrets.compare_digest(header[len("Bearer ") :].encode(), token.value.encode()):
            return False
        return self._clock() < token.expires_at

    async def _serve_list(self, resource: Resource, request: web.Request) -> web.StreamResponse:
        config, counters = self._config, self.counters
        counters.requests += 1
        now = self._clock()
        wait = self._api_window.try_acquire(now)
        if wait is not None:
            counters.throttled += 1
            headers = self._retry_after(wait)
            return error_response(429, "rate_limited", "Rate limit exceeded; back off and retry.", headers)
        counters.record_accepted(now)
        await self._latency()
        if not self._authorized(request):
            counters.unauthorized += 1
            return error_response(401, "unauthorized", "The access token is missing, expired or revoked.")
        query = request.query
        raw_size = query.get("pageSize", str(DEFAULT_PAGE_SIZE))
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            return error_response(
                400, "invalid_request", f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}."
            )
        try:
            filters = parse_filters(
                resource, query, severity_case_sensitive=config.remediation_severity_case_sensitive
            )
            key = filter_key(filters)
            cursor = query.get("pageCursor")
            after = None if cursor is None else self._cursors.decode(key, cursor)
        except (FilterError, CursorError) as exc:
            return error_response(400, "invalid_request", str(exc))
        if resource in CHURNED:
            with self._data_lock:
                for planned in self._churn.on_list_request(self._config):
                    self._apply_churn(planned)
        full_page_past_the_first = cursor is not None and int(raw_size) > 1
        if full_page_past_the_first and counters.failed_cursor_requests < config.failed_cursor_requests:
            counters.failed_cursor_requests += 1
            counters.errors_injected += 1
            # Down for an hour: past any retry budget, so the request's step fails.
            headers = {"Retry-After": "3600"}
            return error_response(503, "unavailable", "Injected outage on a page past the first.", headers)
        fault = self._rng.random()
        if fault < config.error_rate:
            counters.errors_injected += 1
            status = self._rng.choice((500, 502, 503))
            return error_response(status, "internal_error", "Injected server error.")
        fault -= config.error_rate
        truncate = fault < config.truncate_rate
        fault -= config.truncate_rate
        if not truncate and fault < config.stall_rate:
            counters.stalled += 1
            await asyncio.sleep(config.stall_seconds)
        with self._data_lock:
            page = paginate(
                self._selector.select(resource, filters),
                after=after,
                size=int(raw_size),
                book=self._cursors,
                filters=key,
            )
            data = [self.dataset.render(resource, row) for row in page.rows]
        body = orjson.dumps({"results": {"data": data, "pageInfo": page.page_info}})
        if truncate:
            counters.truncated += 1
            # A 200 whose body stops mid-JSON; Content-Length matches what is sent, so the client
            # reads it cleanly and only the JSON parse fails.
            body = body[: self._rng.randrange(1, len(body))]
        return web.Response(status=200, body=body, content_type="application/json")

    def _retry_after(self, wait: float) -> dict[str, str] | None:
        config = self._config
        if not config.retry_after:
            return None
        return {"Retry-After": retry_after_header(wait, http_date=config.retry_after_format == "http-date")}

    async def _latency(self) -> None:
        config = self._config
        if config.latency_seconds <= 0 and config.latency_jitter <= 0:
            return
        jitter = self._rng.uniform(-config.latency_jitter, config.latency_jitter)
        await asyncio.sleep(max(0.0, config.latency_seconds + jitter))
