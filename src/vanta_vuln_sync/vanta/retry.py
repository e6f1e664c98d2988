"""How long to wait before retrying a failed Vanta request: capped exponential backoff, full jitter,
and Retry-After (seconds or an HTTP date) honoured as a floor."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` requests in all, within `total_seconds` of the first; the n-th retry waits
    `uniform(0, min(cap, base * 2**n))` seconds, or at least what Retry-After asks."""

    base: float = 0.5
    cap: float = 20.0
    attempts: int = 8
    total_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.attempts < 1 or self.total_seconds < 0:
            raise ValueError(f"invalid retry policy {self!r}")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter delay before retry number `retry` (0 for the first retry)."""
        return rng.uniform(0.0, min(self.cap, self.base * 2.0 ** min(retry, 62)))

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The wait before retry number `retry`: the jittered backoff, never less than `retry_after`."""
        jittered = self.backoff(retry, rng)
        return jittered if retry_after is None else max(jittered, retry_after)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date, relative to the epoch
    time `now`); None when absent or unreadable. Never negative."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)
