"""The queue's figures from SQL, read at each Prometheus scrape (a few cheap statements).

Bot processes export them, workers don't: SQL is one truth however many processes serve it,
so with two bots (Telegram and Discord) each series comes twice, one per scraped process;
dashboards take `max without (instance, job)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from quota.capacity import live_workers
from quota.controls import MODES, capacity_mode, free_limit_now
from quota.tiers import Tier
from storage.db import transaction
from storage.models import Job, JobStatus, Lane
from storage.settings import Settings

log = logging.getLogger("stylebot.metrics")


class QueueGauges(Collector):
    """Queued and running jobs by tier, the oldest wait, live workers, capacity mode and the
    free limit in force, each tier's promised wait."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        tiers: Mapping[str, Tier],
        clock: Callable[[], datetime],
    ) -> None:
        self.engine, self.settings, self.tiers, self.clock = engine, settings, tiers, clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families().values())  # registering must not query SQL

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        try:
            with transaction(self.engine) as s:
                self._fill(s, families, self.clock())
        except Exception as exc:  # the database blipped: this scrape says so, the next retries
            log.warning("metrics_sql_failed error=%s", type(exc).__name__)
            families["up"].add_metric([], 0)
            return iter([families["up"]])
        families["up"].add_metric([], 1)
        return iter(families.values())

    def _families(self) -> dict[str, GaugeMetricFamily]:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=list(labels))

        return {
            "up": gauge("stylebot_sql_up", "Whether this scrape could read the queue from SQL"),
            "queued": gauge(
                "stylebot_jobs_queued", "Normal-lane jobs waiting, by tier (SQL)", ("tier",)
            ),
            "relax": gauge(
                "stylebot_relax_jobs",
                "Relax-lane jobs (run when there's room), queued or running (SQL)",
                ("status",),
            ),
            "running": gauge(
                "stylebot_jobs_running", "Jobs being styled, by tier (SQL)", ("tier",)
            ),
            "oldest": gauge(
                "stylebot_queue_oldest_seconds",
                "How long the longest-waiting normal-lane job has waited, by tier (SQL)",
                ("tier",),
            ),
            "promise": gauge(
                "stylebot_tier_max_wait_seconds",
                "The longest wait admission promises a tier (STYLEBOT_*_MAX_WAIT_S)",
                ("tier",),
            ),
            "workers": gauge("stylebot_workers_live", "Workers with a fresh heartbeat (SQL)"),
            "mode": gauge(
                "stylebot_capacity_mode", "The capacity mode in force: 1 for it, 0 else", ("mode",)
            ),
            "free_limit": gauge(
                "stylebot_free_daily_limit", "The free tier's daily limit in force (surge applied)"
            ),
        }

    def _fill(self, s: Session, f: dict[str, GaugeMetricFamily], now: datetime) -> None:
        counts = {(tier, status): 0 for tier in self.tiers for status in ("queued", "running")}
        oldest: dict[str, float] = {}
        relax = {"queued": 0, "running": 0}
        rows = s.execute(
            select(
                col(Job.tier),
                col(Job.status),
                col(Job.lane),
                func.count(),
                func.min(Job.created_at),
            )
            .where(col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            .group_by(Job.tier, Job.status, Job.lane)
        ).all()
        for name, status, lane, n, first in rows:
            if lane == Lane.RELAX:  # no promise to keep: counted apart, not in the tier's wait
                relax[status] += int(n)
                if status == JobStatus.QUEUED:
                    continue
            counts[(name, status)] = counts.get((name, status), 0) + int(n)
            if status == JobStatus.QUEUED and first is not None:
                oldest[name] = max(0.0, (now - _aware(first)).total_seconds())
        for (name, status), n in sorted(counts.items()):
            f[status].add_metric([name], n)
        for status, n in relax.items():
            f["relax"].add_metric([status], n)
        for name, tier in self.tiers.items():
            f["oldest"].add_metric([name], oldest.get(name, 0.0))
            f["promise"].add_metric([name], tier.max_wait_s)
        f["workers"].add_metric([], live_workers(s, now, self.settings.worker_heartbeat_s))
        mode = capacity_mode(s)
        for name in MODES:
            f["mode"].add_metric([name], 1 if name == mode else 0)
        if "free" in self.tiers:
            limit, _ = free_limit_now(s, self.tiers["free"], self.settings.surge_min_free_limit)
            f["free_limit"].add_metric([], limit)


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
