"""Simulated time for the sim cluster.

Controllers (HPA sync period, rollout pacing, grace periods, taint eviction), the usage
model's trading-session curve, metrics timestamps, events and every object timestamp the
sim writes (creationTimestamp, deletionTimestamp, conditions' lastTransitionTime) read one
clock, so ``advance`` moves all of them together, as a real cluster's single notion of
"now" would. It runs ``speed`` times faster than real time from its start, so a notebook
can watch a whole London/New York day in minutes; ``advance`` jumps it forward for tests
without sleeping.

The default start is the wall clock's "now" when the clock is made: ``kubectl describe``
and ``kubectl top`` compute ages on the client against the local wall clock, so at speed 1
they read as on a real cluster. Code that wants the usage model's trading day from its
morning passes ``start=TRADING_DAY_START`` explicitly. (With ``speed`` above 1 or after an
``advance`` the sim runs ahead of the wall clock and client-side ages of new objects are
negative: kubectl prints ``<invalid>``, as it does for a real cluster whose clock is ahead.)
"""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

from eafix_capacity.errors import InputError

TRADING_DAY_START = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
"""A Wednesday, 06:00 UTC: two hours before the London session opens (pass it as ``start``
to watch the usage model's trading day from its morning)."""


class SimClock:
    """A clock whose time is ``start + speed * real elapsed + advanced``.

    ``speed=0`` freezes it (only ``advance`` moves it), which is what unit tests want.
    ``start`` defaults to the wall clock's now, to the second (see the module docstring).
    """

    def __init__(self, *, start: datetime | None = None, speed: float = 1.0) -> None:
        if start is None:
            start = datetime.now(timezone.utc).replace(microsecond=0)
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

    def now_text(self) -> str:
        """The current simulated time as metav1.Time text (see :func:`rfc3339`)."""
        return rfc3339(self.now())

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
