"""The root-ca-cert-publisher: every active namespace has the ``kube-root-ca.crt`` ConfigMap.

Pods mount it through their API token volume (ServiceAccount admission adds that volume),
so a namespace without it leaves such pods unable to start. As
pkg/controller/certificates/rootcacertpublisher (publisher.go) it keeps the ConfigMap, with
its ``ca.crt`` key and description annotation, in each namespace that is not terminating.
The sim serves plain HTTP and has no CA: the bundle is a fixed dummy PEM, not a certificate.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.admission import ROOT_CA_CONFIGMAP
from eafix_capacity.sim.apierror import ForbiddenError, NotFoundError, StaleError
from eafix_capacity.sim.controllers.serviceaccounts import active

DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")
DUMMY_CA = ("-----BEGIN CERTIFICATE-----\n"
            "ZWFmaXgtc2ltIGR1bW15IENBOiBub3QgYSBjZXJ0aWZpY2F0ZSwgbm90IGEgc2VjcmV0\n"
            "-----END CERTIFICATE-----\n")


def root_ca_configmap(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                         "annotations": {"kubernetes.io/description": DESCRIPTION}},
            "data": {"ca.crt": DUMMY_CA}}


def ensure(store: Any, namespace: str) -> bool:
    """Create or restore ``kube-root-ca.crt`` in ``namespace``; True when this wrote it."""
    want = root_ca_configmap(namespace)
    try:
        live = store.get(R.CONFIGMAP, namespace, ROOT_CA_CONFIGMAP)
    except NotFoundError:
        live = None
    try:
        if live is None:
            store.create(R.CONFIGMAP, want)
            return True
        if live.get("data") != want["data"] or (live["metadata"].get("annotations") or {}).get(
                "kubernetes.io/description") != DESCRIPTION:
            live["data"] = want["data"]
            live["metadata"].setdefault("annotations", {})["kubernetes.io/description"] = DESCRIPTION
            store.update(R.CONFIGMAP, live)
            return True
    except (ForbiddenError, StaleError):  # the namespace is terminating or gone, or a race
        return False
    return False


class RootCACertPublisher:
    def __init__(self, store: Any) -> None:
        self.store = store

    def sync(self, namespaces: Iterable[Mapping]) -> None:
        for name in active(namespaces):
            ensure(self.store, name)
