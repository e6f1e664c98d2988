"""What a message may ask of the fleet, checked against the settings before any work is done for it.

A message within the format (`messages.py`) can still ask for too much or for something its run never
planned: a PageRange with a huge page budget, a resync with outsized filters, or a first step of a range
that is not in its run's plan (which would count a range the plan does not have and could trigger the
run's Finalize early). Each is poison (MessageError): parked on its first receive, never retried.
"""

from __future__ import annotations

from vanta_vuln_sync.messages import MessageError, PageRange, SyncRequest
from vanta_vuln_sync.settings import Settings
from vanta_vuln_sync.store.state import RunStore


def check_sync_request(request: SyncRequest, settings: Settings) -> None:
    """Raise MessageError when the request's filters exceed `max_filters` per resource or
    `max_filter_value_length` characters a value."""
    for resource, filters in request.filters.items():
        if len(filters) > settings.max_filters:
            raise MessageError(
                f"{len(filters)} filters for {resource}; at most {settings.max_filters} (MAX_FILTERS)"
            )
        for name, value in filters.items():
            if len(value) > settings.max_filter_value_length:
                raise MessageError(
                    f"filter {resource}.{name} is {len(value)} characters long; at most "
                    f"{settings.max_filter_value_length} (MAX_FILTER_VALUE_LENGTH)"
                )


async def check_page_range(page_range: PageRange, settings: Settings, store: RunStore) -> None:
    """Raise MessageError when the step asks for more than `max_page_budget` pages, or when it is the
    first step (`seq` 0) of a range whose resource and shard are not among its run's planned ranges
    nor the ranges split off them.
    A later step needs no plan check: the worker drops a step whose range has no committed progress
    before it. A run without a plan is left to the step (it parks the message as an unknown run)."""
    p = page_range
    if p.page_budget > settings.max_page_budget:
        raise MessageError(
            f"page_budget {p.page_budget} is above the limit of {settings.max_page_budget} (MAX_PAGE_BUDGET)"
        )
    if p.seq != 0:
        return
    planned = await _planned_ranges(store, p.run_id)
    if planned is not None and p.range_name not in planned:
        # Or a range split off a planned one while the run went on (run/split.py): the run counted it
        # before its message was sent.
        run = await store.get_run(p.run_id)
        if run is None or p.range_name not in run.added_ranges:
            raise MessageError(f"range {p.range_name} is not in the plan of run {p.run_id}")


# A plan never changes once stored (RunStore.create_run writes it once), so each container reads a run's
# plan once, not once per range: the plan item can be large and every range's first step asks.
_PLANS: dict[tuple[int, str], frozenset[str]] = {}
_PLANS_KEPT = 32


async def _planned_ranges(store: RunStore, run_id: str) -> frozenset[str] | None:
    """The range keys of the run's plan; None when the run has no plan (yet)."""
    key = (id(store), run_id)
    cached = _PLANS.get(key)
    if cached is not None:
        return cached
    plan = await store.get_plan(run_id)
    if not plan:
        return None
    planned = frozenset(r.range_name for r in plan)
    if len(_PLANS) >= _PLANS_KEPT:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = planned
    return planned
