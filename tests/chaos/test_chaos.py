"""Full syncs through the embedded runtime under injected faults keep every promise (see checks.py):
every record exactly once, statistics equal to the reference, the run completed once, only genuine
poison in the DLQs. The short scenarios run in `nox -s tests`; `nox -s chaos` runs them all."""

from __future__ import annotations

import pytest

from .conftest import FULL, OUTCOMES
from .harness import ChaosBench, Scenario
from .scenarios import FULL as FULL_SCENARIOS
from .scenarios import SHORT


def _run(bench: ChaosBench, scenario: Scenario) -> None:
    outcome = bench.run(scenario)
    OUTCOMES.append(outcome)
    assert outcome.passed, f"{scenario.name}: {outcome.verdict.problems} (faults: {outcome.faults()})"


@pytest.mark.exactness
@pytest.mark.parametrize("scenario", SHORT, ids=lambda s: s.name)
def test_sync_keeps_every_promise_when_faults_combine(bench: ChaosBench, scenario: Scenario) -> None:
    _run(bench, scenario)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="the full chaos suite runs in `nox -s chaos` (VVS_CHAOS=full)")
@pytest.mark.parametrize("scenario", FULL_SCENARIOS, ids=lambda s: s.name)
def test_sync_keeps_every_promise_under_each_fault(bench: ChaosBench, scenario: Scenario) -> None:
    _run(bench, scenario)
