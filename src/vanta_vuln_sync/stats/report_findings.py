"""The report's "By owner" table and finding-list sections (the first rows of each list, its full
count and the files that hold all of it). Every Vanta string is escaped; a Vanta link is shown only
when it is an http(s) URL, and opens nothing by itself (no scripts, no loaded resources)."""

from __future__ import annotations

from typing import Any

from .charts import esc, num

LIST_CSS = """
.card.list{break-inside:auto}
.list table{font-size:12.5px}.list td{padding:5px 8px;vertical-align:top}
.list .files{color:var(--mute);font-size:12px;margin:-4px 0 8px}
.count{display:inline-block;margin-left:8px;padding:0 8px;border-radius:999px;background:#f1f3f5;
 font-size:12px;font-weight:600;color:var(--ink)}
.flag{display:inline-block;padding:0 6px;border-radius:4px;font-size:11px;font-weight:700;
 background:#fff4e6;color:#d9480f;border:1px solid #ffa94d}
a.ext{color:#1c7ed6;text-decoration:none}a.ext:hover{text-decoration:underline}
.owners .bar{display:inline-block;height:8px;border-radius:2px;background:#c92a2a;vertical-align:middle;
 margin-right:6px}
@media print{.card.list{break-inside:auto}a.ext{color:inherit}}
"""
# Lists in the order a morning reader wants them: what changed, what is late, what is next.
REPORT_ORDER = ("new", "overdue", "due_7d", "exceptions", "resolved", "due_30d", "unowned")
LIST_HELP = {
    "new": "Open now and not open in the previous run of this scope.",
    "overdue": "Open and past Vanta's due date (remediateByDate) at the run's start.",
    "due_7d": "Open and due within 7 days of the run's start.",
    "due_30d": "Open and due within 30 days of the run's start (includes the 7-day list).",
    "resolved": "Open in the previous run and not now: deactivated, or no longer reported by Vanta.",
    "exceptions": "Deactivated findings with who, why and until when; soonest to expire first.",
    "unowned": "Open findings whose asset carries no owner tag: nobody is told about these.",
}


def owners_table(stats: dict[str, Any]) -> str:
    """Open, overdue and due-in-7-days per owner (the asset tag named in `owners.tag_key`)."""
    owners = stats.get("owners") or {}
    by_owner: dict[str, dict[str, int]] = owners.get("by_owner") or {}
    if not by_owner:
        return '<p class="empty">No open vulnerabilities.</p>'
    top = max(counts["overdue"] for counts in by_owner.values()) or 1
    rows = "".join(
        f"<tr><td class='wrap'><b>{esc(name)}</b></td><td class='num'>{num(counts['open'])}</td>"
        f"<td class='num'><span class='bar' style='width:{max(2, round(70 * counts['overdue'] / top))}px'>"
        f"</span>{num(counts['overdue'])}</td><td class='num'>{num(counts['due_7d'])}</td>"
        f"<td class='num'>{_pct(counts['overdue'], counts['open'])}</td></tr>"
        for name, counts in by_owner.items()
    )
    return (
        '<table class="owners"><thead><tr><th>Owner</th><th class="num">Open</th><th class="num">Overdue</th>'
        '<th class="num">Due 7d</th><th class="num">Overdue share</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        f'<p class="note">Owner = the <code>{esc(owners.get("tag_key", "team"))}</code> tag of the '
        "finding's asset (first scanner that carries it); findings without one count as "
        "<b>unowned</b>. Most overdue first.</p>"
    )


def list_sections(stats: dict[str, Any], badge: Any) -> str:
    """One card per finding list present in stats.json, in REPORT_ORDER; `badge` renders a severity."""
    lists: dict[str, dict[str, Any]] = (stats.get("findings") or {}).get("lists") or {}
    return "".join(_list_card(name, lists[name], badge) for name in REPORT_ORDER if name in lists)


def _list_card(name: str, found: dict[str, Any], badge: Any) -> str:
    rows: list[dict[str, Any]] = found["rows"]
    shown = f"first {len(rows)} of " if len(rows) < found["count"] else ""
    files = (
        f'<p class="files">{esc(LIST_HELP.get(name, ""))} Showing {shown}{num(found["count"])} · '
        f"all of it in <code>{esc(found['csv'])}</code> and <code>{esc(found['ndjson'])}</code></p>"
    )
    title = f'<h2>{esc(found["title"])}<span class="count">{num(found["count"])}</span></h2>'
    if not rows:
        return f'<section class="card list">{title}{files}<p class="empty">None.</p></section>'
    extra_head, extra = _extra_columns(name)
    body = "".join(f"<tr>{_cells(row, badge)}{extra(row)}</tr>" for row in rows)
    head = (
        "<tr><th>Severity</th><th>Finding</th><th>Asset</th><th>Owner</th><th class='num'>Due</th>"
        f"<th class='num'>Days late</th><th>Fix</th>{extra_head}</tr>"
    )
    table = f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"
    return f'<section class="card list">{title}{files}{table}</section>'


def _cells(row: dict[str, Any], badge: Any) -> str:
    other_cves = " ".join(c for c in row.get("cve_ids") or [] if c != row.get("name"))
    asset = row.get("asset_name") or row.get("asset_id") or "—"
    kind = f"{_title(row.get('asset_type') or '')} · {row.get('integration') or ''}"
    fix = row.get("fixed_version") or ("yes" if row.get("fix_available") else "no")
    late = "" if row.get("days_overdue") is None else num(row["days_overdue"])
    return (
        f"<td>{badge(row.get('severity') or 'UNKNOWN')}</td>"
        f"<td class='wrap'><span class='name'>{_link(row)}</span>"
        f"<span class='sub mono'>{esc(other_cves)}</span></td>"
        f"<td class='wrap'><span class='name'>{esc(asset)}</span><span class='sub'>{esc(kind)}</span></td>"
        f"<td class='wrap'>{esc(row.get('owner') or '')}</td>"
        f"<td class='num'>{esc(row.get('due_date') or '—')}</td>"
        f"<td class='num'>{late}</td><td class='wrap'>{esc(fix)}</td>"
    )


def _extra_columns(name: str) -> tuple[str, Any]:
    if name == "exceptions":

        def exception(row: dict[str, Any]) -> str:
            flags = (
                "<span class='flag'>expires &lt; 14 d</span> " if row.get("expires_within_14d") else ""
            ) + ("<span class='flag'>fix available</span>" if row.get("fix_now_available") else "")
            return (
                f"<td class='wrap'>{esc(row.get('deactivation_reason') or '—')}"
                f"<span class='sub mono'>by {esc(row.get('deactivated_by') or '?')} since "
                f"{esc(row.get('deactivated_since') or '?')}</span></td>"
                f"<td class='num'>{esc(row.get('deactivated_until') or 'indefinitely')}</td><td>{flags}</td>"
            )

        return "<th>Reason</th><th class='num'>Until</th><th></th>", exception
    if name == "resolved":
        return (
            "<th>How</th>",
            lambda row: f"<td>{esc(str(row.get('resolution') or '').replace('_', ' '))}</td>",
        )
    return "", lambda row: ""


def _link(row: dict[str, Any]) -> str:
    label = esc(row.get("name") or row.get("id") or "")
    url = row.get("vanta_url")
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return f'<a class="ext" href="{esc(url)}" rel="noopener noreferrer">{label}</a>'
    return label


def _pct(part: int, whole: int) -> str:
    return "—" if not whole else f"{100 * part / whole:.0f} %"


def _title(text: str) -> str:
    return text.replace("_", " ").title()
