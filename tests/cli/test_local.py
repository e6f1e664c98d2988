"""`vuln-sync local` end to end, as a subprocess: the real template in moto, the real handlers under the
poller emulation, the simulator as Vanta. The output folder is checked against the simulator's data."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.local.faults import AwsFaultInjector, AwsFaults
from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

VULNERABILITIES = 500  # enough for every list to span pages; the size is not the point
_RUN_CLI = "import sys; from vanta_vuln_sync.cli import main; sys.exit(main())"


def _vuln_sync(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VANTA_"))}
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-c", _RUN_CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _raw_ids(out: Path) -> dict[str, Counter[str]]:
    ids: dict[str, Counter[str]] = {}
    for path in sorted((out / "raw").rglob("*.ndjson.gz")):
        resource = next(p.split("=", 1)[1] for p in path.parts if p.startswith("resource="))
        with gzip.open(path, "rt") as lines:
            ids.setdefault(resource, Counter()).update(json.loads(line)["id"] for line in lines)
    return ids


@pytest.mark.integration  # a subprocess: the embedded world end to end
def test_local_run_copies_every_simulated_record_exactly_once_when_run_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _vuln_sync(
        "local",
        "--out",
        str(out),
        "--vulnerabilities",
        str(VULNERABILITIES),
        "--rate-limit",
        "0",
        "--latency",
        "0",
        "--progress",
        "plain",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Given the simulator's tenant for the same options...
    dataset = Simulator(SimulatorConfig(vulnerabilities=VULNERABILITIES)).dataset
    raw = _raw_ids(out)
    for resource in ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets"):
        expected = [record["id"] for record in dataset.records(resource)]
        # ...every record is in raw/ exactly once.
        assert raw.get(resource, Counter()) == Counter(expected), resource
    stats = json.loads((out / "stats.json").read_text())
    assert stats["vulnerabilities"]["total"] == len(dataset.records("vulnerabilities"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(manifest["records"].values()) == sum(sum(c.values()) for c in raw.values())
    assert (out / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert "not emulated by moto" in done.stdout
    assert f"report: {out / 'report.html'}" in done.stdout
    # Finalize ran in its own function, deployed from the template with the others.
    assert "finalize invocations" in done.stdout
    assert "Traceback" not in done.stderr
    # The handlers' Powertools objects were made after the functions' environment was in place.
    assert "service_undefined" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["local", "--workers", "1"], "--workers must be between 2 and 100"),
        (["local", "--vulnerabilities", "-5"], "vulnerabilities must be >= 0"),
        (["local", "--error-rate", "2"], "error_rate"),
        (["local", "--timeout", "0"], "--timeout must be positive"),
    ],
)
def test_bad_local_options_get_one_error_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("vuln-sync: error: ")
    assert message in err[0]


def test_real_vanta_needs_both_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VANTA_CLIENT_ID", "someone")
    assert main(["local"]) == 2
    assert "VANTA_CLIENT_SECRET is not" in capsys.readouterr().err


def test_local_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["local", "--help"])
    assert "vuln-sync local --out" in capsys.readouterr().out


@pytest.mark.integration  # the embedded world end to end, in this process (the fault hooks live here)
def test_local_run_warns_in_bold_when_worker_invocations_time_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in-process so that AWS itself can stall: the step never starts work it cannot finish before
    its deadline, so only an AWS call that hangs (injected at the containers' aiobotocore clients) can
    still carry a worker invocation past its timeout, as a stalled AWS endpoint would in Lambda."""
    # Given an AWS call that hangs 4 s in the first worker invocation that makes one, and a 2 s timeout...
    stall = AwsFaults(seed=1, hang_rate=1.0, hang_seconds=4.0, max_kills=1, kill_threads="-worker#")
    with AwsFaultInjector(stall).installed():
        code = main(
            [
                "local",
                "--out",
                str(tmp_path / "out"),
                "--vulnerabilities",
                "50",
                "--rate-limit",
                "0",
                "--worker-timeout",
                "2",
                "--timeout",
                "12",
                "--progress",
                "plain",
            ]
        )
    out, err = capsys.readouterr()
    # ...the run cannot finish (each timed-out batch waits out PageQueue's 30 min visibility timeout, as
    # in AWS), and the summary counts the timeouts and says what they cost.
    assert code == 1, out[-3000:] + err[-3000:]
    assert "run timed out" in err
    assert "warning: 1 worker invocation ran past its 2 s timeout" in err, err[-3000:]
    assert re.search(r"worker invocations\s.*· 1 timed", out), out[-2000:]
    assert "in AWS it would have been killed" in err
    assert "Traceback" not in err
