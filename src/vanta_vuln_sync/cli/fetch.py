"""`vuln-sync fetch RESOURCE`: export one Vanta resource as JSON lines, the quickest ad-hoc export."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import IO

import aiohttp
import orjson

from vanta_vuln_sync.cli import CliError, resources_help
from vanta_vuln_sync.settings import SettingsError, VantaSettings, vanta_settings_from_env
from vanta_vuln_sync.vanta import (
    RESOURCES,
    InProcessTokenProvider,
    InvalidFilterError,
    LocalRateLimiter,
    VantaClient,
    VantaError,
    token_fetcher,
    validate_filters,
)

EXAMPLES = """\
examples:
  vuln-sync fetch vulnerabilities > vulnerabilities.jsonl
  vuln-sync fetch vulnerabilities --filter severity=CRITICAL --filter isDeactivated=false
  vuln-sync fetch vulnerability-remediations --filter remediatedAfterDate=2024-01-01T00:00:00Z
  vuln-sync fetch vulnerable-assets --filter assetType=SERVER | jq .name

settings (environment): VANTA_CLIENT_ID, VANTA_CLIENT_SECRET (required), VANTA_BASE_URL,
VANTA_AUTH_URL, VANTA_RATE_LIMIT_PER_MINUTE (default 50), VANTA_REQUEST_TIMEOUT (default 30 s).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `fetch` to the `vuln-sync` command line."""
    parser = subparsers.add_parser(
        "fetch",
        help="print every record of a Vanta resource as one JSON line",
        description="Print every record of a Vanta resource as one JSON object a line on stdout, "
        "exactly as Vanta sent it, with a progress line on stderr.",
        epilog=EXAMPLES + "\n" + resources_help(RESOURCES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("resource", metavar="RESOURCE", help=f"one of: {', '.join(RESOURCES)}")
    parser.add_argument(
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Vanta filter, checked by name and value before any request (repeatable)",
    )
    parser.add_argument(
        "--page-size", type=int, default=100, metavar="N", help="records per request, 1-100 (default 100)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate everything the user typed, then stream the records; exit 0, or 1 if Vanta failed."""
    try:
        settings = vanta_settings_from_env()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    client_id, client_secret = settings.client_id, settings.client_secret
    if not client_id or not client_secret:
        raise CliError("VANTA_CLIENT_ID and VANTA_CLIENT_SECRET must be set (a Vanta app's credentials)")
    filters = _parse_filters(args.filters)
    if args.resource not in RESOURCES:
        raise CliError(f"unknown resource {args.resource!r}; use one of: {', '.join(RESOURCES)}")
    if not 1 <= args.page_size <= 100:
        raise CliError(f"--page-size must be between 1 and 100, got {args.page_size}")
    try:
        validate_filters(args.resource, filters)
    except InvalidFilterError as exc:
        raise CliError(str(exc)) from None
    progress = _Progress(sys.stderr)
    try:
        asyncio.run(
            _export(settings, (client_id, client_secret), args.resource, filters, args.page_size, progress)
        )
    except VantaError as exc:
        progress.finish()
        print(f"vuln-sync: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    progress.finish()
    return 0


def _parse_filters(raw: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--filter takes NAME=VALUE, got {item!r}")
        filters[name.strip()] = value
    return filters


async def _export(
    settings: VantaSettings,
    credentials: tuple[str, str],
    resource: str,
    filters: dict[str, str],
    page_size: int,
    progress: _Progress,
) -> None:
    out = sys.stdout.buffer
    async with aiohttp.ClientSession() as session:
        tokens = InProcessTokenProvider(
            token_fetcher(
                session,
                settings.auth_url,
                *credentials,
                request_timeout=settings.request_timeout,
            )
        )
        client = VantaClient(
            session,
            settings.base_url,
            tokens=tokens,
            limiter=LocalRateLimiter(settings.rate_limit_per_minute),
            timeout=settings.request_timeout,
        )
        async for page in client.iter_pages(resource, filters, page_size=page_size):
            if page.records:
                out.write(b"\n".join(map(orjson.dumps, page.records)) + b"\n")
                out.flush()
            progress.page(len(page.records))


class _Progress:
    """`pages, records, rate` on stderr: redrawn in place on a terminal, one final line otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._started = time.monotonic()
        self.pages = 0
        self.records = 0

    def page(self, records: int) -> None:
        self.pages += 1
        self.records += records
        if self._live:
            self._stream.write(f"\r{self._line()}")
            self._stream.flush()

    def finish(self) -> None:
        if self._live:
            self._stream.write("\r")
        self._stream.write(self._line() + "\n")
        self._stream.flush()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return (
            f"fetched {self.pages} pages, {self.records} records in {elapsed:.1f}s "
            f"({self.pages / elapsed:.1f} pages/s)"
        )
