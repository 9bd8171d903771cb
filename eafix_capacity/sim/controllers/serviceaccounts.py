"""The serviceaccount controller: every active namespace has its ``default`` ServiceAccount.

A pod that names no ServiceAccount runs as ``default``, and ServiceAccount admission refuses
a pod whose account does not exist, so a namespace without one runs nothing. As
pkg/controller/serviceaccount (serviceaccounts_controller.go) it creates ``default`` in each
namespace that is not terminating, and again after it is deleted.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.admission import DEFAULT_SERVICE_ACCOUNT
from eafix_capacity.sim.apierror import ForbiddenError, StaleError


def default_service_account(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}}


def ensure(store: Any, namespace: str) -> bool:
    """Create ``default`` in ``namespace`` when it is missing; True when this created it."""
    if store.exists(R.SERVICEACCOUNT, namespace, DEFAULT_SERVICE_ACCOUNT):
        return False
    try:
        store.create(R.SERVICEACCOUNT, default_service_account(namespace))
    except (ForbiddenError, StaleError):  # terminating, gone, or created meanwhile
        return False
    return True


def active(namespaces: Iterable[Mapping]) -> list[str]:
    return [ns["metadata"]["name"] for ns in namespaces
            if not ns["metadata"].get("deletionTimestamp") and (ns.get("status") or {}).get("phase") != "Terminating"]


class ServiceAccountsController:
    def __init__(self, store: Any) -> None:
        self.store = store

    def sync(self, namespaces: Iterable[Mapping]) -> None:
        for name in active(namespaces):
            ensure(self.store, name)
