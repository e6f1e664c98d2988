"""`vuln-sync`: one entry point, one module per command group.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func` to a callable
taking the parsed arguments and returning an exit code. Errors the user can fix are raised as
`CliError` and printed as one line; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Command modules, imported lazily so `vuln-sync fetch` does not pay for moto or rich.
COMMAND_MODULES = ("fetch", "local", "ops", "report")


class CliError(Exception):
    """A problem the user can fix; printed as `vuln-sync: error: <message>` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vuln-sync",
        description="Sync Vanta vulnerability data into AWS and report on it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  vuln-sync fetch vulnerabilities --filter severity=CRITICAL\n"
        "  vuln-sync local --out out/\n  vuln-sync resync --resource vulnerabilities --stack vuln-sync",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"vanta_vuln_sync.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vanta_vuln_sync.cli.{name}":
                continue  # command not built yet
            raise
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = module.register
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `vuln-sync`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except CliError as exc:
        print(f"vuln-sync: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vuln-sync: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
