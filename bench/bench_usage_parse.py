"""Speed of reading ``kubectl top`` output: 10,000 ``kubectl top pod --containers -A`` lines.

Target (issue 10): under 100 ms. The lines are kubectl 1.32.4's own layout (recorded in
tests/data/kubectl-top/v1.32.4), repeated with distinct names and figures. Prints the best of
seven runs; exits 1 on a miss.
"""
from __future__ import annotations

import sys
import time

from eafix_capacity.usage.topparse import parse_top_pods

TARGET_MS = 100.0
LINES = 10_000


def lines(n: int) -> str:
    rows = [("eafix-trading" if i % 3 else "kube-system", f"risk-manager-6bffc5666-{i:05d}",
             ("risk-manager", "istio-proxy")[i % 2], f"{i % 997}m", f"{i % 4093}Mi") for i in range(n)]
    widths = [max(len(r[c]) for r in rows) + 3 for c in range(5)]
    return "".join("".join(cell.ljust(w) for cell, w in zip(r, widths)) + "\n" for r in rows)


def bench() -> bool:
    text = lines(LINES)
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        parsed = parse_top_pods(text, containers=True, all_namespaces=True, source="bench")
        best = min(best, time.perf_counter() - t0)
    assert len(parsed) == LINES
    ms = best * 1000
    ok = ms < TARGET_MS
    print(f"parse {LINES:,} kubectl top pod --containers -A lines: {ms:.1f} ms (target < {TARGET_MS:g} ms) "
          f"{'ok' if ok else 'MISSED'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if bench() else 1)
