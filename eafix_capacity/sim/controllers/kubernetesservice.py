"""The ``kubernetes`` Service in ``default``: how pods find the API server.

kube-apiserver's own bootstrap controller (pkg/controlplane/controller/kubernetesservice)
creates it at start-up, before anything else runs: ClusterIP the first address of the
service range (10.96.0.1 with the default ``--service-cluster-ip-range``), port 443 named
``https`` to the server's secure port, with no selector and an Endpoints object naming the
server's address (the reconciler's ``kubernetes`` Endpoints and EndpointSlice). The sim's
address is where it serves (127.0.0.1 and its port).
"""
from __future__ import annotations

from typing import Any

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ConflictError, NotFoundError
from eafix_capacity.sim.resources import ResourceType

CLUSTER_IP = "10.96.0.1"


def kubernetes_service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            "status": {"loadBalancer": {}}}


def kubernetes_endpoints(address: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def kubernetes_endpoint_slice(address: str, port: int) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


def _put(store: Any, rt: ResourceType, want: dict, fields: tuple[str, ...]) -> None:
    try:
        live = store.get(rt, "default", "kubernetes")
    except NotFoundError:
        store.create(rt, want)
        return
    if any(live.get(f) != want[f] for f in fields):
        store.update(rt, {**live, **{f: want[f] for f in fields}})


def ensure(store: Any, *, address: str, port: int) -> None:
    """Create the Service when missing, and point its Endpoints and EndpointSlice at ``address:port``."""
    if not store.exists(R.SERVICE, "default", "kubernetes"):
        try:
            store.create(R.SERVICE, kubernetes_service())
        except ConflictError:
            pass
    _put(store, R.ENDPOINTS, kubernetes_endpoints(address, port), ("subsets",))
    _put(store, R.ENDPOINTSLICE, kubernetes_endpoint_slice(address, port), ("addressType", "endpoints", "ports"))
