"""Inline SVG charts for the report: no scripts, no external resources, text escaped.

Every function returns an `<svg>` element sized by a viewBox, so it scales with the page and prints.
Labels pass through `esc`: Vanta strings are untrusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = 'font-family="inherit"'


def esc(value: object) -> str:
    """HTML/SVG-escaped text of any value (quotes included, safe inside attributes)."""
    return escape(str(value), quote=True)


def num(value: float | None) -> str:
    """A count or measure as people read it: thousands separated, at most one decimal, — for none."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One coloured part of a stacked bar."""

    label: str
    value: float
    color: str
    dark_text: bool = False  # for light colours, where white numbers would not read


def bar_chart(rows: Sequence[tuple[str, float, str]], *, width: int = 520, bar: int = 26) -> str:
    """Horizontal bars, one per (label, value, colour), values written at the bar's end."""
    label_w, gap, value_w = 92, 10, 70
    height = len(rows) * (bar + gap) + gap
    top = max((value for _, value, _ in rows), default=0) or 1
    span = width - label_w - value_w
    parts = [_svg_open(width, height, "Open vulnerabilities by severity")]
    for i, (label, value, color) in enumerate(rows):
        y = gap + i * (bar + gap)
        w = max(2.0, span * value / top) if value else 0.0
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar / 2 + 5}" text-anchor="end" class="lbl">'
            f"{esc(label)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{span:.1f}" height="{bar}" rx="4" class="track"/>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" rx="4" fill="{esc(color)}"/>'
            f'<text x="{label_w + w + 8:.1f}" y="{y + bar / 2 + 5}" class="val">{num(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(rows: Sequence[tuple[str, Sequence[Segment]]], *, width: int = 560, bar: int = 24) -> str:
    """One 100 % stacked horizontal bar per row, segment counts written inside wide-enough segments."""
    label_w, gap, total_w = 92, 12, 64
    height = len(rows) * (bar + gap) + gap
    span = width - label_w - total_w
    parts = [_svg_open(width, height, "SLA status by severity")]
    for i, (label, segments) in enumerate(rows):
        y = gap + i * (bar + gap)
        total = sum(s.value for s in segments)
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar / 2 + 5}" text-anchor="end" class="lbl">'
            f"{esc(label)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{span}" height="{bar}" rx="4" class="track"/>'
        )
        x = float(label_w)
        for segment in segments:
            if not segment.value or not total:
                continue
            w = span * segment.value / total
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{esc(segment.color)}">'
                f"<title>{esc(segment.label)}: {num(segment.value)}</title></rect>"
            )
            if w >= 8 * len(num(segment.value)) + 6:
                parts.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + bar / 2 + 4}" text-anchor="middle" '
                    f'class="{"inbar dark" if segment.dark_text else "inbar"}">{num(segment.value)}</text>'
                )
            x += w
        parts.append(f'<text x="{width - total_w + 8}" y="{y + bar / 2 + 5}" class="val">{num(total)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def range_chart(
    rows: Sequence[tuple[str, float | None, float | None, float | None, float | None, str]],
    *,
    width: int = 560,
    bar: int = 22,
) -> str:
    """Per row (label, p50, p90, mean, target, colour): a bar from 0 to p50, a lighter one to p90, a dot
    at the mean and a dashed tick at the target (the SLA), on a shared axis in days."""
    label_w, gap, right = 92, 18, 20
    axis_h = 22
    height = len(rows) * (bar + gap) + gap + axis_h
    values = [v for row in rows for v in row[1:5] if v is not None]
    top = _nice_ceiling(max(values, default=1.0))
    span = width - label_w - right

    def x_of(days: float) -> float:
        return label_w + span * max(0.0, days) / top

    parts = [_svg_open(width, height, "Time to remediate against the SLA, in days")]
    for tick in _ticks(top):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{gap / 2}" x2="{x:.1f}" y2="{height - axis_h}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" class="axis">{num(tick)}</text>'
        )
    for i, (label, p50, p90, mean, target, color) in enumerate(rows):
        y = gap + i * (bar + gap)
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar / 2 + 5}" text-anchor="end" class="lbl">'
            f"{esc(label)}</text>"
        )
        if p90 is not None:
            parts.append(
                f'<rect x="{label_w}" y="{y + 4}" width="{x_of(p90) - label_w:.1f}" height="{bar - 8}" '
                f'rx="3" fill="{esc(color)}" opacity="0.3"><title>p90 {num(p90)} days</title></rect>'
            )
        if p50 is not None:
            parts.append(
                f'<rect x="{label_w}" y="{y + 4}" width="{x_of(p50) - label_w:.1f}" height="{bar - 8}" '
                f'rx="3" fill="{esc(color)}"><title>median {num(p50)} days</title></rect>'
            )
        if mean is not None:
            parts.append(
                f'<circle cx="{x_of(mean):.1f}" cy="{y + bar / 2}" r="4.5" class="mean">'
                f"<title>mean {num(mean)} days</title></circle>"
            )
        if target is not None:
            x = x_of(target)
            parts.append(
                f'<line x1="{x:.1f}" y1="{y - 3}" x2="{x:.1f}" y2="{y + bar + 3}" class="target"/>'
                f'<text x="{x + 4:.1f}" y="{y - 2}" class="note">SLA {num(target)}d</text>'
            )
        if p50 is None:
            parts.append(f'<text x="{label_w + 6}" y="{y + bar / 2 + 5}" class="note">no remediations</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    x_labels: Sequence[str],
    *,
    width: int = 1080,
    height: int = 220,
) -> str:
    """Lines over runs (oldest left), one per (name, colour, values); a point per run, value labels on
    the last point. With a single run it draws the points alone."""
    left, right, top_pad, bottom = 54, 130, 14, 28
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = _nice_ceiling(max(values, default=1.0))
    n = max(len(x_labels), 1)
    plot_w, plot_h = width - left - right, height - top_pad - bottom

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)
        return x, top_pad + plot_h * (1 - value / top)

    parts = [_svg_open(width, height, "Open vulnerabilities across recent runs")]
    for tick in _ticks(top):
        _, y = xy(0, tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" class="axis">{num(tick)}</text>'
        )
    step = max(1, n // 8)
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            x, _ = xy(i, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="axis">{esc(label)}</text>'
            )
    end_labels: list[tuple[float, float, str, str]] = []
    for name, color, vs in series:
        points = [xy(i, v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{esc(color)}" stroke-width="2.5"/>')
        for x, y in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{esc(color)}"/>')
        last = next((v for v in reversed(vs) if v is not None), None)
        if points and last is not None:
            end_labels.append((points[-1][1], points[-1][0], color, f"{name} {num(last)}"))
    for x, y, color, text in _spread_labels(end_labels, min_gap=15):
        parts.append(
            f'<text x="{x + 8:.1f}" y="{y + 4:.1f}" class="val" fill="{esc(color)}">{esc(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _spread_labels(
    labels: list[tuple[float, float, str, str]], *, min_gap: float
) -> list[tuple[float, float, str, str]]:
    """(y, x, colour, text) end-of-line labels moved apart vertically so none overlap; as (x, y, ...)."""
    placed: list[tuple[float, float, str, str]] = []
    previous_y = -1e9
    for y, x, color, text in sorted(labels):
        y = max(y, previous_y + min_gap)
        placed.append((x, y, color, text))
        previous_y = y
    return placed


def flow_bars(
    runs: Sequence[tuple[str, float | None, float | None]], *, width: int = 680, height: int = 150
) -> str:
    """Per run (label, new, resolved): a red bar up for new and a green bar down for resolved."""
    left, right, pad, bottom = 8, 8, 16, 22
    values = [v for _, new, gone in runs for v in (new, gone) if v is not None]
    top = _nice_ceiling(max(values, default=1.0))
    n = max(len(runs), 1)
    slot = (width - left - right) / n
    bar = min(22.0, slot * 0.6)
    mid = pad + (height - pad - bottom) / 2
    half = (height - pad - bottom) / 2
    parts = [_svg_open(width, height, "New and resolved vulnerabilities per run")]
    parts.append(f'<line x1="{left}" y1="{mid:.1f}" x2="{width - right}" y2="{mid:.1f}" class="grid"/>')
    step = max(1, n // 8)
    for i, (label, new, gone) in enumerate(runs):
        x = left + slot * i + (slot - bar) / 2
        if new:
            h = half * new / top
            parts.append(
                f'<rect x="{x:.1f}" y="{mid - h:.1f}" width="{bar:.1f}" height="{h:.1f}" class="new">'
                f"<title>{esc(label)}: {num(new)} new</title></rect>"
            )
        if gone:
            h = half * gone / top
            parts.append(
                f'<rect x="{x:.1f}" y="{mid:.1f}" width="{bar:.1f}" height="{h:.1f}" class="gone">'
                f"<title>{esc(label)}: {num(gone)} resolved</title></rect>"
            )
        if i % step == 0 or i == n - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
                f"{esc(label)}</text>"
            )
    for y in (pad - 4, height - bottom + 2):  # the scale, at both ends of the bars' range
        parts.append(f'<text x="{width - right}" y="{y}" text-anchor="end" class="axis">{num(top)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: float, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
        f'width="100%" role="img" aria-label="{esc(title)}" {FONT}><title>{esc(title)}</title>'
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (axis maxima people can read)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]
