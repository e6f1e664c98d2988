"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s demo`, and the rest listed by `nox -l`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: moto server and the Vanta simulator over loopback, no AWS, no Vanta."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict on src/) and cfn-lint on the template."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "loadtest", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "loadtest", "noxfile.py")
    session.run("mypy")
    session.run("cfn-lint", "template.yaml")
