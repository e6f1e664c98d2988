"""The state file through which `--stack local` finds `vuln-sync local --serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.ops.served import (
    STATE_ENV,
    ServedStack,
    ServedStackError,
    read_served,
    remove_served,
    state_path,
    write_served,
)


def _served(pid: int) -> ServedStack:
    return ServedStack(
        stack_name="vuln-sync-local",
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        access_key_id="embedded",
        secret_access_key="embedded",
        outputs={"RequestQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q"},
        pid=pid,
    )


def _ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_state_file_round_trips_and_only_its_owner_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "out" / "local-stack.json"
    write_served(path, _served(os.getpid()))
    assert read_served(path) == _served(os.getpid())
    assert path.stat().st_mode & 0o077 == 0, "readable by this user only"
    remove_served(path, pid=os.getpid() + 1)
    assert path.exists()
    remove_served(path, pid=os.getpid())
    assert not path.exists()


@pytest.mark.integration  # starts a process that ends, for a pid no server holds
def test_state_file_of_an_ended_server_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "local-stack.json"
    write_served(path, _served(_ended_pid()))
    with pytest.raises(ServedStackError, match="has ended: start one with `vuln-sync local --serve`"):
        read_served(path)


def test_state_path_is_out_unless_the_environment_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STATE_ENV, raising=False)
    assert state_path() == Path("out") / "local-stack.json"
    assert state_path(tmp_path) == tmp_path / "local-stack.json"
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "elsewhere.json"))
    assert state_path(tmp_path) == tmp_path / "elsewhere.json"


@pytest.mark.parametrize("command", [["status"], ["redrive"], ["resync", "--wait", "0"], ["report"]])
def test_every_command_says_in_one_line_when_no_local_stack_is_served(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "none.json"))
    assert main([*command, "--stack", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "no local stack is being served" in err[0]
    assert "vuln-sync local --serve" in err[0]
