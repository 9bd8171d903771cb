"""The scheduler's binding step: Pending pods get a node or a FailedScheduling condition.

The decisions are :mod:`eafix_capacity.sim.scheduler`'s (pure); this writes them as
kube-scheduler does: a binding (``spec.nodeName``) and a ``Scheduled`` event, or the
``PodScheduled=False`` condition with reason ``Unschedulable`` and a ``FailedScheduling``
event.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.controllers.common import deep_copy, is_active, now_text, ns_name
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.scheduler import Binding, schedule_pending
from eafix_capacity.sim.store import compact


class SchedulingStep:
    """Binds what the scheduler placed; reports what it could not."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, snap: Snapshot) -> dict[tuple[str, str], dict]:
        """Bind what can be bound; returns the pods bound now, by (namespace, name)."""
        pods = snap.pods
        if not pods:
            return {}
        pending = [p for p in pods if not (p.get("spec") or {}).get("nodeName") and is_active(p)]
        by_key = {ns_name(p): p for p in pending}
        bound_now: dict[tuple[str, str], dict] = {}
        if pending:
            for result in schedule_pending(snap.nodes, pods):
                pod = by_key.get((result.namespace, result.name))
                if pod is None:
                    continue
                if isinstance(result, Binding):
                    bound = self._bind(pod, result.node)
                    if bound is not None:
                        bound_now[(result.namespace, result.name)] = bound
                else:
                    self._unschedulable(pod, result.message)
        return bound_now

    def _bind(self, pod: Mapping, node: str) -> dict | None:
        new = deep_copy(pod)
        new["spec"]["nodeName"] = node
        try:
            # Sharing the snapshot's unchanged parts: a pass binding 10,000 pods keeps every
            # bound pod until the kubelet step, and full decoded copies would double its memory.
            bound = compact(self.ctx.update(R.POD, new), pod)
        except ApiError as e:
            if e.code in (404, 409):
                return None
            raise
        ns, name = ns_name(pod)
        self.ctx.event(pod, reason="Scheduled", component="default-scheduler",
                       message=f"Successfully assigned {ns}/{name} to {node}")
        return bound

    def _unschedulable(self, pod: Mapping, message: str) -> None:
        status = deep_copy(pod.get("status") or {})
        conditions = status.get("conditions") or []
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if not (old and old.get("status") == "False" and old.get("message") == message):
            cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == "False"
                    else now_text(), "reason": "Unschedulable", "message": message}
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [cond]
            status["phase"] = "Pending"
            try:
                self.ctx.update_status(R.POD, pod, status)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                return
        self.ctx.event(pod, reason="FailedScheduling", etype="Warning", component="default-scheduler", message=message)
