"""The StatefulSet controller: ordinal pods, their claims, ordered or parallel, partitioned updates.

As pkg/controller/statefulset: pod ``<name>-<i>`` with its identity labels, hostname and
subdomain; a PersistentVolumeClaim per ``volumeClaimTemplates`` entry and ordinal;
OrderedReady creates one pod at a time after the previous is Ready and deletes from the
highest ordinal; RollingUpdate replaces from the highest ordinal down to ``partition``.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import admission, resources as R
from eafix_capacity.sim.apierror import ApiError, ConflictError, ForbiddenError
from eafix_capacity.sim.controllers.common import (STS_REVISION_LABEL, deep_copy, drop_zero, is_ready, ns_name,
                                                   ordinal_of, template_hash)
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.controllers.history import sync_revisions


STS_POD_NAME = "statefulset.kubernetes.io/pod-name"
STS_POD_INDEX = "apps.kubernetes.io/pod-index"


class StatefulSetController:
    """Syncs one StatefulSet at a time against the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, sts: dict, snap: Snapshot) -> None:
        ns, name = ns_name(sts)
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        update_rev = f"{name}-{template_hash(template)}"
        status_old = sts.get("status") or {}
        current_rev = status_old.get("currentRevision") or update_rev
        parallel = spec.get("podManagementPolicy") == "Parallel"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        sync_revisions(self.ctx, sts, "StatefulSet", update_rev, snap, keep=current_rev)
        pods: dict[int, dict] = {}
        for p in snap.pods_by_owner.get(sts["metadata"]["uid"], []):
            ordinal = ordinal_of(p["metadata"]["name"], name)
            if ordinal is not None:
                pods[ordinal] = p

        claims_ok = {i: self._ensure_claims(sts, i) for i in range(replicas)}

        wrote = False
        for i in range(replicas):
            if i in pods:
                if not parallel and not is_ready(pods[i]):
                    break
                continue
            if not claims_ok[i]:  # a claim admission refused: the pod is not created either
                break
            rev = current_rev if (rolling and i < partition and current_rev != update_rev) else update_rev
            self._create_sts_pod(sts, i, rev, template if rev == update_rev else None)
            wrote = True
            if not parallel:
                break
        condemned = sorted((i for i in pods if i >= replicas), reverse=True)
        if condemned and (parallel or not wrote):
            for i in condemned if parallel else condemned[:1]:
                if self.ctx.delete(R.POD, pods[i]):
                    self.ctx.event(sts, reason="SuccessfulDelete", component="statefulset-controller",
                                   message=f"delete Pod {pods[i]['metadata']['name']} in StatefulSet {name} successful")
            wrote = True
        live = [pods[i] for i in range(replicas) if i in pods]
        if rolling and not wrote and len(live) == replicas and all(is_ready(p) for p in live):
            for i in range(replicas - 1, partition - 1, -1):
                if (pods[i]["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) != update_rev:
                    self.ctx.delete(R.POD, pods[i])
                    break

        revs = [(p["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) for p in live]
        updated = sum(1 for r in revs if r == update_rev)
        ready = sum(1 for p in live if is_ready(p))
        if updated == replicas and ready == replicas and len(live) == replicas:
            current_rev = update_rev
        status = {"observedGeneration": int(sts["metadata"].get("generation", 1)), "replicas": len(live),
                  "readyReplicas": ready, "currentReplicas": sum(1 for r in revs if r == current_rev),
                  "updatedReplicas": updated, "currentRevision": current_rev, "updateRevision": update_rev,
                  "collisionCount": 0, "availableReplicas": ready}
        drop_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas"))
        self.ctx.update_status(R.STATEFULSET, sts, status)
    def _ensure_claims(self, sts: Mapping, i: int) -> bool:
        ns, name = ns_name(sts)
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = f"{tmpl['metadata']['name']}-{name}-{i}"
            if self.ctx.store.exists(R.PVC, ns, claim):
                continue
            spec = deep_copy(tmpl.get("spec") or {})
            spec.setdefault("volumeMode", "Filesystem")
            labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
            labels.update(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
            # created unbound, as a real StatefulSet controller does: the PV controller binds it
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": ns, "labels": labels},
                   "spec": spec, "status": {"phase": "Pending"}}
            try:
                admission.create(self.ctx.store, R.PVC, pvc)
            except ConflictError:
                continue
            except ForbiddenError as e:  # refused by quota or a LimitRange, as stateful_pod_control records it
                self.ctx.event(sts, reason="FailedCreate", etype="Warning", component="statefulset-controller",
                               message=f"create Claim {claim} for Pod {name}-{i} in StatefulSet {name} failed "
                                       f"error: {e.message}")
                return False
            self.ctx.event(sts, reason="SuccessfulCreate", component="statefulset-controller",
                           message=f"create Claim {claim} Pod {name}-{i} in StatefulSet {name} success")
        return True

    def _create_sts_pod(self, sts: Mapping, i: int, revision: str, template: Mapping | None) -> None:
        ns, name = ns_name(sts)
        spec = sts.get("spec") or {}
        pod = self.ctx.pod_from_template(sts, "StatefulSet", template or spec.get("template") or {})
        pod_name = f"{name}-{i}"
        pod["metadata"]["name"] = pod_name
        labels = pod["metadata"]["labels"]
        labels[STS_REVISION_LABEL] = revision
        labels[STS_POD_NAME] = pod_name
        labels[STS_POD_INDEX] = str(i)
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = [v for v in pod["spec"].get("volumes") or []]
        for tmpl in spec.get("volumeClaimTemplates") or []:
            vname = tmpl["metadata"]["name"]
            volumes = [v for v in volumes if v.get("name") != vname]
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": f"{vname}-{pod_name}"}})
        if volumes:
            pod["spec"]["volumes"] = volumes
        try:
            created = self.ctx.create_pod(pod)
        except ApiError as e:  # refused by admission
            self.ctx.event(sts, reason="FailedCreate", etype="Warning", component="statefulset-controller",
                           message=f"create Pod {pod_name} in StatefulSet {name} failed error: {e.message}")
            return
        if created is not None:
            self.ctx.event(sts, reason="SuccessfulCreate", component="statefulset-controller",
                           message=f"create Pod {pod_name} in StatefulSet {name} successful")
