"""report.html: one self-contained page (inline CSS and SVG; no scripts, fonts or network) that a
security lead reads each morning and can print. Every string that came from Vanta is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .charts import Segment, bar_chart, esc, flow_bars, line_chart, num, range_chart, stacked_bars
from .history import HistoryEntry
from .model import SEVERITIES
from .report_findings import LIST_CSS, list_sections, owners_table
from .report_style import CSS

SEVERITY_COLORS = {"CRITICAL": "#c92a2a", "HIGH": "#e8590c", "MEDIUM": "#f0a202", "LOW": "#4c6ef5"}
SEVERITY_TINTS = {"CRITICAL": "#fff0f0", "HIGH": "#fff4e6", "MEDIUM": "#fff9db", "LOW": "#edf2ff"}
OTHER_COLOR = "#868e96"
# (stats key, legend label, table heading, colour)
SLA_SEGMENTS = (
    ("overdue", "Overdue", "Overdue", "#c92a2a"),
    ("due_7d", "Due in 7 days", "Due 7d", "#f76707"),
    ("due_8_30d", "Due in 8 to 30 days", "Due 8-30d", "#fcc419"),
    ("on_track", "On track", "On track", "#37b24d"),
    ("no_sla", "No SLA", "No SLA", "#ced4da"),
)


def render_report(stats: dict[str, Any], history: Sequence[HistoryEntry]) -> str:
    """The HTML report of one stats.json document; `history` is the scope's recent runs, oldest first
    (this run last), for the trend chart."""
    run, vulns = stats["run"], stats["vulnerabilities"]
    title = f"Vulnerabilities · {_day(run['as_of'])}"
    body = "".join(
        (
            _header(stats),
            _headline(stats),
            '<div class="grid two">',
            _section("Open by severity", bar_chart(_severity_rows(vulns["by_severity"])), _age_note(vulns)),
            _section("SLA status", _sla_chart(vulns) + _sla_legend(), _sla_table(vulns)),
            "</div>",
            _section("Trend across recent runs", _trend_chart(history), _trend_note(stats, history)),
            '<div class="grid two">',
            _section("Time to remediate vs SLA", _mttr_chart(stats["remediations"]), _mttr_note(stats)),
            _section("Assets", _assets_table(stats["assets"]), ""),
            "</div>",
            _section("By owner", owners_table(stats), "") if stats.get("owners") else "",
            list_sections(stats, _badge),
            '<div class="grid two">',
            _section(_top_title(stats["top"]["cves"]), _top_cves(stats["top"]["cves"]), ""),
            _section("Assets with most open critical + high", _top_assets(stats["top"]["assets"]), ""),
            "</div>",
            _section("Open by integration", _integrations_table(vulns["by_integration"]), ""),
            _footer(stats),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{LIST_CSS}</style></head>"
        f'<body><main class="page">{body}</main></body></html>\n'
    )


def _header(stats: dict[str, Any]) -> str:
    run = stats["run"]
    return (
        '<header class="top"><div><p class="eyebrow">Vanta vulnerability report</p>'
        f"<h1>State of vulnerabilities on {esc(_day(run['as_of']))}</h1></div>"
        f'<dl class="meta"><div><dt>Scope</dt><dd>{esc(stats["scope"])}</dd></div>'
        f"<div><dt>As of</dt><dd>{esc(_when(run['as_of']))}</dd></div>"
        f'<div><dt>Run</dt><dd class="mono">{esc(run["id"])}</dd></div></dl></header>'
    )


def _headline(stats: dict[str, Any]) -> str:
    vulns, rem, trend = stats["vulnerabilities"], stats["remediations"], stats["trend"]
    active = vulns["active"]
    sla = vulns["sla"]
    crit = vulns["by_severity"].get("CRITICAL", 0)
    decided = rem["on_time"] + rem["late"]
    if trend["new"] is None:
        change = "first run: no comparison yet"
    else:
        change = f"+{num(trend['new']['total'])} new · \u2212{num(trend['resolved']['total'])} resolved"
    crit_mttr = rem["mttr_days"].get("CRITICAL", {}).get("p50")
    crit_sla = rem.get("sla_days", {}).get("CRITICAL")
    tiles = (
        ("Open vulnerabilities", num(active), change, ""),
        (
            "Overdue",
            num(sla["overdue"]),
            f"{_pct(sla['overdue'], active)} of open",
            "bad" if sla["overdue"] else "",
        ),
        ("Due in 7 days", num(sla["due_7d"]), f"{num(sla['due_30d'])} due in 30 days", "warn"),
        ("Open critical", num(crit), f"{num(stats['assets']['with_open_critical'])} assets affected", "crit"),
        (
            "Critical fix time (p50)",
            "—" if crit_mttr is None else f"{num(crit_mttr)} d",
            "no SLA data" if crit_sla is None else f"SLA {num(crit_sla)} days",
            "bad" if crit_mttr is not None and crit_sla is not None and crit_mttr > crit_sla else "good",
        ),
        ("Fixed on time", _pct(rem["on_time"], decided), f"of {num(decided)} remediations with an SLA", ""),
    )
    cells = "".join(
        f'<div class="tile {tone}"><p class="k">{esc(label)}</p><p class="v">{esc(value)}</p>'
        f'<p class="s">{esc(sub)}</p></div>'
        for label, value, sub, tone in tiles
    )
    return f'<section class="tiles">{cells}</section>'


def _section(title: str, content: str, note: str) -> str:
    note_html = f'<div class="note">{note}</div>' if note else ""
    return f'<section class="card"><h2>{esc(title)}</h2>{content}{note_html}</section>'


def _severity_rows(counts: dict[str, int]) -> list[tuple[str, float, str]]:
    return [(sev.title(), counts[sev], SEVERITY_COLORS.get(sev, OTHER_COLOR)) for sev in counts]


def _age_note(vulns: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_badge(sev)}</td><td>{num(vulns['by_severity'].get(sev, 0))}</td>"
        f"<td>{num(age['p50'])}</td><td>{num(age['p90'])}</td>"
        f"<td>{num(vulns['cvss_mean'].get(sev))}</td></tr>"
        for sev, age in vulns["age_days"].items()
    )
    return (
        '<table class="compact"><thead><tr><th>Severity</th><th>Open</th><th>Age p50 (d)</th>'
        f"<th>Age p90 (d)</th><th>CVSS mean</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<p>{num(vulns['fixable'])} of {num(vulns['active'])} open have a fix available · "
        f"{num(vulns['unique_cves'])} distinct CVEs on {num(vulns['unique_assets'])} assets · "
        f"{num(vulns['deactivated'])} deactivated.</p>"
    )


def _sla_chart(vulns: dict[str, Any]) -> str:
    rows = []
    for sev, bucket in vulns["sla"]["by_severity"].items():
        values = {**bucket, "due_8_30d": bucket["due_30d"] - bucket["due_7d"]}
        segments = [
            Segment(label, values[key], color, dark_text=key in ("due_8_30d", "no_sla"))
            for key, label, _, color in SLA_SEGMENTS
        ]
        rows.append((sev.title(), segments))
    return stacked_bars(rows)


def _sla_table(vulns: dict[str, Any]) -> str:
    heads = "".join(f'<th class="num">{esc(head)}</th>' for _, _, head, _ in SLA_SEGMENTS)
    rows = ""
    for sev, bucket in vulns["sla"]["by_severity"].items():
        values = {**bucket, "due_8_30d": bucket["due_30d"] - bucket["due_7d"]}
        cells = "".join(f"<td class='num'>{num(values[key])}</td>" for key, _, _, _ in SLA_SEGMENTS)
        rows += f"<tr><td>{_badge(sev)}</td>{cells}</tr>"
    return (
        f'<table class="compact"><thead><tr><th></th>{heads}</tr></thead><tbody>{rows}</tbody></table>'
        "<p>Due dates are Vanta's <code>remediateByDate</code>, measured from the run's start.</p>"
    )


def _sla_legend() -> str:
    items = "".join(
        f'<span class="key"><i style="background:{color}"></i>{esc(label)}</span>'
        for _, label, _, color in SLA_SEGMENTS
    )
    return f'<div class="legend">{items}</div>'


def _trend_chart(history: Sequence[HistoryEntry]) -> str:
    if not history:
        return '<p class="empty">No runs recorded yet.</p>'
    labels = [_short_day(entry.started_at) for entry in history]
    series: list[tuple[str, str, list[float | None]]] = [
        (sev.title(), SEVERITY_COLORS[sev], [_sev_count(entry, sev) for entry in history])
        for sev in SEVERITIES
    ]
    series.append(("Overdue", "#212529", [entry.headline.get("overdue") for entry in history]))
    return line_chart(series, labels)


def _sev_count(entry: HistoryEntry, severity: str) -> float | None:
    value = (entry.headline.get("by_severity") or {}).get(severity)
    return None if value is None else float(value)


def _trend_note(stats: dict[str, Any], history: Sequence[HistoryEntry]) -> str:
    trend = stats["trend"]
    if trend["previous_run"] is None:
        return "<p>This is the first run of this scope; new and resolved counts start with the next run.</p>"
    flows = flow_bars(
        [
            (_short_day(entry.started_at), entry.headline.get("new"), entry.headline.get("resolved"))
            for entry in history
        ]
    )
    cells = "".join(
        f"<tr><td>{_badge(sev)}</td><td class='up'>+{num(trend['new'].get(sev, 0))}</td>"
        f"<td class='down'>&minus;{num(trend['resolved'].get(sev, 0))}</td></tr>"
        for sev in trend["new"]
        if sev != "total"
    )
    return (
        '<div class="split"><div>'
        f'<p>Since run <span class="mono">{esc(trend["previous_run"])}</span>:</p>'
        '<table class="compact"><thead><tr><th>Severity</th><th>New</th><th>Resolved</th></tr></thead>'
        f"<tbody>{cells}</tbody></table></div>"
        '<div><div class="legend"><span class="key"><i style="background:#e03131"></i>new</span>'
        '<span class="key"><i style="background:#2f9e44"></i>resolved</span>'
        f'<span class="key">per run</span></div>{flows}</div></div>'
    )


def _mttr_chart(rem: dict[str, Any]) -> str:
    rows = []
    for sev, mttr in rem["mttr_days"].items():
        target = rem.get("sla_days", {}).get(sev)
        color = SEVERITY_COLORS.get(sev, OTHER_COLOR)
        rows.append((sev.title(), mttr["p50"], mttr["p90"], mttr["mean"], target, color))
    return range_chart(rows)


def _mttr_note(stats: dict[str, Any]) -> str:
    rem = stats["remediations"]
    mode = stats["run"].get("mode", {}).get("vulnerability-remediations", "full")
    return (
        "<p>Solid bar: median days from detection to fix; light bar: 90th percentile; dot: mean; "
        "dashed tick: the SLA. "
        f"{num(rem['total'])} remediations ({num(rem['on_time'])} on time, {num(rem['late'])} late, "
        f"{num(rem['no_sla'])} without an SLA)"
        f"{', merged across incremental syncs' if mode == 'incremental' else ''}.</p>"
    )


def _assets_table(assets: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{esc(_title(kind))}</td><td>{num(count)}</td></tr>"
        for kind, count in sorted(assets["by_type"].items(), key=lambda item: -item[1])
    )
    return (
        '<div class="stats3">'
        f'<div><p class="v">{num(assets["total"])}</p><p class="k">assets</p></div>'
        f'<div><p class="v">{_pct(assets["scanned"], assets["total"])}</p><p class="k">scanned</p></div>'
        f'<div><p class="v crit">{num(assets["with_open_critical"])}</p>'
        '<p class="k">with open critical</p></div></div>'
        '<table class="compact"><thead><tr><th>Type</th><th>Assets</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _all_cves(cves: list[dict[str, Any]]) -> bool:
    return all(str(item["name"]).upper().startswith("CVE-") for item in cves)


def _top_title(cves: list[dict[str, Any]]) -> str:
    return "Top CVEs by affected assets" if _all_cves(cves) else "Top findings by affected assets"


def _top_cves(cves: list[dict[str, Any]]) -> str:
    if not cves:
        return '<p class="empty">No open vulnerabilities.</p>'
    top = max(item["assets"] for item in cves) or 1
    rows = "".join(
        f"<tr><td>{i}</td><td class='mono wrap'>{esc(item['name'])}</td><td>{_badge(item['severity'])}</td>"
        f"<td class='num'>{_inline_bar(item['assets'], top, item['severity'])}</td>"
        f"<td class='num'>{num(item['vulnerabilities'])}</td></tr>"
        for i, item in enumerate(cves, 1)
    )
    return (
        f"<table><thead><tr><th>#</th><th>{'CVE' if _all_cves(cves) else 'Finding'}</th><th>Severity</th>"
        '<th class="num">Assets</th>'
        f'<th class="num">Findings</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _top_assets(assets: list[dict[str, Any]]) -> str:
    if not assets:
        return '<p class="empty">No open critical or high vulnerabilities.</p>'
    rows = "".join(
        f"<tr><td>{i}</td><td class='wrap'><span class='name'>{esc(item.get('name') or item['id'])}</span>"
        f"<span class='sub mono'>{esc(_title(item.get('asset_type') or 'unknown type'))}</span></td>"
        f"<td class='num'><b class='crit'>{num(item['critical'])}</b></td>"
        f"<td class='num'>{num(item['high'])}</td></tr>"
        for i, item in enumerate(assets, 1)
    )
    return (
        '<table><thead><tr><th>#</th><th>Asset</th><th class="num">Critical</th><th class="num">High</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _integrations_table(by_integration: dict[str, dict[str, int]]) -> str:
    if not by_integration:
        return '<p class="empty">No open vulnerabilities.</p>'
    ranked = sorted(by_integration.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    heads = "".join(f'<th class="num">{_badge(sev)}</th>' for sev in SEVERITIES)
    rows = "".join(
        f"<tr><td>{esc(name)}</td>"
        + "".join(f"<td class='num'>{num(counts.get(sev, 0))}</td>" for sev in SEVERITIES)
        + f"<td class='num'><b>{num(sum(counts.values()))}</b></td></tr>"
        for name, counts in ranked
    )
    return (
        f'<table><thead><tr><th>Integration</th>{heads}<th class="num">Total</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _footer(stats: dict[str, Any]) -> str:
    run = stats["run"]
    records = " · ".join(f"{num(n)} {esc(resource)}" for resource, n in run["records"].items())
    return (
        f'<footer>Run <span class="mono">{esc(run["id"])}</span>, {esc(_when(run["started_at"]))} → '
        f"{esc(_when(run['finished_at']))} · {num(run['requests'])} API requests, {num(run['retries'])} "
        f"retries, {num(run['throttled'])} throttled · records read: {records} · "
        f"stats.json schema v{esc(stats['schema_version'])}</footer>"
    )


def _badge(severity: str) -> str:
    color = SEVERITY_COLORS.get(severity, OTHER_COLOR)
    tint = SEVERITY_TINTS.get(severity, "#f1f3f5")
    return f'<span class="badge" style="--c:{color};--t:{tint}">{esc(severity.title())}</span>'


def _inline_bar(value: int, top: int, severity: str) -> str:
    color = SEVERITY_COLORS.get(severity, OTHER_COLOR)
    width = max(4, round(60 * value / top))
    return f'<span class="ibar" style="width:{width}px;background:{color}"></span>{num(value)}'


def _pct(part: int, whole: int) -> str:
    return "—" if not whole else f"{100 * part / whole:.0f} %"


def _title(text: str) -> str:
    return text.replace("_", " ").title()


def _day(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%-d %B %Y")


def _short_day(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%-d %b")


def _when(stamp: str) -> str:
    return datetime.fromisoformat(stamp).strftime("%-d %b %Y, %H:%M UTC")
