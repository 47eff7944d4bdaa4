"""Benchmark of the Python client's local evaluation (issue 11), against the growthbook SDK.

    .venv/bin/python benchmarks/client.py [--units 20000] [--rounds 5]

No service is needed: ten experiments like the assign benchmark's (plain, three-armed, partial
coverage, two targeted, two sharing a layer) are built as /config rows, and the same rows as
GrowthBook's SDK payload (what /api/features/{key} serves). Per round, for fresh unit ids:
1. `engine`: what `Client.assign` evaluates, all ten experiments for one unit
   (`LoadedConfig.served.assign`);
2. `engine, one by one`: `assign()` per experiment, the server's loop before issue 11;
3. `growthbook`: the growthbook Python SDK as an app uses it per request, a new `GrowthBook`
   per unit and `eval_feature` for each of the ten features.
Targets: the engine at least 5x faster than the SDK (the smaller of the wall and CPU ratios),
and at most 40 µs per unit (CPU time: on a shared machine, other processes inflate wall time).
Then the request-path overhead of a real `Client` (config loaded from a stub server in another
process, its two threads running beside the caller): `client.assign` with exposure logging,
timed call by call at a steady 200 and 1,000 calls per second (a busy web process); p50, p99
and p99.9 wall µs, and whether every exposure reached the stub.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from growthbook import GrowthBook
from variantlab_client import Client
from variantlab_client.config import LoadedConfig
from variantlab_client.engine import assign
from variantlab_client.growthbook import features_payload

TARGET_RATIO = 5.0
TARGET_US = 40.0
ATTRIBUTES = {"country": "US", "plan": "pro"}

TWO = [
    {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "v1"}},
    {"key": "treatment", "weight": 0.5, "is_control": False, "payload": {"model": "v2"}},
]
THREE = [
    {"key": "control", "weight": 0.34, "is_control": True, "payload": {"color": "blue"}},
    {"key": "green", "weight": 0.33, "is_control": False, "payload": {"color": "green"}},
    {"key": "red", "weight": 0.33, "is_control": False, "payload": {"color": "red"}},
]
SHAPES: list[dict[str, Any]] = [
    {},
    {},
    {},
    {},
    {"variants": THREE},
    {"coverage": 0.5},
    {"condition": {"country": {"$in": ["US", "GB"]}}},
    {"condition": {"plan": {"$ne": "free"}}},
    {"layer": {"key": "bench-layer", "start": 0.0, "end": 0.5}},
    {"layer": {"key": "bench-layer", "start": 0.5, "end": 1.0}},
]


def config_rows() -> list[dict[str, Any]]:
    rows = []
    for i, shape in enumerate(SHAPES):
        row = {
            "key": f"exp-{i}",
            "status": "running",
            "shipped_variant": None,
            "seed": f"exp-{i}",
            "hash_version": 2,
            "coverage": 1.0,
            "variants": TWO,
            "condition": {},
            "layer": None,
            "forced_assignments": {},
        }
        rows.append({**row, **shape})
    return rows


def per_unit_us(run: Callable[[str], Any], units: list[str]) -> tuple[float, float]:
    """Wall time and this thread's CPU time per unit. On a shared machine the CPU time is the
    fair figure: other processes inflate wall time, not the CPU the evaluation used."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for unit in units:
        run(unit)
    return (
        (time.perf_counter() - wall) / len(units) * 1e6,
        (time.thread_time() - cpu) / len(units) * 1e6,
    )


def evaluation(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and median CPU µs per unit of each contender."""
    rows = config_rows()
    config = LoadedConfig.parse({"experiments": rows}, None)
    experiments = list(config.experiments.values())
    features = features_payload(rows)["features"]
    keys = list(features)

    def engine(unit: str) -> Any:
        return config.served.assign(unit, ATTRIBUTES)

    def one_by_one(unit: str) -> Any:
        return {c.key: assign(c, unit, ATTRIBUTES) for c in experiments}

    def growthbook(unit: str) -> Any:
        sdk = GrowthBook(features=features, attributes={"id": unit, **ATTRIBUTES})
        values = {key: sdk.eval_feature(key).value for key in keys}
        sdk.destroy()
        return values

    # Same answers first: a fast wrong engine would prove nothing.
    for unit in (str(uuid.uuid4()) for _ in range(500)):
        got = engine(unit)
        assert got == one_by_one(unit)
        assert {k: a.payload for k, a in got.items()} == growthbook(unit)
    timings: dict[str, list[tuple[float, float]]] = {
        "engine": [],
        "engine, one by one": [],
        "growthbook": [],
    }
    for _ in range(args.rounds):
        for name, run in (
            ("engine", engine),
            ("engine, one by one", one_by_one),
            ("growthbook", growthbook),
        ):
            units = [
                str(uuid.uuid4())
                for _ in range(args.units // 4 if name == "growthbook" else args.units)
            ]
            timings[name].append(per_unit_us(run, units))
    return (
        {name: statistics.median(w for w, _ in values) for name, values in timings.items()},
        {name: statistics.median(c for _, c in values) for name, values in timings.items()},
    )


class _Stub(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("ETag", '"bench"')
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        answer = b'{"accepted":0,"rejected":[]}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _serve_stub(port: int, body: bytes) -> None:
    _Stub.body = body
    ThreadingHTTPServer(("127.0.0.1", port), _Stub).serve_forever()


def request_path(rate: int, calls: int) -> dict[str, float]:
    """`client.assign` timed call by call at `rate` calls per second, as a web process sees it:
    the server in another process, the client's two threads running beside the app's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    body = json.dumps({"experiments": config_rows()}).encode()
    stub = multiprocessing.get_context("fork").Process(
        target=_serve_stub, args=(port, body), daemon=True
    )
    stub.start()
    client = Client(f"http://127.0.0.1:{port}", "bench", refresh_seconds=1, flush_seconds=1.0)
    try:
        assert client.wait_ready(10), "the stub server did not serve /config"
        units = [str(uuid.uuid4()) for _ in range(calls)]
        samples, cpu_samples = [], []
        clock, cpu_clock, interval = time.perf_counter_ns, time.thread_time_ns, 1e9 / rate
        next_call = clock()
        for unit in units:
            while clock() < next_call:
                time.sleep(0.00005)
            started, cpu_started = clock(), cpu_clock()
            client.assign(unit, ATTRIBUTES)
            cpu_samples.append(cpu_clock() - cpu_started)
            samples.append(clock() - started)
            next_call += interval
        delivered = client.flush(timeout=30)
    finally:
        client.close(timeout=5)
        stub.terminate()
    samples.sort()
    cpu_samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "p999_us": samples[int(len(samples) * 0.999)] / 1000,
        "mean_us": sum(samples) / len(samples) / 1000,
        "cpu_p50_us": cpu_samples[len(cpu_samples) // 2] / 1000,
        "cpu_p99_us": cpu_samples[int(len(cpu_samples) * 0.99)] / 1000,
        "delivered": float(delivered and client.dropped_events == 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rates", default="200,1000", help="client.assign calls per second")
    parser.add_argument("--calls", type=int, default=10000, help="timed calls per rate")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}; 10 experiments per unit")
    wall, cpu = evaluation(args)
    print(f"{'':>20}  wall µs/unit  CPU µs/unit  (medians of {args.rounds} rounds)")
    for name in wall:
        print(f"{name:>20}: {wall[name]:12.1f} {cpu[name]:12.1f}")
    ratio = min(wall["growthbook"] / wall["engine"], cpu["growthbook"] / cpu["engine"])
    engine_us = cpu["engine"]
    engine_ok = engine_us <= TARGET_US
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"{'engine vs growthbook':>20}: {ratio:.1f}x faster (target >= 5x: {verdict})")
    verdict = "met" if engine_ok else "MISSED"
    print(f"{'engine per unit':>20}: {engine_us:.1f} µs CPU (target <= 40 µs: {verdict})")
    for rate in (int(r) for r in args.rates.split(",")):
        path = request_path(rate, args.calls)
        print(
            f"client.assign + exposure logging at {rate:,} calls/s ({args.calls:,} calls): "
            f"p50 {path['p50_us']:.1f} µs, p99 {path['p99_us']:.1f} µs, "
            f"p99.9 {path['p999_us']:.1f} µs, mean {path['mean_us']:.1f} µs "
            f"(CPU p50 {path['cpu_p50_us']:.1f} µs, p99 {path['cpu_p99_us']:.1f} µs); "
            f"every exposure delivered: {'yes' if path['delivered'] else 'NO'}"
        )
    return 0 if ratio >= TARGET_RATIO and engine_ok else 1


if __name__ == "__main__":
    sys.exit(main())
