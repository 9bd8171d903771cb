"""The ``clock`` and ``sleep`` a waiting caller takes, for a real cluster or for the sim.

Code that waits on a cluster (the usage sampler, the sign-off rehearsals' drains and
rollouts) takes a clock and a sleep rather than calling ``time`` itself, so the same code
runs in wall time against a real cluster and in sim time against a sim whose clock is frozen
and moved on by the caller: an hour-long drain timeout then takes milliseconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from ..errors import ClusterError

if TYPE_CHECKING:
    from .cluster import SimCluster


@dataclass(frozen=True)
class ClockHooks:
    """A waiting caller's ``clock`` (UTC) and ``sleep`` (seconds)."""

    clock: Callable[[], datetime]
    sleep: Callable[[float], object]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def wall_clock_hooks() -> ClockHooks:
    """A real cluster: the wall clock, and a real sleep."""
    return ClockHooks(utc_now, time.sleep)


def sim_clock_hooks(sim: SimCluster) -> ClockHooks:
    """A sim with a frozen clock: its clock, and a sleep that moves the clock on and lets the
    controllers (the kubelet's OOM kills, the HPA, the scheduler, the node lifecycle) catch up."""
    clock = sim.clock
    if clock is None:
        raise ValueError("sim_clock_hooks needs a sim started with speed=0 (a clock the caller moves on)")

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        try:
            sim.settle()
        except ClusterError:  # busy controllers (pods that fit nowhere are retried): go on as it is
            pass

    return ClockHooks(clock.now, sleep)
