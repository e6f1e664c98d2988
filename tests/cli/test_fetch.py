"""`vuln-sync fetch` end to end: a real subprocess against the simulator, and its input errors."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.cli import main

# The installed console script next to this interpreter: exactly what a user runs.
VULN_SYNC = shutil.which("vuln-sync", path=str(Path(sys.executable).parent)) or "vuln-sync"


async def run_fetch(sim: Any, *args: str, secret: str | None = None) -> tuple[int, bytes, str]:
    env = {
        **os.environ,
        "VANTA_CLIENT_ID": sim.client_id,
        "VANTA_CLIENT_SECRET": secret or sim.client_secret,
        "VANTA_BASE_URL": sim.base_url,
        "VANTA_AUTH_URL": sim.auth_url,
        "VANTA_RATE_LIMIT_PER_MINUTE": "6000",
    }
    process = await asyncio.create_subprocess_exec(
        VULN_SYNC,
        "fetch",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout, stderr.decode()


async def test_fetch_prints_every_record_as_one_json_line_when_vanta_answers(simulator: Any) -> None:
    sim = await simulator(vulnerabilities=450, error_rate=0.05, truncate_rate=0.05)
    code, stdout, stderr = await run_fetch(sim, "vulnerabilities", "--page-size", "50")
    assert code == 0, stderr
    assert [orjson.loads(line) for line in stdout.splitlines()] == sim.dataset.records("vulnerabilities")
    assert "450 records" in stderr
    assert sim.client_secret not in stderr


async def test_fetch_applies_filters(simulator: Any) -> None:
    sim = await simulator(vulnerabilities=300)
    code, stdout, stderr = await run_fetch(sim, "vulnerable-assets", "--filter", "assetType=server")
    assert code == 0, stderr
    expected = [r for r in sim.dataset.records("vulnerable-assets") if r["assetType"] == "SERVER"]
    assert [orjson.loads(line) for line in stdout.splitlines()] == expected


async def test_fetch_exits_1_with_one_line_when_vanta_refuses_the_credentials(simulator: Any) -> None:
    sim = await simulator(vulnerabilities=10)
    code, stdout, stderr = await run_fetch(sim, "integrations", secret="not-the-secret")
    assert code == 1
    assert stdout == b""
    errors = [line for line in stderr.splitlines() if line.startswith("vuln-sync: error:")]
    assert len(errors) == 1
    assert "VANTA_CLIENT_SECRET" in errors[0]
    assert "not-the-secret" not in stderr
    assert "Traceback" not in stderr


async def test_fetch_rejects_a_misspelled_filter_before_any_request(simulator: Any) -> None:
    sim = await simulator(vulnerabilities=10)
    code, stdout, stderr = await run_fetch(sim, "vulnerabilities", "--filter", "sevrity=HIGH")
    assert stdout == b""
    assert code == 2
    assert stderr.startswith("vuln-sync: error: vulnerabilities has no filter 'sevrity'")
    assert "severity" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert sim.counters.requests == 0
    assert sim.counters.token_requests == 0


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["fetch", "vulnerabilities"], {}, "VANTA_CLIENT_ID and VANTA_CLIENT_SECRET must be set"),
        (
            ["fetch", "vulns"],
            {"VANTA_CLIENT_ID": "i", "VANTA_CLIENT_SECRET": "s"},
            "unknown resource 'vulns'",
        ),
        (
            ["fetch", "vulnerabilities", "--filter", "severity"],
            {"VANTA_CLIENT_ID": "i", "VANTA_CLIENT_SECRET": "s"},
            "--filter takes NAME=VALUE",
        ),
        (
            ["fetch", "vulnerabilities", "--filter", "isDeactivated=perhaps"],
            {"VANTA_CLIENT_ID": "i", "VANTA_CLIENT_SECRET": "s"},
            "isDeactivated must be true or false",
        ),
        (
            ["fetch", "vulnerabilities", "--page-size", "500"],
            {"VANTA_CLIENT_ID": "i", "VANTA_CLIENT_SECRET": "s"},
            "--page-size must be between 1 and 100",
        ),
        (
            ["fetch", "vulnerabilities"],
            {"VANTA_CLIENT_ID": "i", "VANTA_CLIENT_SECRET": "s", "VANTA_RATE_LIMIT_PER_MINUTE": "fast"},
            "VANTA_RATE_LIMIT_PER_MINUTE must be a whole number",
        ),
    ],
)
def test_fetch_exits_2_with_one_line_on_bad_input(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("vuln-sync: error: ")
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_fetch_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--filter severity=CRITICAL" in out
    assert "VANTA_CLIENT_SECRET" in out
