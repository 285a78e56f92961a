"""A circuit breaker in front of the broker: after a publish fails, requests are told "busy"
at once, before anything is reserved or downloaded, instead of each one waiting out the
publish retries. After `cool_s` one request tries the broker again (half-open)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Enqueue = Callable[[str], None]


class BrokerDown(Exception):
    """The broker failed a moment ago; this publish was not tried."""


class Breaker:
    def __init__(
        self, enqueue: Enqueue, cool_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._enqueue, self.cool_s, self.clock = enqueue, cool_s, clock
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """True while the last failure is fresh: don't even try."""
        with self._lock:
            return self._failed_at is not None and self.clock() - self._failed_at < self.cool_s

    def __call__(self, job_id: str) -> None:
        if self.open:
            raise BrokerDown(job_id)
        try:
            self._enqueue(job_id)
        except Exception:
            with self._lock:
                self._failed_at = self.clock()
            raise
        with self._lock:
            self._failed_at = None
