"""The PersistentVolume controller and the CSI external-provisioners: claims bind as on a cloud.

The part of pkg/controller/volume/persistentvolume (syncClaim, syncVolume, bind) and of a
CSI driver's external-provisioner that the sim plays. A claim binds to a volume only
through its StorageClass: a missing class leaves it Pending with ``ProvisioningFailed``, a
class whose provisioner the sim was not started with leaves it Pending with
``ExternalProvisioning``, and a ``WaitForFirstConsumer`` class waits until the scheduler
has annotated the claim with the node it chose for a pod using it (see
:meth:`PersistentVolumeController.prebind`, the VolumeBinding plugin's PreBind). The
decisions are :mod:`eafix_capacity.sim.storage`'s; this writes them.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim import storage as S
from eafix_capacity.sim.apierror import ConflictError, NotFoundError, StaleError
from eafix_capacity.sim.controllers.common import deep_copy, ns_name
from eafix_capacity.sim.controllers.context import Context, Snapshot


class PersistentVolumeController:
    """One sweep over every claim and volume per pass.

    ``provisioners``: the provisioners running in the cluster (the CSI drivers whose
    external-provisioner would create volumes); None: the CSI driver of each provider the
    nodes' ``sim.eafix.io/provider`` annotation names."""

    def __init__(self, ctx: Context, *, provisioners: Iterable[str] | None = None) -> None:
        self.ctx = ctx
        self._provisioners = None if provisioners is None else frozenset(provisioners)

    def provisioners(self, nodes: Iterable[Mapping]) -> frozenset[str]:
        if self._provisioners is not None:
            return self._provisioners
        named = {str(((n.get("metadata") or {}).get("annotations") or {}).get("sim.eafix.io/provider")) for n in nodes}
        return frozenset(S.CSI_DRIVER_OF_PROVIDER[p] for p in named if p in S.CSI_DRIVER_OF_PROVIDER)

    # --- the pass -------------------------------------------------------------------------

    def sync(self, snap: Snapshot) -> None:
        claims = self.ctx.list(R.PVC)
        volumes = {pv["metadata"]["name"]: pv for pv in self.ctx.list(R.PV)}
        if not claims and not volumes:
            return
        classes = {sc["metadata"]["name"]: sc for sc in self.ctx.list(R.STORAGECLASS)}
        provisioners = self.provisioners(snap.nodes)
        unbound = any(S.ANN_BIND_COMPLETED not in (c["metadata"].get("annotations") or {}) for c in claims)
        waiting = _unscheduled_pods_by_claim(snap.pods) if unbound else {}
        for claim in claims:
            try:
                self._sync_claim(claim, classes, volumes, provisioners, snap.nodes, waiting.get(ns_name(claim), []))
            except StaleError:
                pass
        live = {(c["metadata"].get("namespace"), c["metadata"]["name"]): c["metadata"].get("uid") for c in claims}
        for pv in self.ctx.list(R.PV):
            try:
                self._sync_volume(pv, live)
            except StaleError:
                pass

    def _sync_claim(self, claim: dict, classes: Mapping[str, Mapping], volumes: dict[str, dict],
                    provisioners: frozenset[str], nodes: list[dict], waiting_pods: list[str]) -> bool:
        """One claim's step; True when it ends Bound."""
        step = S.sync_claim(claim, classes=classes, volumes=volumes, provisioners=provisioners,
                            waiting_pods=waiting_pods)
        if step.action == "bound":
            return True
        if step.action == "set-class":  # the retroactive default class assignment
            new = deep_copy(claim)
            new["spec"]["storageClassName"] = step.storage_class
            self.ctx.update(R.PVC, new)
            return False
        if step.action == "lost":
            self._events(claim, step.events)
            self.ctx.update_status(R.PVC, claim, {**(claim.get("status") or {}), "phase": "Lost"})
            return False
        if step.set_provisioner:  # setClaimProvisioner: tells the external-provisioner to act
            new = deep_copy(claim)
            new["metadata"].setdefault("annotations", {}).update(
                {S.ANN_STORAGE_PROVISIONER_BETA: step.provisioner, S.ANN_STORAGE_PROVISIONER: step.provisioner})
            claim = self.ctx.update(R.PVC, new)
        self._events(claim, step.events)
        if step.action == "pending":
            self.ctx.update_status(R.PVC, claim, {"phase": "Pending"})
            return False
        if step.action == "provision":
            pv = self._provision(claim, classes[step.storage_class], step.provisioner, nodes, step.node)
            if pv is None:
                return False
            volumes[pv["metadata"]["name"]] = pv
            return self._bind(claim, pv)
        pv = volumes[step.volume]
        bound = self._bind(claim, pv)
        return bound

    def _provision(self, claim: Mapping, sc: Mapping, provisioner: str, nodes: list[dict],
                   node: str) -> dict | None:
        """What the driver's external-provisioner does: create the volume, then the PV."""
        zone = S.provisioning_zone(claim, sc, nodes, node)
        pv = S.provisioned_volume(claim, sc, provisioner=provisioner, zone=zone)
        name = pv["metadata"]["name"]
        source = S.provisioner_component(provisioner)
        ns, cname = ns_name(claim)
        try:
            return self.ctx.store.get(R.PV, None, name)  # provisioned before, bind it
        except NotFoundError:
            pass
        self.ctx.event(claim, reason="Provisioning", component=source,
                       message=f'External provisioner is provisioning volume for claim "{ns}/{cname}"')
        pv["status"] = {"phase": "Bound"}
        try:
            created = self.ctx.store.create(R.PV, pv)
        except ConflictError:
            return None
        self.ctx.event(claim, reason="ProvisioningSucceeded", component=source,
                       message=f"Successfully provisioned volume {name}")
        return created

    def _bind(self, claim: dict, pv: dict) -> bool:
        """pv_controller.go bind(): the volume's claimRef and phase, then the claim's
        volumeName, annotations and status."""
        meta = claim["metadata"]
        pspec = pv.get("spec") or {}
        ref = pspec.get("claimRef") or {}
        if ref.get("uid") != meta.get("uid") or ref.get("name") != meta["name"]:
            new_pv = deep_copy(pv)
            new_pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"),
                                          "name": meta["name"], "uid": meta.get("uid"), "apiVersion": "v1",
                                          "resourceVersion": meta.get("resourceVersion")}
            new_pv["metadata"].setdefault("annotations", {})[S.ANN_BOUND_BY_CONTROLLER] = "yes"
            pv = self.ctx.update(R.PV, new_pv)
        self.ctx.update_status(R.PV, pv, {"phase": "Bound"})
        ann = meta.get("annotations") or {}
        if (claim.get("spec") or {}).get("volumeName") != pv["metadata"]["name"] or S.ANN_BIND_COMPLETED not in ann:
            new = deep_copy(claim)
            by_controller = not (claim.get("spec") or {}).get("volumeName")
            new["spec"]["volumeName"] = pv["metadata"]["name"]
            anns = new["metadata"].setdefault("annotations", {})
            anns[S.ANN_BIND_COMPLETED] = "yes"
            if by_controller:
                anns[S.ANN_BOUND_BY_CONTROLLER] = "yes"
            claim = self.ctx.update(R.PVC, new)
        self.ctx.update_status(R.PVC, claim, {"phase": "Bound",
                                              "accessModes": list(pspec.get("accessModes") or []),
                                              "capacity": dict(pspec.get("capacity") or {})})
        return True

    def _sync_volume(self, pv: Mapping, live: Mapping[tuple[Any, str], Any]) -> None:
        """pv_controller.go syncVolume: a free volume is Available; a volume whose claim is gone
        is Released (Retain) or deleted by its provisioner (Delete)."""
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not ref or not ref.get("uid"):
            if phase != "Available":
                self.ctx.update_status(R.PV, pv, {"phase": "Available"})
            return
        if live.get((ref.get("namespace"), ref.get("name"))) == ref.get("uid"):
            return
        provisioned = S.ANN_PROVISIONED_BY in ((pv.get("metadata") or {}).get("annotations") or {})
        if provisioned and spec.get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
            self.ctx.delete(R.PV, pv)
        elif phase != "Released":
            self.ctx.update_status(R.PV, pv, {"phase": "Released"})

    def _events(self, claim: Mapping, events: Iterable[S.Event]) -> None:
        for ev in events:
            self.ctx.event(claim, reason=ev.reason, message=ev.message, etype=ev.etype, component=ev.component)

    # --- the scheduler's VolumeBinding plugin ------------------------------------------------

    def pod_volumes(self, pods: list[dict]) -> dict[tuple[str, str], S.PodVolumes]:
        """The VolumeBinding view of each of ``pods`` that uses claims, by (namespace, name)."""
        using = [p for p in pods if S.pod_claim_names(p)]
        if not using:
            return {}
        claims = {ns_name(c): c for c in self.ctx.list(R.PVC)}
        classes = {sc["metadata"]["name"]: sc for sc in self.ctx.list(R.STORAGECLASS)}
        volumes = {pv["metadata"]["name"]: pv for pv in self.ctx.list(R.PV)}
        return {ns_name(p): S.pod_volumes(p, claims=claims, classes=classes, volumes=volumes) for p in using}

    def prebind(self, claims: Iterable[tuple[str, str]], node: str, nodes: list[dict]) -> bool:
        """Reserve and PreBind: annotate each claim with the chosen node, let the provisioner
        act on it, and say whether every claim is now Bound (else the pod keeps waiting)."""
        classes = {sc["metadata"]["name"]: sc for sc in self.ctx.list(R.STORAGECLASS)}
        volumes = {pv["metadata"]["name"]: pv for pv in self.ctx.list(R.PV)}
        provisioners = self.provisioners(nodes)
        all_bound = True
        chosen = next((n for n in nodes if n["metadata"]["name"] == node), None)
        for ns, name in claims:
            try:
                claim = self.ctx.store.get(R.PVC, ns, name)
                pv = volumes.get((claim.get("spec") or {}).get("volumeName") or "")
                if pv is not None and chosen is not None and not S.volume_fits_node(pv, chosen):
                    all_bound = False  # bound this pass for another pod, in another zone: schedule again
                    continue
                if (claim["metadata"].get("annotations") or {}).get(S.ANN_SELECTED_NODE) != node:
                    new = deep_copy(claim)
                    new["metadata"].setdefault("annotations", {})[S.ANN_SELECTED_NODE] = node
                    claim = self.ctx.update(R.PVC, new)
                all_bound &= self._sync_claim(claim, classes, volumes, provisioners, nodes, [])
            except StaleError:
                all_bound = False
        return all_bound


def _unscheduled_pods_by_claim(pods: Iterable[Mapping]) -> dict[tuple[str, str], list[str]]:
    """pv_controller.go findNonScheduledPodsByPVC, for every claim at once."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in pods:
        spec = p.get("spec") or {}
        if spec.get("nodeName") or not spec.get("volumes"):
            continue
        ns = p["metadata"].get("namespace") or "default"
        for name in S.pod_claim_names(p):
            out[(ns, name)].append(p["metadata"]["name"])
    return out
