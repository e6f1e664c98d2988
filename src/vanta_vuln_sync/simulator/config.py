"""The simulator's knobs: data size, limits and fault rates, all in one frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

CursorStyle = Literal["arrayconnection", "opaque"]
CHURNABLE = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
RetryAfterFormat = Literal["seconds", "http-date"]

# Data is generated relative to this fixed instant so every run sees the same dates (and the same
# overdue counts). Override with `SimulatorConfig(now=...)` or `--now`.
DEFAULT_NOW = datetime(2026, 11, 26, tzinfo=UTC)
DEFAULT_CLIENT_ID = "vanta-sim-client"
DEFAULT_CLIENT_SECRET = "vanta-sim-secret"  # noqa: S105 - a fixed fake credential for the simulator

# Fields `Simulator.configure` may change while the simulator runs (limits and faults, not data).
RUNTIME_FIELDS = frozenset(
    {
        "cursor_style",
        "rate_limit_per_minute",
        "retry_after",
        "retry_after_format",
        "token_ttl_seconds",
        "latency_seconds",
        "latency_jitter",
        "error_rate",
        "truncate_rate",
        "stall_rate",
        "stall_seconds",
        "token_error_rate",
        "failed_cursor_requests",
        "token_requests_per_minute",
        "remediation_severity_case_sensitive",
        "churn_every",
        "churn_delete",
        "churn_insert",
        "churn_resources",
        "churn_seed",
    }
)


class SimulatorConfigError(ValueError):
    """A config value is out of range; the message names the field."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything that shapes the simulated Vanta tenant.

    `retry_after_format`: 429s carry `Retry-After` in whole seconds or as an HTTP date (both are legal).
    Sizes: `remediations` defaults to vulnerabilities // 2 and `assets` to vulnerabilities // 10 (min 1).
    Rates are probabilities per API request, drawn on one roll in the order error, truncate, stall (so
    a request gets at most one fault; if they add up to more than 1 the later ones get what is left).
    `latency_seconds` is added to every accepted API request, moved uniformly by up to
    ± `latency_jitter` seconds (never below zero).
    Churn: every `churn_every`-th list request (0 = never; counted over the vulnerabilities,
    remediations and assets endpoints together, whatever the filters) first deletes `churn_delete` and
    inserts `churn_insert` records of one of `churn_resources` (drawn per event), at random positions
    drawn from `churn_seed` (None: from `seed`). `remediation_severity_case_sensitive`: remediations'
    `severity` filter compares as written with the records' lower-case values (`CRITICAL` matches none).
    `failed_cursor_requests`: the first so many list requests for a full page past the first (a
    `pageCursor` and a `pageSize` above 1: a range's, not a planner's one-record probes) are answered 503
    with `Retry-After: 3600`, past any retry budget, whatever the rates say.
    """

    seed: int = 1
    vulnerabilities: int = 1000
    remediations: int | None = None
    assets: int | None = None
    now: datetime = DEFAULT_NOW
    cursor_style: CursorStyle = "arrayconnection"
    rate_limit_per_minute: int = 0
    # The window `rate_limit_per_minute` counts over: 60 s as Vanta's. A time-scaled load test's
    # baseline shortens it with its other times, so a burst is refused as soon as Vanta would refuse it.
    rate_window_seconds: float = 60.0
    retry_after: bool = True
    retry_after_format: RetryAfterFormat = "seconds"
    token_ttl_seconds: float = 3599
    token_requests_per_minute: int = 5
    latency_seconds: float = 0.0
    latency_jitter: float = 0.0
    error_rate: float = 0.0
    truncate_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0
    token_error_rate: float = 0.0
    failed_cursor_requests: int = 0
    remediation_severity_case_sensitive: bool = False
    churn_every: int = 0
    churn_delete: int = 1
    churn_insert: int = 1
    churn_resources: tuple[str, ...] = ("vulnerabilities", "vulnerability-remediations")
    churn_seed: int | None = None
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = dataclasses.field(default=DEFAULT_CLIENT_SECRET, repr=False)

    def __post_init__(self) -> None:
        if self.vulnerabilities < 0:
            raise SimulatorConfigError("vulnerabilities must be >= 0")
        for name in ("remediations", "assets"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SimulatorConfigError(f"{name} must be >= 0")
        if self.retry_after_format not in ("seconds", "http-date"):
            raise SimulatorConfigError("retry_after_format must be 'seconds' or 'http-date'")
        if self.cursor_style not in ("arrayconnection", "opaque"):
            raise SimulatorConfigError("cursor_style must be 'arrayconnection' or 'opaque'")
        for name in ("error_rate", "truncate_rate", "stall_rate", "token_error_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SimulatorConfigError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("latency_seconds", "latency_jitter", "stall_seconds", "rate_limit_per_minute"):
            if getattr(self, name) < 0:
                raise SimulatorConfigError(f"{name} must be >= 0")
        if self.rate_window_seconds <= 0:
            raise SimulatorConfigError("rate_window_seconds must be > 0")
        if self.token_ttl_seconds <= 0:
            raise SimulatorConfigError("token_ttl_seconds must be > 0")
        if self.token_requests_per_minute < 1:
            raise SimulatorConfigError("token_requests_per_minute must be >= 1")
        if self.now.tzinfo is None:
            raise SimulatorConfigError("now must be timezone-aware")
        for name in ("churn_every", "churn_delete", "churn_insert", "failed_cursor_requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SimulatorConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if isinstance(self.churn_resources, str) or not isinstance(self.churn_resources, tuple | list):
            raise SimulatorConfigError(f"churn_resources must be a list of {', '.join(CHURNABLE)}")
        object.__setattr__(self, "churn_resources", tuple(self.churn_resources))  # JSON gives a list
        if not self.churn_resources or not set(self.churn_resources) <= set(CHURNABLE):
            raise SimulatorConfigError(
                f"churn_resources must be a non-empty list of {', '.join(CHURNABLE)}, "
                f"got {list(self.churn_resources)}"
            )
        if self.churn_seed is not None and (
            not isinstance(self.churn_seed, int) or isinstance(self.churn_seed, bool)
        ):
            raise SimulatorConfigError(f"churn_seed must be an integer or null, got {self.churn_seed!r}")

    @property
    def remediation_count(self) -> int:
        return self.vulnerabilities // 2 if self.remediations is None else self.remediations

    @property
    def asset_count(self) -> int:
        return max(1, self.vulnerabilities // 10) if self.assets is None else max(1, self.assets)

    def public_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values, with the client secret left out."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            if field.name == "client_secret":
                continue
            value = getattr(self, field.name)
            out[field.name] = (
                value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
            )
        return out

    def with_changes(self, changes: dict[str, Any]) -> SimulatorConfig:
        """A copy with runtime `changes` applied; raises SimulatorConfigError for a field that is unknown
        or cannot change while running (data size, seed, credentials)."""
        bad = sorted(set(changes) - RUNTIME_FIELDS)
        if bad:
            raise SimulatorConfigError(
                f"cannot change {', '.join(bad)} at runtime; changeable: {', '.join(sorted(RUNTIME_FIELDS))}"
            )
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise SimulatorConfigError(str(exc)) from exc
