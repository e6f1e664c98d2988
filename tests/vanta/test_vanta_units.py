"""Cursors, filters, retry timing, token hygiene and the local rate limiter: no network needed."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from vanta_helpers import VirtualClock, max_in_any_window

from vanta_vuln_sync.vanta import (
    DeadlineReached,
    InvalidFilterError,
    LocalRateLimiter,
    RetryPolicy,
    Token,
    validate_filters,
)
from vanta_vuln_sync.vanta.cursors import cursor_before, decode_offset, encode_offset
from vanta_vuln_sync.vanta.retry import parse_retry_after


def test_arrayconnection_cursor_round_trips_its_offset() -> None:
    assert encode_offset(0) == "YXJyYXljb25uZWN0aW9uOjA="  # Vanta's documented example
    assert all(decode_offset(encode_offset(n)) == n for n in (0, 1, 99, 123_456))


def test_opaque_cursors_decode_to_no_offset() -> None:
    assert decode_offset("kX9fQ2VwhzqGuxO_Tr3TtVAv") is None
    assert decode_offset("not base64 at all!") is None
    assert decode_offset(encode_offset(5).replace("Y", "Z")) is None


def test_cursor_before_offset_starts_the_next_page_at_that_offset() -> None:
    assert cursor_before(0) is None
    assert decode_offset(cursor_before(100) or "") == 99  # the next page starts after item 99


def test_vulnerabilities_include_those_without_sla_unless_caller_says_otherwise() -> None:
    assert validate_filters("vulnerabilities", {}) == {"includeVulnerabilitiesWithoutSlas": "true"}
    assert validate_filters("vulnerabilities", {"includeVulnerabilitiesWithoutSlas": False}) == {
        "includeVulnerabilitiesWithoutSlas": "false"
    }
    assert validate_filters("vulnerable-assets", None) == {}


def test_filter_values_are_rendered_as_vanta_wants_them() -> None:
    params = validate_filters(
        "vulnerabilities",
        {
            "severity": "critical",
            "isDeactivated": True,
            "isFixAvailable": "False",
            "slaDeadlineAfterDate": datetime(2024, 1, 31, tzinfo=UTC),
            "slaDeadlineBeforeDate": "2024-02-01T00:00:00Z",
        },
    )
    assert params["severity"] == "CRITICAL"
    assert params["isDeactivated"] == "true"
    assert params["isFixAvailable"] == "false"
    assert params["slaDeadlineAfterDate"] == "2024-01-31T00:00:00Z"
    assert params["slaDeadlineBeforeDate"] == "2024-02-01T00:00:00Z"


def test_misspelled_filter_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(InvalidFilterError) as caught:
        validate_filters("vulnerability-remediations", {"remediatedAfter": "2024-01-01T00:00:00Z"})
    message = str(caught.value)
    assert "remediatedAfter" in message
    for valid in ("integrationId", "severity", "isRemediatedOnTime", "remediatedAfterDate"):
        assert valid in message


@pytest.mark.parametrize(
    ("resource", "filters"),
    [
        ("vulnerabilities", {"severity": "SEVERE"}),
        ("vulnerabilities", {"isDeactivated": "maybe"}),
        ("vulnerabilities", {"slaDeadlineAfterDate": "2024-01-01"}),  # no time zone
        ("vulnerable-assets", {"assetType": "LAPTOP"}),
        ("integrations", {"q": "aws"}),
        ("vulnerabilites", {}),
    ],
)
def test_bad_filter_values_and_unknown_resources_are_rejected(resource: str, filters: dict[str, str]) -> None:
    with pytest.raises(InvalidFilterError):
        validate_filters(resource, filters)


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    http_date = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert parse_retry_after(http_date, now) == pytest.approx(30.0)
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-3", now) == 0.0


def test_retry_delay_is_jittered_under_the_cap_and_never_below_retry_after() -> None:
    policy = RetryPolicy(base=0.5, cap=20, attempts=8, total_seconds=120)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in range(12) for _ in range(50)]
    assert max(delays) <= 20
    assert len({round(d, 6) for d in delays}) > 500  # jittered, not fixed steps
    assert all(policy.delay(0, rng, retry_after=9.0) >= 9.0 for _ in range(100))


def test_token_repr_never_shows_the_value() -> None:
    token = Token("vat_very-secret-token", 1_700_000_000.0)
    assert "vat_very-secret-token" not in repr(token)
    assert "vat_very-secret-token" not in str(token)
    assert "vat_very-secret-token" not in f"{[token]}"


async def test_local_limiter_never_exceeds_limit_in_any_60s_window_and_uses_over_90_percent(
    virtual_clock: VirtualClock,
) -> None:
    per_minute = 20
    limiter = LocalRateLimiter(per_minute, clock=virtual_clock, sleep=virtual_clock.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(25):
            await limiter.acquire()
            starts.append(virtual_clock())

    await asyncio.gather(*(worker() for _ in range(4)))
    assert max_in_any_window(starts) <= per_minute
    span = max(starts) - min(starts)
    # 100 starts at 20/min need at least 4 full windows after the first burst; allow the margin only.
    assert (len(starts) - per_minute) / (span / 60.0) >= 0.9 * per_minute


async def test_local_slot_past_the_deadline_raises_without_sleeping_or_using_the_slot(
    virtual_clock: VirtualClock, spent_limiter: LocalRateLimiter
) -> None:
    # Given a 1/min limit whose one start this minute is taken
    start = virtual_clock()
    # When a caller must start within 30 s
    with pytest.raises(DeadlineReached, match="past the deadline"):
        await spent_limiter.acquire(deadline=start + 30)
    # Then no time passed, and the next slot (60.5 s on) is still free for a caller who can wait
    assert virtual_clock() == start
    await spent_limiter.acquire(deadline=start + 61)
    assert virtual_clock() == pytest.approx(start + 60.5)


async def test_local_penalty_delays_callers_already_waiting_for_their_slot(
    virtual_clock: VirtualClock, spent_limiter: LocalRateLimiter
) -> None:
    # Given a caller asleep until its slot 60.5 s away
    start = virtual_clock()
    waiting = asyncio.ensure_future(spent_limiter.acquire())
    await asyncio.sleep(0)
    # When a 429 asks for 90 s of quiet
    await spent_limiter.penalize(90.0)
    await waiting
    # Then the caller starts only after the pause
    assert virtual_clock() >= start + 90.0
