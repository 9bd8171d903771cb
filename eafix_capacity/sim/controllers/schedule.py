"""The scheduler's binding step: Pending pods get a node or a FailedScheduling condition.

The decisions are :mod:`eafix_capacity.sim.scheduler`'s (pure); this writes them as
kube-scheduler does: a binding (``spec.nodeName``) and a ``Scheduled`` event, or the
``PodScheduled=False`` condition with reason ``Unschedulable`` and a ``FailedScheduling``
event.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.controllers.common import deep_copy, is_active, now_text, ns_name
from eafix_capacity.sim.controllers import podrefs
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.controllers.persistentvolume import PersistentVolumeController
from eafix_capacity.sim import storage
from eafix_capacity.sim.scheduler import Binding, ClusterSnapshot, PodScheduler, fit_error_message, schedule_pending
from eafix_capacity.sim.store import compact


BIND_TIMEOUT_SECONDS = 600.0
"""VolumeBinding's ``bindTimeoutSeconds`` default (pkg/scheduler/apis/config/v1 defaults)."""
# schedule_one.go runs PreBind plugins and wraps their error; BindPodVolumes wraps the poll's timeout.
PREBIND_TIMEOUT_MESSAGE = 'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded'


class SchedulingStep:
    """Binds what the scheduler placed; reports what it could not."""

    def __init__(self, ctx: Context, *, volumes: PersistentVolumeController | None = None) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self._prebind_since: dict[tuple[str, str], float] = {}
        """Pods waiting in VolumeBinding's PreBind, to the sim-clock time the wait began."""

    def sync(self, snap: Snapshot) -> dict[tuple[str, str], dict]:
        """Bind what can be bound; returns the pods bound now, by (namespace, name)."""
        pods = snap.pods
        if not pods:
            return {}
        pending = [p for p in pods if not (p.get("spec") or {}).get("nodeName") and is_active(p)]
        by_key = {ns_name(p): p for p in pending}
        bound_now: dict[tuple[str, str], dict] = {}
        if self._prebind_since:
            self._prebind_since = {k: v for k, v in self._prebind_since.items() if k in by_key}
        if any((p.get("spec") or {}).get("volumes") for p in pending):
            kept = self._without_missing_claims(pods, pending, len(snap.nodes))
            if kept is pods:
                candidates = by_key
            else:  # the pods held for a missing claim are not looked at again
                keep = {ns_name(q) for q in kept}
                candidates = {k: p for k, p in by_key.items() if k in keep}
            pods, provision, pinned = self._volume_binding(kept, candidates, snap)
        else:
            provision, pinned = {}, {}
        volume_failures: list[tuple[dict, tuple]] = []
        if pending:
            for result in schedule_pending(snap.nodes, pods):
                pod = by_key.get((result.namespace, result.name))
                if pod is None:
                    continue
                if isinstance(result, Binding):
                    claims = provision.get((result.namespace, result.name))
                    if claims and self.volumes is not None and not self.volumes.prebind(claims, result.node,
                                                                                         snap.nodes):
                        self._wait_in_prebind((result.namespace, result.name))
                        continue  # VolumeBinding's PreBind waits for the provisioner; the pod stays unbound
                    bound = self._bind(pod, result.node)
                    if bound is not None:
                        bound_now[(result.namespace, result.name)] = bound
                elif (result.namespace, result.name) in pinned:
                    volume_failures.append((pod, pinned[(result.namespace, result.name)]))
                else:
                    self._unschedulable(pod, result.message)
        for pod, terms in volume_failures:  # worded as VolumeBinding's Filter words a missed volume zone
            scheduler = PodScheduler(ClusterSnapshot(snap.nodes, [*snap.pods, *bound_now.values()]))
            rules = scheduler.filter_reasons(pod)
            self._unschedulable(pod, fit_error_message(len(snap.nodes), storage.volume_node_reasons(
                rules, snap.nodes, terms), unresolvable=frozenset({storage.R_NODE_CONFLICT}),
                taint_reasons=scheduler.taint_reasons(pod, rules)))
        return bound_now

    def _without_missing_claims(self, pods: list[dict], pending: list[dict], total_nodes: int) -> list[dict]:
        """VolumeBinding's PreFilter: a pending pod naming a claim that does not exist is not
        scheduled (``persistentvolumeclaim "x" not found``); the others are."""
        claims_listed, _, _ = self.ctx.store.list_objects(R.PVC)
        claims = frozenset((c["metadata"].get("namespace", ""), c["metadata"]["name"]) for c in claims_listed)
        held: set[tuple[str, str]] = set()
        for p in pending:
            reason = podrefs.missing_claim(p, claims)
            if reason is not None:
                held.add(ns_name(p))
                self._unschedulable(p, podrefs.claim_fit_message(reason, total_nodes))
        return [p for p in pods if ns_name(p) not in held] if held else pods

    def _volume_binding(self, pods: list[dict], by_key: Mapping[tuple[str, str], dict],
                        snap: Snapshot) -> tuple[list[dict], dict[tuple[str, str], tuple[tuple[str, str], ...]],
                                                 dict[tuple[str, str], tuple]]:
        """The VolumeBinding plugin (:func:`eafix_capacity.sim.storage.pod_volumes`): pods with an
        unbound Immediate claim are not scheduled; the others are placed within their bound
        volumes' node affinity (returned too), and their WaitForFirstConsumer claims to provision
        are returned."""
        if self.volumes is None:
            return pods, {}, {}
        views = self.volumes.pod_volumes([p for p in by_key.values() if (p.get("spec") or {}).get("volumes")])
        if not views:
            return pods, {}, {}
        n = len(snap.nodes)
        held: set[tuple[str, str]] = set()
        replaced: dict[tuple[str, str], dict] = {}
        provision: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        pinned: dict[tuple[str, str], tuple] = {}
        for key, view in views.items():
            pod = by_key[key]
            if view.prefilter or (view.filter_reason and n):
                held.add(key)
                self._unschedulable(pod, podrefs.claim_fit_message(view.prefilter, n) if view.prefilter else
                                    f"0/{n} nodes are available: {n} {view.filter_reason}. preemption: 0/{n} nodes "
                                    f"are available: {n} Preemption is not helpful for scheduling.")
            elif view.in_flight:
                held.add(key)  # assumed on the node its claims name, waiting in PreBind
                if self._wait_in_prebind(key):
                    self._unschedulable(pod, PREBIND_TIMEOUT_MESSAGE, reason="SchedulerError")
            else:
                self._prebind_since.pop(key, None)
                if view.node_terms:
                    replaced[key] = storage.with_node_terms(pod, view.node_terms)
                    pinned[key] = view.node_terms
                if view.provision:
                    provision[key] = view.provision
        if not held and not replaced:
            return pods, provision, pinned
        return [replaced.get(k, p) for p in pods if (k := ns_name(p)) not in held], provision, pinned

    def _wait_in_prebind(self, key: tuple[str, str]) -> bool:
        """Note that the pod waits in PreBind; True when its wait has passed the bind timeout
        (the wait then starts again, as the retried scheduling cycle waits again)."""
        now = self.ctx.clock.elapsed()
        since = self._prebind_since.setdefault(key, now)
        timed_out = now - since >= BIND_TIMEOUT_SECONDS
        if timed_out:
            self._prebind_since[key] = since = now
        self.ctx.wake_at(since + BIND_TIMEOUT_SECONDS)
        return timed_out

    def _bind(self, pod: Mapping, node: str) -> dict | None:
        new = deep_copy(pod)
        new["spec"]["nodeName"] = node
        try:
            # Sharing the snapshot's unchanged parts: a pass binding 10,000 pods keeps every
            # bound pod until the kubelet step, and full decoded copies would double its memory.
            bound = compact(self.ctx.update(R.POD, new), pod)
        except StaleError:
            return None
        ns, name = ns_name(pod)
        self.ctx.event(pod, reason="Scheduled", component="default-scheduler", action="Binding",
                       message=f"Successfully assigned {ns}/{name} to {node}")
        return bound

    def _unschedulable(self, pod: Mapping, message: str, *, reason: str = "Unschedulable") -> None:
        status = deep_copy(pod.get("status") or {})
        conditions = status.get("conditions") or []
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if not (old and old.get("status") == "False" and old.get("message") == message
                and old.get("reason") == reason):
            cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == "False"
                    else now_text(self.ctx.clock), "reason": reason, "message": message}
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [cond]
            status["phase"] = "Pending"
            try:
                self.ctx.update_status(R.POD, pod, status)
            except StaleError:
                return
        self.ctx.event(pod, reason="FailedScheduling", etype="Warning", component="default-scheduler",
                       action="Scheduling", message=message)
