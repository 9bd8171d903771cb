"""Speed of right-sizing: recommending for 100 pods over 2 million samples.

Target (issue 10): under 2 s for a strategy over 14 days at 1-minute steps for 100 pods
(2,016,000 samples), the DataFrame built here with numpy in the store's shape
(usage.samples.FRAME_COLUMNS: categorical names, float millicores, Int64 bytes), with 1%
of the figures missing. Each strategy is timed; the script exits 1 when any misses.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from eafix_capacity.usage.recommend import parse_window
from eafix_capacity.usage.samples import FRAME_COLUMNS
from eafix_capacity.usage.strategies import STRATEGIES, Settings, recommend

PODS = 100
SERVICES = 20
MINUTES = 14 * 24 * 60
TARGET_S = 2.0


def _cat(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """A categorical column from integer codes (the store's names are categories)."""
    return pd.Categorical.from_codes(codes, names)  # type: ignore[call-overload]


def synthetic_frame(pods: int = PODS, minutes: int = MINUTES, seed: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = pods * minutes
    start = pd.Timestamp("2026-11-16T00:00:00Z")
    stamps = start + pd.to_timedelta(np.arange(minutes), unit="min")
    pod_of = np.repeat(np.arange(pods), minutes)
    svc_of = pod_of % SERVICES
    pod_names = [f"svc-{p % SERVICES}-{p:05d}" for p in range(pods)]
    svc_names = [f"svc-{s}" for s in range(SERVICES)]
    request_m = 100 + 50 * (np.arange(SERVICES) % 6)
    hour = np.tile(stamps.hour.to_numpy(), pods)
    busy = np.where((hour >= 8) & (hour < 20), 1.0, 0.3)
    cpu = request_m[svc_of] * busy * rng.uniform(0.2, 1.1, n)
    mem = (200 + 30 * (svc_of % 5)) * 2**20 * rng.uniform(0.5, 1.0, n)
    cpu[rng.random(n) < 0.01] = np.nan
    mem_arr = pd.array(mem.astype(np.int64), dtype="Int64")
    mem_arr[rng.random(n) < 0.01] = pd.NA
    frame = pd.DataFrame({
        "timestamp": np.tile(stamps, pods),
        "context": _cat(np.zeros(n, dtype=np.int8), ["sim"]),
        "namespace": _cat(np.zeros(n, dtype=np.int8), ["eafix-trading"]),
        "pod": _cat(pod_of, pod_names),
        "container": _cat(np.zeros(n, dtype=np.int8), ["app"]),
        "service": _cat(svc_of, svc_names),
        "node": _cat(pod_of % 5, [f"node-{i}" for i in range(5)]),
        "cpu_m": cpu,
        "memory_bytes": mem_arr,
        "cpu_request_m": pd.array(request_m[svc_of], dtype="Int64"),
        "cpu_limit_m": pd.array(request_m[svc_of] * 2, dtype="Int64"),
        "memory_request_bytes": pd.array(np.full(n, 256 * 2**20), dtype="Int64"),
        "memory_limit_bytes": pd.array(np.full(n, 512 * 2**20), dtype="Int64"),
        "source": _cat(np.zeros(n, dtype=np.int8), ["prometheus"]),
    })
    return frame[list(FRAME_COLUMNS)]


def main() -> int:
    frame = synthetic_frame()
    settings = Settings(window=parse_window("london,new_york"))
    ok = True
    for name in STRATEGIES:
        t0 = time.perf_counter()
        recs = recommend(frame, (), strategy=name, settings=settings)
        elapsed = time.perf_counter() - t0
        met = elapsed < TARGET_S
        ok &= met
        print(f"recommend --strategy {name}: {len(frame):,} samples, {PODS} pods, {len(recs)} workload "
              f"containers in {elapsed:.2f} s (target < {TARGET_S:g} s){'' if met else '  MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
