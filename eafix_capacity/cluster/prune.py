"""Delete what an earlier apply of the kit made and the applied set no longer holds (``apply --prune``).

Server-side apply only ever creates and updates: a Deployment dropped from the plan (a service
removed from the catalogue, a ConfigMap renamed) keeps running in the cluster until someone
deletes it, and then verify and the quota count it. ``kubectl apply --prune`` is the usual
answer, and it is a blunt one: it lists every kind of a fixed allowlist with a label selector,
and deletes whatever carries its last-applied annotation and was not in this apply, which
includes PersistentVolumeClaims and Namespaces (and with ``--server-side`` it prunes nothing,
as server-side apply writes no such annotation). :func:`prune_candidates` (pure) picks the
objects the same way but by ownership the server records, ``managedFields``: only objects the
kit's field manager applied are candidates, and the ones whose deletion destroys data are
reported, never deleted. :func:`prune` lists and deletes them through the official client.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, Union

from eafix_capacity.cluster.context import Target
from eafix_capacity.cluster.dynamic import dynamic_client
from eafix_capacity.cluster.errors import classify
from eafix_capacity.cluster.records import ApplyRecord

FIELD_MANAGER = "eafix-capacity"  # eafix_capacity.cluster.apply.FIELD_MANAGER
L_MANAGED_BY = "app.kubernetes.io/managed-by"  # eafix_capacity.manifests.render.L_MANAGED_BY
MANAGED_BY = "eafix-capacity"  # eafix_capacity.manifests.render.MANAGED_BY
SELECTOR = f"{L_MANAGED_BY}={MANAGED_BY}"
PHASE = "prune"
PROPAGATION = "Background"  # kubectl's --cascade default ("background"), which prune passes on to each DELETE


@dataclass(frozen=True)
class PruneKind:
    group: str
    version: str
    kind: str
    namespaced: bool
    plural: str
    """For the hand-run command in a kept object's note (``kubectl delete pvc ...``)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# kubectl's default allowlist (pkg/util/prune GetRESTMappings) is ConfigMap, Endpoints, Namespace,
# PersistentVolumeClaim, PersistentVolume, Pod, ReplicationController, Secret, Service, Job,
# CronJob, Ingress, DaemonSet, Deployment, ReplicaSet, StatefulSet. The kit's list differs:
# - left out: Endpoints, Pod and ReplicaSet (controllers make them: the endpoints controller, and
#   ReplicaSets and Jobs from a template that carries the kit's label; deleting one only makes
#   its controller start another), ReplicationController (the kit renders none) and
#   PersistentVolume (cluster-scoped, made by the provisioner for a claim, and holding the data);
# - added: the namespaced kinds the renderer writes that kubectl leaves behind: HPA, PDB,
#   NetworkPolicy, ServiceAccount, ResourceQuota, LimitRange, Role, RoleBinding, and the mesh's
#   custom resources (skipped on a cluster without the Istio CRDs);
# - not added: StorageClass (cluster-scoped and shared: claims of other teams provision from it)
#   and the External Secrets kinds (deleting an ExternalSecret garbage-collects the Secret it
#   owns, which a Secret applied in its place keeps the ownerReference of);
# - PersistentVolumeClaim and Namespace are listed but never deleted (NEVER_DELETED).
PRUNE_KINDS: tuple[PruneKind, ...] = (
    PruneKind("", "v1", "Namespace", False, "namespace"),
    PruneKind("", "v1", "ConfigMap", True, "configmap"),
    PruneKind("", "v1", "Secret", True, "secret"),
    PruneKind("", "v1", "Service", True, "service"),
    PruneKind("", "v1", "PersistentVolumeClaim", True, "pvc"),
    PruneKind("", "v1", "ServiceAccount", True, "serviceaccount"),
    PruneKind("", "v1", "ResourceQuota", True, "resourcequota"),
    PruneKind("", "v1", "LimitRange", True, "limitrange"),
    PruneKind("apps", "v1", "Deployment", True, "deployment"),
    PruneKind("apps", "v1", "StatefulSet", True, "statefulset"),
    PruneKind("apps", "v1", "DaemonSet", True, "daemonset"),
    PruneKind("batch", "v1", "Job", True, "job"),
    PruneKind("batch", "v1", "CronJob", True, "cronjob"),
    PruneKind("networking.k8s.io", "v1", "Ingress", True, "ingress"),
    PruneKind("networking.k8s.io", "v1", "NetworkPolicy", True, "networkpolicy"),
    PruneKind("autoscaling", "v2", "HorizontalPodAutoscaler", True, "hpa"),
    PruneKind("policy", "v1", "PodDisruptionBudget", True, "pdb"),
    PruneKind("rbac.authorization.k8s.io", "v1", "Role", True, "role"),
    PruneKind("rbac.authorization.k8s.io", "v1", "RoleBinding", True, "rolebinding"),
    PruneKind("networking.istio.io", "v1beta1", "Gateway", True, "gateways.networking.istio.io"),
    PruneKind("networking.istio.io", "v1beta1", "VirtualService", True, "virtualservices.networking.istio.io"),
    PruneKind("networking.istio.io", "v1beta1", "DestinationRule", True, "destinationrules.networking.istio.io"),
    PruneKind("security.istio.io", "v1beta1", "PeerAuthentication", True, "peerauthentications.security.istio.io"),
    PruneKind("security.istio.io", "v1beta1", "AuthorizationPolicy", True,
              "authorizationpolicies.security.istio.io"),
)
_BY_GROUP_KIND = {(k.group, k.kind): k for k in PRUNE_KINDS}

# kubectl prunes both; the kit never does (a trading system's PostgreSQL volume, and a namespace
# takes everything in it along): they are reported with the command to delete them by hand
NEVER_DELETED = {
    ("", "PersistentVolumeClaim"): "deleting it destroys the data on its volume (a database such as PostgreSQL "
                                   "keeps its data there)",
    ("", "Namespace"): "deleting it deletes everything in it, the volumes' claims and their data included",
}

_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")

AppliedRef = Union[ApplyRecord, tuple[str, str, "str | None", str]]
"""An object of the applied set: its record, or (apiVersion or group, kind, namespace, name)."""


@dataclass(frozen=True)
class Candidate:
    """A live object prune deletes, or one it leaves and says why (``reason``)."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    reason: str
    command: str = ""
    """For a kept object: the command that deletes it by hand."""

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


# --- pure ------------------------------------------------------------------------------------------

def group_of(api_version: str) -> str:
    """The API group of ``apps/v1`` (``apps``) or ``v1`` (the core group, ``""``); a bare group
    (``apps``) is itself (pure)."""
    if "/" in api_version:
        return api_version.split("/", 1)[0]
    return "" if _VERSION.match(api_version) or api_version == "" else api_version


def _key(group: str, kind: str, namespace: str | None, name: str) -> tuple[str, str, str, str]:
    return group, kind, namespace or "", name


def _applied_keys(applied: Iterable[AppliedRef]) -> tuple[set[tuple[str, str, str, str]], set[str]]:
    keys: set[tuple[str, str, str, str]] = set()
    namespaces: set[str] = set()
    for ref in applied:
        if isinstance(ref, ApplyRecord):
            if ref.outcome in ("pruned", "kept"):  # prune's own records are not part of the applied set
                continue
            group, kind, namespace, name = group_of(ref.api_version), ref.kind, ref.namespace, ref.name
        else:
            version_or_group, kind, namespace, name = ref
            group = group_of(version_or_group)
        keys.add(_key(group, kind, namespace, name))
        if namespace:
            namespaces.add(namespace)
    return keys, namespaces


def applied_by(obj: Mapping[str, Any], field_manager: str) -> bool:
    """Whether ``field_manager`` holds fields of ``obj`` through server-side apply (pure)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return any(isinstance(e, Mapping) and e.get("manager") == field_manager and e.get("operation") == "Apply"
               for e in entries)


def touched_namespaces(applied: Iterable[AppliedRef]) -> set[str]:
    """The namespaces of the applied set's objects, the only ones prune looks in (pure):
    kubectl's ``visitedNamespaces``."""
    return _applied_keys(applied)[1]


def list_items(listed: Mapping[str, Any], spec: PruneKind) -> list[dict[str, Any]]:
    """The items of a list answer, each with its apiVersion and kind (pure): a real API server
    leaves them out of a built-in kind's items (kubernetes/kubernetes#63676), the list's
    resource says them."""
    return [{"apiVersion": spec.api_version, "kind": spec.kind, **item}
            for item in listed.get("items") or [] if isinstance(item, Mapping)]


def prune_candidates(live: Iterable[Mapping[str, Any]], applied: Iterable[AppliedRef], *,
                     field_manager: str = FIELD_MANAGER,
                     context: str | None = None) -> tuple[list[Candidate], list[Candidate]]:
    """(the live objects to delete, the ones kept with the reason) after ``applied`` (pure).

    A live object is a candidate when all of these hold:
    - its kind is in :data:`PRUNE_KINDS` (kubectl's default allowlist, changed as said there);
    - it is cluster-scoped or in a namespace of the applied set (kubectl's visitedNamespaces);
    - it carries ``app.kubernetes.io/managed-by=eafix-capacity`` (kubectl's ``-l`` selector,
      which the kit always uses);
    - ``field_manager`` applied it (a ``managedFields`` entry with operation ``Apply``); kubectl
      looks for its last-applied annotation instead. This leaves out what a controller made
      from a labelled template and a user's object that carries the label;
    - it has no controller ownerReference (kubectl prunes it anyway; its owner would make it
      again) and no deletionTimestamp (kubectl deletes it again);
    - it is not in the applied set, compared by group, kind, namespace and name, a group's
      version aside (kubectl compares UIDs of what it just applied).
    A PersistentVolumeClaim or Namespace candidate is kept (:data:`NEVER_DELETED`), with the
    command to delete it by hand (``--context`` named when ``context`` is given)."""
    keys, namespaces = _applied_keys(applied)
    delete: list[Candidate] = []
    kept: list[Candidate] = []
    for obj in live:
        api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        group = group_of(api_version)
        spec = _BY_GROUP_KIND.get((group, kind))
        meta = obj.get("metadata")
        if spec is None or not isinstance(meta, Mapping):
            continue
        name, namespace = str(meta.get("name") or ""), meta.get("namespace") or None
        if not name or (spec.namespaced and namespace not in namespaces):
            continue
        if (meta.get("labels") or {}).get(L_MANAGED_BY) != MANAGED_BY or not applied_by(obj, field_manager):
            continue
        if any(isinstance(o, Mapping) and o.get("controller") is True for o in meta.get("ownerReferences") or []):
            continue
        if meta.get("deletionTimestamp") or _key(group, kind, namespace, name) in keys:
            continue
        last = f"not in the applied set; last applied by {field_manager}"
        never = NEVER_DELETED.get((group, kind))
        if never is None:
            delete.append(Candidate(api_version, kind, namespace, name, last))
            continue
        where = f" -n {namespace}" if spec.namespaced and namespace else ""
        ctx = f" --context {context}" if context else ""
        command = f"kubectl{ctx} delete {spec.plural}{where} {name}"
        kept.append(Candidate(api_version, kind, namespace, name,
                              f"{last}; never pruned: {never}; to delete it by hand: {command}", command))
    return delete, kept


# --- sending ---------------------------------------------------------------------------------------

def prune(applied: Sequence[ApplyRecord], *, api_client: Any, target: Target, dry_run: bool,
          field_manager: str = FIELD_MANAGER) -> list[ApplyRecord]:
    """Delete the objects :func:`prune_candidates` picks after ``applied`` (the records of an
    apply whose every phase succeeded); return one record per candidate: ``pruned`` or ``kept``.

    One list call per kind of :data:`PRUNE_KINDS` per namespace of the applied set (cluster-scoped kinds:
    one) with the ``managed-by`` label selector, then one DELETE per object with
    ``propagationPolicy: Background`` as kubectl (the garbage collector deletes a Deployment's
    ReplicaSets and Pods after it), ``dryRun: [All]`` in a dry run. A kind the cluster does not
    serve is skipped; a 404 on a DELETE is someone else's deletion. Any other failure raises a
    ``TargetError`` (:func:`~eafix_capacity.cluster.errors.classify`). The write guard is the
    caller's (:func:`~eafix_capacity.cluster.apply.apply` passed it before the records exist)."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    def failed(e: BaseException) -> Exception:
        return classify(e, context=target.context, server=target.server, user=target.user or None,
                        auth=target.auth, cluster=target.cluster)

    namespaces = sorted(touched_namespaces(applied))
    try:
        client = dynamic_client(api_client)
    except Exception as e:
        raise failed(e) from e
    live: list[dict[str, Any]] = []
    resources: dict[tuple[str, str], Any] = {}
    for spec in PRUNE_KINDS:
        try:
            resource = client.resources.get(api_version=spec.api_version, kind=spec.kind)
        except ResourceNotFoundError:
            continue  # no CRD (or an old server): nothing of the kind can exist
        except Exception as e:
            raise failed(e) from e
        resources[(spec.group, spec.kind)] = resource
        for namespace in (namespaces if resource.namespaced else [None]):
            try:
                listed = resource.get(namespace=namespace, label_selector=SELECTOR)
            except Exception as e:
                raise failed(e) from e
            live.extend(list_items(listed.to_dict() if hasattr(listed, "to_dict") else dict(listed), spec))
    delete, kept = prune_candidates(live, applied, field_manager=field_manager, context=target.context)
    options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": PROPAGATION}
    if dry_run:
        options["dryRun"] = ["All"]
    records: list[ApplyRecord] = []
    for c in delete:
        resource = resources[(c.group, c.kind)]
        note = c.reason
        try:
            resource.delete(name=c.name, namespace=c.namespace, body=options)
        except Exception as e:
            if getattr(e, "status", None) != 404:
                raise failed(e) from e
            note += "; already gone (deleted by someone else)"
        records.append(_record(c, "pruned", note, dry_run))
    records.extend(_record(c, "kept", c.reason, dry_run) for c in kept)
    return records


def _record(c: Candidate, outcome: str, note: str, dry_run: bool) -> ApplyRecord:
    return ApplyRecord(phase=PHASE, file="", document=None, kind=c.kind, api_version=c.api_version,
                       namespace=c.namespace, name=c.name, outcome=outcome, resource_version=None,
                       dry_run=dry_run, note=note)


__all__ = ["FIELD_MANAGER", "NEVER_DELETED", "PRUNE_KINDS", "SELECTOR", "AppliedRef", "Candidate", "PruneKind",
           "applied_by", "group_of", "list_items", "prune", "prune_candidates", "touched_namespaces"]
