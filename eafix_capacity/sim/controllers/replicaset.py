"""The ReplicaSet controller: as many pods as ``spec.replicas``, the least useful deleted first.

As pkg/controller/replicaset: creates at most ``burstReplicas`` pods per sync, deletes
surplus pods unscheduled-first, then pending, then not ready, then newest, and keeps
``status`` counts.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.controllers.common import drop_zero, is_ready, newest_first
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
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST_REPLICAS)):
                pod = self.ctx.pod_from_template(rs, "ReplicaSet", template)
                created = self.ctx.create_pod(pod, prefix=f"{rs['metadata']['name']}-")
                if created is None:
                    break
                self.ctx.event(rs, reason="SuccessfulCreate", component="replicaset-controller",
                               message=f"Created pod: {created['metadata']['name']}")
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
        status = {"replicas": len(pods),
                  "fullyLabeledReplicas": sum(1 for p in pods if all(
                      (p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
                  "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": int(rs["metadata"].get("generation", 1))}
        drop_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        self.ctx.update_status(R.REPLICASET, rs, status)
