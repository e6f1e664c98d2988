"""The world builder's own rules (the worlds themselves are built by the integration tests)."""

from __future__ import annotations

from typing import Any

import pytest

from vanta_vuln_sync.local.world import UNREACHED_VANTA, VantaTarget, World
from vanta_vuln_sync.simulator import SimulatorConfig


def test_a_vanta_targets_secret_is_never_in_its_repr() -> None:
    target = VantaTarget("https://api.vanta.com/v1", "https://api.vanta.com/oauth/token", "id", "s3cr3t")

    assert "s3cr3t" not in repr(target)
    assert "s3cr3t" not in str(target)


@pytest.mark.parametrize(
    "given", [{}, {"simulator": SimulatorConfig(), "vanta": UNREACHED_VANTA}], ids=["neither", "both"]
)
def test_a_world_needs_exactly_one_vanta(given: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either a simulator config or a Vanta target"):
        World(**given)
