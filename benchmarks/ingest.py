"""Benchmark of event ingestion: POST /api/v1/events → Celery → PostgreSQL (issue 3).

    .venv/bin/python benchmarks/ingest.py [--events 1000000] [--rounds 3] [--clients 4] ...
    .venv/bin/python benchmarks/ingest.py --events 50000 --rounds 1        # smoke run

What it does, all against 127.0.0.1:
1. recreates its own PostgreSQL database (`variantlab_bench_ingest`), migrates it with
   manage.py and creates an `events` API key with `manage.py create_api_key`;
2. empties its Redis database (13), the Celery broker and config stamp;
3. starts gunicorn (`config.wsgi`, 2 sync workers by default) and a real Celery worker
   (`celery -A config worker`, prefork, concurrency 2 by default);
4. pre-builds the request bodies: `--events` outcome events with unique event ids, `--batch`
   per request, as JSON bytes; and the same rows in COPY text format;
5. each round: truncates `events_outcome` and times the raw `COPY events_outcome (...) FROM
   STDIN` of those rows (psycopg `cursor.copy`, one transaction), truncates again, then posts
   every body from `--clients` threads on keep-alive HTTP connections (http.client; gunicorn's
   sync workers close each connection, so those reconnect) and polls `SELECT count(*)` until
   every accepted event is stored; checks that the count equals the events accepted;
6. prints medians, then stops everything, flushes Redis db 13 and drops the database.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

if __package__ in (None, ""):  # run as a script: make `benchmarks.assign` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.assign import (
    HOST,
    ROOT,
    Server,
    drop_database,
    manage,
    process_tree_cpu,
    recreate_database,
    redis_flush,
    redis_queue_length,
    service_env,
    start_gunicorn,
    stop,
)

CELERY = ROOT / ".venv" / "bin" / "celery"
EVENTS_PATH = "/api/v1/events"
COLUMNS = "event_id, unit_id, name, value, timestamp, properties, received_at"
NAMES = ("purchase", "add_to_cart", "page_view", "latency_ms")

TARGET_EVENTS_PER_S = 20_000
TARGET_COPY_SHARE = 0.15


@dataclass
class Round:
    copy_s: float
    api_s: float
    e2e_s: float
    accepted: int
    stored: int
    requests: int
    retries: int
    errors: int
    backlog: int  # tasks still queued in Redis when the last 202 came back
    sessions: int  # database sessions opened during the HTTP run (pg_stat_database)
    p50_ms: float
    p99_ms: float
    web_cpu_s: float
    worker_cpu_s: float
    load: float

    @property
    def copy_rate(self) -> float:
        return self.stored / self.copy_s

    @property
    def api_rate(self) -> float:
        return self.accepted / self.api_s

    @property
    def e2e_rate(self) -> float:
        return self.accepted / self.e2e_s


def main() -> int:
    args = parse_args()
    pg_admin, redis_url, env = service_env(args)
    print(f"load average before the run: {fmt_load()}", flush=True)
    print(f"== setup: database {args.db_name}, Redis {redis_url} ==", flush=True)
    recreate_database(pg_admin, args.db_name)
    redis_flush(redis_url)
    manage(env, "migrate", "--noinput", quiet=True)
    api_key = manage(env, "create_api_key", "--name", "bench-ingest", "--scopes", "events")
    api_key = api_key.strip().splitlines()[-1]

    started = time.monotonic()
    bodies, copy_blocks = build_payloads(args.events, args.batch, "b")
    warm_bodies, _ = build_payloads(args.batch * args.warmup_requests, args.batch, "w")
    print(
        f"built {len(bodies)} bodies of {args.batch} events "
        f"({sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each) and "
        f"{sum(map(len, copy_blocks)) / 2**20:.0f} MiB of COPY text in "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )

    gunicorn_opts = ["--workers", str(args.workers), "--worker-class", args.worker_class]
    if args.worker_class == "gthread":
        gunicorn_opts += ["--threads", str(args.threads)]
    server = Server("events", "config.wsgi:application", args.port, EVENTS_PATH)
    worker: subprocess.Popen | None = None
    rounds: list[Round] = []
    try:
        server.process = start_gunicorn(server, gunicorn_opts, env)
        worker = start_worker(args, env)
        wait_http(server)
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
            print(describe_setup(args), flush=True)
            # Warm-up: every gunicorn and Celery process connects and imports what it needs.
            warm = post_all(args, server, api_key, warm_bodies)
            wait_count(db, warm.accepted, args.drain_timeout)
            print(f"warm-up: {warm.accepted} events accepted and stored", flush=True)
            for number in range(1, args.rounds + 1):
                result = one_round(args, db, server, worker, api_key, bodies, copy_blocks)
                rounds.append(result)
                print(f"round {number}: {fmt_round(result)}", flush=True)
            dead = db.execute("SELECT count(*) FROM events_deadletter").fetchone()[0]
        queued = redis_queue_length(redis_url, "celery")
    finally:
        stop(server.process)
        stop(worker)
        redis_flush(redis_url)
        if not args.keep_db:
            drop_database(pg_admin, args.db_name)
    return report(args, rounds, dead, queued)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="outcome events per round")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="client threads (connections)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=2, help="threads per gthread worker")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument(
        "--db-reuse-max",
        type=int,
        default=None,
        help="CELERY_DB_REUSE_MAX for the worker (default: the product's, 1000; "
        "0: a new database connection per task)",
    )
    parser.add_argument("--warmup-requests", type=int, default=20)
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds, per round")
    parser.add_argument("--port", type=int, default=8751)
    parser.add_argument("--db-name", default="variantlab_bench_ingest")
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database after")
    args = parser.parse_args()
    if not 1 <= args.batch <= 1000 or args.events < args.batch:
        parser.error("--batch must be 1..1000 and --events at least one batch")
    return args


# --- Payloads -----------------------------------------------------------------------------------


def build_payloads(count: int, batch: int, tag: str) -> tuple[list[bytes], list[bytes]]:
    """JSON request bodies of `batch` outcomes each, and the same rows as COPY text blocks."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    received = datetime.now(UTC).isoformat()
    bodies: list[bytes] = []
    blocks: list[bytes] = []
    for start in range(0, count, batch):
        events = []
        lines = []
        for i in range(start, min(start + batch, count)):
            event = {
                "type": "outcome",
                "event_id": f"{tag}-{i:08d}",
                "unit_id": f"user-{i * 7919 % 200_000:06d}",
                "name": NAMES[i % len(NAMES)],
                "value": round(i % 1000 * 0.37, 2),
                "timestamp": (base + timedelta(milliseconds=97 * i)).isoformat(),
                "properties": {"platform": ("ios", "android", "web")[i % 3], "v": i % 5},
            }
            events.append(event)
            lines.append(
                "\t".join(
                    (
                        event["event_id"],
                        event["unit_id"],
                        event["name"],
                        repr(float(event["value"])),
                        event["timestamp"],
                        json.dumps(event["properties"]),
                        received,
                    )
                )
            )
        bodies.append(json.dumps({"events": events}).encode())
        blocks.append(("\n".join(lines) + "\n").encode())
    return bodies, blocks


# --- Processes ----------------------------------------------------------------------------------


def start_worker(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen:
    if args.db_reuse_max is not None:
        env = {**env, "CELERY_DB_REUSE_MAX": str(args.db_reuse_max)}
    cmd = [
        str(CELERY),
        "-A",
        "config",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        "bench-ingest@%h",
    ]
    # stdout only carries Celery's banner; warnings and errors go to stderr.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def wait_http(server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            sys.exit(f"gunicorn exited with {server.process.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"gunicorn did not answer on port {server.port}")


# --- Load generator -----------------------------------------------------------------------------


@dataclass
class Posted:
    accepted: int
    requests: int
    retries: int
    errors: int
    last_202: float  # monotonic time of the last 202
    latencies: list[float]


def post_all(
    args: argparse.Namespace, server: Server, api_key: str, bodies: list[bytes]
) -> Posted:
    """Post every body once (retrying a 503 or a dropped connection a few times)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    lock = threading.Lock()
    position = iter(range(len(bodies)))
    totals = Posted(0, 0, 0, 0, 0.0, [])

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
        accepted = requests = retries = errors = 0
        last = 0.0
        latencies = []
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            for attempt in range(5):
                sent = time.monotonic()
                try:
                    conn.request("POST", EVENTS_PATH, bodies[index], headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()  # reconnects on the next request
                    retries += 1
                    continue
                now = time.monotonic()
                requests += 1
                if response.status == 202:
                    accepted += json.loads(data)["accepted"]
                    last = max(last, now)
                    latencies.append(now - sent)
                    break
                if response.status == 503 and attempt < 4:
                    retries += 1
                    time.sleep(0.2)
                    continue
                errors += 1
                print(f"POST answered {response.status}: {data[:300]!r}", flush=True)
                break
            else:
                errors += 1
        conn.close()
        with lock:
            totals.accepted += accepted
            totals.requests += requests
            totals.retries += retries
            totals.errors += errors
            totals.last_202 = max(totals.last_202, last)
            totals.latencies.extend(latencies)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


# --- Rounds -------------------------------------------------------------------------------------


def one_round(
    args: argparse.Namespace,
    db: psycopg.Connection,
    server: Server,
    worker: subprocess.Popen,
    api_key: str,
    bodies: list[bytes],
    copy_blocks: list[bytes],
) -> Round:
    # Raw COPY of the same rows into the same (emptied) table, indexes and all.
    db.execute("TRUNCATE events_outcome")
    db.execute("CHECKPOINT")
    started = time.monotonic()
    with (
        db.transaction(),
        db.cursor() as cursor,
        cursor.copy(f"COPY events_outcome ({COLUMNS}) FROM STDIN") as copy,
    ):
        for block in copy_blocks:
            copy.write(block)
    copy_s = time.monotonic() - started
    copied = db.execute("SELECT count(*) FROM events_outcome").fetchone()[0]
    if copied != args.events:
        sys.exit(f"COPY stored {copied} rows, expected {args.events}")

    db.execute("TRUNCATE events_outcome")
    db.execute("CHECKPOINT")
    load = os.getloadavg()[0]
    web_cpu, worker_cpu = process_tree_cpu(server.process), process_tree_cpu(worker)
    sessions = db_sessions(db)
    started = time.monotonic()
    posted = post_all(args, server, api_key, bodies)
    backlog = redis_queue_length(f"redis://{HOST}:{args.redis_port}/{args.redis_db}", "celery")
    done_at, stored = wait_count(db, posted.accepted, args.drain_timeout)
    web_cpu = process_tree_cpu(server.process) - web_cpu
    worker_cpu = process_tree_cpu(worker) - worker_cpu
    time.sleep(1.0)  # anything still arriving would be a duplicate or a stray: look again
    sessions = db_sessions(db) - sessions
    stored = db.execute("SELECT count(*) FROM events_outcome").fetchone()[0]
    latencies = sorted(posted.latencies) or [0.0]
    return Round(
        copy_s=copy_s,
        api_s=posted.last_202 - started,
        e2e_s=done_at - started,
        accepted=posted.accepted,
        stored=stored,
        requests=posted.requests,
        retries=posted.retries,
        errors=posted.errors,
        backlog=backlog,
        sessions=sessions,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        web_cpu_s=web_cpu,
        worker_cpu_s=worker_cpu,
        load=load,
    )


def db_sessions(db: psycopg.Connection) -> int:
    db.execute("SELECT pg_stat_clear_snapshot()")
    query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    return int(db.execute(query).fetchone()[0])


def wait_count(db: psycopg.Connection, expected: int, timeout: float) -> tuple[float, int]:
    """Poll `SELECT count(*)` until it reaches `expected`; (time reached, count)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = db.execute("SELECT count(*) FROM events_outcome").fetchone()[0]
        if count >= expected:
            return time.monotonic(), count
        time.sleep(0.1)
    sys.exit(f"only {count} of {expected} accepted events stored after {timeout:.0f} s")


# --- Output -------------------------------------------------------------------------------------


def fmt_load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def describe_setup(args: argparse.Namespace) -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    workers = f"{args.workers} x {args.worker_class}"
    if args.worker_class == "gthread":
        workers += f" ({args.threads} threads each)"
    return "\n".join(
        [
            f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; "
            "client, gunicorn, Celery, PostgreSQL and Redis all on it",
            f"gunicorn: {workers} workers; Celery: prefork, concurrency {args.concurrency}"
            + (
                f", CELERY_DB_REUSE_MAX={args.db_reuse_max}"
                if args.db_reuse_max is not None
                else ", product settings (connections reused across tasks)"
            )
            + "; "
            f"client: {args.clients} threads (http.client keep-alive)",
            f"{args.events} outcome events per round in {args.events // args.batch} requests of "
            f"{args.batch}; {args.rounds} rounds, each a raw COPY then the HTTP run",
        ]
    )


def fmt_round(r: Round) -> str:
    return (
        f"COPY {r.copy_rate:8.0f} ev/s ({r.copy_s:.1f} s) | API {r.api_rate:7.0f} ev/s "
        f"({r.api_s:.1f} s, p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms, {r.backlog} tasks "
        f"queued at the last 202) | end to end {r.e2e_rate:7.0f} ev/s ({r.e2e_s:.1f} s) | "
        f"ratio {r.e2e_rate / r.copy_rate:.3f} | CPU web {r.web_cpu_s / r.accepted * 1e6:.0f} "
        f"us/ev, worker {r.worker_cpu_s / r.accepted * 1e6:.0f} us/ev | accepted {r.accepted}, "
        f"stored {r.stored}, retries {r.retries}, errors {r.errors} | {r.sessions} database "
        f"sessions opened | load {r.load:.2f}"
    )


def report(args: argparse.Namespace, rounds: list[Round], dead: int, queued: int) -> int:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def spread(values: list[float]) -> str:
        return f"{min(values):.0f}–{max(values):.0f}"

    copy = [r.copy_rate for r in rounds]
    api = [r.api_rate for r in rounds]
    e2e = [r.e2e_rate for r in rounds]
    ratio = [r.e2e_rate / r.copy_rate for r in rounds]
    exact = all(r.stored == r.accepted == args.events for r in rounds)
    errors = sum(r.errors for r in rounds)
    print()
    print(f"== medians of {len(rounds)} rounds (min–max) ==")
    print(f"raw COPY:            {med(copy):8.0f} events/s  ({spread(copy)})")
    print(f"API (last 202):      {med(api):8.0f} events/s  ({spread(api)})")
    print(f"end to end (stored): {med(e2e):8.0f} events/s  ({spread(e2e)})")
    print(
        f"end to end / COPY:   {med(ratio):8.3f}          "
        f"({min(ratio):.3f}–{max(ratio):.3f}; target >= {TARGET_COPY_SHARE})"
    )
    print(
        f"exactly once: {'yes' if exact else 'NO'} (stored == accepted == sent in every round: "
        + ", ".join(f"{r.stored}/{r.accepted}" for r in rounds)
        + f"); dead letters {dead}; tasks left in Redis {queued}; HTTP errors {errors}"
    )
    print(f"load average after the run: {fmt_load()}")
    met = (
        med(e2e) >= TARGET_EVENTS_PER_S
        and med(ratio) >= TARGET_COPY_SHARE
        and exact
        and errors == 0
        and dead == 0
    )
    print(
        f"verdict: target (>= {TARGET_EVENTS_PER_S} events/s end to end and >= "
        f"{TARGET_COPY_SHARE:.0%} of raw COPY) {'MET' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
