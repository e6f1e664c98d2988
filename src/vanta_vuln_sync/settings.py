"""Settings, read from the environment once (at cold start or CLI start) into one typed object.

Every variable is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_BASE_URL = "https://api.vanta.com/v1"
DEFAULT_AUTH_URL = "https://api.vanta.com/oauth/token"

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it expects."""


@dataclass(frozen=True, slots=True)
class VantaSettings:
    """How to reach Vanta. The credentials are either given directly (CLI) or by a secret ARN (Lambda)."""

    base_url: str = DEFAULT_BASE_URL
    auth_url: str = DEFAULT_AUTH_URL
    rate_limit_per_minute: int = 50
    client_id: str | None = None
    client_secret: str | None = None
    secret_arn: str | None = None
    request_timeout: float = 30.0
    # A failed request is retried within this many seconds of its first attempt's rate slot, each
    # retry waiting at most `retry_backoff_cap` (or what Retry-After asks).
    retry_budget: float = 120.0
    retry_backoff_cap: float = 20.0

    def __repr__(self) -> str:  # never print the secret
        return (
            f"VantaSettings(base_url={self.base_url!r}, auth_url={self.auth_url!r}, "
            f"rate_limit_per_minute={self.rate_limit_per_minute}, client_id={self.client_id!r}, "
            f"client_secret={'***' if self.client_secret else None}, secret_arn={self.secret_arn!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a handler needs, from the Lambda environment (see template.yaml)."""

    vanta: VantaSettings
    state_table: str
    data_bucket: str
    page_queue_url: str
    page_budget: int = 50
    ranges_in_flight: int = 10
    # The worker fleet's size (reserved concurrency): workers x ranges in flight caps a run's ranges.
    worker_max_concurrency: int = 5
    # A run's range slots (RANGE_SLOTS): None (`auto`) sizes them from the rate limit and Vanta's round
    # trip (run/sizing.py); a number plans that many every run (workers x ranges in flight: as before).
    range_slots: int | None = None
    page_size: int = 100
    # Poison messages go straight to these (not through maxReceiveCount); see handlers/records.py.
    page_dlq_url: str | None = None
    request_dlq_url: str | None = None
    # Where the last range's step sends Finalize (the Finalize function's queue) and where a poison
    # Finalize is parked. None: Finalize goes to PAGE_QUEUE_URL and the worker runs it (tools, tests).
    finalize_queue_url: str | None = None
    finalize_dlq_url: str | None = None
    # The KMS key the Vanta token is sealed with in the state table (None: stored as it is; tools, tests).
    token_key_id: str | None = None
    # Admission: runs of scopes other than the full sync that may run at once; more requests wait.
    max_concurrent_runs: int = 3
    # A run still running after this long is failed by the next request of its scope (or for a slot).
    stuck_run_seconds: float = 2 * 3600.0
    # Bounds on what a message may ask for (larger ones are poison): pages per PageRange step, filters
    # per resource of a SyncRequest, characters of one filter value.
    max_page_budget: int = 500
    max_filters: int = 8
    max_filter_value_length: int = 200
    # The asset tag that names a finding's owner (template parameter OwnerTagKey).
    owner_tag_key: str = "team"
    # Where Finalize publishes the run digest; None: no digest (template parameter DigestEmail empty).
    digest_topic_arn: str | None = None
    # Seconds an invocation keeps after its last Vanta request for the S3 write, the commit and the
    # enqueue (run/deadline.py; at most a third of the invocation's time).
    handoff_seconds: float = 15.0
    # A worker's CPU seconds a page at its 256 MB (~10 ms at a full core, 0.145 of one: README, "Function
    # memory"): a compact run's one container does all of a run's pages, so only a limit whose pages one
    # container keeps pace with has compact runs (run/split.py). The load test divides it by its time
    # scale, with the deadlines, so a scaled point's runs are shaped as its production counterpart's.
    page_cpu_seconds: float = 0.09
    # Up to this share of a worker invocation's time is left unused, drawn once an invocation, so a
    # fleet's invocations do not all stop and hand on in the same seconds (handlers/container.py).
    worker_stagger: float = 0.1
    # The SQS delay of a step's continuation when it could start no request before its deadline, or
    # Vanta's 429s outlasted the retry budget (and of a first step sent again for either reason).
    idle_step_delay_seconds: int = 30
    # How soon a page record that failed comes back, the first time; four times as long each time after,
    # up to 64 times (handlers/retry_later.py). Without it, the PageQueue's 90-minute visibility timeout.
    page_retry_seconds: int = 60
    # Plan opaque-cursor chains as pieces from the last run's checkpoints (store/checkpoints.py), so a
    # second run is no longer bound by its longest chain. CHAIN_PIECES=false walks every chain whole.
    chain_pieces: bool = True
    # An invocation with time left takes on the continuations of its steps and the ranges they split
    # off, their messages delayed past its end as copies (run/follow_ups.py); `false`: every step goes
    # through the queue.
    take_on_steps: bool = True


def _convert(env: Mapping[str, str], name: str, convert: Callable[[str], N], what: str) -> N | None:
    """`name`'s value converted (None when unset or empty); SettingsError naming it when not `what`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    value = _convert(env, name, int, "a whole number")
    if value is None:
        return default
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _convert(env, name, float, "a number of seconds")
    if value is None:
        return default
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def _share(env: Mapping[str, str], name: str, default: float, *, most: float) -> float:
    what = f"a share between 0 and {most:g}"
    value = _convert(env, name, float, what)
    if value is None:
        return default
    if not 0.0 <= value <= most:
        raise SettingsError(f"{name} must be {what}, got {value:g}")
    return value


def _range_slots(env: Mapping[str, str], name: str) -> int | None:
    """None for `auto` (the default), else a whole number of at least 1; SettingsError naming `name`."""
    raw = env.get(name, "").strip()
    if raw.lower() in ("", "auto"):
        return None
    try:
        slots = int(raw)
    except ValueError:
        slots = 0
    if slots < 1:
        raise SettingsError(
            f"{name} must be `auto` or a whole number of range slots of at least 1, got {raw!r}"
        )
    return slots


def vanta_settings_from_env(env: Mapping[str, str] | None = None) -> VantaSettings:
    """Vanta settings from `VANTA_*` variables; raises SettingsError on a malformed value."""
    env = os.environ if env is None else env
    return VantaSettings(
        base_url=env.get("VANTA_BASE_URL") or DEFAULT_BASE_URL,
        auth_url=env.get("VANTA_AUTH_URL") or DEFAULT_AUTH_URL,
        rate_limit_per_minute=_int(env, "VANTA_RATE_LIMIT_PER_MINUTE", 50),
        client_id=env.get("VANTA_CLIENT_ID") or None,
        client_secret=env.get("VANTA_CLIENT_SECRET") or None,
        secret_arn=env.get("VANTA_SECRET_ARN") or None,
        request_timeout=_float(env, "VANTA_REQUEST_TIMEOUT", 30.0),
        retry_budget=_float(env, "VANTA_RETRY_BUDGET_SECONDS", 120.0),
        retry_backoff_cap=_float(env, "VANTA_RETRY_BACKOFF_CAP_SECONDS", 20.0),
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """All handler settings; raises SettingsError naming the first missing or malformed variable."""
    env = os.environ if env is None else env

    def required(name: str) -> str:
        value = env.get(name)
        if not value:
            raise SettingsError(f"{name} is not set; the template sets it for every function")
        return value

    return Settings(
        vanta=vanta_settings_from_env(env),
        state_table=required("STATE_TABLE"),
        data_bucket=required("DATA_BUCKET"),
        page_queue_url=required("PAGE_QUEUE_URL"),
        page_budget=_int(env, "PAGE_BUDGET", 50),
        ranges_in_flight=_int(env, "RANGES_IN_FLIGHT", 10),
        worker_max_concurrency=_int(env, "WORKER_MAX_CONCURRENCY", 5),
        range_slots=_range_slots(env, "RANGE_SLOTS"),
        page_size=min(_int(env, "PAGE_SIZE", 100), 100),
        page_dlq_url=env.get("PAGE_DLQ_URL") or None,
        request_dlq_url=env.get("REQUEST_DLQ_URL") or None,
        finalize_queue_url=env.get("FINALIZE_QUEUE_URL") or None,
        finalize_dlq_url=env.get("FINALIZE_DLQ_URL") or None,
        token_key_id=env.get("TOKEN_KEY_ID") or None,
        max_concurrent_runs=_int(env, "MAX_CONCURRENT_RUNS", 3),
        stuck_run_seconds=_float(env, "STUCK_RUN_SECONDS", 2 * 3600.0),
        max_page_budget=_int(env, "MAX_PAGE_BUDGET", 500),
        max_filters=_int(env, "MAX_FILTERS", 8),
        max_filter_value_length=_int(env, "MAX_FILTER_VALUE_LENGTH", 200),
        owner_tag_key=env.get("OWNER_TAG_KEY") or "team",
        digest_topic_arn=env.get("DIGEST_TOPIC_ARN") or None,
        handoff_seconds=_float(env, "STEP_HANDOFF_SECONDS", 15.0),
        page_cpu_seconds=_float(env, "PAGE_CPU_SECONDS", 0.09),
        worker_stagger=_share(env, "WORKER_STAGGER", 0.1, most=0.5),
        idle_step_delay_seconds=min(_int(env, "IDLE_STEP_DELAY_SECONDS", 30), 900),
        page_retry_seconds=min(_int(env, "PAGE_RETRY_SECONDS", 60), 43_200),
        chain_pieces=env.get("CHAIN_PIECES", "true").strip().lower() not in ("0", "false", "no"),
        take_on_steps=env.get("TAKE_ON_STEPS", "true").strip().lower() not in ("0", "false", "no"),
    )
