"""The machinery of the simulation: a simulated clock, an event queue and a GPU worker pool."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from quota.lifecycle import finish_done
from storage.db import transaction
from storage.jobs import beat, claim_next
from storage.models import Job


class SimClock:
    """Aware UTC datetimes, `t` seconds after `start`; the runtime calls it for "now"."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t = 0.0

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self.t)


@dataclass(order=True)
class _Event:
    t: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    background: bool = field(compare=False)  # housekeeping: does not keep the day going


class Events:
    """A time-ordered queue of actions; ties run in the order they were scheduled."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self.foreground = 0  # scheduled actions of people and workers

    def at(self, t: float, action: Callable[[], None], *, background: bool = False) -> None:
        heapq.heappush(self._heap, _Event(t, next(self._seq), action, background))
        self.foreground += not background

    def run_next(self, until: float) -> bool:
        """Advance the clock to the next action and run it; False when none is left by `until`."""
        if not self._heap or self._heap[0].t > until:
            return False
        event = heapq.heappop(self._heap)
        self.foreground -= not event.background
        self.clock.t = event.t
        event.action()
        return True


class WorkerPool:
    """`size` GPU workers, each taking `service_s` per image, claiming jobs in SQL queue order.

    The enqueue hook counts tokens as the Celery broker would hold messages; an idle worker
    with a token claims the next job with the real `claim_next`, and finishes it with the real
    `finish_done` after its service time, on the simulated clock.
    """

    def __init__(self, size: int, service_s: float) -> None:
        self.ids = [f"sim-gpu-{i}" for i in range(size)]
        self.idle = list(self.ids)
        self.service_s = service_s
        self.tokens = 0
        self._tasks = itertools.count(1)
        self.engine: Engine | None = None  # set once the runtime exists

    def enqueue(self, job_id: str) -> None:
        self.tokens += 1

    @property
    def busy(self) -> bool:
        return self.tokens > 0 or len(self.idle) < len(self.ids)

    def beat(self, now: datetime) -> None:
        assert self.engine is not None
        with transaction(self.engine) as s:
            for worker_id in self.ids:
                beat(s, worker_id, now)

    def dispatch(self, now: datetime) -> list[tuple[str, Job]]:
        """Idle workers take tokens and claim jobs; returns (worker, job) for each start."""
        assert self.engine is not None
        started = []
        while self.idle and self.tokens > 0:
            self.tokens -= 1
            worker_id = self.idle[-1]
            with transaction(self.engine) as s:
                task = f"sim-task-{next(self._tasks)}"
                job = claim_next(s, task_id=task, worker_id=worker_id, now=now)
            if job is None:  # a token whose job went away (cancelled): nothing to do
                continue
            started.append((self.idle.pop(), job))
        return started

    def finish(self, worker_id: str, job: Job, now: datetime) -> None:
        assert self.engine is not None
        with transaction(self.engine) as s:
            assert finish_done(s, job, f"sim/{job.id}.jpg", now=now), job.id
        self.idle.append(worker_id)
