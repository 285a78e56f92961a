"""Styling backends, chosen by name; each is imported only when asked for.

The diffusers backend pulls in torch and diffusers (seconds to import, gigabytes installed),
so a classic or fake worker never imports them.
"""

from __future__ import annotations

from tasks.backends.base import Backend

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("classic", "diffusers", "null", "sleep")


def make_backend(name: str, *, device: str = "auto", sleep_ms: int = 200) -> Backend:
    """Build the backend called `name`; `device` is for diffusers, `sleep_ms` for sleep."""
    if name == "classic":
        from tasks.backends.classic import ClassicBackend

        return ClassicBackend()
    if name == "diffusers":
        from tasks.backends.diffusers import DiffusersBackend

        return DiffusersBackend(device=device)
    if name == "null":
        from tasks.backends.fakes import NullBackend

        return NullBackend()
    if name == "sleep":
        from tasks.backends.fakes import SleepBackend

        return SleepBackend(ms=sleep_ms)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
