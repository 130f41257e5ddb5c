"""What the nightly benchmark reads back after the runs: stage times, CPU per stage, outcomes.

Stage walls come from `run_stage_stats` (what the SLA check reads: the stage frame's start and
finish). CPU per stage is the worker process's CPU clock, sampled every quarter second by
`bench.night_worker`, interpolated at the stage's start and finish.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import psycopg

from bench.night_bound import STAGES, StageFloor, Target
from leadgen_core.db.pool import set_tenant
from leadgen_core.night.stagestats import StageStat, night_stats

OUTCOMES_SQL = """
SELECT stage, status, coalesce(reason, '-'), count(*)
FROM company_stage_status WHERE tenant_id = %s AND run_date = %s
GROUP BY 1, 2, 3
"""


@dataclass(frozen=True)
class TenantNight:
    tenant_id: str
    stats: list[StageStat]
    outcomes: dict[str, Counter[str]]  # stage -> status -> count
    degraded: Counter[str]  # "stage/reason" -> degraded companies

    def stage(self, name: str) -> StageStat | None:
        return next((s for s in self.stats if s.stage == name), None)

    @property
    def night_s(self) -> float:
        finished = [s.finished_at for s in self.stats if s.finished_at is not None]
        if not self.stats or not finished:
            return 0.0
        return (max(finished) - min(s.started_at for s in self.stats)).total_seconds()


@contextmanager
def tenant_transaction(owner: psycopg.Connection, tenant_id: str) -> Iterator[psycopg.Connection]:
    """A transaction on OWNER scoped to TENANT_ID (row-level security is forced on tenant tables)."""
    with owner.transaction():
        set_tenant(owner, tenant_id)
        yield owner


def read_night(owner: psycopg.Connection, tenant_id: str, day: date) -> TenantNight:
    outcomes: dict[str, Counter[str]] = {}
    degraded: Counter[str] = Counter()
    with tenant_transaction(owner, tenant_id):
        stats = night_stats(owner, tenant_id=tenant_id, run_date=day)
        for stage, status, reason, n in owner.execute(OUTCOMES_SQL, (tenant_id, day)).fetchall():
            outcomes.setdefault(str(stage), Counter())[str(status)] += int(n)
            if status == "degraded":
                degraded[f"{stage}/{reason}"] += int(n)
    return TenantNight(tenant_id, stats, outcomes, degraded)


def read_targets(owner: psycopg.Connection, tenant_id: str, day: date) -> list[Target]:
    """The tenant's targets for DAY, with the website the crawl stored (what requests name)."""
    with tenant_transaction(owner, tenant_id):
        rows = owner.execute(
            "SELECT c.company_id, c.name, c.website_domain FROM daily_targets t JOIN companies c USING (company_id) "
            "WHERE t.tenant_id = %s AND t.run_date = %s",
            (tenant_id, day),
        ).fetchall()
    return [Target(tenant_id, int(r[0]), str(r[1]), r[2]) for r in rows]


def read_emails(owner: psycopg.Connection, company_ids: list[int]) -> dict[str, int]:
    """Every known address of these companies (lead_emails is global), to its company."""
    rows = owner.execute("SELECT email, company_id FROM lead_emails WHERE company_id = ANY(%s)", (company_ids,))
    return {str(e): int(c) for e, c in rows.fetchall()}


def stage_progress(owner: psycopg.Connection, tenant_id: str, day: date) -> str:
    """`stage done/total` for the tenant's latest stage, for a progress line."""
    with tenant_transaction(owner, tenant_id):
        row = owner.execute(
            "SELECT stage, finished_at IS NOT NULL FROM run_stage_stats WHERE tenant_id = %s AND run_date = %s "
            "ORDER BY started_at DESC LIMIT 1",
            (tenant_id, day),
        ).fetchone()
        if row is None:
            return "starting"
        stage, finished = str(row[0]), bool(row[1])
        total = owner.execute(
            "SELECT count(*) FROM daily_targets WHERE tenant_id = %s AND run_date = %s", (tenant_id, day)
        ).fetchone()
        done = owner.execute(
            "SELECT count(*) FROM company_stage_status WHERE tenant_id = %s AND run_date = %s AND stage = %s",
            (tenant_id, day, stage),
        ).fetchone()
    n_total, n_done = (int(total[0]) if total else 0), (int(done[0]) if done else 0)
    return f"{stage} {'finished' if finished else f'{n_done}/{n_total}'}"


def cpu_between(samples: Sequence[Sequence[float]], start: float, end: float) -> float:
    """Process CPU seconds spent between two wall-clock times, from (time, cpu) samples."""

    def at(t: float) -> float:
        times = [s[0] for s in samples]
        i = bisect_left(times, t)
        if i <= 0:
            return samples[0][1]
        if i >= len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[i - 1][:2], samples[i][:2]
        return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)

    return max(0.0, at(end) - at(start)) if samples else 0.0


def stage_table(
    nights: Sequence[TenantNight],
    samples: Mapping[str, Sequence[Sequence[float]]],
    floors: Mapping[str, StageFloor],
) -> dict[str, dict[str, object]]:
    """Per stage: the longest tenant's wall, every tenant's CPU, the floors, the calls, the outcomes."""
    table: dict[str, dict[str, object]] = {}
    for name in STAGES:
        walls, cpu = [], 0.0
        outcomes: Counter[str] = Counter()
        for night in nights:
            stat = night.stage(name)
            if stat is None or stat.finished_at is None:
                continue
            walls.append(stat.seconds or 0.0)
            cpu += cpu_between(samples.get(night.tenant_id, []), stat.started_at.timestamp(),
                               stat.finished_at.timestamp())  # fmt: skip
            outcomes.update(night.outcomes.get(name, Counter()))
        f = floors[name]
        table[name] = {
            "wall_s": round(max(walls, default=0.0), 1),
            "cpu_s": round(cpu, 1),
            "bound_s": round(f.tenant_floor_s, 1),
            "limited_by": f.limited_by,
            "shared_rate_s": round(f.shared_rate_s, 1),
            "calls": f.calls,
            "outcomes": dict(outcomes),
        }
    return table


def format_table(table: Mapping[str, Mapping[str, object]]) -> str:
    head = (f"{'stage':<20} {'wall_s':>7} {'cpu_s':>6} {'floor_s':>7} {'wall/fl':>7}  {'limited by':<22} "
            f"{'shared_s':>8}  calls")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, row in table.items():
        wall, floor = float(str(row["wall_s"])), float(str(row["bound_s"]))
        ratio = f"{wall / floor:7.2f}" if floor > 0 else f"{'-':>7}"
        lines.append(
            f"{name:<20} {wall:7.1f} {float(str(row['cpu_s'])):6.1f} {floor:7.1f} {ratio}  {row['limited_by']!s:<22} "
            f"{float(str(row['shared_rate_s'])):8.1f}  {row['calls']}"
        )
    return "\n".join(lines)
