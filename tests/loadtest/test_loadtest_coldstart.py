"""Cold-start measurement: fresh-interpreter import timing and `-X importtime` parsing."""

from __future__ import annotations

import pytest
from loadtest.coldstart import lambda_environment, parse_importtime, time_import


def test_importtime_lines_are_parsed_into_self_microseconds_per_module() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _io\n"
        "import time:      3050 |       5000 | aiohttp.client\n"
        "noise\n"
    )

    assert parse_importtime(stderr) == {"_io": 120, "aiohttp.client": 3050}


@pytest.mark.integration  # a subprocess
def test_import_is_timed_in_a_fresh_interpreter_when_module_is_not_yet_loaded() -> None:
    seconds = time_import("import json", lambda_environment())

    assert 0.0 < seconds < 5.0


def test_lambda_environment_turns_tracing_on_as_in_lambda() -> None:
    env = lambda_environment()

    assert env["AWS_LAMBDA_FUNCTION_NAME"]
    assert "POWERTOOLS_TRACE_DISABLED" not in env
