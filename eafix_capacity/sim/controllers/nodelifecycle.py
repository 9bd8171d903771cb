"""The node lifecycle controller's part the sim needs: the cordon taint follows ``spec.unschedulable``.

In a real cluster the node lifecycle controller (pkg/controller/nodelifecycle) keeps
``node.kubernetes.io/unschedulable:NoSchedule`` in step with ``kubectl cordon``; the
scheduler then filters on the taint, not on the field.
"""
from __future__ import annotations


from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.controllers.common import UNSCHEDULABLE_TAINT, deep_copy, now_text
from eafix_capacity.sim.controllers.context import Context, Snapshot


class NodeLifecycleController:
    """Reconciles every Node of the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, snap: Snapshot) -> None:
        """The node lifecycle controller's cordon taint follows ``spec.unschedulable``."""
        for node in snap.nodes:
            spec = node.get("spec") or {}
            taints = spec.get("taints") or []
            has = any(t.get("key") == UNSCHEDULABLE_TAINT for t in taints)
            want = bool(spec.get("unschedulable"))
            if has == want:
                continue
            new = deep_copy(node)
            if want:
                new.setdefault("spec", {})["taints"] = taints + [
                    {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now_text()}]
            else:
                rest = [t for t in taints if t.get("key") != UNSCHEDULABLE_TAINT]
                if rest:
                    new["spec"]["taints"] = rest
                else:
                    new["spec"].pop("taints", None)
            try:
                self.ctx.update(R.NODE, new)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                continue
            name = node["metadata"]["name"]
            state = "NodeNotSchedulable" if want else "NodeSchedulable"
            self.ctx.event(node, reason=state, component="kubelet", host=name,
                           message=f"Node {name} status is now: {state}")
