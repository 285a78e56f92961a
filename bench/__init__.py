"""Benchmarks: `stylebot bench queue|gpu|overlap|load` (bench.queue, bench.gpu, bench.overlap,
bench.load) and
bench/classic_speed.py.

Shared by every benchmark that drives the live stack (import the modules; nothing is re-exported
here, so importing one stays cheap):

- bench.report: percentile, Spread, markdown tables, replacing a `## Section` of BENCHMARKS.md
- bench.host: BenchError, progress lines, machine info, a throwaway PostgreSQL database
- bench.stack: live_stack() and Stack: workers, runtime + Core, requests, waiting for jobs
- bench.jobs: Submitter (publish at once or hold back for a burst), JobTimes, sample photos
- bench.cpu: who used the CPU during a window (/proc)

The queue benchmark itself: bench.queue (command line and the run), bench.queue_report (its
results and goals), bench.queue_render (its BENCHMARKS.md section).
"""
