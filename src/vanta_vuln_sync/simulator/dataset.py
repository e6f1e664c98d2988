"""The simulated tenant's data, generated deterministically from a seed and stored compactly.

Records are kept as parallel typed arrays (a few dozen bytes per vulnerability) and rendered to the
JSON-ready dicts Vanta serves only when a page is served, so a million vulnerabilities fit in a modest
amount of memory. Ids look like Vanta's (24 hex characters, MongoDB ObjectId layout: creation time,
a per-tenant constant, a counter), which makes "sorted by id" the same as "sorted by (time, counter)".

Serve order, per resource (stable and deterministic):
- vulnerabilities: `remediateByDate` earliest first, those without one last, ties by id;
- vulnerability-remediations: by id, i.e. by remediation time;
- vulnerable-assets: by id; integrations: by `integrationId`.

Churn (see `churn.py`) deletes and inserts records between requests: a deleted vulnerability is simply
no longer open, a deleted remediation or asset is tombstoned in `removed`; inserted records are
appended to the columns with sort keys that put them where they were inserted.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from vanta_vuln_sync.simulator import churn, generation, render
from vanta_vuln_sync.simulator.churn import NO_SLA, ChurnEvent, ChurnLedger, ChurnTruth
from vanta_vuln_sync.simulator.generation import Flaw
from vanta_vuln_sync.simulator.vocabulary import INTEGRATIONS, SEVERITY_WEIGHTS

Resource = Literal["vulnerabilities", "vulnerability-remediations", "vulnerable-assets", "integrations"]
RESOURCES: tuple[Resource, ...] = (
    "vulnerabilities",
    "vulnerability-remediations",
    "vulnerable-assets",
    "integrations",
)
CHURNED: tuple[Resource, ...] = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
DAY = 86_400


def checked_resource(name: str) -> Resource:
    """`name` as a Resource; raises ValueError naming the valid resources when it is not one."""
    if name not in RESOURCES:
        raise ValueError(f"unknown resource {name!r}; expected one of {', '.join(RESOURCES)}")
    return name


GENERATION_CHUNK = 65_536  # records generated per batch: bounds the temporary lists


@dataclass(slots=True)
class Evolution:
    """What `Dataset.evolve` changed, by record id."""

    fixed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    remediations: list[str] = field(default_factory=list)


class Dataset:
    """A deterministic Vanta tenant: vulnerabilities, remediations, vulnerable assets, integrations.

    `records(resource)` is exactly what the unfiltered API serves, in order (for vulnerabilities: with
    `includeVulnerabilitiesWithoutSlas=true`). `evolve(seed)` moves the tenant one day forward.
    """

    def __init__(
        self,
        *,
        seed: int,
        vulnerabilities: int,
        remediations: int,
        assets: int,
        now: datetime,
    ) -> None:
        self.seed = seed
        self.now_ts = int(now.timestamp())
        self.version = 0
        # Churn: per resource, how many churn events changed it (selection caches key on it), the
        # tombstoned remediations and assets, and what was inserted or deleted since the truth reset.
        self.revision: dict[str, int] = dict.fromkeys(CHURNED, 0)
        self.removed: dict[str, set[int]] = {"vulnerability-remediations": set(), "vulnerable-assets": set()}
        self.ledger = ChurnLedger(CHURNED)
        rng = random.Random(seed)
        self.id_middle = {
            kind: f"{rng.getrandbits(40):010x}" for kind in ("vuln", "rem", "asset", "user", "integration")
        }
        # Assets.
        self.asset_created = array("q")
        self.asset_type = array("b")
        self.asset_integrations: list[tuple[int, ...]] = []
        self.asset_names: list[str] = []
        for index in range(max(1, assets)):
            generation.add_asset(self, rng, index)
        # Flaws (CVE catalogue), grouped by severity so a vulnerability's severity follows its CVE.
        self.flaws: list[Flaw] = []
        self.flaws_by_severity: list[list[int]] = [[], [], [], []]
        total = vulnerabilities + remediations
        for severity, weight in enumerate(SEVERITY_WEIGHTS):
            for _ in range(max(3, total * weight // 2000)):
                self.flaws_by_severity[severity].append(len(self.flaws))
                self.flaws.append(generation.make_flaw(rng, severity, len(self.flaws)))
        # Vulnerabilities (the open ones and the ones remediations point at), as parallel columns.
        self.v_first = array("q")
        self.v_remediate_by = array("q")
        self.v_asset = array("i")
        self.v_integration = array("b")
        self.v_flaw = array("i")
        self.v_flags = array("H")
        self.v_scanner_score = array("b")
        self.v_last_delta = array("i")
        self.v_source_delta = array("i")
        self.v_deactivated_on = array("q")
        self.v_deactivation = array("b")  # reason index * 2 + 1 when deactivated indefinitely
        self.v_open = bytearray()
        # Remediations: the vulnerability they close and when.
        self.r_vuln = array("i")
        self.r_date = array("q")
        wanted = min(remediations, total)
        for chunk in range(0, total, GENERATION_CHUNK):
            size = min(GENERATION_CHUNK, total - chunk)
            is_open = bytearray(size)
            for k in range(size):
                # Selection sampling: exactly `wanted` of `total` are fixed, spread at random.
                if rng.random() * (total - chunk - k) < wanted:
                    wanted -= 1
                else:
                    is_open[k] = 1
            ages = [
                int(365 * DAY * rng.random() ** 1.3)
                if still_open
                else 2 * DAY + int(538 * DAY * rng.random() ** 1.3)
                for still_open in is_open
            ]
            for serial in generation.add_vulnerabilities(self, rng, ages, is_open):
                if not self.v_open[serial]:
                    fix = generation.fix_seconds(rng, self.flaws[self.v_flaw[serial]].severity)
                    # Fixed in the past: never after "now", always at least a day after detection.
                    self.add_remediation(
                        serial, min(self.v_first[serial] + fix, self.now_ts - int(rng.random() * DAY))
                    )
        self._reorder()

    # -- building ----------------------------------------------------------------------------------

    def add_remediation(self, vuln: int, date: int) -> int:
        """Append a remediation of vulnerability `vuln` dated `date`; returns its internal index."""
        self.r_vuln.append(vuln)
        self.r_date.append(date)
        return len(self.r_vuln) - 1

    def _reorder(self) -> None:
        """Recompute serve orders after the data changed; invalidates cached selections."""
        # Python's sort is stable and the serials start in id order among equal dates, so one int key
        # per record gives (remediateByDate, id) order without a tuple per record (memory at 1 M).
        rb, first = self.v_remediate_by, self.v_first
        order = array("i", (s for s in range(len(first)) if self.v_open[s]))
        keyed = sorted(order, key=lambda s: ((rb[s] if rb[s] >= 0 else NO_SLA) << 32) | first[s])
        self.vuln_order = array("i", keyed)
        del keyed
        self.vulns_with_sla = sum(1 for s in self.vuln_order if rb[s] >= 0)
        self.remediation_order = array(
            "i",
            sorted(self._kept("vulnerability-remediations", len(self.r_date)), key=self.r_date.__getitem__),
        )
        self.asset_order = array(
            "i",
            sorted(
                self._kept("vulnerable-assets", len(self.asset_created)), key=self.asset_created.__getitem__
            ),
        )
        self.integration_order = array(
            "i", sorted(range(len(INTEGRATIONS)), key=lambda k: INTEGRATIONS[k].integration_id)
        )
        self.version += 1

    def _kept(self, resource: str, size: int) -> Sequence[int]:
        removed = self.removed[resource]
        return range(size) if not removed else [k for k in range(size) if k not in removed]

    @property
    def now(self) -> datetime:
        """The tenant's "now": the config's `now`, moved a day forward by each `evolve()`."""
        return datetime.fromtimestamp(self.now_ts, UTC)

    # -- ids ----------------------------------------------------------------------------------------

    def vulnerability_id(self, serial: int) -> str:
        return f"{self.v_first[serial]:08x}{self.id_middle['vuln']}{serial:06x}"

    def remediation_id(self, index: int) -> str:
        return f"{self.r_date[index]:08x}{self.id_middle['rem']}{index:06x}"

    def asset_id(self, index: int) -> str:
        return f"{self.asset_created[index]:08x}{self.id_middle['asset']}{index:06x}"

    def user_id(self, index: int) -> str:
        return f"{1_600_000_000 + index * 86_400:08x}{self.id_middle['user']}{index:06x}"

    # -- serving ------------------------------------------------------------------------------------

    def order(self, resource: str, *, include_without_sla: bool = True) -> Sequence[int]:
        """Internal indexes of `resource` in serve order (vulnerabilities without an SLA come last)."""
        resource = checked_resource(resource)
        if resource == "vulnerabilities":
            if include_without_sla:
                return self.vuln_order
            return self.vuln_order[: self.vulns_with_sla]
        if resource == "vulnerability-remediations":
            return self.remediation_order
        if resource == "vulnerable-assets":
            return self.asset_order
        return self.integration_order

    def render(self, resource: str, index: int) -> dict[str, Any]:
        """The record at internal `index` as Vanta serves it."""
        resource = checked_resource(resource)
        if resource == "vulnerabilities":
            return render.vulnerability(self, index)
        if resource == "vulnerability-remediations":
            return render.remediation(self, index)
        if resource == "vulnerable-assets":
            return render.asset(self, index)
        return render.integration(self, index)

    def serve_key(self, resource: str) -> Callable[[int], int]:
        """A function of an internal index whose value orders `resource` as it is served (unique per
        record, also for deleted ones): `order(resource)` is sorted by it. Integrations have none."""
        if resource == "vulnerabilities":
            rb, first = self.v_remediate_by, self.v_first
            return lambda s: ((((rb[s] if rb[s] >= 0 else NO_SLA) << 32) | first[s]) << 32) | s
        if resource == "vulnerability-remediations":
            r_date = self.r_date
            return lambda k: (r_date[k] << 32) | k
        if resource == "vulnerable-assets":
            created = self.asset_created
            return lambda k: (created[k] << 32) | k
        raise ValueError(f"{resource!r} has no serve key; expected one of {', '.join(CHURNED)}")

    def record_id(self, resource: str, index: int) -> str:
        """The `id` of the record of `resource` at internal `index` (deleted ones too)."""
        if resource == "vulnerabilities":
            return self.vulnerability_id(index)
        if resource == "vulnerability-remediations":
            return self.remediation_id(index)
        if resource == "vulnerable-assets":
            return self.asset_id(index)
        raise ValueError(f"{resource!r} records have no id; expected one of {', '.join(CHURNED)}")

    def is_served(self, resource: str, index: int) -> bool:
        """Whether the record at internal `index` is in `records(resource)` now."""
        if resource == "vulnerabilities":
            return bool(self.v_open[index])
        return index not in self.removed[resource]

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every record of `resource`, exactly as the unfiltered API serves them, in order (for
        vulnerabilities: as with `includeVulnerabilitiesWithoutSlas=true`). Raises ValueError for an
        unknown resource name."""
        return [self.render(resource, index) for index in self.order(resource)]

    def count(self, resource: str) -> int:
        """How many records `records(resource)` holds."""
        return len(self.order(resource))

    def remediation_integration(self, remediation_id: str) -> str:
        """The integrationId the `integrationId` filter matches a remediation by (not in the record)."""
        index = int(remediation_id[-6:], 16)
        return INTEGRATIONS[self.v_integration[self.r_vuln[index]]].integration_id

    # -- change -------------------------------------------------------------------------------------

    def churn(self, resource: str, *, delete: int, insert: int, rng: random.Random) -> ChurnEvent:
        """Delete `delete` records at random positions of `resource`'s served list, then insert
        `insert` brand-new ones at random positions, keeping the serve order (see `churn.apply`)."""
        if resource not in CHURNED:
            raise ValueError(f"cannot churn {resource!r}; expected one of {', '.join(CHURNED)}")
        event = churn.apply(self, resource, delete=delete, insert=insert, rng=rng)
        self.ledger.note(resource, deleted=event.deleted, inserted=event.inserted)
        return event

    def churn_truth(self, resource: str) -> ChurnTruth:
        """Which ids of `resource` a sync must hold (`stable`: served without a break since the last
        `reset_churn_truth`) and which it may or may not hold (`transient`: inserted or deleted since,
        by churn or `evolve`). Raises ValueError for a resource churn does not change."""
        return self.ledger.truth(self, resource)

    def churn_counts(self, resource: str) -> dict[str, int]:
        """`churn_truth(resource)` as counts (no ids are made), with how many records are served."""
        return self.ledger.counts(self, resource)

    def reset_churn_truth(self) -> None:
        """Start the truth afresh: every record served now is stable, none transient."""
        self.ledger.reset()

    def evolve(self, seed: int, *, days: int = 1) -> Evolution:
        """Move the tenant `days` forward, as scanners and engineers would: ~2 % of open vulnerabilities
        fixed (removed, a remediation added, dated in the new day), ~2.5 % newly detected, ~0.5 %
        deactivated. Deterministic from `seed` and the current data."""
        rng = random.Random(seed * 7919 + self.version)
        start, self.now_ts = self.now_ts, self.now_ts + days * DAY
        change = Evolution()
        first_new_remediation = len(self.r_date)
        open_serials = list(self.vuln_order)
        for serial in open_serials:
            roll = rng.random()
            if roll < 0.02 * days:
                self.v_open[serial] = 0
                date = start + rng.randrange(days * DAY)
                index = self.add_remediation(serial, max(date, self.v_first[serial]))
                change.fixed.append(self.vulnerability_id(serial))
                change.remediations.append(self.remediation_id(index))
            elif roll < 0.025 * days and self.v_deactivated_on[serial] < 0:
                self.v_deactivated_on[serial] = start + rng.randrange(days * DAY)
                change.deactivated.append(self.vulnerability_id(serial))
        count = max(1, int(len(open_serials) * 0.025 * days))
        ages = [int(rng.random() * days * DAY) for _ in range(count)]
        new = generation.add_vulnerabilities(self, rng, ages, bytearray(b"\x01" * count))
        change.new.extend(self.vulnerability_id(serial) for serial in new)
        fixed = [serial for serial in open_serials if not self.v_open[serial]]
        self.ledger.note("vulnerabilities", deleted=fixed, inserted=new)
        self.ledger.note(
            "vulnerability-remediations", inserted=range(first_new_remediation, len(self.r_date))
        )
        self._reorder()
        return change
