"""Right-sizing strategies by name: pure functions of the samples, the terminations and the settings.

As krr's strategies are functions of the history they are given, each strategy here reads
the samples DataFrame (``usage.samples.FRAME_COLUMNS``), the containers' terminations
(``usage.samples.Termination``, for the OOM kills) and a :class:`Settings`, and returns one
``Recommendation`` per (namespace, workload, container). ``simple`` is krr's default,
``session-peak`` the same over the trading sessions, ``vpa`` the VPA recommender's.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Iterable, Mapping

import pandas as pd

from ...errors import InputError
from ..recommend import Recommendation
from ..samples import Termination
from . import sessionpeak, simple, vpa
from .common import Settings, check_frame, hpa_from_catalog

Strategy = Callable[[pd.DataFrame, Iterable[Termination], Settings], list[Recommendation]]

STRATEGIES: Mapping[str, Strategy] = MappingProxyType({
    simple.NAME: simple.run,
    sessionpeak.NAME: sessionpeak.run,
    vpa.NAME: vpa.run,
})


def get_strategy(name: object) -> Strategy:
    """The strategy called ``name``; anything else is a one-line error listing the valid names."""
    if not isinstance(name, str) or name not in STRATEGIES:
        raise InputError("unknown strategy", field="--strategy", value=name,
                         valid="one of: " + ", ".join(STRATEGIES))
    return STRATEGIES[name]


def recommend(frame: pd.DataFrame, terminations: Iterable[Termination] = (), *, strategy: str = "simple",
              settings: Settings | None = None) -> list[Recommendation]:
    """Run ``strategy`` over the samples; a frame without a single sample is an error, not an
    empty answer."""
    run = get_strategy(strategy)
    check_frame(frame)
    if frame.empty or not (frame["cpu_m"].notna().any() or frame["memory_bytes"].notna().any()):
        raise InputError("no samples to recommend from", field="samples", value=len(frame),
                         valid="samples with CPU or memory figures (sample a cluster first: usage sample)")
    return run(frame, terminations, settings if settings is not None else Settings())


__all__ = ["STRATEGIES", "Settings", "Strategy", "get_strategy", "hpa_from_catalog", "recommend"]
