"""report.html: self-contained, escaped, and rendered by a real headless browser."""

from __future__ import annotations

import copy
import os
import re
import shutil
import struct
import subprocess
import zlib
from html import escape as html_escape
from pathlib import Path
from typing import Any

import pytest

from vanta_vuln_sync.stats import render_report

from .helpers import get_text, sync_runs

CHROMIUM = Path("/usr/bin/chromium")
SIZE = (1280, 2000)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def hostile_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """`stats` with markup in every place Vanta strings reach the report."""
    evil = copy.deepcopy(stats)
    evil["top"]["cves"][0]["name"] = HOSTILE
    evil["top"]["assets"][0]["name"] = HOSTILE
    evil["top"]["assets"][0]["asset_type"] = HOSTILE
    evil["vulnerabilities"]["by_integration"][HOSTILE] = {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 0}
    evil["assets"]["by_type"][HOSTILE] = 3
    evil["run"]["id"] = HOSTILE
    evil["scope"] = HOSTILE
    evil["owners"]["by_owner"][HOSTILE] = {"open": 1, "overdue": 1, "due_7d": 0}
    evil["owners"]["tag_key"] = HOSTILE
    for found in evil["findings"]["lists"].values():
        for row in found["rows"][:1]:
            for key in (
                "name",
                "asset_name",
                "asset_type",
                "owner",
                "integration",
                "fixed_version",
                "due_date",
            ):
                row[key] = HOSTILE
            row["cve_ids"] = [HOSTILE]
            row["vanta_url"] = "javascript:alert(1)"
            row["deactivation_reason"] = row["deactivated_by"] = row["resolution"] = HOSTILE
        found["csv"] = HOSTILE
    return evil


async def test_report_escapes_vanta_strings_when_they_carry_markup(s3: Any, bucket: str) -> None:
    [stats] = await sync_runs(s3, bucket, runs=1, vulnerabilities=300)

    html = render_report(hostile_stats(stats), [])

    assert "<script" not in html
    assert "<img" not in html
    assert "javascript:" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


async def test_report_is_self_contained_when_published(s3: Any, bucket: str) -> None:
    stats = await sync_runs(s3, bucket, runs=2, vulnerabilities=300)

    html = await get_text(s3, bucket, f"runs/{stats[-1]['run']['id']}/report.html")

    assert html == await get_text(s3, bucket, "latest/report.html")
    assert not re.search(r"<script|<link|<iframe|@import|url\(|\ssrc=", html)
    # The only links are the findings' own Vanta links (plain anchors: nothing loads by itself)
    links = set(re.findall(r'\shref="([^"]*)"', html))
    shown = {row["vanta_url"] for found in stats[-1]["findings"]["lists"].values() for row in found["rows"]}
    assert links
    assert links == {html_escape(url) for url in shown}
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) - {html_escape(u) for u in shown} == {
        "http://www.w3.org/2000/svg"
    }
    assert "@media print" in html
    assert stats[-1]["run"]["id"] in html
    assert f"{stats[-1]['vulnerabilities']['active']:,}" in html


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct filtered scanlines) of a PNG, parsed by hand."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, depth = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, bits, color = struct.unpack(">IIBB", body[:10])
            depth = {2: 3, 6: 4, 0: 1, 4: 2}[color] * bits // 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    pixels = zlib.decompress(idat)
    stride = width * depth + 1
    rows = {pixels[i : i + stride] for i in range(0, len(pixels), stride)}
    return width, height, len(rows)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install chromium)")
async def test_report_renders_in_headless_chromium_when_opened_as_a_file(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    # Given: the report of the third of three daily runs (so the trend has lines); for the README's
    # screenshot (`REPORT_SCREENSHOT=docs/report.png`), ten runs of a larger tenant and the whole page
    target = os.environ.get("REPORT_SCREENSHOT")
    runs, vulnerabilities, size = (10, 4000, (1280, 3600)) if target else (3, 600, SIZE)
    stats = await sync_runs(s3, bucket, runs=runs, vulnerabilities=vulnerabilities)
    page = tmp_path / "report.html"
    html = await get_text(s3, bucket, f"runs/{stats[-1]['run']['id']}/report.html")
    page.write_text(html)
    shot = tmp_path / "report.png"
    for found in stats[-1]["findings"]["lists"].values():  # every list has its section
        assert f'{html_escape(found["title"])}<span class="count">{found["count"]:,}</span>' in html
    assert ">By owner</h2>" in html

    # When
    subprocess.run(  # noqa: S603 - fixed binary, our own arguments
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            f"--window-size={size[0]},{size[1]}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    # Then: a real picture of the page, not a blank one
    width, height, distinct_rows = png_facts(shot.read_bytes())
    assert (width, height) == size
    assert distinct_rows > 300, f"only {distinct_rows} distinct pixel rows: the page looks blank"
    assert shot.stat().st_size > 50_000
    if target:
        shutil.copyfile(shot, target)
