"""PodDisruptionBudgets: the disruption controller's status and the eviction subresource.

As pkg/controller/disruption (expected pods, desired and current healthy, disruptions
allowed) and pkg/registry/core/pod/storage/eviction.go: an eviction is refused with 429
when it would take a budget below its minimum, and charged to the budget when it passes.
"""
from __future__ import annotations

from dataclasses import dataclass
import threading
from typing import Iterable, Mapping, Sequence

from eafix_capacity.kobject import selector_matches
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.kobject import scaled_value
from eafix_capacity.sim.controllers.common import (controller_of, is_active, is_ready, now_text, set_condition,
                                                   success_status)
from eafix_capacity.sim.controllers.context import Context, Snapshot


EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


@dataclass(frozen=True)
class Budget:
    expected: int
    desired_healthy: int
    current_healthy: int
    disruptions_allowed: int


def pdb_budget(spec: Mapping, *, matching_pods: int, healthy: int, controller_scale: int) -> Budget:
    """PodDisruptionBudget arithmetic as the disruption controller does it.

    ``minAvailable`` as a number counts the matching pods; as a percentage, and
    ``maxUnavailable`` either way, count the owning controllers' scale; percentages round up.
    """
    if spec.get("maxUnavailable") is not None:
        expected = controller_scale
        unavailable = scaled_value(spec["maxUnavailable"], expected, round_up=True, field="maxUnavailable")
        desired = max(0, expected - unavailable)
    elif isinstance(spec.get("minAvailable"), str):
        expected = controller_scale
        desired = scaled_value(spec["minAvailable"], expected, round_up=True, field="minAvailable")
    elif spec.get("minAvailable") is not None:
        expected = matching_pods
        desired = scaled_value(spec["minAvailable"], expected, round_up=True, field="minAvailable")
    else:
        expected = controller_scale
        desired = expected
    allowed = healthy - desired if expected > 0 else 0
    return Budget(expected, desired, healthy, max(0, allowed))


class DisruptionController:
    """PDB status per pass; evictions as they arrive."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._evict_lock = threading.Lock()

    def _controller_scale(self, pods: Iterable[Mapping], snap_rs: Mapping[str, Mapping],
                          snap_owner: Mapping[str, Mapping]) -> int:
        """Sum of the desired scale of the controllers owning ``pods`` (Deployment over its RS)."""
        seen: set[str] = set()
        total = 0
        for p in pods:
            ref = controller_of(p)
            if ref is None:
                continue
            owner = snap_rs.get(ref.get("uid", "")) or snap_owner.get(ref.get("uid", ""))
            if owner is None:
                continue
            top = owner
            up = controller_of(owner)
            if owner.get("kind") == "ReplicaSet" and up is not None and up.get("uid") in snap_owner:
                top = snap_owner[up["uid"]]
            uid = top["metadata"]["uid"]
            if uid in seen:
                continue
            seen.add(uid)
            if top.get("kind") == "DaemonSet":
                total += int((top.get("status") or {}).get("desiredNumberScheduled") or 0)
            else:
                total += int((top.get("spec") or {}).get("replicas", 1))
        return total

    def _pdb_numbers(self, pdb: Mapping, pods: Sequence[Mapping], owners: Mapping[str, Mapping]) -> Budget:
        ns = pdb["metadata"].get("namespace")
        selector = (pdb.get("spec") or {}).get("selector")
        matching = [p for p in pods if p["metadata"].get("namespace") == ns and is_active(p)
                    and selector_matches(selector, p["metadata"].get("labels") or {})]
        healthy = sum(1 for p in matching if is_ready(p))
        scale = self._controller_scale(matching, owners, owners)
        return pdb_budget(pdb.get("spec") or {}, matching_pods=len(matching), healthy=healthy,
                          controller_scale=scale)

    def _owners_index(self) -> dict[str, Mapping]:
        out: dict[str, Mapping] = {}
        for rt in (R.REPLICASET, R.DEPLOYMENT, R.STATEFULSET, R.DAEMONSET):
            for o in self.ctx.list(rt):
                out[o["metadata"]["uid"]] = o
        return out

    def _pdb_status(self, pdb: Mapping, budget: Budget) -> dict:
        old = pdb.get("status") or {}
        allowed = budget.disruptions_allowed > 0
        conditions = set_condition(list(old.get("conditions") or []), "DisruptionAllowed",
                                    "True" if allowed else "False",
                                    "SufficientPods" if allowed else "InsufficientPods", "", now=now_text(self.ctx.clock))
        generation = int(pdb["metadata"].get("generation", 1))
        conditions = [{**c, "observedGeneration": generation} for c in conditions]  # copies: stored ones are shared
        status = {"observedGeneration": int(pdb["metadata"].get("generation", 1)),
                  "disruptionsAllowed": budget.disruptions_allowed, "currentHealthy": budget.current_healthy,
                  "desiredHealthy": budget.desired_healthy, "expectedPods": budget.expected,
                  "conditions": conditions}
        return status
    def sync(self, pdb: dict, snap: Snapshot) -> None:
        owners: dict[str, Mapping] = {}
        for o in snap.replicasets + snap.deployments + snap.statefulsets + snap.daemonsets:
            owners[o["metadata"]["uid"]] = o
        budget = self._pdb_numbers(pdb, snap.pods, owners)
        self.ctx.update_status(R.PDB, pdb, self._pdb_status(pdb, budget))
    def evict(self, namespace: str, name: str, body: dict) -> dict:
        """The pods/eviction subresource: delete the pod unless a PodDisruptionBudget forbids it."""
        if isinstance(body, dict):
            meta = body.get("metadata") or {}
            if meta.get("name") and meta["name"] != name:
                raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        # the Eviction's deleteOptions (kubectl drain --grace-period) apply to the pod's graceful deletion
        opts = (body.get("deleteOptions") if isinstance(body, dict) else None) or {}
        grace = opts.get("gracePeriodSeconds") if isinstance(opts.get("gracePeriodSeconds"), int) else None
        with self._evict_lock:
            pod = self.ctx.store.get(R.POD, namespace, name)
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed", "Pending") and is_active(pod):
                pdbs = [p for p in self.ctx.store.list(R.PDB, namespace)[0]
                        if selector_matches((p.get("spec") or {}).get("selector"), pod["metadata"].get("labels") or {})]
                if len(pdbs) > 1:  # apierrors.NewInternalError, as eviction.go guardPDB raises it
                    why = ("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                           "does not support.")
                    raise ApiError(500, "InternalError", f"Internal error occurred: {why}",
                                   details={"causes": [{"message": why}]})
                if pdbs:
                    pdb = pdbs[0]
                    pods, _, _ = self.ctx.store.list_objects(R.POD, namespace)
                    budget = self._pdb_numbers(pdb, pods, self._owners_index())
                    unhealthy_ok = not is_ready(pod) and budget.current_healthy >= budget.desired_healthy
                    if budget.disruptions_allowed <= 0 and not unhealthy_ok:
                        raise ApiError(429, "TooManyRequests", EVICTION_REFUSED, details={"causes": [{
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                       f"{budget.desired_healthy} healthy pods and has {budget.current_healthy} "
                                       f"currently"}]})
                    self.ctx.store.delete(R.POD, namespace, name, grace_period_seconds=grace)
                    after = Budget(budget.expected, budget.desired_healthy,
                                   budget.current_healthy - (1 if is_ready(pod) else 0),
                                   max(0, budget.disruptions_allowed - (1 if is_ready(pod) else 0)))
                    try:
                        fresh = self.ctx.store.get(R.PDB, namespace, pdb["metadata"]["name"])
                        self.ctx.update_status(R.PDB, fresh, self._pdb_status(fresh, after))
                    except ApiError:
                        pass
                    return success_status()
            self.ctx.store.delete(R.POD, namespace, name, grace_period_seconds=grace)
            return success_status()
