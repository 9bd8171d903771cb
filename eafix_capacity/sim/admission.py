"""Admission: what the objects a namespace holds do to a create or an update before it is stored.

A real kube-apiserver runs every write through its admission chain, so the same Deployment
runs on one namespace and is refused on another: a ResourceQuota refuses the pod that would
go over ``hard`` (and a ReplicaSet's surge pod with it), a LimitRange fills in a container's
missing requests and refuses one above ``max``, a pod naming a ServiceAccount that does not
exist is refused. The sim's API handler and its controllers both create through
:func:`create` (and the handler updates through :func:`admit` and :func:`charge`), so both
paths meet the same plugins, in kube-apiserver's default order:

- mutating: LimitRanger, ServiceAccount, DefaultTolerationSeconds;
- validating: LimitRanger, ResourceQuota (always last).

Each plugin is a pure function of the object and the namespace's objects, after
kubernetes/kubernetes plugin/pkg/admission/ (limitranger, serviceaccount,
defaulttolerationseconds) and staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota.
Refusals are 403 Forbidden with the real text: ``pods "x" is forbidden: exceeded quota: ...``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from eafix_capacity import quantity
from eafix_capacity.errors import QuantityError
from eafix_capacity.quantity import Quantity
from eafix_capacity.sim import quota as Q
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import storage
from eafix_capacity.sim.apierror import ApiError, NotFoundError
from eafix_capacity.sim.resources import ResourceType

DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"
DEFAULT_TOLERATION_SECONDS = 300
_NOEXECUTE_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_MILLI_VALUE = (2**63 - 1) // 1000


def forbidden(rt: ResourceType, name: str, reason: str) -> ApiError:
    """apimachinery errors.NewForbidden, as admission.NewForbidden builds it."""
    qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    details: dict = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    return ApiError(403, "Forbidden", f'{qualified} "{name}" is forbidden: {reason}', details=details)


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several de-duplicated in brackets."""
    seen = list(dict.fromkeys(errors))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


def _q(text: object) -> Quantity | None:
    try:
        return quantity.parse(text)  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return None


def _shown(text: object) -> str:
    """A stored quantity as Go's ``Quantity.String()`` prints a decoded one."""
    try:
        return quantity.api_string(text)  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return str(text)


# --- LimitRanger ------------------------------------------------------------------------------

def limit_range_item_defaults(item: Mapping) -> dict:
    """pkg/apis/core/v1 SetDefaults_LimitRangeItem: for a Container item, ``default`` falls back
    to ``max``, and ``defaultRequest`` to ``default``, then to ``min``."""
    out = dict(item)
    if item.get("type") != "Container":
        return out
    lists = {k: item[k] if isinstance(item.get(k), Mapping) else {}
             for k in ("default", "defaultRequest", "max", "min")}
    default, request = dict(lists["default"]), dict(lists["defaultRequest"])
    for key, value in lists["max"].items():
        default.setdefault(key, value)
    for key, value in default.items():
        request.setdefault(key, value)
    for key, value in lists["min"].items():
        request.setdefault(key, value)
    for key, value in (("default", default), ("defaultRequest", request)):
        if value:  # an empty ResourceList is omitted (omitempty)
            out[key] = value
    return out


def _items(limit_range: Mapping) -> list[dict]:
    return [limit_range_item_defaults(i) for i in ((limit_range.get("spec") or {}).get("limits") or [])
            if isinstance(i, Mapping)]


def limit_ranger_mutate(pod: dict, limit_ranges: Iterable[Mapping]) -> None:
    """limitranger PodMutateLimitFunc: each LimitRange's Container defaults fill what a container
    (and an init container) lacks, noted in the ``kubernetes.io/limit-ranger`` annotation."""
    spec = pod.get("spec") or {}
    for lr in limit_ranges:
        limits: dict = {}
        requests: dict = {}
        for item in _items(lr):
            if item.get("type") == "Container":
                requests.update(item.get("defaultRequest") or {})
                limits.update(item.get("default") or {})
        notes: list[str] = []
        for kind, bucket in (("container", "containers"), ("init container", "initContainers")):
            for c in spec.get(bucket) or []:
                if not isinstance(c, dict):
                    continue
                res: dict = c["resources"] if isinstance(c.get("resources"), dict) else {}
                have_limits: dict = res["limits"] if isinstance(res.get("limits"), dict) else {}
                have_requests: dict = res["requests"] if isinstance(res.get("requests"), dict) else {}
                set_limits = sorted(k for k in limits if k not in have_limits)
                set_requests = sorted(k for k in requests if k not in have_requests)
                for k in set_limits:
                    have_limits[k] = limits[k]
                for k in set_requests:
                    have_requests[k] = requests[k]
                if have_limits:
                    res["limits"] = have_limits
                if have_requests:
                    res["requests"] = have_requests
                c["resources"] = res
                name = c.get("name", "")
                if set_requests:
                    notes.append(f"{', '.join(set_requests)} request for {kind} {name}")
                if set_limits:
                    notes.append(f"{', '.join(set_limits)} limit for {kind} {name}")
        if notes:
            meta = pod.setdefault("metadata", {})
            meta.setdefault("annotations", {})[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _compared(req: Quantity | None, lim: Quantity | None, enforced: Quantity) -> tuple[int, int, int]:
    """limitranger requestLimitEnforcedValues: milli values when none overflows, else whole values."""
    values = [q or Q.ZERO for q in (req, lim)] + [enforced]
    if all(v.int_value() <= _MAX_MILLI_VALUE for v in values):
        a, b, c = (v.milli_value() for v in values)
    else:
        a, b, c = (v.int_value() for v in values)
    return a, b, c


def _min_constraint(kind: str, name: str, enforced_text: object, requests: Mapping, limits: Mapping) -> str | None:
    enforced = _q(enforced_text)
    if enforced is None:
        return None
    req, lim = _q(requests.get(name)) if name in requests else None, _q(limits.get(name)) if name in limits else None
    r, lv, e = _compared(req, lim, enforced)
    shown = _shown(enforced_text)
    if name not in requests:
        return f"minimum {name} usage per {kind} is {shown}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {shown}, but request is {_shown(requests[name])}"
    if name in limits and lv < e:
        return f"minimum {name} usage per {kind} is {shown}, but limit is {_shown(limits[name])}"
    return None


def _max_constraint(kind: str, name: str, enforced_text: object, requests: Mapping, limits: Mapping) -> str | None:
    enforced = _q(enforced_text)
    if enforced is None:
        return None
    req, lim = _q(requests.get(name)) if name in requests else None, _q(limits.get(name)) if name in limits else None
    r, lv, e = _compared(req, lim, enforced)
    shown = _shown(enforced_text)
    if name not in limits:
        return f"maximum {name} usage per {kind} is {shown}.  No limit is specified"
    if lv > e:
        return f"maximum {name} usage per {kind} is {shown}, but limit is {_shown(limits[name])}"
    if name in requests and r > e:
        return f"maximum {name} usage per {kind} is {shown}, but request is {_shown(requests[name])}"
    return None


def _max_request_constraint(kind: str, name: str, enforced_text: object, requests: Mapping) -> str | None:
    enforced = _q(enforced_text)
    if enforced is None:
        return None
    shown = _shown(enforced_text)
    if name not in requests:
        return f"maximum {name} usage per {kind} is {shown}.  No request is specified"
    r, _, e = _compared(_q(requests[name]), None, enforced)
    if r > e:
        return f"maximum {name} usage per {kind} is {shown}, but request is {_shown(requests[name])}"
    return None


def _ratio_constraint(kind: str, name: str, enforced_text: object, requests: Mapping, limits: Mapping) -> str | None:
    enforced = _q(enforced_text)
    if enforced is None:
        return None
    shown = _shown(enforced_text)
    req, lim = _q(requests.get(name)) if name in requests else None, _q(limits.get(name)) if name in limits else None
    r, lv, _ = _compared(req, lim, enforced)
    if req is None or r == 0:
        return f"{name} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0"
    if lim is None or lv == 0:
        return f"{name} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
    ratio = lv / r
    if enforced.int_value() <= _MAX_MILLI_VALUE:
        observed, allowed = ratio * 1000, float(enforced.milli_value())
    else:
        observed, allowed = ratio, float(enforced.int_value())
    if observed > allowed:
        return f"{name} max limit to request ratio per {kind} is {shown}, but provided ratio is {ratio:f}"
    return None


def _item_errors(kind: str, item: Mapping, requests: Mapping, limits: Mapping) -> list[str]:
    errors: list[str] = []
    checks = ((_min_constraint, "min"), (_max_constraint, "max"), (_ratio_constraint, "maxLimitRequestRatio"))
    for check, bound in checks:
        for name, value in sorted((item.get(bound) or {}).items()):
            message = check(kind, name, value, requests, limits)
            if message:
                errors.append(message)
    return errors


def limit_ranger_validate(plural: str, obj: Mapping, limit_ranges: Iterable[Mapping]) -> str | None:
    """limitranger PodValidateLimitFunc / PersistentVolumeClaimValidateLimitFunc: the first
    LimitRange the object breaks, as its aggregated message (``maximum cpu usage per Container is
    2, but limit is 4``); None when every range admits it."""
    for lr in limit_ranges:
        errors: list[str] = []
        for item in _items(lr):
            kind = item.get("type")
            if plural == "pods" and kind == "Container":
                spec = obj.get("spec") or {}
                for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
                    res = (c.get("resources") or {}) if isinstance(c, Mapping) else {}
                    errors += _item_errors("Container", item, res.get("requests") or {}, res.get("limits") or {})
            elif plural == "pods" and kind == "Pod":
                requests = Q.format_list(Q.pod_requests(obj))
                limits = Q.format_list(Q.pod_limits(obj))
                errors += _item_errors("Pod", item, requests, limits)
            elif plural == "persistentvolumeclaims" and kind == "PersistentVolumeClaim":
                requests = ((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}
                for name, value in sorted((item.get("min") or {}).items()):
                    message = _min_constraint("PersistentVolumeClaim", name, value, requests, {})
                    if message:
                        errors.append(message)
                for name, value in sorted((item.get("max") or {}).items()):
                    message = _max_request_constraint("PersistentVolumeClaim", name, value, requests)
                    if message:
                        errors.append(message)
        if errors:
            return _aggregate(errors)
    return None


# --- ServiceAccount and DefaultTolerationSeconds ----------------------------------------------

def _token_volume_name(pod: Mapping, namespace: str) -> str:
    meta = pod.get("metadata") or {}
    seed = f"{namespace}/{meta.get('name') or meta.get('generateName') or ''}/{meta.get('uid', '')}"
    digest = hashlib.sha256(seed.encode()).digest()
    return TOKEN_VOLUME_PREFIX + "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:5])


def _token_volume(name: str) -> dict:
    """serviceaccount createVolume: the projected token, the cluster CA and the namespace."""
    return {"name": name, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
        "defaultMode": 420}}


def service_account_mutate(pod: dict, account: Mapping | None, *, namespace: str, shown_name: str) -> None:
    """serviceaccount Plugin.Admit on create: the ``default`` account when none is named, a refusal
    when the named one does not exist, the API token mounted unless automount is off (pod first,
    then the account), and the account's image pull secrets."""
    meta = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return
    spec = pod.setdefault("spec", {})
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
    sa_name = spec["serviceAccountName"]
    spec["serviceAccount"] = sa_name  # the deprecated alias the defaulting keeps in step
    if account is None:
        raise forbidden(R.POD, shown_name, f"error looking up service account {namespace}/{sa_name}: "
                                           f'serviceaccount "{sa_name}" not found')
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken")
    if automount is not False:
        volumes = spec.get("volumes") or []
        existing = next((v.get("name") for v in volumes if isinstance(v, Mapping)
                         and str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)), None)
        vol_name = existing or _token_volume_name(pod, namespace)
        needed = False
        for bucket in ("initContainers", "containers"):
            for c in spec.get(bucket) or []:
                if not isinstance(c, dict):
                    continue
                mounts = c.get("volumeMounts") or []
                if not any(isinstance(m, Mapping) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                    c["volumeMounts"] = [*mounts, {"name": vol_name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
                    needed = True
        if needed and existing is None:
            spec["volumes"] = [*volumes, _token_volume(vol_name)]
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s.get("name")} for s in account["imagePullSecrets"]
                                    if isinstance(s, Mapping)]


def default_toleration_seconds(pod: dict) -> None:
    """defaulttolerationseconds Plugin.Admit: tolerate ``not-ready`` and ``unreachable`` NoExecute
    taints for 300 s unless a toleration already covers them (an empty key or effect covers all)."""
    spec = pod.setdefault("spec", {})
    tolerations = spec.get("tolerations") or []
    for key in _NOEXECUTE_KEYS:
        covered = any(isinstance(t, Mapping) and t.get("key", "") in (key, "")
                      and t.get("effect", "") in ("NoExecute", "") for t in tolerations)
        if not covered:
            tolerations = [*tolerations, {"key": key, "operator": "Exists", "effect": "NoExecute",
                                          "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}]
    spec["tolerations"] = tolerations


# --- ResourceQuota ----------------------------------------------------------------------------

def quota_check(rt: ResourceType, obj: Mapping, *, operation: str, old: Mapping | None, subresource: str | None,
                quotas: Iterable[Mapping], shown_name: str, now: datetime) -> list[dict]:
    """resourcequota CheckRequest: the quotas whose ``status.used`` the request raises, each with the
    new ``used`` (to write once the object is stored); 403 when one would go over ``hard``, when a
    pod lacks a quota'd cpu/memory, or when a quota's usage is not known yet."""
    group, plural = rt.group, rt.plural
    if not Q.handles(group, plural, operation, subresource):
        return []
    quotas = [q for q in quotas if Q.matches(q, group, plural, obj)]
    for rq in quotas:
        status = rq.get("status") or {}
        restricted = Q.matching_resources(group, plural, status.get("hard") or {})
        if plural == "pods" and not group:
            problem = Q.pod_constraints(restricted, obj)
            if problem:
                raise forbidden(rt, shown_name, f"failed quota: {rq['metadata']['name']}: {problem}")
        missing = [r for r in restricted if r not in (status.get("used") or {})]
        if missing:
            raise forbidden(rt, shown_name, f"status unknown for quota: {rq['metadata']['name']}, resources: "
                                            f"{','.join(sorted(restricted))}")
    if not quotas:
        return []
    delta = Q.usage(group, plural, obj, now=now)
    negative = sorted(k for k, v in delta.items() if v.value < 0)
    if negative:
        raise forbidden(rt, shown_name, f"quota usage is negative for resource(s): {','.join(negative)}")
    if operation == "UPDATE" and old is not None:
        before = Q.usage(group, plural, old, now=now)
        # quota.SubtractWithNonNegativeResult: an update is charged what it adds, never credited
        delta = {k: (v - before[k] if k in before else v) for k, v in delta.items()}
        delta = {k: v if v.value > 0 else Q.ZERO for k, v in delta.items()}
    delta = Q.remove_zeros(delta)
    if not delta:
        return []
    updates: list[dict] = []
    for rq in quotas:
        status = rq.get("status") or {}
        hard = Q.parse_list(status.get("hard"))
        used = Q.parse_list(status.get("used"))
        requested = Q.mask(delta, hard)
        if not requested:
            continue
        new_used = Q.add(used, requested)
        exceeded = Q.less_than_or_equal(Q.mask(new_used, requested), hard)
        if exceeded:
            raise forbidden(rt, shown_name, f"exceeded quota: {rq['metadata']['name']}, requested: "
                                            f"{Q.pretty(Q.mask(requested, exceeded))}, used: "
                                            f"{Q.pretty(Q.mask(used, exceeded))}, limited: "
                                            f"{Q.pretty(Q.mask(hard, exceeded))}")
        updates.append({**rq, "status": {**status, "used": {**(status.get("used") or {}),
                                                             **Q.format_list(Q.mask(new_used, requested))}}})
    return updates


# --- the chain over a store -------------------------------------------------------------------

@dataclass
class Admitted:
    """An object the chain let through, and the quota status writes its admission costs."""

    obj: dict
    quota_updates: list[dict] = field(default_factory=list)


def _namespace_of(rt: ResourceType, obj: Mapping) -> str:
    return ((obj.get("metadata") or {}).get("namespace") or "default") if rt.namespaced else ""


def _now(store: Any) -> datetime:
    """The store's clock (the sim clock, which deletion timestamps are on), else the wall clock."""
    clock = getattr(store, "clock", None)
    return clock.now() if clock is not None else datetime.now(timezone.utc)


def _namespace_open(store: Any, namespace: str) -> bool:
    try:
        ns = store.get(R.NAMESPACE, None, namespace)
    except ApiError:
        return False
    return not ns["metadata"].get("deletionTimestamp")


def _listed(store: Any, rt: ResourceType, namespace: str) -> list[dict]:
    objs, _, _ = store.list_objects(rt, namespace)
    return objs


def admit(store: Any, rt: ResourceType, obj: dict, *, operation: str, old: Mapping | None = None,
          subresource: str | None = None, generate_name: Callable[[str], str] | None = None,
          now: datetime | None = None) -> Admitted:
    """Run ``obj`` through the chain against ``store``'s objects; the caller holds ``store.lock``
    until the write and :func:`charge` are done. ``obj`` is changed in place (mutating plugins) and
    a ``generateName``-only object gets its name between the phases, as the registry names it."""
    now = now or _now(store)
    namespace = _namespace_of(rt, obj)
    meta = obj.setdefault("metadata", {})
    if namespace and not _namespace_open(store, namespace):
        return Admitted(obj)  # NamespaceLifecycle, first in the chain: the store refuses it (404, or 403 terminating)
    builtin_pod = rt == R.POD and not subresource
    if builtin_pod and namespace:
        shown = meta.get("name") or meta.get("generateName") or ""
        if operation == "CREATE":
            limit_ranger_mutate(obj, _listed(store, R.LIMITRANGE, namespace))
            sa_name = (obj.get("spec") or {}).get("serviceAccountName") or (obj.get("spec") or {}).get(
                "serviceAccount") or DEFAULT_SERVICE_ACCOUNT
            try:
                account = store.get(R.SERVICEACCOUNT, namespace, sa_name)
            except NotFoundError:
                account = None
            service_account_mutate(obj, account, namespace=namespace, shown_name=shown)
        default_toleration_seconds(obj)
    if operation == "CREATE" and not subresource and rt in (R.PVC, R.PV):
        # DefaultStorageClass and StorageObjectInUseProtection
        storage.admit(rt.kind, obj, store.list_objects(R.STORAGECLASS)[0])
    if operation == "CREATE" and not meta.get("name") and meta.get("generateName"):
        prefix = str(meta["generateName"])
        meta["name"] = generate_name(prefix) if generate_name else store._generate_name(rt, namespace, prefix)
    if not namespace or subresource:
        return Admitted(obj)
    shown = meta.get("name") or meta.get("generateName") or ""
    if operation == "CREATE" and rt in (R.POD, R.PVC):
        problem = limit_ranger_validate(rt.plural, obj, _listed(store, R.LIMITRANGE, namespace))
        if problem:
            raise forbidden(rt, shown, problem)
    quotas = _listed(store, R.RESOURCEQUOTA, namespace)
    if not quotas:
        return Admitted(obj)
    return Admitted(obj, quota_check(rt, obj, operation=operation, old=old, subresource=subresource, quotas=quotas,
                                     shown_name=shown, now=now))


def charge(store: Any, admitted: Admitted, *, dry_run: bool = False) -> None:
    """Write the quotas' new ``status.used`` (admission charges on create; the controller recounts)."""
    if dry_run:
        return
    for rq in admitted.quota_updates:
        body = {"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": rq["metadata"]["name"], "namespace": rq["metadata"].get("namespace")},
                "status": rq["status"]}
        store.update_raw(R.RESOURCEQUOTA, body, subresource="status")


def create(store: Any, rt: ResourceType, obj: dict, *, dry_run: bool = False,
           generate_name: Callable[[str], str] | None = None) -> bytes:
    """Admit and store a new object in one step under the store's lock (the controllers' path)."""
    with store.lock:
        admitted = admit(store, rt, obj, operation="CREATE", generate_name=generate_name)
        raw: bytes = store.create_raw(rt, admitted.obj, dry_run=dry_run)
        charge(store, admitted, dry_run=dry_run)
    return raw


# --- status the resourcequota controller keeps ------------------------------------------------

def quota_status(store: Any, rq: Mapping, *, now: datetime | None = None) -> dict:
    """``status`` as the resourcequota controller computes it: ``hard`` from ``spec.hard`` and
    ``used`` recounted over the namespace's objects."""
    now = now or _now(store)
    namespace = rq["metadata"].get("namespace") or "default"
    hard = dict(((rq.get("spec") or {}).get("hard")) or {})
    objects: dict[tuple[str, str], list[dict]] = {}
    for group, plural in Q.tracked_types(hard):
        rt = next((t for t in store.registry.types() if t.group == group and t.plural == plural and t.namespaced),
                  None)
        if rt is not None:
            objects[(group, plural)] = _listed(store, rt, namespace)
    return {"hard": hard, "used": Q.calculate_used(rq, objects, now=now)}


def refresh_quota(store: Any, namespace: str, name: str) -> None:
    """Recount one quota now (after it is created or its ``hard`` changes), as the controller would
    within moments: until it does, a real cluster's admission does not enforce the new figures."""
    with store.lock:
        try:
            rq = store.get(R.RESOURCEQUOTA, namespace, name)
        except ApiError:
            return
        status = quota_status(store, rq)
        if status != rq.get("status"):
            store.update_raw(R.RESOURCEQUOTA, {"apiVersion": "v1", "kind": "ResourceQuota",
                                               "metadata": {"name": name, "namespace": namespace},
                                               "status": status}, subresource="status")
