"""A brute-force reference for stats.json, written apart from the production code on purpose.

Plain Python over whole lists of records: datetimes instead of epoch milliseconds, dicts of records
instead of columns, `statistics.quantiles(method="inclusive")` (numpy's linear method by another
formula) instead of the production quantile. Float fields come back unrounded so the test can check
that production rounds the true value to 2 decimals.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

FOUR = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def sev(record: dict[str, Any]) -> str:
    value = record.get("severity")
    return value.strip().upper() if isinstance(value, str) and value.strip() else "UNKNOWN"


def per_severity(counts: dict[str, int]) -> dict[str, int]:
    out = {s: 0 for s in FOUR}
    for key in sorted(counts):
        out[key] = out.get(key, 0) + counts[key]
    return out


def last_by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("id") is not None:
            latest[str(record["id"])] = record
    return latest


def pct(values: list[float], q: float) -> float | None:
    """numpy.quantile(values, q) via statistics.quantiles (inclusive = numpy's linear method)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return {0.5: cuts[4], 0.9: cuts[8]}[q]


def days(later: datetime, earlier: datetime) -> float:
    return (later - earlier) / timedelta(days=1)


def active_ids(vulnerability_records: list[dict[str, Any]]) -> dict[str, str]:
    return {
        rid: sev(rec)
        for rid, rec in last_by_id(vulnerability_records).items()
        if rec.get("deactivateMetadata") is None
    }


def reference_stats(
    vulnerabilities: list[dict[str, Any]],
    remediations: list[dict[str, Any]],
    assets: list[dict[str, Any]],
    as_of: datetime,
    previous_vulnerabilities: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The stats.json sections from raw records; `remediations` is every remediation record of every
    run so far, oldest first (merging by id, newer wins, is part of what is checked)."""
    vulns = last_by_id(vulnerabilities)
    active = [v for v in vulns.values() if v.get("deactivateMetadata") is None]

    by_sev: dict[str, int] = defaultdict(int)
    by_integration: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cvss: dict[str, list[float]] = defaultdict(list)
    ages: dict[str, list[float]] = defaultdict(list)
    overdue_by: dict[str, int] = defaultdict(int)
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in active:
        s = sev(v)
        by_sev[s] += 1
        by_integration[v.get("integrationId") or "unknown"][s] += 1
        if isinstance(v.get("cvssSeverityScore"), (int, float)):
            cvss[s].append(v["cvssSeverityScore"])
        if v.get("firstDetectedDate"):
            ages[s].append(days(as_of, when(v["firstDetectedDate"])))  # type: ignore[arg-type]
        due = when(v.get("remediateByDate"))
        if due is None:
            buckets[s]["no_sla"] += 1
        elif due < as_of:
            buckets[s]["overdue"] += 1
            overdue_by[s] += 1
        elif due < as_of + timedelta(days=7):
            buckets[s]["due_7d"] += 1
            buckets[s]["due_30d"] += 1
        elif due < as_of + timedelta(days=30):
            buckets[s]["due_30d"] += 1
        else:
            buckets[s]["on_track"] += 1
    all_sevs = list(per_severity(by_sev))

    vulnerabilities_section = {
        "total": len(vulns),
        "active": len(active),
        "deactivated": len(vulns) - len(active),
        "by_severity": per_severity(by_sev),
        "by_integration": {name: per_severity(dict(c)) for name, c in sorted(by_integration.items())},
        "fixable": sum(1 for v in active if v.get("isFixable") is True),
        "unique_assets": len({v["targetId"] for v in active if v.get("targetId") is not None}),
        "unique_cves": len({v["name"] for v in active if v.get("name")}),
        "cvss_mean": {s: statistics.fmean(cvss[s]) if cvss[s] else None for s in all_sevs},
        "sla": {
            "overdue": sum(b["overdue"] for b in buckets.values()),
            "due_7d": sum(b["due_7d"] for b in buckets.values()),
            "due_30d": sum(b["due_30d"] for b in buckets.values()),
            "no_sla": sum(b["no_sla"] for b in buckets.values()),
            "overdue_by_severity": per_severity(overdue_by),
            "by_severity": {
                s: {k: buckets[s][k] for k in ("overdue", "due_7d", "due_30d", "on_track", "no_sla")}
                for s in all_sevs
            },
        },
        "age_days": {
            s: {"p50": pct(sorted(ages[s]), 0.5), "p90": pct(sorted(ages[s]), 0.9)} for s in all_sevs
        },
    }

    rems = last_by_id(remediations)
    rem_by_sev: dict[str, int] = defaultdict(int)
    mttr: dict[str, list[float]] = defaultdict(list)
    allowed: dict[str, list[float]] = defaultdict(list)
    on_time = late = no_sla = 0
    for r in rems.values():
        s = sev(r)
        rem_by_sev[s] += 1
        detected, deadline, fixed = (
            when(r.get("detectedDate")),
            when(r.get("slaDeadlineDate")),
            when(r.get("remediationDate")),
        )
        if deadline is None:
            no_sla += 1
        elif fixed is not None and fixed <= deadline:
            on_time += 1
        elif fixed is not None:
            late += 1
        if detected and fixed:
            mttr[s].append(days(fixed, detected))
        if detected and deadline:
            allowed[s].append(days(deadline, detected))
    rem_sevs = list(per_severity(rem_by_sev))
    remediations_section = {
        "total": len(rems),
        "by_severity": per_severity(rem_by_sev),
        "on_time": on_time,
        "late": late,
        "no_sla": no_sla,
        "mttr_days": {
            s: {
                "p50": pct(sorted(mttr[s]), 0.5),
                "p90": pct(sorted(mttr[s]), 0.9),
                "mean": statistics.fmean(mttr[s]) if mttr[s] else None,
            }
            for s in rem_sevs
        },
        "sla_days": {s: pct(sorted(allowed[s]), 0.5) for s in rem_sevs},
    }

    asset_by_id = last_by_id(assets)
    critical_targets = {v.get("targetId") for v in active if sev(v) == "CRITICAL"}
    by_type: dict[str, int] = defaultdict(int)
    for a in asset_by_id.values():
        by_type[a.get("assetType") or "UNKNOWN"] += 1
    assets_section = {
        "total": len(asset_by_id),
        "by_type": dict(sorted(by_type.items())),
        "scanned": sum(1 for a in asset_by_id.values() if a.get("hasBeenScanned") is True),
        "with_open_critical": sum(1 for aid in asset_by_id if aid in critical_targets),
    }

    rank = {s: i for i, s in enumerate(FOUR)}
    cve_targets: dict[str, set[str]] = defaultdict(set)
    cve_findings: dict[str, list[str]] = defaultdict(list)
    for v in active:
        if v.get("name"):
            cve_findings[v["name"]].append(sev(v))
            if v.get("targetId") is not None:
                cve_targets[v["name"]].add(v["targetId"])
    top_cves = [
        {
            "name": name,
            "assets": len(targets),
            "vulnerabilities": len(cve_findings[name]),
            "severity": min(cve_findings[name], key=lambda s: rank.get(s, 99)),
        }
        for name, targets in sorted(cve_targets.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    ]
    severe: dict[str, dict[str, int]] = defaultdict(lambda: {"CRITICAL": 0, "HIGH": 0})
    for v in active:
        if sev(v) in ("CRITICAL", "HIGH") and v.get("targetId") is not None:
            severe[v["targetId"]][sev(v)] += 1
    ranked = sorted(
        severe.items(), key=lambda kv: (-(kv[1]["CRITICAL"] + kv[1]["HIGH"]), -kv[1]["CRITICAL"], kv[0])
    )[:10]
    top_assets = [
        {
            "id": tid,
            "critical": c["CRITICAL"],
            "high": c["HIGH"],
            "open_critical_high": c["CRITICAL"] + c["HIGH"],
            "name": asset_by_id[tid].get("name") if tid in asset_by_id else None,
            "asset_type": asset_by_id[tid].get("assetType") if tid in asset_by_id else None,
        }
        for tid, c in ranked
    ]

    trend: dict[str, Any] = {"new": None, "resolved": None}
    if previous_vulnerabilities is not None:
        now_ids, then_ids = active_ids(vulnerabilities), active_ids(previous_vulnerabilities)
        new: dict[str, int] = defaultdict(int)
        resolved: dict[str, int] = defaultdict(int)
        for rid, s in now_ids.items():
            if rid not in then_ids:
                new[s] += 1
        for rid, s in then_ids.items():
            if rid not in now_ids:
                resolved[s] += 1
        trend = {
            "new": {**per_severity(new), "total": sum(new.values())},
            "resolved": {**per_severity(resolved), "total": sum(resolved.values())},
        }

    return {
        "vulnerabilities": vulnerabilities_section,
        "remediations": remediations_section,
        "assets": assets_section,
        "top": {"cves": top_cves, "assets": top_assets},
        "trend": trend,
        "records": {
            "vulnerabilities": len(vulnerabilities),
            "vulnerability-remediations": None,  # depends on the run's increment; the test fills it
            "vulnerable-assets": len(assets),
        },
    }


# ---- Finding lists, owners and the digest's picks, by brute force over whole records.

RANK = {s: i for i, s in enumerate(FOUR)}
FAR = datetime.max.replace(tzinfo=None)


def owner_tag(asset: dict[str, Any] | None, key: str) -> str | None:
    for scanner in (asset or {}).get("scanners") or []:
        for tag in scanner.get("assetTags") or []:
            if tag.get("key") == key and tag.get("value"):
                return str(tag["value"])
    return None


def day(text: str | None) -> str | None:
    return None if not text else datetime.fromisoformat(text).strftime("%Y-%m-%d")


def finding_row(
    v: dict[str, Any], assets_by_id: dict[str, dict[str, Any]], as_of: datetime, key: str = "team"
) -> dict[str, Any]:
    asset = assets_by_id.get(v["targetId"]) if v.get("targetId") is not None else None
    due = when(v.get("remediateByDate"))
    cves: list[str] = []
    for value in [v.get("name"), *(v.get("relatedVulns") or [])]:
        if isinstance(value, str) and value.upper().startswith("CVE-") and value not in cves:
            cves.append(value)
    return {
        "id": v["id"],
        "name": v.get("name") or None,
        "cve_ids": cves,
        "severity": sev(v),
        "asset_id": v.get("targetId"),
        "asset_name": asset.get("name") if asset else None,
        "asset_type": (asset.get("assetType") or "UNKNOWN") if asset else None,
        "integration": v.get("integrationId") or "unknown",
        "owner": owner_tag(asset, key) or "unowned",
        "first_detected": day(v.get("firstDetectedDate")),
        "due_date": day(v.get("remediateByDate")),
        "days_overdue": (as_of - due) // timedelta(days=1) if due is not None and due < as_of else None,
        "fix_available": v.get("isFixable") is True,
        "fixed_version": v.get("fixedVersion") or None,
        "vanta_url": v.get("externalURL") or None,
    }


def exception_row(
    v: dict[str, Any], assets_by_id: dict[str, dict[str, Any]], as_of: datetime, key: str = "team"
) -> dict[str, Any]:
    meta = v["deactivateMetadata"]
    until = when(meta.get("deactivatedUntilDate"))
    return {
        **finding_row(v, assets_by_id, as_of, key),
        "deactivation_reason": meta.get("deactivationReason") or None,
        "deactivated_by": meta.get("deactivatedBy") or None,
        "deactivated_since": day(meta.get("deactivatedOnDate")),
        "deactivated_until": day(meta.get("deactivatedUntilDate")),
        "expires_within_14d": until is not None and until < as_of + timedelta(days=14),
        "fix_now_available": v.get("isFixable") is True,
    }


def _due(row_record: dict[str, Any]) -> datetime:
    due = when(row_record.get("remediateByDate"))
    return FAR if due is None else due.replace(tzinfo=None)


def reference_lists(
    vulnerabilities: list[dict[str, Any]],
    assets: list[dict[str, Any]],
    as_of: datetime,
    previous: tuple[list[dict[str, Any]], list[dict[str, Any]], datetime] | None = None,
    key: str = "team",
) -> dict[str, Any]:
    """Every finding list (rows in order), the owners section and the digest's counts; `previous` is
    the previous run's (vulnerabilities, assets, as_of)."""
    vulns = last_by_id(vulnerabilities)
    assets_by_id = last_by_id(assets)
    active = [v for v in vulns.values() if v.get("deactivateMetadata") is None]
    rank = lambda v: RANK.get(sev(v), 4)  # noqa: E731
    severity_first = lambda v: (rank(v), _due(v), v["id"])  # noqa: E731
    due_first = lambda v: (_due(v), rank(v), v["id"])  # noqa: E731

    def due_within(v: dict[str, Any], days_: int) -> bool:
        due = when(v.get("remediateByDate"))
        return due is not None and as_of <= due < as_of + timedelta(days=days_)

    def base(selected: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
        return [finding_row(v, assets_by_id, as_of, key) for v in sorted(selected, key=order)]

    overdue = [v for v in active if when(v.get("remediateByDate")) and when(v["remediateByDate"]) < as_of]  # type: ignore[operator]
    unowned = [v for v in active if owner_tag(assets_by_id.get(v.get("targetId")), key) is None]
    deactivated = [v for v in vulns.values() if v.get("deactivateMetadata") is not None]

    def until(v: dict[str, Any]) -> datetime:
        found = when(v["deactivateMetadata"].get("deactivatedUntilDate"))
        return FAR if found is None else found.replace(tzinfo=None)

    lists: dict[str, list[dict[str, Any]]] = {
        "overdue": base(overdue, severity_first),
        "due_7d": base([v for v in active if due_within(v, 7)], due_first),
        "due_30d": base([v for v in active if due_within(v, 30)], due_first),
        "exceptions": [
            exception_row(v, assets_by_id, as_of, key)
            for v in sorted(deactivated, key=lambda v: (until(v), rank(v), v["id"]))
        ],
        "unowned": base(unowned, severity_first),
    }
    digest: dict[str, Any] = {
        "expiring_exceptions": sum(1 for row in lists["exceptions"] if row["expires_within_14d"]),
        "new_critical_high": None,
        "newly_overdue": None,
    }
    if previous is not None:
        then_vulns, then_assets, then_as_of = previous
        then_active = {
            rid: v for rid, v in last_by_id(then_vulns).items() if v.get("deactivateMetadata") is None
        }
        now_active = {v["id"] for v in active}
        new = [v for v in active if v["id"] not in then_active]
        lists["new"] = base(new, severity_first)
        then_assets_by_id = last_by_id(then_assets)
        resolved = []
        for rid, v in then_active.items():
            if rid in now_active:
                continue
            if rid in vulns:  # still listed, deactivated now
                row = {**finding_row(vulns[rid], assets_by_id, as_of, key), "resolution": "deactivated"}
            else:
                row = {
                    **finding_row(v, then_assets_by_id, then_as_of, key),
                    "resolution": "no_longer_reported",
                }
            resolved.append({**row, "days_overdue": None})
        lists["resolved"] = sorted(resolved, key=lambda row: (RANK.get(row["severity"], 4), row["id"]))
        digest["new_critical_high"] = sum(1 for v in new if sev(v) in ("CRITICAL", "HIGH"))
        digest["newly_overdue"] = sum(1 for v in overdue if when(v["remediateByDate"]) >= then_as_of)  # type: ignore[operator]

    owners: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "overdue": 0, "due_7d": 0})
    overdue_ids = {v["id"] for v in overdue}
    for v in active:
        counts = owners[owner_tag(assets_by_id.get(v.get("targetId")), key) or "unowned"]
        counts["open"] += 1
        counts["overdue"] += v["id"] in overdue_ids
        counts["due_7d"] += due_within(v, 7)
    return {"lists": lists, "owners": dict(owners), "digest": digest}
