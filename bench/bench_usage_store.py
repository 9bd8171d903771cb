"""Benchmark the usage store: 14 days at 1-minute steps for 100 pods (2,016,000 samples).

The store is built the way a sampler builds it, one ``append_round`` (one transaction) per
minute of 100 samples. Then, each in a fresh process so the build's memory does not count,
the whole store is loaded into a DataFrame (``UsageStore.frame()``) three times, and exported
to CSV once. The load's memory is the growth of the process's peak RSS
(``resource.getrusage``) from just before ``frame()`` (modules imported, store open) to after it.

Targets (exit 1 if one is missed, issue 10): each load under 3 s and under 500 MB.

Run: ``.venv/bin/python bench/bench_usage_store.py``
"""
from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from eafix_capacity.usage.samples import Sample
from eafix_capacity.usage.store import UsageStore

PODS = 100
DAYS = 14
STEP = timedelta(minutes=1)
LOAD_TARGET_S = 3.0
LOAD_TARGET_MB = 500.0
LOADS = 3
SERVICES = ("fix-gateway", "order-router", "risk-engine", "market-data", "pricer", "reporter", "audit",
            "position-keeper", "ref-data", "web")


def build(directory: Path) -> tuple[int, float, float]:
    rng = random.Random(10)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    pods = [(SERVICES[i % len(SERVICES)], f"{SERVICES[i % len(SERVICES)]}-7d9f8b6c5d-{i:05d}", f"node-{i % 8}")
            for i in range(PODS)]
    rounds = int(timedelta(days=DAYS) / STEP)
    t0 = time.perf_counter()
    appending = 0.0
    with UsageStore.open(directory, create=True) as store:
        for r in range(rounds):
            ts = start + r * STEP
            batch = [
                Sample(timestamp=ts, context="eafix-sim", namespace="eafix-trading", pod=pod, container=svc,
                       service=svc, node=node,
                       cpu_nanocores=None if rng.random() < 0.001 else rng.randrange(1, 2 * 10**9),
                       memory_bytes=None if rng.random() < 0.001 else rng.randrange(50 << 20, 2 << 30),
                       cpu_request_m=250, cpu_limit_m=None if i % 3 == 0 else 1000,
                       memory_request_bytes=512 << 20, memory_limit_bytes=1 << 30, source="metrics-api")
                for i, (svc, pod, node) in enumerate(pods)]
            t1 = time.perf_counter()
            store.append_round(batch)
            appending += time.perf_counter() - t1
        samples = store.counts().samples
    return samples, time.perf_counter() - t0, appending


def load(directory: str) -> None:
    """In a fresh process: time ``frame()`` and measure its peak RSS growth; print JSON."""
    with UsageStore.open(directory, create=False) as store:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        frame = store.frame()
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    print(json.dumps({"rows": len(frame), "seconds": seconds, "rss_growth_mb": (after - before) / 1024,
                      "frame_mb": frame_mb}))


def export(directory: str) -> None:
    import pyarrow.compute  # noqa: F401  (imported by the export on first use: not the data's memory)
    import pyarrow.csv  # noqa: F401

    from eafix_capacity.usage.export import export_store

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Path(directory) / "usage.csv"
    t0 = time.perf_counter()
    result = export_store(directory, out, format="csv")
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": result.rows, "seconds": seconds, "rss_growth_mb": (after - before) / 1024,
                      "file_mb": out.stat().st_size / 2**20}))


def child(mode: str, directory: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, mode, str(directory)], check=True, capture_output=True,
                         text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as tmp:
        directory = Path(tmp)
        samples, build_s, append_s = build(directory)
        size_mb = (directory / "usage.sqlite").stat().st_size / 2**20
        print(f"built {samples:,} samples ({PODS} pods x {DAYS} days at {STEP.seconds // 60}-minute steps, one "
              f"transaction per round): {build_s:.1f} s ({append_s:.1f} s in append_round, the rest making the "
              f"samples), {size_mb:.0f} MB on disk")
        loads = [child("--load", directory) for _ in range(LOADS)]
        times = sorted(x["seconds"] for x in loads)
        rss = sorted(x["rss_growth_mb"] for x in loads)
        print(f"load into a DataFrame ({loads[0]['rows']:,} rows, {loads[0]['frame_mb']:.0f} MB as pandas counts it), "
              f"{LOADS} fresh processes: {', '.join(f'{t:.2f}' for t in times)} s (target < {LOAD_TARGET_S:g} s); "
              f"peak RSS growth {', '.join(f'{m:.0f}' for m in rss)} MB (target < {LOAD_TARGET_MB:g} MB)")
        exp = child("--export", directory)
        print(f"export to CSV: {exp['rows']:,} rows, {exp['file_mb']:.0f} MB in {exp['seconds']:.2f} s, "
              f"peak RSS growth {exp['rss_growth_mb']:.0f} MB (pyarrow imported before)")
    ok = (all(x["rows"] == samples for x in loads) and times[-1] < LOAD_TARGET_S and rss[-1] < LOAD_TARGET_MB
          and exp["rows"] == samples)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        load(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--export":
        export(sys.argv[2])
    else:
        sys.exit(main())
