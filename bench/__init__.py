"""Benchmarks: `stylebot bench queue` (bench.queue) and bench/classic_speed.py."""
