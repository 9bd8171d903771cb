"""krr's ``simple`` strategy with its defaults, over every sample.

robusta_krr/strategies/simple.py: CPU request = the 95th percentile of each pod's usage,
the max over pods, no CPU limit; memory request = limit = the max over pods of the peak
working set + 15%, at least 1.25 x the limit of an OOM kill; under 100 points a resource
is ``?`` ("not enough data"); a resource an HPA scales on is ``?`` ("HPA detected")
unless ``allow_hpa``. robusta_krr/core/runner.py ``_round_value`` then rounds up to 1m and
1Mi with floors of 10m and 100Mi.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from ...quantity import from_bytes
from ..recommend import ALL_HOURS, Figures, Recommendation, ceil_m, ceil_mib, finish
from ..samples import Termination
from .common import Settings, check_frame, oom_kills, span_label, workload_stats

NAME = "simple"


def run(frame: pd.DataFrame, terminations: Iterable[Termination] = (), settings: Settings = Settings()
        ) -> list[Recommendation]:
    check_frame(frame)
    return krr(frame, terminations, settings, strategy=NAME, window=ALL_HOURS.label)


def krr(frame: pd.DataFrame, terminations: Iterable[Termination], settings: Settings, *, strategy: str,
        window: str, inside: np.ndarray | None = None) -> list[Recommendation]:
    """krr's rules over the rows of ``frame`` inside ``inside`` (every row when None)."""
    kills = oom_kills(terminations)
    need = settings.points_required
    out = []
    for w in workload_stats(frame, cpu_percentile=settings.cpu_percentile, inside=inside):
        key = (w.namespace, w.workload, w.container)
        hpa = settings.hpa.get(w.workload, frozenset())
        info: list[str] = []
        cpu_req: int | None = None
        mem: int | None = None
        # __calculate_cpu_proposal: "Not enough data" is checked before "HPA detected"
        cpu_short = w.cpu_samples < need or w.cpu_value is None
        cpu_hpa = not cpu_short and "cpu" in hpa and not settings.allow_hpa
        if not cpu_short and not cpu_hpa:
            assert w.cpu_value is not None
            cpu_req = max(ceil_m(w.cpu_value), settings.cpu_min_m)
        mem_short = w.memory_samples < need or w.memory_peak is None
        mem_hpa = not mem_short and "memory" in hpa and not settings.allow_hpa
        kill = kills.get(key)
        if not mem_short and not mem_hpa:
            assert w.memory_peak is not None
            # calculate_memory_proposal: max(peak x (1 + buffer), oom limit x (1 + oom buffer))
            peak_based = w.memory_peak * (1 + settings.memory_buffer_percentage / 100)
            killed_at = None
            if kill is not None:
                killed_at = kill.max_limit_bytes if kill.max_limit_bytes is not None else w.current.memory_limit_bytes
            oom_based = 0.0 if killed_at is None else killed_at * (1 + settings.oom_memory_buffer_percentage / 100)
            mem = max(ceil_mib(max(peak_based, oom_based)), settings.memory_min_bytes)
            if killed_at is not None:
                ratio = f"{1 + settings.oom_memory_buffer_percentage / 100:g}"
                if oom_based > peak_based:
                    info.append(f"OOM kill: memory raised to {from_bytes(mem)} ({ratio} x the "
                                f"{from_bytes(killed_at)} limit it was killed at)")
                else:
                    info.append(f"OOM kill at the {from_bytes(killed_at)} limit: the peak + "
                                f"{settings.memory_buffer_percentage:g}% is already above {ratio} x it")
        if cpu_short and mem_short:
            info.insert(0, f"not enough data ({max(w.cpu_samples, w.memory_samples)} samples, {need} needed)")
        elif cpu_short:
            info.insert(0, f"not enough data for cpu ({w.cpu_samples} samples, {need} needed)")
        elif mem_short:
            info.insert(0, f"not enough data for memory ({w.memory_samples} samples, {need} needed)")
        for resource, flagged in (("cpu", cpu_hpa), ("memory", mem_hpa)):
            if flagged:
                info.append(f"HPA detected on {resource}: left unchanged (allow_hpa to recommend anyway)")
        out.append(finish(
            namespace=w.namespace, workload=w.workload, container=w.container, current=w.current,
            recommended=Figures(cpu_request_m=cpu_req, cpu_limit_m=None, memory_request_bytes=mem,
                                memory_limit_bytes=mem),
            cpu_unknown=cpu_req is None, memory_unknown=mem is None,
            oom_kills=kill.count if kill else 0, samples=w.samples, cpu_samples=w.cpu_samples,
            memory_samples=w.memory_samples, pods=w.pods, strategy=strategy,
            window=window if not w.first else f"{window} {span_label(w.first, w.last)}",
            info=tuple(info), first=w.first, last=w.last))
    return out
