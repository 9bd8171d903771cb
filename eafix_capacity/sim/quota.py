"""What an object costs against a ResourceQuota, computed as kube-apiserver's quota evaluators do.

ResourceQuota admission (charging a create) and the resourcequota controller (recounting
``status.used``) must agree on what a pod, a Service or a claim uses, or a namespace that
a real cluster fills would stay open on the sim. This module is that shared arithmetic,
pure over plain API objects, after k8s.io/kubernetes pkg/quota/v1/evaluator/core (pods.go,
services.go, persistent_volume_claims.go), the generic object-count evaluator
(k8s.io/apiserver/pkg/quota/v1/generic) and the resource-list helpers of
k8s.io/apiserver/pkg/quota/v1/resources.go (Add, Mask, LessThanOrEqual).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Mapping

from eafix_capacity import quantity
from eafix_capacity.errors import QuantityError
from eafix_capacity.quantity import Quantity

ResourceList = dict[str, Quantity]

ONE = quantity.parse("1")
ZERO = quantity.parse("0")
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"

# pods.go podResources
_POD_RESOURCES = ("count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                  "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods")
_POD_RESOURCE_PREFIXES = ("hugepages-", "requests.hugepages-")
# pods.go validationSet: quota on these makes every container name them ("this was a mistake")
_VALIDATION_SET = frozenset(("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"))
_SERVICE_RESOURCES = ("count/services", "services", "services.loadbalancers", "services.nodeports")
_PVC_RESOURCES = ("count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage")
# pkg/quota/v1/install legacyObjectCountAliases
LEGACY_COUNT_ALIASES = {("", "configmaps"): "configmaps", ("", "resourcequotas"): "resourcequotas",
                        ("", "replicationcontrollers"): "replicationcontrollers", ("", "secrets"): "secrets"}


@lru_cache(maxsize=4096)
def parse(text: str) -> Quantity:
    """``quantity.parse``, memoised: a namespace's pods repeat the same few request texts."""
    return quantity.parse(text)


def parse_list(values: object) -> ResourceList:
    """A ResourceList (``{"cpu": "500m"}``) as Quantities; entries that are not quantities are skipped
    (validation refuses them before anything is stored)."""
    out: ResourceList = {}
    if isinstance(values, Mapping):
        for key, text in values.items():
            try:
                out[str(key)] = parse(text) if isinstance(text, str) else quantity.parse(text)
            except (QuantityError, TypeError):
                continue
    return out


def format_list(values: Mapping[str, Quantity]) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(values.items())}


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def mask(values: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    keep = set(names)
    return {k: v for k, v in values.items() if k in keep}


def remove_zeros(values: Mapping[str, Quantity]) -> ResourceList:
    return {k: v for k, v in values.items() if v.value != 0}


def less_than_or_equal(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> list[str]:
    """The names where ``a`` exceeds ``b`` (resources.go LessThanOrEqual; names ``b`` lacks are free)."""
    return sorted(k for k, limit in b.items() if k in a and a[k] > limit)


def pretty(values: Mapping[str, Quantity]) -> str:
    """controller.go prettyPrint: ``limits.cpu=1,requests.cpu=500m``, names sorted."""
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


# --- pods -------------------------------------------------------------------------------------

def _container_list(c: Mapping, bucket: str) -> ResourceList:
    return parse_list(((c.get("resources") or {}) if isinstance(c.get("resources"), Mapping) else {}).get(bucket))


def _max_into(target: ResourceList, values: Mapping[str, Quantity]) -> None:
    for k, v in values.items():
        if k not in target or v > target[k]:
            target[k] = v


def _aggregate(pod: Mapping, bucket: str) -> ResourceList:
    """component-helpers resource.PodRequests/PodLimits: containers summed, then the larger of that
    and each init container (sidecars, restartPolicy Always, add to both), plus the pod overhead."""
    spec = pod.get("spec") or {}
    total: ResourceList = {}
    for c in spec.get("containers") or []:
        if isinstance(c, Mapping):
            total = add(total, _container_list(c, bucket))
    sidecars: ResourceList = {}
    init_max: ResourceList = {}
    for c in spec.get("initContainers") or []:
        if not isinstance(c, Mapping):
            continue
        own = _container_list(c, bucket)
        if c.get("restartPolicy") == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            _max_into(init_max, sidecars)
        else:
            _max_into(init_max, add(own, sidecars))
    _max_into(total, init_max)
    return add(total, parse_list(spec.get("overhead")))


def pod_requests(pod: Mapping) -> ResourceList:
    return _aggregate(pod, "requests")


def pod_limits(pod: Mapping) -> ResourceList:
    return _aggregate(pod, "limits")


def _compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """pods.go podComputeUsageHelper."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            out[name] = value
            out[f"requests.{name}"] = value
        elif _is_extended(name):
            out[f"requests.{name}"] = value
    return out


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    """v1 helper IsExtendedResourceName: not native, not prefixed ``requests.``."""
    return not _is_native(name) and not name.startswith("requests.")


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def pod_charged(pod: Mapping, *, now: datetime) -> bool:
    """pods.go QuotaV1Pod: terminal pods, and pods past their deletion grace period, are not charged."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted = _parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int) and now > deleted + timedelta(seconds=grace):
        return False
    return True


def pod_usage(pod: Mapping, *, now: datetime) -> ResourceList:
    """pods.go PodUsageFunc: ``count/pods`` always, compute resources while the pod is charged."""
    out: ResourceList = {"count/pods": ONE}
    if not pod_charged(pod, now=now):
        return out
    return add(out, _compute_usage(pod_requests(pod), pod_limits(pod)))


def pod_constraints(required: Iterable[str], pod: Mapping) -> str | None:
    """pods.go Constraints: the ``must specify ...`` text when a container lacks a quota'd cpu/memory."""
    wanted = set(required) & _VALIDATION_SET
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if not isinstance(c, Mapping):
            continue
        have = set(_compute_usage(_container_list(c, "requests"), _container_list(c, "limits")))
        for name in wanted - have:
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))


def is_best_effort(pod: Mapping) -> bool:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if isinstance(c, Mapping) and (_container_list(c, "requests") or _container_list(c, "limits")):
            return False
    return True


def _scope_selectors(quota: Mapping) -> list[dict]:
    """controller.go getScopeSelectorsFromQuota: ``spec.scopes`` as Exists, then ``scopeSelector``."""
    spec = quota.get("spec") or {}
    out = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or [] if isinstance(s, str)]
    out += [e for e in ((spec.get("scopeSelector") or {}).get("matchExpressions") or []) if isinstance(e, dict)]
    return out


def _pod_matches_scope(selector: Mapping, pod: Mapping) -> bool:
    """pods.go podMatchesScopeFunc."""
    spec = pod.get("spec") or {}
    name = selector.get("scopeName")
    terminating = isinstance(spec.get("activeDeadlineSeconds"), int) and spec["activeDeadlineSeconds"] >= 0
    if name == "Terminating":
        return terminating
    if name == "NotTerminating":
        return not terminating
    if name == "BestEffort":
        return is_best_effort(pod)
    if name == "NotBestEffort":
        return not is_best_effort(pod)
    if name == "PriorityClass":
        pc = spec.get("priorityClassName") or ""
        op, values = selector.get("operator"), selector.get("values") or []
        if op == "Exists":
            return bool(pc)
        if op == "DoesNotExist":
            return not pc
        if op == "In":
            return bool(pc) and pc in values
        if op == "NotIn":
            return not pc or pc not in values
        return False
    if name == "CrossNamespacePodAffinity":
        affinity = spec.get("affinity") or {}
        for kind in ("podAffinity", "podAntiAffinity"):
            part = affinity.get(kind) or {}
            terms = list(part.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
            terms += [w.get("podAffinityTerm") or {} for w in
                      part.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
            if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
                return True
        return False
    return False


# --- the evaluators ---------------------------------------------------------------------------

def object_count_name(group: str, plural: str) -> str:
    """generic.ObjectCountQuotaResourceNameFor: ``count/pods``, ``count/deployments.apps``."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def matching_resources(group: str, plural: str, names: Iterable[str]) -> list[str]:
    """The quota resource names an object of ``group``/``plural`` is charged on (MatchingResources)."""
    names = list(names)
    if (group, plural) == ("", "pods"):
        return [n for n in names if n in _POD_RESOURCES or n.startswith(_POD_RESOURCE_PREFIXES)
                or (n.startswith("requests.") and not _is_native(n))]
    if (group, plural) == ("", "services"):
        return [n for n in names if n in _SERVICE_RESOURCES]
    if (group, plural) == ("", "persistentvolumeclaims"):
        return [n for n in names if n in _PVC_RESOURCES or (STORAGE_CLASS_SUFFIX in n and (
            n.endswith(STORAGE_CLASS_SUFFIX + "requests.storage")
            or n.endswith(STORAGE_CLASS_SUFFIX + "persistentvolumeclaims")))]
    own = {object_count_name(group, plural), LEGACY_COUNT_ALIASES.get((group, plural), "")} - {""}
    return [n for n in names if n in own]


def handles(group: str, plural: str, operation: str, subresource: str | None) -> bool:
    """Evaluator.Handles: what operations an evaluator charges (pods and counts on create only)."""
    if subresource:
        return False
    if (group, plural) in (("", "services"), ("", "persistentvolumeclaims")):
        return operation in ("CREATE", "UPDATE")
    return operation == "CREATE"


def usage(group: str, plural: str, obj: Mapping, *, now: datetime) -> ResourceList:
    """Evaluator.Usage of one object."""
    count: ResourceList = {object_count_name(group, plural): ONE}
    alias = LEGACY_COUNT_ALIASES.get((group, plural))
    if alias:
        count[alias] = ONE
    if (group, plural) == ("", "pods"):
        return pod_usage(obj, now=now)
    spec = obj.get("spec") or {}
    if (group, plural) == ("", "services"):
        ports = len(spec.get("ports") or [])
        out = {**count, "services": ONE, "services.loadbalancers": ZERO, "services.nodeports": ZERO}
        if spec.get("type") == "NodePort":
            out["services.nodeports"] = quantity.parse(str(ports))
        elif spec.get("type") == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                ports = sum(1 for p in spec.get("ports") or [] if isinstance(p, Mapping) and p.get("nodePort"))
            out["services.nodeports"] = quantity.parse(str(ports))
            out["services.loadbalancers"] = ONE
        return out
    if (group, plural) == ("", "persistentvolumeclaims"):
        out = {**count, "persistentvolumeclaims": ONE}
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        cls = annotations.get("volume.beta.kubernetes.io/storage-class") or spec.get("storageClassName") or ""
        if cls:
            out[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
        requested = parse_list((spec.get("resources") or {}).get("requests")).get("storage")
        allocated = parse_list((obj.get("status") or {}).get("allocatedResources")).get("storage")
        storage = max((q for q in (requested, allocated) if q is not None), default=None)
        if storage is not None:
            out["requests.storage"] = storage
            if cls:
                out[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return out
    return count


def matches(quota: Mapping, group: str, plural: str, obj: Mapping) -> bool:
    """generic.Matches: the quota tracks at least one of the object's resources (by ``status.hard``)
    and every scope selects it (scopes select pods only)."""
    hard = ((quota.get("status") or {}).get("hard")) or {}
    if not matching_resources(group, plural, hard):
        return False
    selectors = _scope_selectors(quota)
    if (group, plural) == ("", "pods"):
        return all(_pod_matches_scope(s, obj) for s in selectors)
    return not selectors


def calculate_used(quota: Mapping, objects: Mapping[tuple[str, str], Iterable[Mapping]], *,
                   now: datetime) -> dict[str, str]:
    """What the resourcequota controller writes to ``status.used``: for every ``spec.hard`` name some
    evaluator tracks, the sum over ``objects`` (by (group, plural), one namespace's), zero when none."""
    hard = list(((quota.get("spec") or {}).get("hard")) or {})
    view = {"spec": quota.get("spec") or {}, "status": {"hard": dict.fromkeys(hard, "0")}}
    used: ResourceList = {}
    for (group, plural), items in objects.items():
        names = matching_resources(group, plural, hard)
        if not names:
            continue
        total: ResourceList = dict.fromkeys(names, ZERO)
        for obj in items:
            if matches(view, group, plural, obj):
                total = add(total, mask(usage(group, plural, obj, now=now), names))
        used = add(used, total)
    return format_list(used)


def tracked_types(hard_names: Iterable[str]) -> set[tuple[str, str]]:
    """The (group, plural) pairs whose objects a quota with these ``hard`` names counts."""
    out: set[tuple[str, str]] = set()
    for name in hard_names:
        for gp in (("", "pods"), ("", "services"), ("", "persistentvolumeclaims"), *LEGACY_COUNT_ALIASES):
            if matching_resources(*gp, [name]):
                out.add(gp)
        if name.startswith("count/"):
            plural, _, group = name[len("count/"):].partition(".")
            out.add((group, plural))
    return out
