"""`python -m loadtest.coldstart`: the worker handler's import time against the floor of its libraries.

Each sample is a fresh interpreter that times one import statement with `time.perf_counter` (the
interpreter's own start-up is left out, as it is the same for both). The floor imports only what the
worker cannot avoid: aiobotocore, aiohttp, orjson, Powertools' Logger/Metrics/Tracer and batch utility,
and the X-Ray SDK. Samples alternate handler / floor so load on the machine hits both alike; the medians
and their ratio are printed (target <= 1.3). Both run with a Lambda-like environment (tracing on).
`-X importtime` then names the modules the handler imports beyond the floor, heaviest first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

HANDLER = "import vanta_vuln_sync.handlers.worker"
FLOOR = (
    "import aiobotocore.session, aiohttp, orjson\n"
    "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
    "from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType\n"
    "import aws_xray_sdk.core"
)
_TIMER = "import time\n_t = time.perf_counter()\n{statement}\nprint(time.perf_counter() - _t)\n"
TARGET_RATIO = 1.3


def lambda_environment() -> dict[str, str]:
    """This environment plus what Lambda sets that changes import-time behaviour (Powertools)."""
    env = dict(os.environ)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "vuln-sync-worker",
            "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
            "POWERTOOLS_SERVICE_NAME": "vanta-vuln-sync",
            "POWERTOOLS_METRICS_NAMESPACE": "VantaVulnSync",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    return env


def time_import(statement: str, env: dict[str, str]) -> float:
    """Seconds one fresh interpreter takes to run `statement` (an import)."""
    completed = subprocess.run(
        [sys.executable, "-c", _TIMER.format(statement=statement)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def parse_importtime(stderr: str) -> dict[str, int]:
    """`-X importtime` output -> {module: self microseconds}."""
    selves: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(fields) != 3 or not fields[0].isdigit():
            continue
        selves[fields[2].strip()] = int(fields[0])
    return selves


def extra_imports(env: dict[str, str], top: int = 15) -> list[tuple[str, float]]:
    """Top-level packages the handler imports beyond the floor, with their self time in ms."""
    statement = FLOOR + "\nimport sys; _floor = set(sys.modules)\n" + HANDLER
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    floor = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", FLOOR], env=env, capture_output=True, text=True, check=True
    )
    already = set(parse_importtime(floor.stderr))
    by_package: dict[str, float] = {}
    for module, micros in parse_importtime(completed.stderr).items():
        if module in already:
            continue
        package = module.split(".")[0] if not module.startswith("vanta_vuln_sync") else module
        by_package[package] = by_package.get(package, 0.0) + micros / 1000.0
    return sorted(by_package.items(), key=lambda item: -item[1])[:top]


@dataclass(frozen=True, slots=True)
class ColdStart:
    handler_s: list[float]
    floor_s: list[float]

    @property
    def handler_median(self) -> float:
        return statistics.median(self.handler_s)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor_s)

    @property
    def ratio(self) -> float:
        return self.handler_median / self.floor_median


def measure(repetitions: int, env: dict[str, str] | None = None) -> ColdStart:
    """`repetitions` alternating samples of the handler and the floor."""
    env = env or lambda_environment()
    handler: list[float] = []
    floor: list[float] = []
    for _ in range(repetitions):
        handler.append(time_import(HANDLER, env))
        floor.append(time_import(FLOOR, env))
    return ColdStart(handler, floor)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.coldstart", description=__doc__)
    parser.add_argument("-n", "--repetitions", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    env = lambda_environment()
    result = measure(args.repetitions, env)
    extras = extra_imports(env)
    if args.json:
        print(
            json.dumps(
                {
                    "handler_s": result.handler_s,
                    "floor_s": result.floor_s,
                    "ratio": result.ratio,
                    "extra_imports_ms": extras,
                }
            )
        )
    else:
        print(f"worker handler import: median {result.handler_median * 1000:.0f} ms over {args.repetitions}")
        print(
            "floor (aiobotocore, aiohttp, orjson, Powertools, X-Ray): "
            f"median {result.floor_median * 1000:.0f} ms"
        )
        verdict = "meets" if result.ratio <= TARGET_RATIO else "misses"
        print(f"ratio {result.ratio:.2f} ({verdict} the <= {TARGET_RATIO} target)")
        print("imported beyond the floor (self time, ms):")
        for package, millis in extras:
            print(f"  {package:45s} {millis:7.1f}")
    return 0 if result.ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
