"""The resource types the sim cluster serves, and the discovery documents describing them.

A real API server learns its types from compiled Go structs and from CRDs; the sim keeps
one thread-safe registry of ``ResourceType`` records (built-ins below plus CRD-registered
kinds) so the store, the HTTP layer and the controllers agree on names, scope and
subresources, and discovery (``/api``, ``/apis``, group versions) is generated from it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from eafix_capacity.sim.apierror import ApiError

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_READ_VERBS = ("get", "list")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (a group/version/plural) and what can be done with it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _ALL_VERBS
    singular: str = field(default="", compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Stable storage key, e.g. ``apps/deployments`` or ``/pods`` for the core group."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool = True, **kw: object) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, **kw)  # type: ignore[arg-type]


NAMESPACE = _rt("", "v1", "namespaces", "Namespace", False, subresources=("status", "finalize"), short_names=("ns",))
NODE = _rt("", "v1", "nodes", "Node", False, subresources=("status", "proxy"), short_names=("no",))
POD = _rt("", "v1", "pods", "Pod", subresources=("status", "eviction", "binding", "log", "ephemeralcontainers",
                                                "exec", "attach", "portforward"),
          short_names=("po",), categories=("all",))
SERVICE = _rt("", "v1", "services", "Service", subresources=("status", "proxy"), short_names=("svc",),
              categories=("all",))
ENDPOINTS = _rt("", "v1", "endpoints", "Endpoints", short_names=("ep",))
ENDPOINTSLICE = _rt("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
CONFIGMAP = _rt("", "v1", "configmaps", "ConfigMap", short_names=("cm",))
SECRET = _rt("", "v1", "secrets", "Secret")
SERVICEACCOUNT = _rt("", "v1", "serviceaccounts", "ServiceAccount", subresources=("token",), short_names=("sa",))
PVC = _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", subresources=("status",), short_names=("pvc",))
PV = _rt("", "v1", "persistentvolumes", "PersistentVolume", False, subresources=("status",), short_names=("pv",))
EVENT = _rt("", "v1", "events", "Event", short_names=("ev",))
RESOURCEQUOTA = _rt("", "v1", "resourcequotas", "ResourceQuota", subresources=("status",), short_names=("quota",))
LIMITRANGE = _rt("", "v1", "limitranges", "LimitRange", short_names=("limits",))
PODTEMPLATE = _rt("", "v1", "podtemplates", "PodTemplate")
REPLICATIONCONTROLLER = _rt("", "v1", "replicationcontrollers", "ReplicationController",
                            subresources=("status", "scale"), short_names=("rc",), categories=("all",))

DEPLOYMENT = _rt("apps", "v1", "deployments", "Deployment", subresources=("status", "scale"),
                 short_names=("deploy",), categories=("all",))
REPLICASET = _rt("apps", "v1", "replicasets", "ReplicaSet", subresources=("status", "scale"),
                 short_names=("rs",), categories=("all",))
STATEFULSET = _rt("apps", "v1", "statefulsets", "StatefulSet", subresources=("status", "scale"),
                  short_names=("sts",), categories=("all",))
DAEMONSET = _rt("apps", "v1", "daemonsets", "DaemonSet", subresources=("status",), short_names=("ds",),
                categories=("all",))
CONTROLLERREVISION = _rt("apps", "v1", "controllerrevisions", "ControllerRevision")

HPA = _rt("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", subresources=("status",),
          short_names=("hpa",), categories=("all",))
JOB = _rt("batch", "v1", "jobs", "Job", subresources=("status",), categories=("all",))
CRONJOB = _rt("batch", "v1", "cronjobs", "CronJob", subresources=("status",), short_names=("cj",), categories=("all",))
PDB = _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", subresources=("status",), short_names=("pdb",))

NETWORKPOLICY = _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",))
INGRESS = _rt("networking.k8s.io", "v1", "ingresses", "Ingress", subresources=("status",), short_names=("ing",))
INGRESSCLASS = _rt("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False)
STORAGECLASS = _rt("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",))
PRIORITYCLASS = _rt("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",))
LEASE = _rt("coordination.k8s.io", "v1", "leases", "Lease")

ROLE = _rt("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDING = _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTERROLE = _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CLUSTERROLEBINDING = _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False)

CRD = _rt("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
          subresources=("status",), short_names=("crd", "crds"), categories=("api-extensions",))

_CREATE_ONLY = ("create",)
SELF_SUBJECT_ACCESS_REVIEW = _rt("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
                                 False, verbs=_CREATE_ONLY)
SELF_SUBJECT_RULES_REVIEW = _rt("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview",
                                False, verbs=_CREATE_ONLY)
SELF_SUBJECT_REVIEW = _rt("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
                          verbs=_CREATE_ONLY)
REVIEW_TYPES = (SELF_SUBJECT_ACCESS_REVIEW, SELF_SUBJECT_RULES_REVIEW, SELF_SUBJECT_REVIEW)

POD_METRICS = _rt("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", verbs=_READ_VERBS)
NODE_METRICS = _rt("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", False, verbs=_READ_VERBS)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    NAMESPACE, NODE, POD, SERVICE, ENDPOINTS, ENDPOINTSLICE, CONFIGMAP, SECRET, SERVICEACCOUNT, PVC, PV, EVENT,
    RESOURCEQUOTA, LIMITRANGE, PODTEMPLATE, REPLICATIONCONTROLLER,
    DEPLOYMENT, REPLICASET, STATEFULSET, DAEMONSET, CONTROLLERREVISION,
    HPA, JOB, CRONJOB, PDB, NETWORKPOLICY, INGRESS, INGRESSCLASS, STORAGECLASS, PRIORITYCLASS, LEASE,
    ROLE, ROLEBINDING, CLUSTERROLE, CLUSTERROLEBINDING, CRD, POD_METRICS, NODE_METRICS, *REVIEW_TYPES,
)

# Subresources whose body is another kind (discovery reports it).
_SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
_SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "eviction": ("create",),
    "binding": ("create",),
    "token": ("create",),
    "log": ("get",),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "finalize": ("update",),
    "ephemeralcontainers": ("get", "patch", "update"),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
}

# Preferred group order in discovery, as a real server lists them.
_GROUP_ORDER = ("", "apps", "events.k8s.io", "autoscaling", "batch", "networking.k8s.io", "policy",
                "rbac.authorization.k8s.io", "storage.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
                "coordination.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "metrics.k8s.io")


class Registry:
    """Built-in types plus CRD-registered kinds; thread-safe."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTIN_TYPES) -> None:
        self._lock = threading.RLock()
        self._types: list[ResourceType] = []
        self._by_plural: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_schemas: dict[tuple[str, str, str], dict] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType, *, schema: dict | None = None) -> None:
        with self._lock:
            old = self._by_plural.get((rt.group, rt.version, rt.plural))
            if old is not None:
                self._types.remove(old)
            self._types.append(rt)
            self._by_plural[(rt.group, rt.version, rt.plural)] = rt
            if schema is not None:
                self._crd_schemas[(rt.group, rt.version, rt.plural)] = schema
            else:
                self._crd_schemas.pop((rt.group, rt.version, rt.plural), None)

    def remove(self, rt: ResourceType) -> None:
        with self._lock:
            if self._by_plural.get((rt.group, rt.version, rt.plural)) == rt:
                self._types.remove(rt)
                del self._by_plural[(rt.group, rt.version, rt.plural)]
                self._crd_schemas.pop((rt.group, rt.version, rt.plural), None)

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType:
        with self._lock:
            rt = self._by_plural.get((group, version, plural))
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._by_plural.get((group, version, plural))

    def crd_schema(self, rt: ResourceType) -> dict | None:
        with self._lock:
            return self._crd_schemas.get((rt.group, rt.version, rt.plural))

    def is_builtin(self, rt: ResourceType) -> bool:
        return rt in BUILTIN_TYPES

    def types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types)

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> versions served, in discovery order ("" is the core group)."""
        with self._lock:
            groups: dict[str, list[str]] = {}
            for rt in self._types:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        order = {g: i for i, g in enumerate(_GROUP_ORDER)}
        return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    # --- discovery documents -------------------------------------------------------------

    def core_versions(self) -> dict:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}

    def api_group_list(self) -> dict:
        groups = []
        for group, versions in self.group_versions().items():
            if not group:
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict:
        versions = self.group_versions().get(group)
        if not versions or not group:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_resource_list(self, group: str, version: str) -> dict:
        with self._lock:
            types = [rt for rt in self._types if rt.group == group and rt.version == version]
        if not types:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources: list[dict] = []
        for rt in types:
            entry: dict = {"name": rt.plural, "singularName": rt.singular_name(), "namespaced": rt.namespaced,
                           "kind": rt.kind, "verbs": list(rt.verbs)}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                s_entry: dict = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                                 "kind": rt.kind, "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get",)))}
                if sub in _SUBRESOURCE_KINDS:
                    g, v, k = _SUBRESOURCE_KINDS[sub]
                    s_entry["kind"] = k
                    if g:
                        s_entry["group"] = g
                    s_entry["version"] = v
                resources.append(s_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
