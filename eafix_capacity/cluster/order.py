"""The order a set of objects is applied in, as phases (pure).

An object sent before what it needs is refused (a Deployment before its namespace, a
Gateway before the Istio CRDs) or starts pods that crash (a trading service before Redis
and PostgreSQL are ready). :func:`phases` splits the objects into the order of the seed's
deployment sequence, itself Helm's install order and lightkube's ``sort_objects``: CRDs,
Namespaces (with what lives at namespace level: quota, limit ranges, network policies,
service accounts, RBAC), storage, secrets, configmaps, the infrastructure tier (Redis,
PostgreSQL: ``eafix.io/tier: infrastructure``, the label the renderer puts on them from
``data/services.yaml``) and its Services, then a wait point, the trading and supporting
workloads, their Services, ingress, and last the custom resources (the mesh's objects)
whose CRDs came first. Each object keeps where it came from (file and document index when
it was loaded by :func:`eafix_capacity.manifests.load.load_manifests`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

TIER_LABEL = "eafix.io/tier"  # eafix_capacity.manifests.render.L_TIER
INFRASTRUCTURE_TIER = "infrastructure"

PHASE_NAMES = ("crds", "namespaces", "storage", "secrets", "configmaps", "infrastructure", "workloads",
               "services", "ingress", "custom-resources")
WAIT_AFTER = frozenset({"infrastructure"})
"""Phases after which the caller waits for the workloads to be ready (Redis and PostgreSQL)."""

_NAMESPACE_LEVEL = ("Namespace", "ResourceQuota", "LimitRange", "PriorityClass", "NetworkPolicy", "ServiceAccount",
                    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
_STORAGE = ("StorageClass", "PersistentVolume", "PersistentVolumeClaim")
_WORKLOADS = ("DaemonSet", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob",
              "HorizontalPodAutoscaler", "PodDisruptionBudget")
_INGRESS = ("IngressClass", "Ingress")
_CORE_GROUPS = frozenset({"", "v1", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "storage.k8s.io",
                          "rbac.authorization.k8s.io", "scheduling.k8s.io", "apiextensions.k8s.io"})
_SECRET_GROUPS = frozenset({"external-secrets.io"})  # SecretStore, ExternalSecret: with the Secrets they make


@dataclass(frozen=True)
class Source:
    """Where an object came from: a file and the 0-based index of its YAML document, or
    nothing (``file=""``) for an object the renderer built in memory."""

    file: str = ""
    document: int | None = None

    def __str__(self) -> str:
        if not self.file:
            return "(rendered in memory)"
        return self.file if self.document is None else f"{self.file} (document {self.document})"


@dataclass(frozen=True)
class SourcedObject:
    obj: Mapping[str, Any]
    source: Source

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion") or "")

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""

    @property
    def namespace(self) -> str | None:
        meta = self.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        return str(ns) if ns else None

    def ref(self) -> str:
        """``Kind namespace/name`` (``Kind name`` for a cluster-scoped object)."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class Phase:
    name: str
    objects: list[SourcedObject] = field(default_factory=list)
    wait_after: bool = False


def sourced(item: Any) -> SourcedObject:
    """A :class:`SourcedObject` for a ``LoadedObject`` (keeps file and document), a mapping, or a
    ``SourcedObject`` already."""
    if isinstance(item, SourcedObject):
        return item
    if isinstance(item, Mapping):
        return SourcedObject(item, Source())
    obj = getattr(item, "obj", None)
    if isinstance(obj, Mapping):
        return SourcedObject(obj, Source(str(getattr(item, "file", "") or ""), getattr(item, "document", None)))
    raise TypeError(f"not a Kubernetes object: {type(item).__name__} (give mappings or loaded objects)")


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _tier(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return str(labels.get(TIER_LABEL) or "") if isinstance(labels, Mapping) else ""


def phase_of(item: SourcedObject) -> str:
    """The name of the phase ``item`` is applied in."""
    kind, group = item.kind, _group(item.api_version)
    if kind == "CustomResourceDefinition":
        return "crds"
    if group in _SECRET_GROUPS:
        return "secrets"
    if group not in _CORE_GROUPS:
        return "custom-resources"
    if kind in _NAMESPACE_LEVEL:
        return "namespaces"
    if kind in _STORAGE:
        return "storage"
    if kind == "Secret":
        return "secrets"
    if kind == "ConfigMap":
        return "configmaps"
    infrastructure = _tier(item.obj) == INFRASTRUCTURE_TIER
    if kind in _WORKLOADS or kind == "Service":
        if infrastructure:
            return "infrastructure"
        return "services" if kind == "Service" else "workloads"
    if kind in _INGRESS:
        return "ingress"
    return "custom-resources"  # a built-in kind the list above does not name: after everything it may need


def _rank_in_phase(item: SourcedObject) -> int:
    order = _NAMESPACE_LEVEL + _STORAGE + ("Secret", "ConfigMap", "StatefulSet") + _WORKLOADS + ("Service",) + _INGRESS
    return order.index(item.kind) if item.kind in order else len(order)


def phases(objects: Iterable[Any]) -> list[Phase]:
    """The non-empty phases of ``objects`` in apply order; inside a phase, by kind (a Namespace
    before its quota, a workload before its HPA) and then in the order given."""
    items = [sourced(o) for o in objects]
    grouped: dict[str, list[tuple[int, SourcedObject]]] = {name: [] for name in PHASE_NAMES}
    for index, item in enumerate(items):
        grouped[phase_of(item)].append((index, item))
    out = []
    for name in PHASE_NAMES:
        members = sorted(grouped[name], key=lambda pair: (_rank_in_phase(pair[1]), pair[0]))
        if members:
            out.append(Phase(name, [m for _, m in members], wait_after=name in WAIT_AFTER))
    return out
