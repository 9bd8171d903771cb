"""Speed of ``plan --compare-node-types``: every node type of data/node-types.csv sized
and costed (issue 12, target under 2 s for the 38 types) in-process; the command from a new
process is reported next to a plain ``plan``."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from eafix_capacity.cost import cheapest, compare_from_params
from eafix_capacity.inputs import PlanParams

TARGET_S = 2.0


def bench_compare() -> bool:
    ok = True
    for mesh in ("none", "istio"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            result = compare_from_params(PlanParams(mesh=mesh))
            times.append(time.perf_counter() - t0)
        best = cheapest(result)
        print(f"compare {len(result)} node types in-process (mesh {mesh}): median {statistics.median(times):.2f} s, "
              f"slowest {max(times):.2f} s over {len(times)} runs; cheapest "
              f"{best.node_type if best else None} (target < {TARGET_S:g} s)")
        ok = ok and max(times) < TARGET_S
    # from a new process the command's start-up (imports of every subcommand's parser,
    # pandas) dominates: shown next to a plain `plan`, which pays the same start-up
    exe = Path(sys.executable).with_name("eafix-capacity")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "eafix_capacity.cli"]
    for label, args in (("plan --compare-node-types", ["plan", "--compare-node-types"]), ("plan", ["plan"])):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([*base, *args], check=True, stdout=subprocess.DEVNULL)
            runs.append(time.perf_counter() - t0)
        print(f"`eafix-capacity {label}` from a new process: median {statistics.median(runs):.2f} s, "
              f"slowest {max(runs):.2f} s over {len(runs)} runs (report)")
    return ok

if __name__ == "__main__":
    sys.exit(0 if bench_compare() else 1)
