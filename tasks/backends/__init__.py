"""Styling backends, chosen by name; each is imported only when asked for.

The diffusers backend pulls in torch and diffusers (seconds to import, gigabytes installed),
so a classic or fake worker never imports them.
"""

from __future__ import annotations

from tasks.backends.base import Backend, PipelineOptions, Staged, Stages, WarmsUp, WarmupReport

__all__ = [
    "BACKENDS",
    "Backend",
    "PipelineOptions",
    "Staged",
    "Stages",
    "WarmsUp",
    "WarmupReport",
    "make_backend",
]

BACKENDS = ("classic", "diffusers", "null", "sleep", "crash")


def make_backend(
    name: str, *, options: PipelineOptions | None = None, sleep_ms: int = 200
) -> Backend:
    """Build the backend called `name`; `options` are for diffusers, `sleep_ms` for sleep."""
    if name == "classic":
        from tasks.backends.classic import ClassicBackend

        return ClassicBackend()
    if name == "diffusers":
        from tasks.backends.diffusers import DiffusersBackend

        return DiffusersBackend(options)
    if name == "null":
        from tasks.backends.fakes import NullBackend

        return NullBackend()
    if name == "sleep":
        from tasks.backends.fakes import SleepBackend

        return SleepBackend(ms=sleep_ms)
    if name == "crash":
        from tasks.backends.fakes import CrashBackend

        return CrashBackend()
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
