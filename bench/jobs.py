"""Submitting requests through the real `Core.submit` and reading the jobs' times back:
a unique sample photo per request, a `Submitter` that publishes each Celery message at once or
holds them back for a burst, and `JobTimes` with the spans and gaps computed from them."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bench.host import BenchError

if TYPE_CHECKING:
    from bots.core import Core, ImageRequest, Runtime


def sample_png(seed: int, size: int = 64) -> bytes:
    """A size×size PNG whose bytes differ for every seed (no duplicate-photo shortcut)."""
    from PIL import Image

    img = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    img.putpixel((0, 0), (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    img.putpixel((1, 0), (seed * 7 % 256, seed * 13 % 256, seed * 31 % 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def ms_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


@dataclass(frozen=True)
class JobTimes:
    """A finished job's timestamps (UTC); `seen` is when this benchmark saw it finished."""

    created: datetime
    started: datetime
    finished: datetime
    seen: datetime


def span_s(times: Iterable[JobTimes]) -> float:
    """Seconds from the first job's start to the last job's finish."""
    times = list(times)
    return (max(t.finished for t in times) - min(t.started for t in times)).total_seconds()


class Submitter:
    """A runtime + `Core` submitting through the real `Core.submit`. Each job's Celery message is
    published at once (timed in `published`), or with hold=True kept in `held` until `release()`
    publishes them all in one burst."""

    def __init__(self, runtime: Runtime, *, hold: bool) -> None:
        from bots.core import Core
        from tasks.app import publisher

        self.runtime = runtime
        self.core: Core = Core(runtime)
        self.style = next(iter(runtime.styles))  # the first preset, unless a request names one
        self.held: list[str] = []
        self.published: dict[str, tuple[datetime, datetime]] = {}  # job id -> publish start, end
        self._publish = publisher(runtime.settings)
        runtime.enqueue = self.held.append if hold else self.publish

    def publish(self, job_id: str) -> None:
        start = datetime.now(UTC)
        self._publish(job_id)
        self.published[job_id] = (start, datetime.now(UTC))

    def submit(self, request: ImageRequest) -> str:
        """The job id `Core.submit` admitted the request as; BenchError if it was refused."""
        reply = self.core.submit(request)
        if reply.job_id is None:
            raise BenchError(f"request refused: {reply.text!r}")
        return reply.job_id

    def release(self) -> list[str]:
        """Publish every held message, in the order admitted; their job ids."""
        ids = list(self.held)
        self.held.clear()  # in place: the runtime's enqueue is this list's append
        for job_id in ids:
            self.publish(job_id)
        return ids
