"""The tests' tiny random SD1.5-architecture pipeline (built by bench/pipelines.py)."""

from bench.pipelines import build_tiny_pipeline

__all__ = ["build_tiny_pipeline"]
