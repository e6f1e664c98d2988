"""`vuln-sync local --serve` as a user drives it: the server in one process, and from outside it
`vuln-sync resync | status --stack local` and a raw SQS SendMessage of an `events/` file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.ops.runs import candidate_run_ids
from vanta_vuln_sync.ops.served import STATE_ENV

EVENTS = Path(__file__).resolve().parents[2] / "events"
_RUN_CLI = "import sys; from vanta_vuln_sync.cli import main; sys.exit(main())"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """`vuln-sync local --serve` started in tmp_path (a small tenant, two workers for fewer cold starts,
    the schedule once a minute); yields the process, its state file and its log. Stopped with SIGINT if
    the test left it running."""
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VANTA_"))}
    env.pop(STATE_ENV, None)
    argv = ["local", "--serve", "--schedule-every", "1", "--vulnerabilities", "100", "--workers", "2"]
    argv += ["--rate-limit", "0", "--latency", "0", "--progress", "plain"]
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [sys.executable, "-c", _RUN_CLI, *argv],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield process, tmp_path / "out" / "local-stack.json", log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(path: Path, process: subprocess.Popen[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _wait_in_log(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)


def _status_when_ended(run_id: str, capsys: pytest.CaptureFixture[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code = main(["status", run_id, "--stack", "local"])
        out = capsys.readouterr().out
        if code != 0 or re.search(r"^status +(succeeded|failed)$", out, re.MULTILINE):
            return out
        assert time.monotonic() < deadline, out
        time.sleep(0.5)


@pytest.mark.integration  # starts `vuln-sync local --serve` as a process
def test_served_stack_runs_a_cli_resync_and_a_raw_sqs_message_then_stops_cleanly_on_ctrl_c(
    served: tuple[subprocess.Popen[str], Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process, state_file, log = served
    started = time.monotonic()
    # Given the served stack, found by the CLI through the state file it wrote...
    _wait_for(state_file, process, log, timeout=90)
    up = time.monotonic() - started
    monkeypatch.setenv(STATE_ENV, str(state_file))
    state = json.loads(state_file.read_text())
    assert state["pid"] == process.pid
    assert "client_secret" not in state_file.read_text()

    # When a resync is sent with the CLI...
    assert main(["resync", "--stack", "local", "-r", "vulnerabilities", "--filter", "severity=HIGH"]) == 0
    planned = re.search(r"^run (\S+) planned$", capsys.readouterr().out, re.MULTILINE)
    assert planned, log.read_text()
    # ...and an events/ file is sent as any SQS client would send it (the aws CLI's send-message).
    sqs = boto3.client(
        "sqs",
        endpoint_url=state["endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="anything",
        aws_secret_access_key="anything",
    )
    before = time.time()
    message_id = sqs.send_message(
        QueueUrl=state["outputs"]["RequestQueueUrl"],
        MessageBody=(EVENTS / "sync-request-resync-critical.json").read_text(),
    )["MessageId"]
    candidates = candidate_run_ids(message_id, before, time.time())

    # Then both runs succeed, as `vuln-sync status --stack local` reports them.
    resync = _status_when_ended(planned.group(1), capsys, timeout=60)
    assert re.search(r"^status +succeeded$", resync, re.MULTILINE), resync + log.read_text()
    assert re.search(r"^reason +manual resync$", resync, re.MULTILINE), resync
    raw_run = None
    deadline = time.monotonic() + 30
    while raw_run is None:
        raw_run = next((c for c in candidates if c in log.read_text()), None)
        assert raw_run or time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    raw = _status_when_ended(raw_run, capsys, timeout=60)
    assert re.search(r"^status +succeeded$", raw, re.MULTILINE), raw + log.read_text()
    assert re.search(r"^reason +resync critical vulnerabilities$", raw, re.MULTILINE), raw
    # The scheduled full sync, fired at start, is `latest` once it has succeeded.
    _wait_in_log(log, "(schedule; scope all): succeeded", timeout=60)
    assert main(["status", "--stack", "local"]) == 0
    assert re.search(r"^reason +schedule$", capsys.readouterr().out, re.MULTILINE)
    # Each successful run's outputs are copied once the server has seen it succeed (its `report` line
    # follows the copy): the full sync's to the top of the output folder, the resync's under runs/.
    # (the server prints them relative to its working directory, the test's tmp_path)
    out = state_file.parent
    _wait_in_log(log, f"report {out.name}/report.html;", timeout=30)
    assert (out / "findings").is_dir()
    resync = f"runs/{planned.group(1)}/report.html"
    _wait_in_log(log, f"report {out.name}/{resync};", timeout=30)
    assert (out / resync).is_file()

    # And Ctrl-C stops it cleanly: exit code 0, the state file removed, `--stack local` says so.
    runs_done = time.monotonic() - started
    process.send_signal(signal.SIGINT)
    # (the poller, its containers, the simulator and moto stop in seconds; 90 leaves room for a loaded CI)
    assert process.wait(90) == 0, log.read_text()
    stopped = time.monotonic() - started - runs_done
    assert log.read_text().rstrip().endswith("stopped")
    assert not state_file.exists()
    assert main(["status", "--stack", "local"]) == 2
    assert "vuln-sync local --serve" in capsys.readouterr().err
    print(f"served in {up:.1f} s; runs done at {runs_done:.1f} s; stopped in {stopped:.1f} s")
