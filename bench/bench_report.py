"""Wall time of the default report once installed (target: under 30 s on 2 cores)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "eafix-capacity"

if __name__ == "__main__":
    out = Path(tempfile.mkdtemp(prefix="eafix-bench-report-"))
    try:
        t0 = time.perf_counter()
        done = subprocess.run([str(CLI), "report", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"eafix-capacity report (defaults, {os.cpu_count()} cores): {elapsed:.1f} s, exit {done.returncode} "
          f"(target < 30 s)")
    if done.returncode != 0:
        print(done.stderr[-2000:])
    sys.exit(0 if done.returncode == 0 and elapsed < 30 else 1)
