"""Simulated time for the sim cluster.

Controllers (HPA sync period, rollout pacing), the usage model's trading-session curve
and the metrics timestamps all read one clock. It runs ``speed`` times faster than real
time from a fixed start (a trading-day morning by default), so a notebook can watch a
whole London/New York day in minutes and tests see deterministic metrics. ``advance``
jumps it forward for tests without sleeping.
"""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

from eafix_capacity.errors import InputError

DEFAULT_START = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
"""A Wednesday, 06:00 UTC: two hours before the London session opens."""


class SimClock:
    """A clock whose time is ``start + speed * real elapsed + advanced``.

    ``speed=0`` freezes it (only ``advance`` moves it), which is what unit tests want.
    """

    def __init__(self, *, start: datetime | None = None, speed: float = 1.0) -> None:
        start = DEFAULT_START if start is None else start
        if start.tzinfo is None:
            raise InputError("start time must be timezone-aware", field="start", value=start.isoformat(),
                             valid="an aware datetime, e.g. 2026-01-14T06:00:00+00:00")
        if not 0 <= speed < math.inf:
            raise InputError("clock speed must be a finite number >= 0", field="speed", value=speed,
                             valid="0 (frozen) or more, e.g. 1 or 60")
        self._lock = threading.Lock()
        self._start = start.astimezone(timezone.utc)
        self._speed = float(speed)
        self._real0 = time.monotonic()
        self._offset = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        """The current simulated time, an aware UTC datetime."""
        return self._start + timedelta(seconds=self.elapsed())

    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        with self._lock:
            return (time.monotonic() - self._real0) * self._speed + self._offset

    def advance(self, seconds: float) -> datetime:
        """Jump forward by ``seconds`` of simulated time; returns the new time."""
        if seconds < 0:
            raise InputError("cannot move the sim clock backwards", field="seconds", value=seconds)
        with self._lock:
            self._offset += seconds
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on without a jump in simulated time."""
        if not 0 <= speed < math.inf:
            raise InputError("clock speed must be a finite number >= 0", field="speed", value=speed,
                             valid="0 (frozen) or more, e.g. 1 or 60")
        with self._lock:
            real = time.monotonic()
            self._offset += (real - self._real0) * self._speed
            self._real0 = real
            self._speed = float(speed)


def rfc3339(t: datetime) -> str:
    """Kubernetes' metav1.Time text: second precision, ``Z`` suffix."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
