"""CPU cost of /assign's exposure logging: per request, and per flush of a batch (issue 14).

    .venv/bin/python benchmarks/exposure_flush.py [--records 16,128,512] [--repeat 150]

With one connection per gunicorn worker, the flush thread's publish holds the GIL on some
request's time, so its CPU is what sets /assign's p99 (docs/benchmarks.md). This measures it in
one process, CPU time of the calling thread (`time.thread_time()`, so other processes on a busy
machine inflate it less than wall time), for the two ways the code can publish a batch,
interleaved in the same run:

- `apply_async`: `exposures_publish(records)`, Celery encoding the record dicts (what the flush
  did before issue 14, and what the per-request mode still does);
- `encoded`: each record encoded on its request (`exposure_record_json`), the flush publishing
  them with `exposures_publish_encoded` (what the flush does now).

Records are the benchmark's: ten experiments, nine in-experiment variants, two attributes. It
needs a Redis broker only (no database): `--redis-db` (default 14) is emptied before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="16,128,512", help="records per flush")
    parser.add_argument("--repeat", type=int, default=150, help="flushes per size and way")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=14)
    args = parser.parse_args()

    broker = f"{args.redis_url}/{args.redis_db}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    import redis

    from assignment import services

    queue = redis.Redis.from_url(broker)
    queue.flushdb()
    attributes = {"country": "US", "plan": "pro"}
    variants = {f"exp-{k}": "treatment" for k in range(9)}

    def record(n: int) -> dict:
        return {
            "request_id": services.request_id_next(),
            "unit_id": f"u-1-{n}-{n * 7919 % 1000003}",
            "timestamp": "2026-11-29T03:20:00.123456+00:00",
            "attributes": attributes,
            "variants": variants,
        }

    print(f"load average {os.getloadavg()[0]:.1f}; CPU time of the calling thread, medians")
    encode_us: list[float] = []
    for size in (int(s) for s in args.records.split(",")):
        timings: dict[str, list[float]] = {"apply_async": [], "encoded": []}
        for repeat in range(args.repeat):
            records = [record(repeat * size + i) for i in range(size)]
            start = time.thread_time()
            encoded = [services.exposure_record_json(r) for r in records]
            encode_us.append((time.thread_time() - start) / size * 1e6)
            ways: list[tuple[str, Callable[[list[Any]], bool], list[Any]]] = [
                ("apply_async", services.exposures_publish, records),
                ("encoded", services.exposures_publish_encoded, encoded),
            ]
            for name, publish, batch in ways if repeat % 2 else ways[::-1]:
                start = time.thread_time()
                assert publish(batch)
                timings[name].append((time.thread_time() - start) * 1e6)
            if repeat % 20 == 19:
                queue.flushdb()
        old, new = (statistics.median(timings[k]) for k in ("apply_async", "encoded"))
        print(
            f"flush of {size:4d} records: apply_async {old:6.0f} us, encoded {new:6.0f} us "
            f"({new / old:.2f}x)"
        )
    print(f"encoding one record on its request: {statistics.median(encode_us):.1f} us")
    queue.flushdb()


if __name__ == "__main__":
    main()
