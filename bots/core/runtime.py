"""Everything the core needs, built once from settings in main() and passed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bots.core.breaker import Breaker
from quota.tiers import Tier, tiers_from_settings
from storage.db import make_engine
from storage.images import ImageStore
from storage.models import utcnow
from storage.settings import Settings
from tasks.styles import StylePreset, load_styles

Enqueue = Callable[[str], None]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    styles: dict[str, StylePreset]
    store: ImageStore
    tiers: dict[str, Tier]
    enqueue: Enqueue
    clock: Callable[[], datetime] = field(default=utcnow)


def build_runtime(settings: Settings, enqueue: Enqueue | None = None) -> Runtime:
    if enqueue is None:
        from tasks.app import publisher  # Celery loads only where a process publishes

        enqueue = Breaker(publisher(settings))
    return Runtime(
        settings=settings,
        engine=make_engine(settings.sqlalchemy_url),
        styles=load_styles(settings.styles_file),
        store=ImageStore(settings.data_dir / "images", timedelta(hours=settings.result_ttl_hours)),
        tiers=tiers_from_settings(settings),
        enqueue=enqueue,
    )
