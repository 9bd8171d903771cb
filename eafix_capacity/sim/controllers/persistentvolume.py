"""The PersistentVolume controller: claims get volumes and are Bound.

The part of pkg/controller/volume/persistentvolume and a CSI external-provisioner that
the sim plays: dynamic provisioning of a PersistentVolume per claim and the binding of the
two.
"""
from __future__ import annotations

from typing import Any, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.controllers.common import deep_copy, ns_name, volume_name
from eafix_capacity.sim.controllers.context import Context


class PersistentVolumeController:
    """One sweep over every claim per pass."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self) -> None:
        """Dynamic provisioning: every Pending claim gets a PersistentVolume and is Bound."""
        for pvc in self.ctx.list(R.PVC):
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            ns, name = ns_name(pvc)
            spec = pvc.get("spec") or {}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            volume = spec.get("volumeName") or volume_name(ns, name)
            modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
            try:
                if not spec.get("volumeName"):
                    new = deep_copy(pvc)
                    new["spec"]["volumeName"] = volume
                    new["metadata"].setdefault("annotations", {}).update(
                        {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"})
                    pvc = self.ctx.update(R.PVC, new)
                ensure_volume(self.ctx, pvc, volume, storage, modes)
                self.ctx.update_status(R.PVC, pvc, {"phase": "Bound", "accessModes": modes,
                                                 "capacity": {"storage": storage}})
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

def ensure_volume(ctx: Context,  pvc: Mapping, volume: str, storage: str, modes: list[str]) -> None:
    if ctx.store.exists(R.PV, None, volume):
        return
    ns, name = ns_name(pvc)
    spec = pvc.get("spec") or {}
    pv: dict[str, Any] = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume, "annotations": {"pv.kubernetes.io/provisioned-by": "sim.eafix.io"},
                     "finalizers": ["kubernetes.io/pv-protection"]},
        "spec": {"capacity": {"storage": storage}, "accessModes": modes,
                 "persistentVolumeReclaimPolicy": "Delete", "volumeMode": spec.get("volumeMode", "Filesystem"),
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "apiVersion": "v1",
                              "uid": pvc["metadata"].get("uid")},
                 "csi": {"driver": "sim.eafix.io", "volumeHandle": volume}},
        "status": {"phase": "Bound"}}
    if spec.get("storageClassName"):
        pv["spec"]["storageClassName"] = spec["storageClassName"]
    try:
        ctx.store.create(R.PV, pv)
    except ApiError as e:
        if e.code != 409:
            raise
