"""What a sim controller is handed: the store, the clock, the recorder, and the write helpers.

A real controller gets a client, informers (shared, read-only caches) and an event
recorder from kube-controller-manager's ``ControllerContext``; a sim controller gets a
``Context`` with the same parts and reads a ``Snapshot`` of the objects listed once per
pass. Writes go through the helpers here so every controller writes status, deletes with a
uid precondition and creates pods the same way.
"""
from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from eafix_capacity.sim import admission, defaults, resources as R
from eafix_capacity.sim.apierror import ApiError, ConflictError, NotFoundError, StaleError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.controllers.common import (controller_of, deep_copy, is_active, ns_name, owner_ref,
                                                   qos_class, random_suffix, same_status)
from eafix_capacity.sim.controllers.events import EventRecorder
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.patch import record_update
from eafix_capacity.sim.schemas import Node, builtin_node
from eafix_capacity.sim.usage_model import UsageModel

CONTROLLER_MANAGER = "kube-controller-manager"
"""The field manager kube-controller-manager's clients write with (their user agent's name)."""


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


def _schema_node(rt: ResourceType) -> Node:
    return builtin_node(rt.api_version, rt.kind) or Node({}, None)


class Context:
    """Shared by every controller of one ``ControllerManager``."""

    def __init__(self, store: Any, registry: Registry, *, clock: SimClock, model: UsageModel, seed: int,
                 kick: Callable[[], None]) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.model = model
        self.rand = random.Random(seed)
        self.recorder = EventRecorder(store, clock)
        self.event = self.recorder.event
        self.kick = kick
        self.fresh: dict[str, dict] = {}
        """ReplicaSets the Deployment step rescaled this pass, by uid, newer than the snapshot."""
        self.next_wake = math.inf
        """The earliest sim-clock time (``clock.elapsed()``) a controller asked to be run again at."""

    def wake_at(self, elapsed: float) -> None:
        """Ask for a pass at sim time ``elapsed`` even if nothing changes before then (a Job
        pod's run ending, a CronJob's next time): a real controller's delayed requeue. Each
        pass starts afresh, so a controller asks again every pass it still waits."""
        self.next_wake = min(self.next_wake, elapsed)

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[dict]:
        objs, _, _ = self.store.list_objects(rt, namespace)
        return objs

    def create(self, rt: ResourceType, obj: dict) -> dict:
        """Create ``obj`` with the API server's defaults applied, as a controller's request gets them."""
        defaults.apply_defaults(obj, rt.group, rt.kind)
        return self.store.create(rt, obj)

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

    def update(self, rt: ResourceType, obj: dict, *, old: Mapping | None = None, subresource: str | None = None,
               manager: str = CONTROLLER_MANAGER) -> dict:
        """Write ``obj``; given the ``old`` object it came from, the changed fields are recorded
        in ``managedFields`` under ``manager`` (Update), as the API server's field manager does
        for a controller's request, so a later server-side apply of them conflicts."""
        if old is not None:
            record_update(dict(old), obj, _schema_node(rt), manager=manager, subresource=subresource)
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
        except StaleError:
            return False

    def _priority_of(self, name: object) -> int:
        """As the Priority admission plugin: the value of the pod's PriorityClass (system-node-critical
        2000001000), 0 without one."""
        if not name or not isinstance(name, str):
            return 0
        try:
            return int(self.store.get(R.PRIORITYCLASS, None, name).get("value") or 0)
        except (ApiError, TypeError, ValueError):
            return 0

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
        spec.setdefault("priority", self._priority_of(spec.get("priorityClassName")))
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

    def create_owned_pod(self, owner: Mapping, pod: dict, *, prefix: str | None,
                         component: str) -> tuple[dict | None, str | None]:
        """Create a controller's pod and record what PodControl records: ``SuccessfulCreate``, or
        ``FailedCreate`` with the admission refusal. Returns (the pod or None, the refusal or None)."""
        try:
            created = self.create_pod(pod, prefix=prefix)
        except ApiError as e:
            self.event(owner, reason="FailedCreate", etype="Warning", component=component,
                       message=f"Error creating: {e.message}")
            return None, e.message
        if created is not None:
            self.event(owner, reason="SuccessfulCreate", component=component,
                       message=f"Created pod: {created['metadata']['name']}")
        return created, None

    def create_pod(self, pod: dict, *, prefix: str | None = None) -> dict | None:
        """Create through admission, as a controller's client does: a refusal (403 for quota, a
        LimitRange or a missing ServiceAccount) is raised for the caller's FailedCreate event."""
        for _ in range(10):
            if prefix is not None:
                pod["metadata"]["generateName"] = prefix
                pod["metadata"].pop("name", None)
            try:
                return json.loads(admission.create(self.store, R.POD, pod,
                                                   generate_name=lambda p: f"{p}{random_suffix(self.rand)}"))
            except ConflictError:
                if prefix is not None:  # a generated name taken: another one
                    continue
                return None  # a StatefulSet pod that exists
            except NotFoundError:  # the namespace is being deleted
                return None
        return None
