"""Benchmark of the machine API against a bare Django project (issues 2 and 14).

    .venv/bin/python benchmarks/assign.py [--duration 15] [--rounds 3] [--workers 2] ...

What it does, all against 127.0.0.1:
1. recreates its own PostgreSQL database (`variantlab_bench_assign`), migrates it with
   manage.py, creates 10 running experiments (plain, three-armed, partial coverage, targeted,
   layered) and an `assign` API key with `manage.py create_api_key`;
2. empties its Redis database (14), which is both the Celery broker and the config stamp;
3. starts two gunicorn servers with the same worker class and count: `config.wsgi` (the product)
   and `benchmarks/bare_django` (Django with Security and Common middleware only, no database:
   the baseline the target is judged against);
4. measures three comparisons, each as a warm-up then alternating rounds, reporting medians:
   - throughput, `wrk -c32`: `POST /api/v1/assign` (`benchmarks/assign.lua`: a new unit id per
     request, exposure logging on) against `POST /bare_post` with the same JSON bodies;
   - service time, one connection per worker (`-c2` for 2 workers): the same two, by p99;
   - `GET /api/v1/config` with a matching `If-None-Match` (304) against `GET /bare`;
5. counts the exposure tasks that reached the broker, then empties Redis db 14 again.

Exposures are logged as the service does by default: each web process publishes its batch of
records as one Celery task every 0.2 s (`--exposure-flush-seconds 0`: one task per request).
No Celery worker runs: the exposure tasks only queue up in Redis, which is what the web process
pays for (publishing through Celery/kombu); their processing is measured elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
ASSIGN_LUA = ROOT / "benchmarks" / "assign.lua"
GET_LUA = ROOT / "benchmarks" / "get.lua"
BARE_PROJECT = ROOT / "benchmarks" / "bare_django"
HOST = "127.0.0.1"

TARGET_THROUGHPUT_RATIO = 0.60  # /assign / bare_post, wrk -c32
TARGET_P99_RATIO = 2.0  # /assign p99 / bare_post p99, one connection per worker
TARGET_CONFIG_RATIO = 0.80  # /config answered 304 / GET /bare, wrk -c32

# Ten running experiments exercising every step of the engine that a unit can reach.
SETUP_CODE = """
from experiments import services
from experiments.models import Layer

two = [
    {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "v1"}},
    {"key": "treatment", "weight": 0.5, "payload": {"model": "v2", "boost": 1.5}},
]
three = [
    {"key": "control", "weight": 0.34, "is_control": True, "payload": {"color": "blue"}},
    {"key": "green", "weight": 0.33, "payload": {"color": "green"}},
    {"key": "red", "weight": 0.33, "payload": {"color": "red"}},
]
Layer.objects.create(key="bench-layer", name="Benchmark layer")
specs = [
    {"key": "exp-0"}, {"key": "exp-1"}, {"key": "exp-2"}, {"key": "exp-3"},
    {"key": "exp-4", "variants": three},
    {"key": "exp-5", "coverage": 0.5},
    {"key": "exp-6", "condition": {"country": {"$in": ["US", "GB"]}}},
    {"key": "exp-7", "condition": {"plan": {"$ne": "free"}}},
    {"key": "exp-8", "layer": {"key": "bench-layer", "start": 0.0, "end": 0.5}},
    {"key": "exp-9", "layer": {"key": "bench-layer", "start": 0.5, "end": 1.0}},
]
for spec in specs:
    data = {"name": "Benchmark " + spec["key"], "variants": two, **spec}
    services.experiment_start(experiment=services.experiment_save(data=data))
print("created", len(specs))
"""


@dataclass
class Server:
    name: str
    app: str
    port: int
    chdir: Path
    settings: str
    process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float  # server CPU (gunicorn master + workers, user + system) per request


@dataclass
class Comparison:
    """One product request against one baseline request, under one wrk load."""

    name: str
    product_path: str
    bare_path: str
    lua: Path
    connections: int
    product_lua_args: list[str]
    bare_lua_args: list[str]


def service_env(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    """The admin database URL, the Redis URL and the environment of the benchmark's processes.

    The processes get their own database and Redis database, nothing from the caller's
    DJANGO_/CELERY_ settings, and quiet logging.
    """
    pg_admin = f"postgres://{args.pg_user}@{HOST}:{args.pg_port}/postgres"
    database_url = f"postgres://{args.pg_user}@{HOST}:{args.pg_port}/{args.db_name}"
    redis_url = f"redis://{HOST}:{args.redis_port}/{args.redis_db}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        # Production mode refuses the development key; any fresh one will do for a run.
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
    }
    return pg_admin, redis_url, env


def main() -> int:
    args = parse_args()
    if shutil.which(args.wrk) is None:
        sys.exit(f"wrk not found ({args.wrk}); on Debian: apt-get install -y wrk")
    pg_admin, redis_url, env = service_env(args)
    env["VARIANTLAB_EXPOSURE_FLUSH_SECONDS"] = str(args.exposure_flush_seconds)

    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.1f} before the run; figures will be noisy")
    print(f"== setup: database {args.db_name}, Redis {redis_url} ==", flush=True)
    recreate_database(pg_admin, args.db_name)
    redis_flush(redis_url)
    manage(env, "migrate", "--noinput", quiet=True)
    manage(env, "shell", "-c", SETUP_CODE)
    limit = ["--rate-limit", str(args.key_rate_limit)] if args.key_rate_limit else []
    api_key = manage(env, "create_api_key", "--name", "bench-assign", "--scopes", "assign", *limit)
    api_key = api_key.strip().splitlines()[-1]

    gunicorn_opts = ["--workers", str(args.workers), "--worker-class", args.worker_class]
    if args.worker_class == "gthread":
        gunicorn_opts += ["--threads", str(args.threads)]
    product = Server("product", "config.wsgi:application", args.port, ROOT, "config.settings")
    bare = Server(
        "bare", "bareproj.wsgi:application", args.port + 1, BARE_PROJECT, "bareproj.settings"
    )
    servers = [product, bare]
    results: dict[str, dict[str, list[Run]]] = {}
    try:
        for server in servers:
            server.process = start_gunicorn(server, gunicorn_opts, env)
        wait_ready(product, "/api/v1/assign", api_key)
        wait_ready(bare, "/bare_post", api_key)
        check_assign(product, api_key, args.experiments)
        etag = config_etag(product, api_key)

        print(describe(args), flush=True)
        for comparison in comparisons(args, api_key, etag):
            print(f"\n== {comparison.name}: wrk -c{comparison.connections} ==", flush=True)
            results[comparison.name] = compare(args, comparison, product, bare)
        queued = redis_queue_length(redis_url, "celery")
    finally:
        for server in servers:
            stop(server.process)
        redis_flush(redis_url)
        if not args.keep_db:
            drop_database(pg_admin, args.db_name)

    return report(args, results, queued)


def comparisons(args: argparse.Namespace, api_key: str, etag: str) -> list[Comparison]:
    assign_args = [api_key, *(["nolog"] if args.no_exposure else [])]
    throughput = Comparison(
        "throughput",
        "/api/v1/assign",
        "/bare_post",
        ASSIGN_LUA,
        args.connections,
        assign_args,
        assign_args,
    )
    if args.only_throughput:
        return [throughput]
    return [
        throughput,
        Comparison(
            "service time",
            "/api/v1/assign",
            "/bare_post",
            ASSIGN_LUA,
            args.workers,
            assign_args,
            assign_args,
        ),
        Comparison(
            "config 304",
            "/api/v1/config",
            "/bare",
            GET_LUA,
            args.connections,
            [api_key, etag],
            [],
        ),
    ]


def compare(
    args: argparse.Namespace, comparison: Comparison, product: Server, bare: Server
) -> dict[str, list[Run]]:
    sides = [
        (product, comparison.product_path, comparison.product_lua_args),
        (bare, comparison.bare_path, comparison.bare_lua_args),
    ]
    runs: dict[str, list[Run]] = {product.name: [], bare.name: []}
    for server, path, lua_args in sides:
        run = wrk(args, comparison, server, path, lua_args, args.warmup)
        print(f"warm-up {server.name:8s} {fmt(run)}", flush=True)
    for round_no in range(args.rounds):
        for server, path, lua_args in sides if round_no % 2 == 0 else sides[::-1]:
            run = wrk(args, comparison, server, path, lua_args, args.duration)
            runs[server.name].append(run)
            print(f"round {round_no + 1} {server.name:8s} {fmt(run)}", flush=True)
    return runs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="for the throughput runs")
    parser.add_argument(
        "--only-throughput", action="store_true", help="skip the -c2 and /config comparisons"
    )
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--port", type=int, default=8731, help="the product; the bare uses +1")
    parser.add_argument("--experiments", type=int, default=10, help="expected running ones")
    parser.add_argument("--db-name", default="variantlab_bench_assign")
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--wrk", default="wrk")
    parser.add_argument(
        "--no-exposure", action="store_true", help="send log_exposure false (for comparison)"
    )
    parser.add_argument(
        "--exposure-flush-seconds",
        type=float,
        default=0.2,
        help="VARIANTLAB_EXPOSURE_FLUSH_SECONDS for the /assign server (default: the service's "
        "default, 0.2; 0: one Celery publish per request)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database after")
    parser.add_argument(
        "--key-rate-limit",
        type=int,
        default=0,
        help="give the key a rate limit (requests/s) so every request goes through the limiter "
        "(tokens leased from Redis in batches); set it above the load (e.g. 1000000) to "
        "measure the limiter's cost alone",
    )
    return parser.parse_args()


# --- Services -----------------------------------------------------------------------------------


def recreate_database(admin_url: str, name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        sys.exit(f"refusing database name {name!r}")
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def redis_queue_length(url: str, queue: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).llen(queue))


def manage(env: dict[str, str], *argv: str, quiet: bool = False) -> str:
    done = subprocess.run(
        [str(PYTHON), "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"manage.py {argv[0]} failed:\n{done.stdout}\n{done.stderr}")
    if not quiet and argv[0] != "create_api_key":
        print(done.stdout.strip(), flush=True)
    return done.stdout


def start_gunicorn(server: Server, opts: list[str], env: dict[str, str]) -> subprocess.Popen:
    cmd = [
        str(GUNICORN),
        server.app,
        "--bind",
        f"{HOST}:{server.port}",
        *opts,
        "--no-control-socket",
        "--log-level",
        "warning",
        "--chdir",
        str(server.chdir),
    ]
    return subprocess.Popen(
        cmd, cwd=server.chdir, env={**env, "DJANGO_SETTINGS_MODULE": server.settings}
    )


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def request(
    url: str, api_key: str, body: dict | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict, dict[str, str]]:
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {api_key}",
            **(headers or {}),
        },
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, {}, dict(exc.headers)


def wait_ready(server: Server, path: str, api_key: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            sys.exit(f"gunicorn for {server.name} exited with {server.process.returncode}")
        try:
            body = {"unit_id": "ready", "log_exposure": False}
            status, _, _ = request(server.url(path), api_key, body)
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    sys.exit(f"{server.name} did not answer on {server.url(path)}")


def check_assign(server: Server, api_key: str, expected: int) -> None:
    url = server.url("/api/v1/assign")
    status, body, _ = request(url, api_key, {"unit_id": "check-1", "attributes": {}})
    assignments = body.get("assignments", {})
    if status != 200 or len(assignments) != expected or body.get("unknown"):
        sys.exit(f"/assign answered {status} with {len(assignments)} assignments: {body}")


def config_etag(server: Server, api_key: str) -> str:
    """The /config ETag, checked to give a 304 when sent back."""
    status, _, headers = request(server.url("/api/v1/config"), api_key)
    etag = headers.get("ETag", "")
    if status != 200 or not etag:
        sys.exit(f"/config answered {status} without an ETag")
    status, _, _ = request(server.url("/api/v1/config"), api_key, headers={"If-None-Match": etag})
    if status != 304:
        sys.exit(f"/config with If-None-Match answered {status}, not 304")
    return etag


# --- wrk ----------------------------------------------------------------------------------------


def wrk(
    args: argparse.Namespace,
    comparison: Comparison,
    server: Server,
    path: str,
    lua_args: list[str],
    seconds: int,
) -> Run:
    cmd = [
        args.wrk,
        "-t",
        str(min(args.wrk_threads, comparison.connections)),
        "-c",
        str(comparison.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(comparison.lua),
        server.url(path),
        "--",
        *lua_args,
    ]
    cpu_before = process_tree_cpu(server.process)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    cpu_seconds = process_tree_cpu(server.process) - cpu_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=errors,
        cpu_us=cpu_seconds / max(data["requests"], 1) * 1e6,
    )


def process_tree_cpu(process: subprocess.Popen | None) -> float:
    """CPU seconds (user + system) used so far by a gunicorn master and its workers."""
    if process is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [process.pid]
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        pids += [int(pid) for pid in children.split()]
    except OSError:
        return 0.0
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# --- Output -------------------------------------------------------------------------------------


def fmt(run: Run) -> str:
    return (
        f"{run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
        f"server CPU {run.cpu_us:5.0f} us/req  ({run.requests} requests, {run.errors} errors, "
        f"load {os.getloadavg()[0]:.1f})"
    )


def describe(args: argparse.Namespace) -> str:
    workers = f"{args.workers} x {args.worker_class}"
    if args.worker_class == "gthread":
        workers += f" ({args.threads} threads each)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run([args.wrk, "-v"], capture_output=True, text=True).stdout
    exposure = (
        "false"
        if args.no_exposure
        else "true ("
        + (
            f"batched every {args.exposure_flush_seconds} s"
            if args.exposure_flush_seconds
            else "one Celery publish per request"
        )
        + ")"
    )
    return "\n".join(
        [
            f"== machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"{wrk_version.split(' [')[0].strip() or 'wrk'} on the same machine ==",
            f"gunicorn: {workers} workers for both servers; wrk: up to {args.wrk_threads} "
            f"threads; warm-up {args.warmup} s, then {args.rounds} alternating rounds of "
            f"{args.duration} s per comparison",
            f"/assign: {args.experiments} running experiments, log_exposure {exposure}, new unit "
            "id per request; baseline: benchmarks/bare_django (Security + Common middleware, no "
            "database), POST /bare_post with the same bodies",
            f"key rate limit: {args.key_rate_limit or 'none'} req/s; exposure tasks go through "
            f"Celery/kombu to Redis db {args.redis_db}; no Celery worker runs, so they queue up",
        ]
    )


def report(args: argparse.Namespace, results: dict[str, dict[str, list[Run]]], queued: int) -> int:
    def med(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    errors = sum(
        r.errors for by_server in results.values() for runs in by_server.values() for r in runs
    )
    print(f"\n== medians of {args.rounds} rounds ==")
    print(f"{'':24s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU us/req':>11s}")
    for name, by_server in results.items():
        for server, runs in by_server.items():
            print(
                f"{name + ' ' + server:24s} {med(runs, 'rps'):8.0f} {med(runs, 'p50_ms'):8.2f} "
                f"{med(runs, 'p99_ms'):8.2f} {med(runs, 'cpu_us'):11.0f}"
            )
    verdicts = []

    def ratio(name: str, attr: str) -> float:
        by_server = results[name]
        return med(by_server["product"], attr) / med(by_server["bare"], attr)

    throughput = ratio("throughput", "rps")
    verdicts.append(throughput >= TARGET_THROUGHPUT_RATIO)
    print(
        f"/assign throughput / bare_post at -c{args.connections}: {throughput:.2f} "
        f"(target >= {TARGET_THROUGHPUT_RATIO:.2f})"
    )
    if "service time" in results:
        p99 = ratio("service time", "p99_ms")
        verdicts.append(p99 <= TARGET_P99_RATIO)
        print(
            f"/assign p99 / bare_post p99 at -c{args.workers}: {p99:.2f}x "
            f"(target <= {TARGET_P99_RATIO:.1f}x)"
        )
    if "config 304" in results:
        config = ratio("config 304", "rps")
        verdicts.append(config >= TARGET_CONFIG_RATIO)
        print(
            f"/config 304 / GET /bare throughput: {config:.2f} "
            f"(target >= {TARGET_CONFIG_RATIO:.2f})"
        )
    assign_requests = sum(
        r.requests
        for name in ("throughput", "service time")
        for r in results.get(name, {}).get("product", [])
    )
    print(
        f"exposure tasks queued in Redis (no worker): {queued} "
        f"(measured rounds sent {assign_requests} /assign requests, plus warm-up)"
    )
    print(f"socket/HTTP errors: {errors}")
    print(
        "CPU us/req: gunicorn master + workers, user + system, per request (wrk, Redis and any "
        "other load on the machine excluded)"
    )
    met = all(verdicts) and errors == 0
    note = " (log_exposure false: not the target's configuration)" if args.no_exposure else ""
    print(f"verdict: targets {'MET' if met else 'MISSED'}{note}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
