"""``session-peak``: krr's ``simple`` over the trading-session hours only.

A trading service is busy in the London and New York sessions and idle at night and at
weekends; a percentile over the whole week lets the quiet hours pull its request down. This
strategy applies the same rules as ``simple`` to the samples inside ``settings.window``
(``london,new_york`` or ``08:00-20:00 UTC weekdays``); the current figures still come from
the latest sample, inside the window or not, and an OOM kill counts whenever it happened.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from ...errors import InputError
from ..recommend import Recommendation
from ..samples import Termination
from .common import Settings, check_frame
from .simple import krr

NAME = "session-peak"


def run(frame: pd.DataFrame, terminations: Iterable[Termination] = (), settings: Settings = Settings()
        ) -> list[Recommendation]:
    check_frame(frame)
    window = settings.window
    if frame.empty:
        return []
    inside = window.mask(frame["timestamp"])
    has = frame["cpu_m"].notna().to_numpy() | frame["memory_bytes"].notna().to_numpy()
    if not (inside & has).any():
        ts = frame["timestamp"]
        raise InputError("no samples in the session window", field="--window", value=window.label,
                         valid=f"a window that overlaps the samples ({ts.min():%a %Y-%m-%d %H:%M} to "
                               f"{ts.max():%a %Y-%m-%d %H:%M} UTC)")
    # outside the window a sample is a gap, so a container seen only outside it is still
    # listed, as "not enough data"
    return krr(frame, terminations, settings, strategy=NAME, window=window.label, inside=inside)
