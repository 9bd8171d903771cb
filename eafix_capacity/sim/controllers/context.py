"""What a sim controller is handed: the store, the clock, the recorder, and the write helpers.

A real controller gets a client, informers (shared, read-only caches) and an event
recorder from kube-controller-manager's ``ControllerContext``; a sim controller gets a
``Context`` with the same parts and reads a ``Snapshot`` of the objects listed once per
pass. Writes go through the helpers here so every controller writes status, deletes with a
uid precondition and creates pods the same way.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.controllers.common import (controller_of, deep_copy, is_active, ns_name, owner_ref,
                                                   qos_class, random_suffix, same_status)
from eafix_capacity.sim.controllers.events import EventRecorder
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.usage_model import UsageModel


@dataclass
class Snapshot:
    pods: list[dict]
    nodes: list[dict]
    replicasets: list[dict]
    deployments: list[dict]
    statefulsets: list[dict]
    daemonsets: list[dict]
    pdbs: list[dict]
    hpas: list[dict]
    pods_by_owner: dict[str, list[dict]]
    revisions: list[dict]


class Context:
    """Shared by every controller of one ``ControllerManager``."""

    def __init__(self, store: Any, registry: Registry, *, clock: SimClock, model: UsageModel, seed: int,
                 kick: Callable[[], None]) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.model = model
        self.rand = random.Random(seed)
        self.recorder = EventRecorder(store)
        self.event = self.recorder.event
        self.kick = kick
        self.fresh: dict[str, dict] = {}
        """ReplicaSets the Deployment step rescaled this pass, by uid, newer than the snapshot."""

    def list(self, rt: ResourceType) -> list[dict]:
        objs, _, _ = self.store.list_objects(rt)
        return objs

    def snapshot(self) -> Snapshot:
        # Pods first: an owner listed later is never missing for a pod listed earlier.
        pods = self.list(R.POD)
        by_owner: dict[str, list[dict]] = defaultdict(list)
        for p in pods:
            ref = controller_of(p)
            if ref and is_active(p):
                by_owner[ref.get("uid", "")].append(p)
        return Snapshot(
            pods=pods, nodes=self.list(R.NODE), replicasets=self.list(R.REPLICASET),
            deployments=self.list(R.DEPLOYMENT), statefulsets=self.list(R.STATEFULSET),
            daemonsets=self.list(R.DAEMONSET), pdbs=self.list(R.PDB), hpas=self.list(R.HPA),
            pods_by_owner=by_owner, revisions=self.list(R.CONTROLLERREVISION),
        )

    def update(self, rt: ResourceType, obj: dict) -> dict:
        return self.store.update(rt, obj)

    def update_status(self, rt: ResourceType, obj: Mapping, status: dict) -> None:
        if same_status(obj.get("status"), status):
            return
        meta = {"name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace"),
                "resourceVersion": obj["metadata"]["resourceVersion"]}
        if not rt.namespaced:
            meta.pop("namespace")
        body = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta, "status": status}
        self.store.update(rt, body, subresource="status")

    def delete(self, rt: ResourceType, obj: Mapping) -> bool:
        ns, name = ns_name(obj)
        try:
            self.store.delete(rt, ns or None, name, preconditions={"uid": obj["metadata"]["uid"]})
            return True
        except ApiError as e:
            if e.code in (404, 409):
                return False
            raise

    def pod_from_template(self, owner: Mapping, kind: str, template: Mapping) -> dict:
        tmeta = template.get("metadata") or {}
        spec = deep_copy(template.get("spec") or {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") == "NoExecute" for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        for c in spec.get("containers") or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = str(c.get("image", ""))
            c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
                         else "IfNotPresent")
            c.setdefault("resources", {})
        meta: dict = {"namespace": owner["metadata"].get("namespace"),
                      "labels": dict(tmeta.get("labels") or {}),
                      "ownerReferences": [owner_ref(owner, kind)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {}}
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
        return pod

    def create_pod(self, pod: dict, *, prefix: str | None = None) -> dict | None:
        for _ in range(10):
            if prefix is not None:
                pod["metadata"]["generateName"] = prefix
                pod["metadata"]["name"] = f"{prefix}{random_suffix(self.rand)}"
            try:
                return self.store.create(R.POD, pod)
            except ApiError as e:
                if e.code == 409 and prefix is not None:
                    continue
                if e.code in (404, 409):  # namespace being deleted, or a StatefulSet pod that exists
                    return None
                raise
        return None
