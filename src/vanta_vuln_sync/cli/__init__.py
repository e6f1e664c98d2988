"""`vuln-sync`: one entry point, one module per command group.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func` to a callable
taking the parsed arguments and returning an exit code. Errors the user can fix are raised as
`CliError` and printed as one line; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence

# Command modules, imported lazily so `vuln-sync fetch` does not pay for moto or rich.
COMMAND_MODULES = ("fetch", "local", "ops", "report")


class CliError(Exception):
    """A problem the user can fix; printed as `vuln-sync: error: <message>` with exit code 2."""


def resources_help(names: Iterable[str]) -> str:
    """The `--help` section naming each resource in `names` and its filters (with the values a choice,
    boolean or date filter takes), read from `vanta.resources.RESOURCES`, the one place they are defined."""
    from vanta_vuln_sync.vanta.resources import RESOURCES, FilterKind

    lines = ["resources and their filters (--filter NAME=VALUE):"]
    for name in names:
        described = []
        for filter_name, spec in RESOURCES[name].filters.items():
            if spec.kind is FilterKind.CHOICE:
                described.append(f"{filter_name}={'|'.join(spec.choices)}")
            elif spec.kind is FilterKind.BOOL:
                described.append(f"{filter_name}=true|false")
            elif spec.kind is FilterKind.DATETIME:
                described.append(f"{filter_name}=YYYY-MM-DDThh:mm:ssZ")
            else:
                described.append(filter_name)
        text = ", ".join(described) or "(no filters)"
        lines.append(f"  {name}")
        lines += textwrap.wrap(
            text,
            width=100,
            initial_indent="      ",
            subsequent_indent="      ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vuln-sync",
        description="Sync Vanta vulnerability data into AWS and report on it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  vuln-sync fetch vulnerabilities --filter severity=CRITICAL\n"
        "  vuln-sync local --out out/\n  vuln-sync local --serve --schedule-every 10\n"
        "  vuln-sync resync --resource vulnerabilities --stack vuln-sync\n"
        "  vuln-sync status --stack local\n\n"
        "`latest` (status, report) is the last successful full sync (scope all) in every command.\n"
        "`--stack local` is the stack `vuln-sync local --serve` is serving.\n"
        "Each command's --help lists its options, the resources and filters it takes, and examples.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"vanta_vuln_sync.cli.{name}")
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
