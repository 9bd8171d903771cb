"""The ReplicaSet controller: as many pods as ``spec.replicas``, the least useful deleted first.

As pkg/controller/replicaset: creates at most ``burstReplicas`` pods per sync, deletes
surplus pods unscheduled-first, then pending, then not ready, then newest, and keeps
``status`` counts.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.controllers.common import drop_zero, is_ready, newest_first, now_text
from eafix_capacity.sim.controllers.context import Context, Snapshot


BURST_REPLICAS = 500
"""Pods a ReplicaSet creates per pass (the replicaset controller's ``burstReplicas``): a huge
``replicas`` grows over passes instead of holding the controller thread in one endless pass."""


class ReplicaSetController:
    """Syncs one ReplicaSet at a time against the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, rs: dict, snap: Snapshot) -> None:
        uid = rs["metadata"]["uid"]
        replicas = int((rs.get("spec") or {}).get("replicas", 1))
        pods = snap.pods_by_owner.get(uid, [])
        diff = len(pods) - replicas
        failure: str | None = None
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST_REPLICAS)):
                pod = self.ctx.pod_from_template(rs, "ReplicaSet", template)
                created, failure = self.ctx.create_owned_pod(rs, pod, prefix=f"{rs['metadata']['name']}-",
                                                             component="replicaset-controller")
                if created is None:
                    break
        elif diff > 0:
            def rank(p: Mapping) -> tuple:
                phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get((p.get("status") or {}).get("phase", ""), 0)
                return (bool((p.get("spec") or {}).get("nodeName")), phase_rank, is_ready(p),
                        newest_first(p["metadata"].get("creationTimestamp", "")))
            for p in sorted(pods, key=rank)[:diff]:
                if self.ctx.delete(R.POD, p):
                    self.ctx.event(rs, reason="SuccessfulDelete", component="replicaset-controller",
                                   message=f"Deleted pod: {p['metadata']['name']}")
        labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        ready = sum(1 for p in pods if is_ready(p))
        status: dict = {"replicas": len(pods),
                        "fullyLabeledReplicas": sum(1 for p in pods if all(
                            (p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
                        "readyReplicas": ready, "availableReplicas": self._available(rs, pods, ready),
                        "observedGeneration": int(rs["metadata"].get("generation", 1))}
        drop_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        conditions = replica_failure(list((rs.get("status") or {}).get("conditions") or []), failure,
                                     now=now_text(self.ctx.clock))
        if conditions:
            status["conditions"] = conditions
        self.ctx.update_status(R.REPLICASET, rs, status)

    def _available(self, rs: Mapping, pods: list[dict], ready: int) -> int:
        """podutil.IsPodAvailable: Ready for more than ``minReadySeconds`` of sim time; a pass is
        asked for when the next ready pod turns available."""
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready <= 0:
            return ready
        now = self.ctx.clock.now()
        count = 0
        for p in pods:
            cond = next((c for c in (p.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
            if not cond or cond.get("status") != "True":
                continue
            try:
                since = datetime.strptime(str(cond.get("lastTransitionTime")), "%Y-%m-%dT%H:%M:%SZ") \
                    .replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            due = since + timedelta(seconds=min_ready)
            if due < now:
                count += 1
            else:
                self.ctx.wake_at(self.ctx.clock.elapsed() + (due - now).total_seconds() + 0.5)
        return count


def replica_failure(conditions: list[dict], failure: str | None, *, now: str) -> list[dict]:
    """replica_set_utils calculateStatus: a ``ReplicaFailure`` condition (reason ``FailedCreate``, the
    refusal as its message) while pods cannot be created, kept as first set, dropped once they can."""
    current = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if failure is not None and current is None:
        return [*conditions, {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now,
                              "reason": "FailedCreate", "message": failure}]
    if failure is None and current is not None:
        return [c for c in conditions if c.get("type") != "ReplicaFailure"]
    return conditions
