"""What the simulator saw: request counters, the sliding-window limiter, and the accepted-request log."""

from __future__ import annotations

import bisect
import email.utils
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0


class SlidingWindow:
    """At most `limit` acceptances in any `window` seconds (a window is (t - window, t])."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._accepted: deque[float] = deque()

    def try_acquire(self, now: float) -> float | None:
        """Accept at `now` and return None, or return the seconds until a slot frees (not accepted).

        Rejections do not use up the budget, so a client retrying too early only delays itself.
        """
        while self._accepted and self._accepted[0] <= now - self.window:
            self._accepted.popleft()
        if self.limit > 0 and len(self._accepted) >= self.limit:
            return max(0.0, self._accepted[len(self._accepted) - self.limit] + self.window - now)
        self._accepted.append(now)
        return None


def retry_after_header(wait: float, *, http_date: bool = False) -> str:
    """`Retry-After` for a wait of `wait` seconds: whole seconds rounded up (at least 1), or the
    HTTP date (wall clock) by which the wait is over."""
    seconds = max(1, math.ceil(wait))
    if http_date:
        return email.utils.formatdate(math.ceil(time.time()) + seconds, usegmt=True)
    return str(seconds)


@dataclass
class SimCounters:
    """Counters of everything the simulator served. API requests are the `/v1/*` ones.

    `requests` counts every API request, rejected ones too; `max_requests_in_60s` counts only the
    accepted ones (answered with anything but 429), the number the rate limit caps.
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    unauthorized: int = 0
    errors_injected: int = 0
    failed_cursor_requests: int = 0
    truncated: int = 0
    stalled: int = 0
    token_requests: int = 0
    tokens_minted: int = 0
    token_throttled: int = 0
    token_errors_injected: int = 0
    token_by_status: dict[int, int] = field(default_factory=dict)
    max_requests_in_60s: int = 0
    accepted_at: list[float] = field(default_factory=list, repr=False)
    _window_start: int = field(default=0, repr=False)

    def record_accepted(self, now: float) -> None:
        """Log an accepted API request at `now` (the simulator's clock) and update the max window."""
        self.accepted_at.append(now)
        while self.accepted_at[self._window_start] <= now - WINDOW_SECONDS:
            self._window_start += 1
        self.max_requests_in_60s = max(self.max_requests_in_60s, len(self.accepted_at) - self._window_start)

    def requests_in_window(self, start: float, end: float) -> int:
        """Accepted API requests with start <= time < end, on the simulator's clock."""
        return bisect.bisect_left(self.accepted_at, end) - bisect.bisect_left(self.accepted_at, start)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters (without the request log)."""
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "throttled": self.throttled,
            "unauthorized": self.unauthorized,
            "errors_injected": self.errors_injected,
            "truncated": self.truncated,
            "stalled": self.stalled,
            "token_requests": self.token_requests,
            "tokens_minted": self.tokens_minted,
            "token_throttled": self.token_throttled,
            "token_errors_injected": self.token_errors_injected,
            "token_by_status": {str(k): v for k, v in sorted(self.token_by_status.items())},
            "max_requests_in_60s": self.max_requests_in_60s,
            "accepted_requests": len(self.accepted_at),
        }
