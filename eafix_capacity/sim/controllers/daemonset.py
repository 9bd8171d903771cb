"""The DaemonSet controller: one pod per eligible node, rolled one at a time.

As pkg/controller/daemon: a node is eligible when the pod's node affinity matches and it
tolerates the node's NoSchedule/NoExecute taints (plus the tolerations the controller adds
itself); each pod is pinned with a ``metadata.name`` node affinity term; surplus and
misscheduled pods are deleted; updates replace one outdated pod at a time.
"""
from __future__ import annotations

from collections import defaultdict

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.controllers.common import (STS_REVISION_LABEL, UNSCHEDULABLE_TAINT, daemon_pod_node, deep_copy,
                                                   drop_zero, is_ready, ns_name, template_hash)
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.scheduler import node_affinity_matches, node_taints, pod_tolerations
from eafix_capacity.sim.controllers.history import sync_revisions


class DaemonSetController:
    """Syncs one DaemonSet at a time against the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, ds: dict, snap: Snapshot) -> None:
        ns, name = ns_name(ds)
        template = (ds.get("spec") or {}).get("template") or {}
        rev = template_hash(template)
        sync_revisions(self.ctx, ds, "DaemonSet", f"{name}-{rev}", snap)
        probe = self.ctx.pod_from_template(ds, "DaemonSet", template)
        # util.AddOrUpdateDaemonPodTolerations: not-ready and unreachable NoExecute tolerated for ever
        forever = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        probe["spec"]["tolerations"] = [
            t for t in probe["spec"]["tolerations"]
            if not (t.get("key") in forever and t.get("effect") == "NoExecute" and t.get("operator") == "Exists")] + [
            {"key": k, "operator": "Exists", "effect": "NoExecute"} for k in forever]
        probe["spec"]["tolerations"] += [
            {"key": k, "operator": "Exists", "effect": "NoSchedule"}
            for k in ("node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                      "node.kubernetes.io/pid-pressure", UNSCHEDULABLE_TAINT)]
        tolerations = pod_tolerations(probe)
        eligible = set()
        keep = set()  # NodeShouldRunDaemonPod's shouldContinueRunning: only NoExecute taints evict
        for node in snap.nodes:
            if not node_affinity_matches(probe, node):
                continue
            untolerated = [t for t in node_taints(node)
                           if t.effect in ("NoSchedule", "NoExecute") and not any(x.tolerates(t) for x in tolerations)]
            if not any(t.effect == "NoExecute" for t in untolerated):
                keep.add(node["metadata"]["name"])
            if untolerated:
                continue
            eligible.add(node["metadata"]["name"])
        by_node: dict[str, list[dict]] = defaultdict(list)
        for p in snap.pods_by_owner.get(ds["metadata"]["uid"], []):
            by_node[daemon_pod_node(p)].append(p)
        for node_name in sorted(eligible):
            if node_name not in by_node:
                pod = deep_copy(probe)
                pod["metadata"]["labels"][STS_REVISION_LABEL] = rev
                pod["metadata"]["labels"]["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
                pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                            "values": [node_name]}]}]}}}
                self.ctx.create_owned_pod(ds, pod, prefix=f"{name}-", component="daemonset-controller")
        for node_name, pods in by_node.items():
            extra = pods if node_name not in keep else sorted(pods, key=lambda p: p["metadata"]["name"])[1:]
            for p in extra:
                self.ctx.delete(R.POD, p)
        current = [ps[0] for n, ps in by_node.items() if n in eligible]
        outdated = [p for p in current if (p["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) != rev]
        if outdated and all(is_ready(p) for p in current):
            self.ctx.delete(R.POD, outdated[0])
        ready = sum(1 for p in current if is_ready(p))
        status = {"currentNumberScheduled": sum(1 for p in current if (p.get("spec") or {}).get("nodeName")),
                  "desiredNumberScheduled": len(eligible),
                  "numberMisscheduled": sum(len(ps) for n, ps in by_node.items() if n not in eligible),
                  "numberReady": ready, "numberAvailable": ready,
                  "numberUnavailable": max(0, len(eligible) - ready),
                  "updatedNumberScheduled": len(current) - len(outdated),
                  "observedGeneration": int(ds["metadata"].get("generation", 1))}
        drop_zero(status, ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"))
        self.ctx.update_status(R.DAEMONSET, ds, status)
