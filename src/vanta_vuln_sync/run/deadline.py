"""The invocation's deadline, carried into every Vanta request a step or a plan makes.

Lambda kills an invocation at its timeout. At 50 requests a minute shared by the fleet, the next rate
slot can be minutes away, so no request may start whose slot or expected end falls past the point where
the invocation must stop to commit and hand on: the client raises DeadlineReached instead of waiting
(vanta/client.py), and the step commits what it read and hands the rest on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vanta_vuln_sync.vanta import RecentDurations, VantaClient
from vanta_vuln_sync.vanta.client import Page


def handoff_reserve(configured: float, handoffs: RecentDurations) -> float:
    """The seconds a step keeps for its hand-off (the S3 write, the commit, the enqueue): the configured
    reserve (`STEP_HANDOFF_SECONDS`), or twice the slowest of the container's recent hand-offs when that
    is more (AWS slower than the setting assumed). Twice the configured one until the container has
    timed a hand-off: a cold container's first steps stop together with the rest of the fleet's first
    wave, and theirs is the slowest hand-off of a run."""
    if not handoffs:
        return 2 * configured
    return max(configured, 2 * handoffs.slowest())


def take_on_seconds(configured: float, handoffs: RecentDurations) -> float:
    """The time left an invocation needs to take a step on (run/follow_ups.py): the hand-off reserve the
    step will keep (`handoff_reserve`), plus two configured reserves for its pages: 45 s at the default
    15 s once the container's hand-offs are timed and fast. A fixed three configured reserves let a
    container whose hand-offs had grown slow take on steps that stopped before their first request."""
    return handoff_reserve(configured, handoffs) + 2 * configured


def deadline_of(
    remaining: Callable[[], float] | None, clock: Callable[[], float], reserve: float
) -> float | None:
    """The epoch second by which a request must have ended (None: no deadline, as in the CLI): `reserve`
    seconds (Settings.handoff_seconds, or more after slow hand-offs: the S3 write, the commit, the enqueue)
    before the invocation's end, at most a third of the time left, so a short timeout still leaves room
    for requests."""
    if remaining is None:
        return None
    left = remaining()
    return clock() + left - min(reserve, left / 3)


class DeadlineSource:
    """A VantaClient whose every `fetch_page` carries `deadline` (the PageSource of walks and plans)."""

    def __init__(self, client: VantaClient, deadline: float | None) -> None:
        self.client = client
        self.deadline = deadline

    async def fetch_page(
        self, resource: str, filters: Mapping[str, str], cursor: str | None = None, page_size: int = 100
    ) -> Page:
        return await self.client.fetch_page(
            resource, filters, cursor=cursor, page_size=page_size, deadline=self.deadline
        )
