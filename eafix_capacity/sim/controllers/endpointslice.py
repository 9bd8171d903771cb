"""The EndpointSlice and Endpoints controllers: a Service's selector turned into pod addresses.

As pkg/controller/endpointslice and pkg/controller/endpoint: for each Service with a
selector, the matching pods that have an IP and have not ended, with their readiness
(``ready``, ``serving``, ``terminating``), node, zone and a ``targetRef``; ports are the
Service's ``targetPort`` resolved against each pod's named container ports (pods that
resolve differently get separate slices), at most :data:`MAX_ENDPOINTS_PER_SLICE` per
slice. The core/v1 Endpoints object lists ready pods in ``addresses`` and the others in
``notReadyAddresses``, without terminating pods. Objects are rewritten only when they change.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

from eafix_capacity.kobject import selector_matches
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import NotFoundError, StaleError
from eafix_capacity.sim.controllers.common import controller_of, is_ready, ns_name, random_suffix
from eafix_capacity.sim.controllers.context import Context, Snapshot

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
"""kube-controller-manager's ``--max-endpoints-per-slice`` default."""
ZONE_LABEL = "topology.kubernetes.io/zone"


def _service_ref(svc: Mapping) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"], "uid": svc["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def resolve_port(port: Mapping, pod: Mapping) -> int | None:
    """A Service port's ``targetPort`` on ``pod`` (``podutil.FindPort``): a number as it is,
    a name looked up in the containers' ports; None when the pod has no such port."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and cp.get("protocol", "TCP") == protocol:
                return int(cp["containerPort"])
    return None


def serves(pod: Mapping) -> bool:
    """``ShouldPodBeInEndpoints``: an IP, and not Succeeded or Failed."""
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and status.get("phase") not in ("Succeeded", "Failed")


def desired_slices(svc: Mapping, pods: Sequence[Mapping], zones: Mapping[str, str]) -> list[tuple[list[dict], list[dict]]]:
    """(ports, endpoints) per slice the Service should have, endpoints ordered by pod name."""
    ports_spec = (svc.get("spec") or {}).get("ports") or []
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        resolved = []
        for p in ports_spec:
            number = resolve_port(p, pod)
            if number is not None:
                entry: dict[str, Any] = {"name": p.get("name", ""), "port": number, "protocol": p.get("protocol", "TCP")}
                if p.get("appProtocol"):
                    entry["appProtocol"] = p["appProtocol"]
                resolved.append(entry)
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        ready = publish or (is_ready(pod) and not terminating)
        node = (pod.get("spec") or {}).get("nodeName", "")
        endpoint: dict[str, Any] = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": {"ready": ready, "serving": publish or is_ready(pod), "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": pod["metadata"].get("namespace"),
                          "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
        if node:
            endpoint["nodeName"] = node
        if zones.get(node):
            endpoint["zone"] = zones[node]
        groups[tuple((e["name"], e["port"], e["protocol"]) for e in resolved)].append(
            {"ports": resolved, "endpoint": endpoint})
    out = []
    for items in groups.values():
        for i in range(0, len(items), MAX_ENDPOINTS_PER_SLICE):
            chunk = items[i:i + MAX_ENDPOINTS_PER_SLICE]
            out.append((chunk[0]["ports"], [c["endpoint"] for c in chunk]))
    return out or [([], [])]


def endpoints_subsets(svc: Mapping, pods: Sequence[Mapping]) -> list[dict]:
    """core/v1 Endpoints ``subsets``: ready and not-ready addresses, terminating pods left out."""
    ports_spec = (svc.get("spec") or {}).get("ports") or []
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets: dict[tuple, dict] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if pod["metadata"].get("deletionTimestamp") and not publish:
            continue
        ports = []
        for p in ports_spec:
            number = resolve_port(p, pod)
            if number is not None:
                entry = {"port": number, "protocol": p.get("protocol", "TCP")}
                if p.get("name"):
                    entry = {"name": p["name"], **entry}
                ports.append(entry)
        key = tuple((e.get("name", ""), e["port"], e["protocol"]) for e in ports)
        subset = subsets.setdefault(key, {"ports": ports})
        address: dict[str, Any] = {"ip": pod["status"]["podIP"]}
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        address["targetRef"] = {"kind": "Pod", "namespace": pod["metadata"].get("namespace"),
                                "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        subset.setdefault("addresses" if publish or is_ready(pod) else "notReadyAddresses", []).append(address)
    return [{k: v for k, v in s.items() if k != "ports" or v} for s in subsets.values()
            if s.get("addresses") or s.get("notReadyAddresses")]


class EndpointSliceController:
    """Keeps every selector Service's EndpointSlices and Endpoints in step with its pods."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync_all(self, snap: Snapshot) -> None:
        services = [s for s in self.ctx.list(R.SERVICE) if (s.get("spec") or {}).get("selector")]
        if not services:
            return
        pods_by_ns: dict[str, list[dict]] = defaultdict(list)
        for p in snap.pods:
            if serves(p):
                pods_by_ns[p["metadata"].get("namespace", "")].append(p)
        zones = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE_LABEL, "") for n in snap.nodes}
        slices_by_svc: dict[str, list[dict]] = defaultdict(list)
        for s in self.ctx.list(R.ENDPOINTSLICE):
            ref = controller_of(s)
            if ref is not None and ref.get("kind") == "Service":
                slices_by_svc[ref.get("uid", "")].append(s)
        for svc in services:
            ns = svc["metadata"].get("namespace", "")
            selector = {"matchLabels": svc["spec"]["selector"]}
            pods = [p for p in pods_by_ns.get(ns, []) if selector_matches(selector, p["metadata"].get("labels") or {})]
            try:
                self._sync_slices(svc, pods, zones, slices_by_svc.get(svc["metadata"]["uid"], []))
                self._sync_endpoints(svc, pods)
            except StaleError:
                pass

    def _sync_slices(self, svc: Mapping, pods: list[dict], zones: Mapping[str, str], existing: list[dict]) -> None:
        ns, name = ns_name(svc)
        wanted = desired_slices(svc, pods, zones)
        existing = sorted(existing, key=lambda s: s["metadata"]["name"])
        labels = {**(svc["metadata"].get("labels") or {}), SERVICE_NAME: name, MANAGED_BY: SLICE_MANAGER}
        for i, (ports, endpoints) in enumerate(wanted):
            body: dict[str, Any] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                    "addressType": "IPv4", "endpoints": endpoints or None, "ports": ports or None}
            if i < len(existing):
                current = existing[i]
                if (current.get("endpoints"), current.get("ports"), current["metadata"].get("labels")) == \
                        (body["endpoints"], body["ports"], labels):
                    continue
                self.ctx.update(R.ENDPOINTSLICE, {**current, **body,
                                                  "metadata": {**current["metadata"], "labels": labels}})
            else:
                meta = {"name": f"{name}-{random_suffix(self.ctx.rand)}", "generateName": f"{name}-",
                        "namespace": ns, "labels": labels, "ownerReferences": [_service_ref(svc)]}
                self.ctx.store.create(R.ENDPOINTSLICE, {**body, "metadata": meta})
        for extra in existing[len(wanted):]:
            self.ctx.delete(R.ENDPOINTSLICE, extra)

    def _sync_endpoints(self, svc: Mapping, pods: list[dict]) -> None:
        ns, name = ns_name(svc)
        subsets = endpoints_subsets(svc, pods)
        labels = dict(svc["metadata"].get("labels") or {})
        try:
            current = self.ctx.store.get(R.ENDPOINTS, ns, name)
        except NotFoundError:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                                    "metadata": {"name": name, "namespace": ns, "labels": labels}}
            if subsets:
                body["subsets"] = subsets
            self.ctx.store.create(R.ENDPOINTS, body)
            return
        if (current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels:
            return
        new = {**current, "metadata": {**current["metadata"], "labels": labels}}
        if subsets:
            new["subsets"] = subsets
        else:
            new.pop("subsets", None)
        self.ctx.update(R.ENDPOINTS, new)
