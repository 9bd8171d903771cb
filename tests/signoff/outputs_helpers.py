"""Records for the tests of the sign-off's outputs (JUnit, Markdown, the run index, the charts)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from eafix_capacity.signoff.records import (BlockedEviction, GateResult, Observation, PendingPod, Rehearsal, Signoff,
                                            overall_verdict)

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


def gates_mixed() -> tuple[GateResult, ...]:
    return (
        GateResult("plan:baseline-headroom", "plan", "PASS", "baseline keeps 31% of each node free (20% asked)"),
        GateResult("n+1:cpu", "capacity", "FAIL", "requests 30.1 cores > 28.0 cores left after losing node-2"),
        GateResult("usage:samples:risk-manager", "usage", "WARN", "12 samples over 2h: too few to judge (100, 24h)"),
        GateResult("rehearsal:nodepool-upgrade", "rehearsal", "PASS", "3 nodes replaced, no pod left Pending"),
    )


def rehearsal(*, steps: int = 4) -> Rehearsal:
    obs = []
    for i in range(steps):
        pending = (PendingPod("eafix-trading", f"risk-manager-{i}", "risk-manager", "0/3 nodes are available"),) \
            if i == 2 else ()
        blocked = (BlockedEviction("eafix-trading", "order-router-0", "order-router", T0, 5.0 * i,
                                   "Cannot evict pod as it would violate the pod's disruption budget."),) if i == 1 else ()
        obs.append(Observation(at=T0 + timedelta(seconds=10 * i), step=i, action=f"step {i}", nodes=3 + (i == 1),
                               pending=pending, blocked=blocked,
                               ready={"order-router": 2 if i != 2 else 1, "risk-manager": 2}))
    return Rehearsal(name="nodepool-upgrade", kind="nodepool-upgrade", completed=True, reason="3 nodes replaced",
                     started=T0, finished=T0 + timedelta(seconds=10 * steps), observations=tuple(obs),
                     min_ready={"order-router": 1, "risk-manager": 2}, desired={"order-router": 2, "risk-manager": 2},
                     required_ready={"order-router": 2, "risk-manager": 1}, longest_block_seconds=5.0,
                     settings={"provider": "gke", "max_surge": 1})


def signoff(gates: tuple[GateResult, ...] | None = None, *, started: datetime = T0, strict: bool = False,
            headroom: dict[str, float] | None = None, **inputs: Any) -> Signoff:
    gates = gates_mixed() if gates is None else gates
    return Signoff(overall_verdict(gates, strict=strict), gates, (rehearsal(),), started,
                   started + timedelta(seconds=42.5),
                   inputs={"profile": "recommended", "provider": "gke", "node_type": "n2-standard-8", "nodes": 3,
                           "context": "", **inputs},
                   headroom={"cpu_n_plus_1_pct": 12.5, "memory_n_plus_1_pct": 30.0} if headroom is None else headroom)
