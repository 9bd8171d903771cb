"""Manifests back into the service catalogue, so ``plan`` runs on manifests others wrote.

Deployments and StatefulSets become services; HorizontalPodAutoscalers their HPA;
volume claim templates and the PersistentVolumeClaims a pod mounts their storage.
What Kubernetes has no field for (tier, runtime, description, the source of each figure)
is read from the ``eafix.io/*`` labels and annotations the renderer writes, and guessed
from the image and kind when they are absent, with ``imported: <file>`` as the source.
Quantities are parsed here, so a bad one is reported with the manifest's file, object
and field path; so is a memory quantity Kubernetes accepts but nobody means (``256m``:
256 millibytes, a typo for ``256Mi``).

Nothing is dropped silently: an object of unknown kind (``Deploymnt``, or a Deployment in
a version no longer served) is an error, or with ``ignore_unknown_kinds`` a warning per
skipped object; pods the plan does not size (bare Pods, ReplicaSets, DaemonSets, Jobs,
CronJobs) get a warning each.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..kobject import get_in
from ..catalog import RUNTIMES, TIERS, Catalog, catalog_from_dict
from ..errors import ManifestError, QuantityError
from ..quantity import from_bytes, from_milli, memory_typo, parse
from .kinds import known_kinds, skipped_message, unknown_kind_error, unknown_kinds
from .layout import object_ref
from .load import LoadedObject, LoadResult, ManifestWarning, load_manifests
from .render import (A_DESCRIPTION, A_IMAGE, A_ORDER, A_REPLICAS, A_SOURCE, L_COMPONENT, L_INJECT,
                     KUBERNETES_VERSION, L_RUNTIME, L_TIER)

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# pod-bearing kinds the plan does not size: reported, never silently dropped
UNPLANNED_POD_KINDS = ("Pod", "ReplicaSet", "ReplicationController", "DaemonSet", "Job", "CronJob")
_RUNTIME_BY_IMAGE = (("redis", "redis"), ("postgres", "postgres"), ("prometheus", "prometheus"),
                     ("grafana", "grafana"))


def _quantity(value: Any, *, cpu: bool, file: str, obj: str, field: str, memory: bool = False) -> int:
    try:
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
            raise QuantityError("not a quantity", value=value)
        q = parse(value)
    except QuantityError as e:
        raise QuantityError("invalid quantity that Kubernetes would reject", file=file, obj=obj,
                            field=field, value=value,
                            valid="a Kubernetes quantity such as 250m, 0.5, 512Mi or 1Gi") from e
    if q.value < 0:
        raise QuantityError("negative quantity", file=file, obj=obj, field=field, value=value,
                            valid="zero or more")
    typo = memory_typo(value) if memory else None
    if typo:
        # Kubernetes admits it (rounded up to whole bytes), but 256m is 256 millibytes
        raise QuantityError("not a whole number of bytes", file=file, obj=obj, field=field,
                            value=value, valid=typo)
    return q.milli_value() if cpu else q.int_value()


def _container_resources(c: dict, *, file: str, obj: str, path: str) -> dict:
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    out: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for key, cpu in (("cpu", True), ("memory", False)):
        r, l = req.get(key), lim.get(key)
        if r is None and l is None:
            raise ManifestError(f"container without a {key} request or limit", file=file, obj=obj,
                                field=f"{path}.resources.requests.{key}",
                                valid="set resources.requests and resources.limits; the plan needs both")
        given = {part: _quantity(v, cpu=cpu, memory=not cpu, file=file, obj=obj,
                                 field=f"{path}.resources.{part}.{key}")
                 for part, v in (("requests", r), ("limits", l)) if v is not None}
        # Kubernetes defaults a missing request to the limit; no limit: plan with the request
        rv = given["requests"] if "requests" in given else given["limits"]
        lv = given.get("limits", rv)
        out["requests"][key] = str(from_milli(rv)) if cpu else str(from_bytes(rv))
        out["limits"][key] = str(from_milli(lv)) if cpu else str(from_bytes(lv))
    return out


def _guess_runtime(labels: dict, containers: list[dict]) -> str:
    if labels.get(L_RUNTIME) in RUNTIMES:
        return labels[L_RUNTIME]
    image = str(containers[0].get("image", "")).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    for needle, runtime in _RUNTIME_BY_IMAGE:
        if needle in image:
            return runtime
    for c in containers:
        if any(isinstance(e, dict) and e.get("name") == "JAVA_OPTS" for e in c.get("env") or []):
            return "jvm"
    return "generic"


def _guess_tier(kind: str, labels: dict, runtime: str) -> str:
    for key in (L_TIER, L_COMPONENT):
        if labels.get(key) in TIERS:
            return labels[key]
    if runtime in ("prometheus", "grafana"):
        return "monitoring"
    return "infrastructure" if kind == "StatefulSet" else "trading"


def _port(containers: list[dict], services: list[dict], pod_labels: dict) -> int | None:
    for c in containers:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
                return p["containerPort"]
    for s in services:
        sel = get_in(s, "spec", "selector") or {}
        if sel and all(pod_labels.get(k) == v for k, v in sel.items()):
            for p in get_in(s, "spec", "ports") or []:
                if isinstance(p.get("port"), int):
                    return p["port"]
    return None


def _count(value: Any, *, minimum: int, file: str, obj: str, field: str) -> int:
    """A replica count or percentage from a manifest, checked where it was written."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ManifestError(f"not a whole number >= {minimum}", file=file, obj=obj, field=field,
                            value=value, valid=f"an integer of at least {minimum}")
    return value


def _hpa_for(kind: str, name: str, namespace: str, hpas: list[LoadedObject]) -> tuple[dict, str] | None:
    for lo in hpas:
        ref = get_in(lo.obj, "spec", "scaleTargetRef") or {}
        if ref.get("kind") == kind and ref.get("name") == name \
                and (get_in(lo.obj, "metadata", "namespace") or "") == namespace:
            spec, where = lo.obj["spec"], {"file": lo.file, "obj": object_ref(lo.obj)}
            util, util_field = spec.get("targetCPUUtilizationPercentage"), "spec.targetCPUUtilizationPercentage"
            for i, m in enumerate(spec.get("metrics") or []):
                if get_in(m, "type") == "Resource" and get_in(m, "resource", "name") == "cpu" \
                        and get_in(m, "resource", "target", "averageUtilization") is not None:
                    util = get_in(m, "resource", "target", "averageUtilization")
                    util_field = f"spec.metrics[{i}].resource.target.averageUtilization"
            lo_n = _count(spec.get("minReplicas", 1), minimum=1, field="spec.minReplicas", **where)
            hi_n = _count(spec.get("maxReplicas"), minimum=1, field="spec.maxReplicas", **where)
            if lo_n > hi_n:
                raise ManifestError("minReplicas above maxReplicas", field="spec.minReplicas", value=lo_n,
                                    valid=f"at most maxReplicas ({hi_n})", **where)
            util = 80 if util is None else _count(util, minimum=1, field=util_field, **where)
            return ({"min_replicas": lo_n, "max_replicas": hi_n, "cpu_utilization": util}, lo.file)
    return None


def _mount_path(containers: list[dict], volume: str) -> str:
    for c in containers:
        for m in c.get("volumeMounts") or []:
            if isinstance(m, dict) and m.get("name") == volume:
                return str(m.get("mountPath"))
    return "(not mounted)"


def _storage(lo: LoadedObject, containers: list[dict], pvcs: dict[tuple[str, str], LoadedObject]) -> list[dict]:
    obj, ref = lo.obj, object_ref(lo.obj)
    out = []
    if obj["kind"] == "StatefulSet":
        for i, t in enumerate(get_in(obj, "spec", "volumeClaimTemplates") or []):
            name = get_in(t, "metadata", "name")
            size = get_in(t, "spec", "resources", "requests", "storage")
            field = f"spec.volumeClaimTemplates[{i}].spec.resources.requests.storage"
            if size is None:
                raise ManifestError("volume claim template without a storage request", file=lo.file,
                                    obj=ref, field=field, valid="e.g. storage: 10Gi")
            out.append({"name": name, "size": str(from_bytes(_quantity(size, cpu=False, file=lo.file,
                                                                        obj=ref, field=field))),
                        "mount_path": _mount_path(containers, name),
                        "access_mode": (get_in(t, "spec", "accessModes") or ["ReadWriteOnce"])[0]})
        return out
    ns = get_in(obj, "metadata", "namespace") or ""
    for v in get_in(obj, "spec", "template", "spec", "volumes") or []:
        claim = get_in(v, "persistentVolumeClaim", "claimName")
        if not claim:
            continue
        pvc = pvcs.get((ns, claim))
        if pvc is None:
            raise ManifestError("mounts a PersistentVolumeClaim that is not in the manifests",
                                file=lo.file, obj=ref, field="spec.template.spec.volumes",
                                value=claim, valid="include the PVC so its size can be planned")
        size = get_in(pvc.obj, "spec", "resources", "requests", "storage")
        field = "spec.resources.requests.storage"
        if size is None:
            raise ManifestError("PersistentVolumeClaim without a storage request", file=pvc.file,
                                obj=object_ref(pvc.obj), field=field, valid="e.g. storage: 10Gi")
        out.append({"name": v.get("name"),
                    "size": str(from_bytes(_quantity(size, cpu=False, file=pvc.file,
                                                     obj=object_ref(pvc.obj), field=field))),
                    "mount_path": _mount_path(containers, v.get("name")),
                    "access_mode": (get_in(pvc.obj, "spec", "accessModes") or ["ReadWriteOnce"])[0]})
    return out


def _toleration(t: Any) -> Any:
    """A pod's toleration as the catalogue's: tolerationSeconds (how long a NoExecute taint
    leaves the pod running, nothing the plan sizes) and empty fields left out; an empty
    operator is Equal, as the API server reads it."""
    if not isinstance(t, dict):
        return t   # the catalogue refuses it, naming the field
    return {k: t[k] for k in ("key", "operator", "value", "effect") if t.get(k) not in (None, "")}


def _service_entry(lo: LoadedObject, hpas: list[LoadedObject], pvcs: dict, services: list[dict]) -> dict:
    obj, file, ref = lo.obj, lo.file, object_ref(lo.obj)
    meta = obj.get("metadata") or {}
    labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
    pod = get_in(obj, "spec", "template") or {}
    pod_meta = pod.get("metadata") or {}
    pod_labels = pod_meta.get("labels") or {}
    containers = get_in(pod, "spec", "containers")
    if not isinstance(containers, list) or not containers:
        raise ManifestError("workload without containers", file=file, obj=ref,
                            field="spec.template.spec.containers", valid="at least one container")
    runtime = _guess_runtime({**pod_labels, **labels}, containers)
    port = _port(containers, services, pod_labels)
    if port is None:
        raise ManifestError("workload without a container port or a Service", file=file, obj=ref,
                            field="spec.template.spec.containers[0].ports",
                            valid="declare containerPort so the service can be planned")
    hpa = _hpa_for(obj["kind"], meta["name"], meta.get("namespace") or "", hpas)
    replicas = get_in(obj, "spec", "replicas")
    field = "spec.replicas"
    if replicas is None and A_REPLICAS in ann:  # an HPA-managed workload rendered by the kit
        replicas, field = ann[A_REPLICAS], f"metadata.annotations.{A_REPLICAS}"
        replicas = int(replicas) if str(replicas).isdigit() else replicas
    if replicas is None:
        replicas = hpa[0]["min_replicas"] if hpa else 1
    replicas = _count(replicas, minimum=0, file=file, obj=ref, field=field)
    storage = _storage(lo, containers, pvcs)
    inject = pod_labels.get(L_INJECT, (pod_meta.get("annotations") or {}).get(L_INJECT, "true"))
    imported = f"imported: {file}"
    source = {"port": ann.get(A_SOURCE + "port", imported),
              "replicas": ann.get(A_SOURCE + "replicas", imported),
              "resources": ann.get(A_SOURCE + "resources", imported)}
    if hpa:
        source["hpa"] = ann.get(A_SOURCE + "hpa", f"imported: {hpa[1]}")
    if storage:
        source["storage"] = ann.get(A_SOURCE + "storage", imported)
    pool: dict[str, Any] = {}   # the node pool the pods choose (the catalogue checks the values)
    if get_in(pod, "spec", "nodeSelector"):
        pool["node_selector"] = get_in(pod, "spec", "nodeSelector")
    if get_in(pod, "spec", "tolerations"):
        pool["tolerations"] = [_toleration(t) for t in get_in(pod, "spec", "tolerations")]
    return {
        **pool,
        "name": meta["name"],
        "description": ann.get(A_DESCRIPTION, ""),
        "port": port,
        "tier": _guess_tier(obj["kind"], {**pod_labels, **labels}, runtime),
        "kind": obj["kind"],
        "replicas": replicas,
        "runtime": runtime,
        "image": ann.get(A_IMAGE, str(containers[0].get("image", ""))),
        "mesh_inject": str(inject).lower() != "false",
        "containers": [{"name": c.get("name"), **_container_resources(
            c, file=file, obj=ref, path=f"spec.template.spec.containers[{i}]")}
            for i, c in enumerate(containers)],
        "hpa": hpa[0] if hpa else None,
        "storage": storage,
        "source": source,
    }


def _known_objects(objects: list[LoadedObject], *, ignore_unknown_kinds: bool,
                   kubernetes_version: str) -> list[LoadedObject]:
    """The objects of a known kind; the others are an error, or skipped with a warning each."""
    known = known_kinds((o.obj for o in objects), kubernetes_version=kubernetes_version)
    unknown = unknown_kinds(objects, known)
    if not unknown:
        return objects
    if not ignore_unknown_kinds:
        raise unknown_kind_error(unknown, known)
    for u in unknown:
        warnings.warn(skipped_message(u), ManifestWarning, stacklevel=3)
    skip = {(u.file, u.document, u.ref) for u in unknown}
    return [o for o in objects if (o.file, o.document, object_ref(o.obj)) not in skip]


def import_objects(loaded: LoadResult | list[LoadedObject], *, source: str = "<manifests>",
                   ignore_unknown_kinds: bool = False,
                   kubernetes_version: str = KUBERNETES_VERSION) -> Catalog:
    """The catalogue the workloads of the loaded manifests describe."""
    objects = loaded.objects if isinstance(loaded, LoadResult) else list(loaded)
    objects = _known_objects(objects, ignore_unknown_kinds=ignore_unknown_kinds,
                             kubernetes_version=kubernetes_version)
    for o in objects:
        if o.obj.get("kind") in UNPLANNED_POD_KINDS:
            warnings.warn(f"{o.file}: {object_ref(o.obj)} (document {o.document}, line {o.line}): "
                          "not planned, its pods are not counted; the plan sizes Deployments and "
                          "StatefulSets", ManifestWarning, stacklevel=2)
    workloads = [o for o in objects if o.obj.get("kind") in WORKLOAD_KINDS
                 and str(o.obj.get("apiVersion", "")).startswith("apps/")]
    hpas = [o for o in objects if o.obj.get("kind") == "HorizontalPodAutoscaler"]
    pvcs = {(get_in(o.obj, "metadata", "namespace") or "", get_in(o.obj, "metadata", "name")): o
            for o in objects if o.obj.get("kind") == "PersistentVolumeClaim"}
    services = [o.obj for o in objects if o.obj.get("kind") == "Service"]
    if not workloads:
        raise ManifestError("no Deployment or StatefulSet found", file=source,
                            valid="manifests with at least one apps/v1 Deployment or StatefulSet")
    orders = [get_in(o.obj, "metadata", "annotations", A_ORDER) for o in workloads]
    if all(isinstance(x, str) and x.isdigit() for x in orders):
        workloads = [w for _, w in sorted(zip((int(x) for x in orders), workloads), key=lambda t: t[0])]
    entries = [_service_entry(w, hpas, pvcs, services) for w in workloads]
    return catalog_from_dict({"services": entries}, file=source)


def import_manifests(*paths: str | Path, ignore_unknown_kinds: bool = False) -> Catalog:
    """Load files or directories and import them (``plan --manifests DIR``)."""
    loaded = load_manifests(*paths)
    return import_objects(loaded, source=", ".join(str(p) for p in paths),
                          ignore_unknown_kinds=ignore_unknown_kinds)


def import_summary(catalog: Catalog) -> dict:
    """Per-service sizing and baseline totals, in the field names of ``plan --format json``."""
    services = []
    totals = {"cpu_request_m": 0, "memory_request_bytes": 0, "cpu_limit_m": 0,
              "memory_limit_bytes": 0, "storage_request_bytes": 0}
    for s in catalog.services:
        r = s.pod_resources
        services.append({"name": s.name, "port": s.port, "replicas": s.replicas,
                         "cpu_request_m": r.cpu_request_m, "memory_request_bytes": r.memory_request_bytes,
                         "cpu_limit_m": r.cpu_limit_m, "memory_limit_bytes": r.memory_limit_bytes})
        totals["cpu_request_m"] += r.cpu_request_m * s.replicas
        totals["memory_request_bytes"] += r.memory_request_bytes * s.replicas
        totals["cpu_limit_m"] += r.cpu_limit_m * s.replicas
        totals["memory_limit_bytes"] += r.memory_limit_bytes * s.replicas
        totals["storage_request_bytes"] += s.storage_bytes
    return {"services": services, "totals": totals}


def import_catalog(*paths: str | Path, ignore_unknown_kinds: bool = False) -> Catalog:
    """Alias of :func:`import_manifests` (the name ``plan --manifests`` uses)."""
    return import_manifests(*paths, ignore_unknown_kinds=ignore_unknown_kinds)
