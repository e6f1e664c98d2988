"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s demo`, and the rest listed by `nox -l`."""

from __future__ import annotations

import ast
import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
# uv when nox can find it (`pip install nox[uv]`); `install` below brings uv in otherwise.
nox.options.default_venv_backend = "uv|virtualenv"


# No bytecode compiled at install (pip compiles everything it installs; uv's `--compile-bytecode` took
# ~20 s here): the test runs write it as they import (`CACHED_BYTECODE` below), so what is imported is
# compiled once, by the first process that needs it.
_UV_OPTIONS = ("--quiet",)


def install(session: nox.Session, *requirements: str) -> None:
    """Install into the session's environment with uv, falling back to pip.

    pip takes over two minutes to resolve and install `.[dev]` into a fresh environment on this project's
    2-core machine (136 s, 2026-11-30); uv takes about 6 s. A session on nox's uv backend installs with uv
    already; otherwise uv is put into the session first (3 s). uv does not read pip's configuration
    (pip.conf's index, constraints): if it cannot install, pip does, with the machine's configuration.
    """
    from nox.command import CommandFailed

    if getattr(session, "venv_backend", "") == "uv":
        session.install(*requirements)
        return
    session.install("uv")
    try:
        python = os.path.join(session.bin, "python")
        session.run("python", "-m", "uv", "pip", "install", *_UV_OPTIONS, "--python", python, *requirements)
    except CommandFailed:
        session.warn("uv could not install %s; installing with pip", " ".join(requirements))
        session.install(*requirements)


# The two tiers (tests/conftest.py decides a test's tier from the fixtures it uses). `slow` = the full chaos
# suite and other long runs: they have sessions of their own (`nox -s chaos`). Exit code 5 = "no test
# selected", e.g. `nox -s tests -- tests/stats/test_digest.py` holds no unit test.
UNIT = ("-m", "unit and not slow")
# The integration tests marked `exactness` (every record once, live tenants, redelivery and crashes, the
# combined chaos scenarios, statistics against the reference) run in `nox -s tests`, so the session that
# every change must pass answers in under 3 minutes on two cores; the rest of the integration tier (the
# CLI end to end, ops, fleets and admission, the security recording, the load-test harness, more fault
# variants) runs in `nox -s integration`. CI (.ci/run) runs both.
EXACTNESS = ("-m", "integration and exactness and not slow")
INTEGRATION = ("-m", "integration and not exactness and not slow")
# Integration tests mostly wait (on scaled clocks, rate windows, queues), so processes overlap on two cores;
# `--dist loadgroup` with the groups tests/conftest.py sets keeps a shared world's tests (the security
# tests' recorded sync) in one process, so that world is built once; other tests are balanced one by one.
PARALLEL = ("-n", "3", "--dist", "loadgroup")
# Bytecode written even where PYTHONDONTWRITEBYTECODE is set (as on this project's machines): each pytest
# process (and each CLI subprocess a test starts) otherwise compiles the project and its dependencies
# and rewrites every test module's asserts again (~7 s of CPU for the collection alone, paid by the unit
# run and each of the three integration workers).
CACHED_BYTECODE: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": None}


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite every change must pass: the unit tier first (stops at the first failure), then the
    exactness tests (whole syncs through moto server and the Vanta simulator over loopback, no AWS, no
    Vanta). `nox -s integration` runs the other integration tests."""
    install(session, "-e", ".[dev]")
    session.run("pytest", "-q", "-x", *UNIT, *session.posargs, success_codes=[0, 5], env=CACHED_BYTECODE)
    session.run(
        "pytest", "-q", *EXACTNESS, *PARALLEL, *session.posargs, success_codes=[0, 5], env=CACHED_BYTECODE
    )


@nox.session
def integration(session: nox.Session) -> None:
    """The integration tests that `nox -s tests` leaves out: the CLI end to end, ops, fleets and
    admission, the security recording, the load-test harness, more fault variants (CI runs them too)."""
    install(session, "-e", ".[dev]")
    session.run(
        "pytest", "-q", *INTEGRATION, *PARALLEL, *session.posargs, success_codes=[0, 5], env=CACHED_BYTECODE
    )


@nox.session
def unit(session: nox.Session) -> None:
    """The fast tier alone (under 30 s): tests that start no server and no process."""
    install(session, "-e", ".[dev]")
    session.run("pytest", "-q", *UNIT, *session.posargs, success_codes=[0, 5], env=CACHED_BYTECODE)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict on src/) and cfn-lint on the template."""
    install(session, "-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "loadtest", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "loadtest", "noxfile.py")
    session.run("mypy")
    session.run("cfn-lint", "template.yaml")
    session.notify("security")  # checkov on template.yaml, in its own venv (see `security`)


# ---- Infrastructure: validate, build and deploy template.yaml (AWS SAM, python3.13 on arm64).
LAMBDA_PYTHON = "3.13"
# The python3.13 Lambda runtime is Amazon Linux 2023 (glibc 2.34) on Graviton. pip does not widen a
# --platform tag to older glibc versions, so every tag a compatible wheel may carry is listed.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
SAM_CLI = "aws-sam-cli>=1.120"
BUILD_DIR = "build"


@nox.session
def validate(session: nox.Session) -> None:
    """cfn-lint and `sam validate --lint` on template.yaml (offline, no AWS credentials needed)."""
    install(session, "cfn-lint", SAM_CLI)
    session.run("cfn-lint", "template.yaml")
    session.run("sam", "validate", "--lint", "--template-file", "template.yaml", env=_sam_env())


@nox.session
def build(session: nox.Session) -> None:
    """`sam build` for python3.13 on arm64 without Docker; the Lambda's requirements pinned from pyproject;
    the package pruned to the modules the handlers import (the zip sizes before and after are logged)."""
    install(session, SAM_CLI)
    _sam_build(session)


@nox.session
def deploy(session: nox.Session) -> None:
    """`build`, then `sam deploy` with samconfig.toml. First time: `nox -s deploy -- --guided`.

    With AWS_ENDPOINT_URL set (a loopback moto server, e.g. the one `vuln-sync local --serve` prints),
    the deploy rehearsal instead: the real `sam package` and `sam deploy` (upload, change set from the
    template's URL, stack created) against moto; see `vanta_vuln_sync/local/rehearsal.py` for the three
    things moto needs done differently, and the `rehearsal` environment in samconfig.toml.
    """
    install(session, SAM_CLI)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        _deploy_rehearsal(session, endpoint)
        return
    _sam_build(session)
    session.run("sam", "deploy", "--config-file", "samconfig.toml", *session.posargs, env=_sam_env())


REHEARSAL_STACK = "vuln-sync-rehearsal"


def _deploy_rehearsal(session: nox.Session, endpoint: str) -> None:
    install(session, "-e", ".[local]")
    # moto reads a template URL on a 127.0.0.1 host as bucket "127" (NoSuchBucket); localhost is path style.
    local = endpoint.replace("://127.0.0.1", "://localhost")
    env = {
        **_sam_env(),
        "AWS_ENDPOINT_URL": local,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "embedded"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "embedded"),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }
    built = os.path.join(".aws-sam", "build", "template.yaml")
    template = built if os.path.exists(built) else "template.yaml"
    session.log(
        f"deploy rehearsal against {local} from {template} (`nox -s build` first to rehearse the build)"
    )
    packaged = os.path.join(".aws-sam", "rehearsal-packaged.yaml")
    transformed = os.path.join(".aws-sam", "rehearsal-template.json")
    os.makedirs(".aws-sam", exist_ok=True)
    rehearsal = ("python", "-m", "vanta_vuln_sync.local.rehearsal")
    session.run(*rehearsal, "bucket", env=env)
    # Absolute: sam reads a relative --config-file next to the template, here in .aws-sam/.
    config = ("--config-file", os.path.abspath("samconfig.toml"), "--config-env", "rehearsal")
    session.run(
        "sam", "package", *config, "--template-file", template, "--output-template-file", packaged, env=env
    )
    session.run(*rehearsal, "transform", "--packaged", packaged, "--output", transformed, env=env)
    session.run("sam", "deploy", *config, "--template-file", transformed, *session.posargs, env=env)
    session.run(*rehearsal, "verify", "--stack-name", REHEARSAL_STACK, env=env)


def _sam_env() -> dict[str, str]:
    return {"SAM_CLI_TELEMETRY": "0"}


def _sam_build(session: nox.Session) -> None:
    import os

    python_bin = _lambda_python_bin(session)
    requirements = _pin_lambda_requirements(session)
    env = {**_sam_env(), "PATH": f"{python_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    session.run("sam", "build", "--template-file", "template.yaml", "--manifest", str(requirements), env=env)
    _check_native_code_is_arm64(session, os.path.join(".aws-sam", "build"))
    _prune_to_lambda_modules(session, os.path.join(".aws-sam", "build"))


# What the three functions run: the package modules these import (at any depth, deferred imports too).
LAMBDA_HANDLERS = (
    "vanta_vuln_sync.handlers.scheduler",
    "vanta_vuln_sync.handlers.worker",
    "vanta_vuln_sync.handlers.finalize",
)


def lambda_modules(package_dir: str, handlers: tuple[str, ...] = LAMBDA_HANDLERS) -> set[str]:
    """Files (relative to the package's parent) of the package modules the handlers import, with their
    packages' `__init__.py`; `if TYPE_CHECKING:` imports do not count. Standard library only, so the
    tests can call it too. `sam build` copies all of `src/`; everything else (the simulator, the
    embedded runtime and its fault injector, the CLI) is left out of the Lambda package."""
    import pathlib

    root = pathlib.Path(package_dir)
    modules: dict[str, pathlib.Path] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def imports(module: str) -> set[str]:
        path = modules[module]
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
        found = set()
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
        return found

    seen: set[str] = set()
    todo = list(handlers)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in modules]
        todo += imports(module)
    return {modules[m].relative_to(root.parent).as_posix() for m in seen}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except those under `if TYPE_CHECKING:` (never imported at run time)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _prune_to_lambda_modules(session: nox.Session, build_dir: str) -> None:
    """Delete from each function's build what its handlers never import; log the package's zip size
    before and after (the size `sam deploy` uploads)."""
    import pathlib

    for function in sorted(pathlib.Path(build_dir).iterdir()):
        package = function / "vanta_vuln_sync"
        if not package.is_dir():
            continue
        before = _zip_size(function)
        keep = lambda_modules(str(package))
        for path in sorted(package.rglob("*"), reverse=True):
            relative = path.relative_to(function).as_posix()
            if path.is_file() and relative not in keep and path.name != "py.typed":
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        session.log(
            f"{function.name}: Lambda zip {before:,} bytes before pruning, {_zip_size(function):,} after"
        )


def _zip_size(directory: str | os.PathLike[str]) -> int:
    """Bytes of `directory` zipped (deflate), as `sam deploy` packages a function."""
    import io
    import pathlib
    import zipfile

    root = pathlib.Path(directory)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return len(buffer.getvalue())


def _lambda_python_bin(session: nox.Session) -> str:
    """The directory of a python3.13 executable: sam build runs the runtime's own Python (no Docker)."""
    import glob
    import os
    import shutil

    executable = f"python{LAMBDA_PYTHON}"
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = shutil.which(executable)
    # A pyenv shim answers only when the version is selected (PYENV_VERSION); use the real binary instead.
    if found and os.path.join(pyenv_root, "shims") not in found:
        return os.path.dirname(os.path.realpath(found))
    for candidate in sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{LAMBDA_PYTHON}.*", "bin")))[
        ::-1
    ]:
        if os.access(os.path.join(candidate, executable), os.X_OK):
            return candidate
    session.error(
        f"sam build needs Python {LAMBDA_PYTHON} (the Lambda runtime) and found none: {executable} is not "
        f"on PATH and not under {pyenv_root}/versions. Install it (`pyenv install {LAMBDA_PYTHON}` or your "
        "OS package) or put it on PATH, then run `nox -s build` again."
    )
    raise AssertionError("unreachable: session.error raises")


def _pin_lambda_requirements(session: nox.Session) -> str:
    """Resolve pyproject's [project].dependencies for python3.13 on aarch64 and write them pinned.

    pyproject stays the one place dependencies are declared; this resolves them exactly as the Lambda
    platform sees them (environment markers, wheels that exist for aarch64) and pins every package.
    """
    import json
    import pathlib
    import tomllib

    dependencies = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]["dependencies"]
    out = pathlib.Path(BUILD_DIR)
    out.mkdir(exist_ok=True)
    report = out / "lambda-resolution.json"
    session.run(
        "python", "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
        "--report", str(report), *(f"--platform={tag}" for tag in LAMBDA_PLATFORMS), "--implementation", "cp",
        "--python-version", LAMBDA_PYTHON, "--only-binary=:all:", *dependencies,
    )  # fmt: skip
    resolved = json.loads(report.read_text())["install"]
    pins = sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in resolved)
    requirements = out / "requirements.txt"
    header = "# Generated by `nox -s build` from pyproject.toml for python3.13 on arm64. Do not edit.\n"
    requirements.write_text(header + "\n".join(pins) + "\n")
    session.log(f"pinned {len(pins)} Lambda packages in {requirements}")
    return str(requirements)


def _check_native_code_is_arm64(session: nox.Session, build_dir: str) -> None:
    """Fail when any shared library in the build is not aarch64 (a wheel built for this machine instead)."""
    import pathlib

    aarch64 = 183  # ELF e_machine of AArch64
    wrong: list[str] = []
    count = 0
    for library in pathlib.Path(build_dir).rglob("*.so*"):
        header = library.read_bytes()[:20]
        if header[:4] != b"\x7fELF":
            continue
        count += 1
        if int.from_bytes(header[18:20], "little") != aarch64:
            wrong.append(str(library))
    if wrong:
        session.error(f"{len(wrong)} shared libraries in the build are not arm64, e.g. {wrong[:3]}")
    session.log(f"{count} shared libraries in {build_dir}, all aarch64")


@nox.session
def simulator(session: nox.Session) -> None:
    """Run the Vanta simulator on :8080 until Ctrl-C; options after `--`, e.g. `-- --error-rate 0.05`."""
    install(session, "-e", ".")
    session.run("python", "-m", "vanta_vuln_sync.simulator", *session.posargs)


@nox.session
def bench_finalize(session: nox.Session) -> None:
    """Finalize's statistics step at 100k and 1M vulnerabilities: time and peak RSS, as a README table.

    Sizes after `--`, e.g. `nox -s bench_finalize -- --sizes 100000`.
    """
    install(session, "-e", ".")
    session.run("python", "loadtest/bench_finalize.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The whole system on this machine: `vuln-sync local --out out/` against the simulator.

    20,000 vulnerabilities (about 350 pages) at a simulated limit of 600 requests/min, so it ends in
    about a minute; then open out/report.html, and the finding lists in out/findings/. Options after
    `--`, e.g. `-- --vulnerabilities 2000`; `-- --serve` keeps the stack running instead (see below).
    """
    install(session, "-e", ".[local]")
    session.run("vuln-sync", "local", "--out", "out", *session.posargs, env=CACHED_BYTECODE)
    if "--serve" in session.posargs:
        return
    for line in DEMO_NEXT_STEPS:
        session.log(line)


DEMO_NEXT_STEPS = (
    "outputs: out/report.html, out/stats.json, the finding lists out/findings/<list>.csv and .ndjson "
    "(overdue, due in 7 and 30 days, new, resolved, exceptions, unowned), raw records out/raw/",
    "every way in, without an AWS account: keep the stack running with",
    "  nox -s demo -- --serve --schedule-every 10 --vulnerabilities 2000",
    "  (a full sync now and every 10 minutes; it prints the endpoint, the queue URLs and these commands)",
    "then, from another shell in this folder (vuln-sync is .nox/demo/bin/vuln-sync if not on PATH):",
    "  vuln-sync resync --stack local --resource vulnerabilities --filter severity=CRITICAL",
    "  vuln-sync status --stack local",
    "  vuln-sync report --stack local --out out/report-latest",
    "  aws sqs send-message --endpoint-url <printed endpoint> --queue-url <printed RequestQueue URL> "
    "--message-body file://events/sync-request-resync-critical.json",
)


@nox.session
def bench(session: nox.Session) -> None:
    """Vanta client throughput (pages/s) next to a bare aiohttp + orjson loop, as a ratio (target >= 0.8).

    Against a zero-latency simulator with no rate limit; options after `--`, e.g. `-- --rounds 9`.
    """
    install(session, "-e", ".")
    session.run("python", "loadtest/bench_client.py", *session.posargs)


@nox.session
def security(session: nox.Session) -> None:
    """checkov on template.yaml (offline; every skip justified in .checkov.yaml). `nox -s lint` runs it.

    checkov has its own venv: it is large (~290 MB, ~2 min to install once) and pins its own AWS SDK.
    """
    install(session, "checkov>=3.2,<4")
    session.run("checkov", "--config-file", ".checkov.yaml")


@nox.session
def chaos(session: nox.Session) -> None:
    """Every fault-injection scenario (tests/chaos), alone and combined, on larger data (prints the results
    table and writes it to tests/chaos/last_run.md for the README), then the slow exactness runs of
    tests/pipeline. `nox -s tests` runs the short versions."""
    install(session, "-e", ".[dev]")
    session.run("pytest", "-q", "tests/chaos", *session.posargs, env={"VVS_CHAOS": "full"})
    # The long exactness runs: live-tenant bursts at 20,000 records, checkpoints moved by a burst, and a
    # static 2,000-page sync's request overhead (first and second run).
    session.run("pytest", "-q", "-m", "slow", "tests/pipeline", *session.posargs)


@nox.session
def loadtest(session: nox.Session) -> None:
    """Concurrency sweep on the embedded runtime + the sequential baseline + cold start; results and plots
    in loadtest/results/. Quick (~3 min) by default; `nox -s loadtest -- --full` for the whole grid."""
    install(session, "-e", ".[loadtest]")
    session.run("python", "-m", "loadtest.sweep", *session.posargs)
    session.run("python", "-m", "loadtest.coldstart", "--repetitions", "15", success_codes=[0, 1])
