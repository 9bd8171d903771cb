"""Deletes what lost its controller mid-pass, and pods bound to vanished nodes.

The store deletes dependents through ``ownerReferences`` when an owner is deleted (the
garbage collector's cascade); this catches what raced with it, and is the pod GC
controller's orphaned-pod rule (pkg/controller/podgc: pods bound to a node that no longer
exists).
"""
from __future__ import annotations


from eafix_capacity.sim import resources as R
from eafix_capacity.sim.controllers.common import controller_of
from eafix_capacity.sim.controllers.context import Context, Snapshot


class GarbageCollector:
    """One sweep per pass over the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, snap: Snapshot) -> None:
        """Delete what lost its controller mid-pass, and pods bound to vanished nodes (PodGC)."""
        owners = {o["metadata"]["uid"] for o in snap.replicasets + snap.statefulsets + snap.daemonsets}
        deployments = {d["metadata"]["uid"] for d in snap.deployments}
        nodes = {n["metadata"]["name"] for n in snap.nodes}
        for p in snap.pods:
            ref = controller_of(p)
            gone = ref is not None and ref.get("kind") in ("ReplicaSet", "StatefulSet", "DaemonSet") \
                and ref.get("uid") not in owners
            node = (p.get("spec") or {}).get("nodeName")
            if gone or (node and node not in nodes):
                self.ctx.delete(R.POD, p)
        for rs in snap.replicasets:
            ref = controller_of(rs)
            if ref is not None and ref.get("kind") == "Deployment" and ref.get("uid") not in deployments:
                self.ctx.delete(R.REPLICASET, rs)
