"""The test tiers of tests/conftest.py: a test's tier follows from the fixtures it uses, and a unit test
that starts a server or a process fails saying where it belongs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

INNER = """
import socket
import subprocess
import sys

import pytest


def test_pure() -> None:
    assert 1 + 1 == 2


def test_binds_a_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


def test_starts_a_process() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.integration
def test_marked_may_bind_a_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
"""


@pytest.mark.integration  # the guard under test must not be active around the inner run
def test_a_unit_test_that_starts_a_server_or_a_process_fails_naming_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given this suite's conftest, and tests that use no server fixture
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(INNER)
    # When the unit tier runs them
    options = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--import-mode=importlib"]
    options += ["-o", "asyncio_default_fixture_loop_scope=function", "-m", "unit"]
    code = pytest.main([str(tmp_path), *options])
    out = capsys.readouterr().out
    # Then the pure one passes, the two that leave the tier fail saying how to fix it, and the one
    # marked integration is not in the tier
    assert code == pytest.ExitCode.TESTS_FAILED
    assert "2 failed, 1 passed, 1 deselected" in out
    assert out.count("is in the unit tier") >= 2
    assert "mark it `@pytest.mark.integration`" in out
