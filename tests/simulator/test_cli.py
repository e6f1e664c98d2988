"""`python -m vanta_vuln_sync.simulator` options, and the control endpoints it advertises."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import aiohttp
import pytest

from vanta_vuln_sync.simulator.__main__ import build_parser, config_from_args

from .conftest import SignIn
from .helpers import fetch_all


def test_options_become_the_simulator_config() -> None:
    options = (
        "--vulnerabilities 2000 --cursor-style opaque --rate-limit 20 --no-retry-after --latency 0.2 "
        "--latency-jitter 0.1 --error-rate 0.05 --truncate-rate 0.01 --stall-rate 0.02 --stall-seconds 9 "
        "--token-error-rate 0.1 --client-secret s3cret --now 2027-01-01T00:00:00Z --seed 4 "
        "--retry-after-format http-date"
    )
    args = build_parser().parse_args(options.split(" "))
    config = config_from_args(args)
    assert config.vulnerabilities == 2000
    assert config.cursor_style == "opaque"
    assert config.rate_limit_per_minute == 20
    assert config.retry_after is False
    assert config.retry_after_format == "http-date"
    assert (config.latency_seconds, config.latency_jitter) == (0.2, 0.1)
    assert (config.error_rate, config.truncate_rate, config.stall_rate) == (0.05, 0.01, 0.02)
    assert config.stall_seconds == 9
    assert config.token_error_rate == 0.1
    assert config.client_secret == "s3cret"
    assert config.now == datetime(2027, 1, 1, tzinfo=UTC)
    assert config.seed == 4


@pytest.mark.integration  # a subprocess
def test_help_shows_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vanta_vuln_sync.simulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--cursor-style" in result.stdout
    assert "examples:" in result.stdout
    assert "/_sim/counters" in result.stdout
    assert "/_sim/churn" in result.stdout
    assert "--churn-every" in result.stdout


async def test_evolve_endpoint_changes_what_the_api_serves(
    signed_in: SignIn, http: aiohttp.ClientSession
) -> None:
    sim, token = await signed_in(vulnerabilities=400)
    before = await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
    async with http.post(f"{sim.origin}/_sim/evolve", params={"seed": "3"}) as response:
        change = await response.json()
    assert change["fixed"] > 0
    assert change["new"] > 0
    after = await fetch_all(http, sim, "vulnerabilities", token, includeVulnerabilitiesWithoutSlas="true")
    assert after == sim.dataset.records("vulnerabilities")
    assert len(after) == len(before) - change["fixed"] + change["new"]


def test_churn_options_become_the_simulator_config() -> None:
    options = (
        "--churn-every 5 --churn-delete 2 --churn-insert 3 --churn-seed 9 "
        "--churn-resources vulnerabilities,vulnerable-assets --remediation-severity-case-sensitive"
    )
    config = config_from_args(build_parser().parse_args(options.split(" ")))
    assert (config.churn_every, config.churn_delete, config.churn_insert, config.churn_seed) == (5, 2, 3, 9)
    assert config.churn_resources == ("vulnerabilities", "vulnerable-assets")
    assert config.remediation_severity_case_sensitive is True
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.churn_every, defaults.remediation_severity_case_sensitive) == (0, False)
    assert defaults.churn_resources == ("vulnerabilities", "vulnerability-remediations")
