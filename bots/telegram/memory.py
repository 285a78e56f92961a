"""Short-lived, in-process memory of a conversation: what a person asked for a moment ago.

Lost on restart by design: a pending "/ghibli, now send the photo" or an album's style only
matters for minutes, and SQL (idempotency keys) is what keeps a job from running twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """A bounded map whose entries vanish `ttl_s` seconds after they were set."""

    def __init__(
        self, ttl_s: float, max_items: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s, self.max_items, self.clock = ttl_s, max_items, clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def put(self, key: K, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = (self.clock() + self.ttl_s, value)
        self._prune()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] < self.clock():
            self._items.pop(key, None)
            return None
        return item[1]

    def pop(self, key: K) -> V | None:
        value = self.get(key)
        self._items.pop(key, None)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __len__(self) -> int:
        self._prune()
        return len(self._items)

    def _prune(self) -> None:
        now = self.clock()
        while self._items:
            key, (expires, _) = next(iter(self._items.items()))
            if expires >= now and len(self._items) <= self.max_items:
                break
            del self._items[key]


class FirstSight:
    """Answers True the first time a key is seen within `ttl_s`: a redelivered update is dropped."""

    def __init__(self, ttl_s: float = 3600.0, max_items: int = 50_000) -> None:
        self._seen: Expiring[str, bool] = Expiring(ttl_s, max_items)

    def first(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen.put(key, True)
        return True
