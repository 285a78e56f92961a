"""Admission's load measurement on a big jobs table, before and after migration 0004.

`python -m bench.done_jobs_index [--jobs 300000]`: a throwaway PostgreSQL database at revision
0003 gets that many finished jobs; `quota.capacity.measure` (run on every request) is timed
there, then again after upgrading to 0004, which adds the (status, finished_at) index. Prints
both medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from bench.host import DEFAULT_ADMIN_URL

FILL = """
INSERT INTO jobs (id, idempotency_key, user_id, platform, style, tier, status, sort_key, bucket,
  batch_size, attempts, quota_day, locale, reply_target, created_at, started_at, finished_at)
SELECT 'j' || g, 'k' || g, 'console:u', 'console', 'ghibli', 'free',
  CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'done' END, now() - g * interval '1 second',
  '512x512', 1, 1, current_date, 'en', '{}', now() - g * interval '1 second',
  now() - g * interval '1 second', now() - g * interval '1 second' + interval '2 seconds'
FROM generate_series(1, :n) g
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.done_jobs_index", description=__doc__)
    p.add_argument("--jobs", type=int, default=300_000)
    p.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL admin URL")
    args = p.parse_args(argv)
    from sqlalchemy import create_engine, text

    from bench.host import throwaway_database
    from storage import migrate
    from storage.db import make_engine

    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with throwaway_database(admin) as url:
        migrate.upgrade(url, "0003")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, tier, banned, locale, in_flight, extra_credits,"
                    " created_at) VALUES ('console:u', 'free', false, 'en', 0, 0, now())"
                )
            )
            conn.execute(text(FILL), {"n": args.jobs})
            conn.execute(text("ANALYZE jobs"))
        before = _median_ms(engine)
        migrate.upgrade(url)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE jobs"))
        after = _median_ms(engine)
        engine.dispose()
    admin.dispose()
    print(f"measure() with {args.jobs:,} finished jobs in the table")
    print("| revision | median |\n| --- | --- |")
    print(f"| 0003 | {before:.2f} ms |\n| 0004 | {after:.2f} ms |")
    print(f"ratio: {before / after:.1f}×")
    return 0


def _median_ms(engine: object, runs: int = 30, skip: int = 5) -> float:
    from quota import capacity
    from storage.db import transaction
    from storage.models import utcnow

    times = []
    for _ in range(runs):
        with transaction(engine) as s:  # type: ignore[arg-type]
            start = time.perf_counter()
            capacity.measure(s, utcnow(), 5.0, 3.0)
            times.append(time.perf_counter() - start)
    return statistics.median(times[skip:]) * 1000


if __name__ == "__main__":
    sys.exit(main())
