"""Server-side ``Table`` rendering (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``).

``kubectl get`` prints the columns the server computes, so the sim computes the same
columns as the real API server's printers for the kinds the kit uses (pods, nodes,
workloads, services, events, HPAs, PDBs ...), CRD ``additionalPrinterColumns``, and
Name/Age for everything else.
"""
from __future__ import annotations

import calendar
import contextvars
import functools
import time
from typing import Any, Callable

Row = list[Any]
_PARTIAL = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1"}


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name, "priority": priority}


def human_duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d < 365 * 8 else f"{d // 365}y"


@functools.lru_cache(maxsize=4096)
def _epoch(ts: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 ``YYYY-MM-DDTHH:MM:SSZ`` (fast path, no strptime)."""
    try:
        if len(ts) != 20 or ts[4] != "-" or ts[10] != "T" or ts[-1] != "Z":
            raise ValueError(ts)
        return float(calendar.timegm((int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]), int(ts[14:16]),
                                      int(ts[17:19]), 0, 0, 0)))
    except ValueError:
        return None


_NOW: contextvars.ContextVar[float | None] = contextvars.ContextVar("table_now", default=None)
"""The time one ``table()`` call renders Age columns at (per call and thread, not shared state)."""


def _now() -> float:
    now = _NOW.get()
    return time.time() if now is None else now


def _age(ts: str | None) -> str:
    then = _epoch(ts) if isinstance(ts, str) else None
    if then is None:
        return "<unknown>"
    return human_duration(_now() - then)


def _meta(o: dict) -> dict:
    return o.get("metadata") or {}


def _spec(o: dict) -> dict:
    spec = o.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(o: dict) -> dict:
    status = o.get("status")
    return status if isinstance(status, dict) else {}


def _containers(o: dict) -> list[dict]:
    tmpl = _spec(o).get("template") or {}
    return [c for c in ((tmpl.get("spec") or {}).get("containers") or []) if isinstance(c, dict)]


def _selector_text(sel: Any) -> str:
    if not isinstance(sel, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        parts.append(f"{e.get('key')} {str(e.get('operator', '')).lower()} ({','.join(e.get('values') or [])})")
    return ",".join(parts) or "<none>"


def _pod_row(o: dict) -> Row:
    st, meta = _status(o), _meta(o)
    statuses = [c for c in st.get("containerStatuses") or [] if isinstance(c, dict)]
    total = len(_spec(o).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = st.get("reason") or st.get("phase") or "Pending"
    for c in statuses:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if meta.get("deletionTimestamp"):
        reason = "Terminating"
    gates = _spec(o).get("readinessGates") or []
    return [meta.get("name"), f"{ready}/{total}", reason, restarts, _age(meta.get("creationTimestamp")),
            st.get("podIP") or "<none>", _spec(o).get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", f"{len(gates)}/{len(gates)}" if gates else "<none>"]


def _node_row(o: dict) -> Row:
    meta, st = _meta(o), _status(o)
    ready = "Unknown"
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    if _spec(o).get("unschedulable"):
        ready += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/")) or ["<none>"]
    info = st.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    return [meta.get("name"), ready, ",".join(roles), _age(meta.get("creationTimestamp")),
            info.get("kubeletVersion", ""), addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>"),
            info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
            info.get("containerRuntimeVersion", "<unknown>")]


def _images(o: dict) -> tuple[str, str]:
    cs = _containers(o)
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _deploy_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    names, images = _images(o)
    return [meta.get("name"), f"{st.get('readyReplicas', 0)}/{sp.get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), _age(meta.get("creationTimestamp")), names, images,
            _selector_text(sp.get("selector"))]


def _rs_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    names, images = _images(o)
    return [meta.get("name"), sp.get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0),
            _age(meta.get("creationTimestamp")), names, images, _selector_text(sp.get("selector"))]


def _sts_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    names, images = _images(o)
    return [meta.get("name"), f"{st.get('readyReplicas', 0)}/{sp.get('replicas', 1)}",
            _age(meta.get("creationTimestamp")), names, images]


def _ds_row(o: dict) -> Row:
    st, meta = _status(o), _meta(o)
    sel = ((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _images(o)
    return [meta.get("name"), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>", _age(meta.get("creationTimestamp")),
            names, images, _selector_text(_spec(o).get("selector"))]


def _svc_row(o: dict) -> Row:
    sp, meta = _spec(o), _meta(o)
    ports = []
    for p in sp.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    ext = ",".join(sp.get("externalIPs") or []) or ("<pending>" if sp.get("type") == "LoadBalancer" else "<none>")
    sel = ",".join(f"{k}={v}" for k, v in sorted((sp.get("selector") or {}).items())) or "<none>"
    return [meta.get("name"), sp.get("type", "ClusterIP"), sp.get("clusterIP") or "<none>", ext,
            ",".join(ports) or "<none>", _age(meta.get("creationTimestamp")), sel]


def _ns_row(o: dict) -> Row:
    return [_meta(o).get("name"), _status(o).get("phase", "Active"), _age(_meta(o).get("creationTimestamp"))]


def _event_row(o: dict) -> Row:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
    return [_age(last), o.get("type", ""), o.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}", o.get("message", "")]


def _hpa_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    ref = sp.get("scaleTargetRef") or {}
    targets = []
    current = {m.get("resource", {}).get("name"): m for m in st.get("currentMetrics") or [] if isinstance(m, dict)}
    for m in sp.get("metrics") or []:
        res = (m or {}).get("resource") or {}
        want = (res.get("target") or {}).get("averageUtilization")
        got = ((current.get(res.get("name")) or {}).get("resource") or {}).get("current", {}).get("averageUtilization")
        targets.append(f"{res.get('name', 'cpu')}: {'<unknown>' if got is None else f'{got}%'}/{want}%")
    return [meta.get("name"), f"{ref.get('kind', '')}/{ref.get('name', '')}", ", ".join(targets) or "<none>",
            sp.get("minReplicas", 1), sp.get("maxReplicas", 0), st.get("currentReplicas", 0),
            _age(meta.get("creationTimestamp"))]


def _pdb_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    return [meta.get("name"), sp.get("minAvailable", "N/A"), sp.get("maxUnavailable", "N/A"),
            st.get("disruptionsAllowed", 0), _age(meta.get("creationTimestamp"))]


def _cm_row(o: dict) -> Row:
    n = len(o.get("data") or {}) + len(o.get("binaryData") or {})
    return [_meta(o).get("name"), n, _age(_meta(o).get("creationTimestamp"))]


def _secret_row(o: dict) -> Row:
    n = len(o.get("data") or {}) + len(o.get("stringData") or {})
    return [_meta(o).get("name"), o.get("type", "Opaque"), n, _age(_meta(o).get("creationTimestamp"))]


def _pvc_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    cap = (st.get("capacity") or {}).get("storage", "")
    modes = ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                      "ReadWriteOncePod": "RWOP"}.get(m, m) for m in st.get("accessModes") or [])
    return [meta.get("name"), st.get("phase", "Pending"), sp.get("volumeName", ""), cap, modes,
            sp.get("storageClassName") or "<unset>", "<unset>", _age(meta.get("creationTimestamp"))]


def _access_modes(modes: list | None) -> str:
    return ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                     "ReadWriteOncePod": "RWOP"}.get(m, m) for m in modes or [])


def _pv_row(o: dict) -> Row:
    """printers.go printPersistentVolume."""
    sp, st, meta = _spec(o), _status(o), _meta(o)
    ref = sp.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else st.get("phase", "")
    return [meta.get("name"), (sp.get("capacity") or {}).get("storage", ""), _access_modes(sp.get("accessModes")),
            sp.get("persistentVolumeReclaimPolicy", "Delete"), phase, claim, sp.get("storageClassName", ""),
            "<unset>", st.get("reason", ""), _age(meta.get("creationTimestamp")), sp.get("volumeMode", "Filesystem")]


def _storageclass_row(o: dict) -> Row:
    """printers.go printStorageClass: the default class is marked ``(default)``."""
    meta = _meta(o)
    ann = meta.get("annotations") or {}
    default = "true" in (ann.get("storageclass.kubernetes.io/is-default-class"),
                         ann.get("storageclass.beta.kubernetes.io/is-default-class"))
    return [f"{meta.get('name')} (default)" if default else meta.get("name"), o.get("provisioner", ""),
            o.get("reclaimPolicy") or "Delete", o.get("volumeBindingMode") or "Immediate",
            bool(o.get("allowVolumeExpansion")), _age(meta.get("creationTimestamp"))]


def _job_status(st: dict) -> str:
    """kubectl's Job STATUS column (printers.go printJob): the first terminal or notable condition."""
    conds = {c.get("type") for c in st.get("conditions") or [] if isinstance(c, dict) and c.get("status") == "True"}
    for ctype in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if ctype in conds:
            return ctype
    return "Running"


def _job_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    completions = sp.get("completions")
    done = f"{st.get('succeeded', 0)}/{completions}" if completions is not None else \
        f"{st.get('succeeded', 0)}/1 of {sp.get('parallelism', 1)}"
    start, end = _epoch(st.get("startTime") or ""), _epoch(st.get("completionTime") or "")
    duration = "" if start is None else human_duration((end if end is not None else _now()) - start)
    return [meta.get("name"), _job_status(st), done, duration, _age(meta.get("creationTimestamp"))]


def _cronjob_row(o: dict) -> Row:
    sp, st, meta = _spec(o), _status(o), _meta(o)
    last = st.get("lastScheduleTime")
    return [meta.get("name"), sp.get("schedule", ""), sp.get("timeZone") or "<none>",
            str(bool(sp.get("suspend"))), len(st.get("active") or []), _age(last) if last else "<none>",
            _age(meta.get("creationTimestamp"))]


def _first_three(items: list[str]) -> str:
    if not items:
        return "<none>"
    text = ",".join(items[:3])
    return text + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def _slice_row(o: dict) -> Row:
    meta = _meta(o)
    ports = [str(p.get("port")) for p in o.get("ports") or [] if isinstance(p, dict) and p.get("port") is not None]
    addresses = [a for e in o.get("endpoints") or [] if isinstance(e, dict) for a in e.get("addresses") or []]
    return [meta.get("name"), o.get("addressType", ""), ",".join(ports) or "<unset>", _first_three(addresses),
            _age(meta.get("creationTimestamp"))]


def _endpoints_row(o: dict) -> Row:
    meta = _meta(o)
    pairs = [f"{a.get('ip')}:{p.get('port')}" if s.get("ports") else str(a.get("ip"))
             for s in o.get("subsets") or [] if isinstance(s, dict)
             for a in s.get("addresses") or [] for p in (s.get("ports") or [{}])]
    return [meta.get("name"), _first_three(pairs), _age(meta.get("creationTimestamp"))]


def _crd_row(o: dict) -> Row:
    return [_meta(o).get("name"), _meta(o).get("creationTimestamp", "")]


def _default_row(o: dict) -> Row:
    return [_meta(o).get("name"), _age(_meta(o).get("creationTimestamp"))]


_NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
_AGE = _col("Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created.")

_PRINTERS: dict[str, tuple[list[dict], Callable[[dict], Row]]] = {
    "Pod": ([_NAME, _col("Ready"), _col("Status"), _col("Restarts", "string"), _AGE, _col("IP", priority=1),
             _col("Node", priority=1), _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)],
            _pod_row),
    "Node": ([_NAME, _col("Status"), _col("Roles"), _AGE, _col("Version"), _col("Internal-IP", priority=1),
              _col("External-IP", priority=1), _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
              _col("Container-Runtime", priority=1)], _node_row),
    "Deployment": ([_NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _AGE,
                    _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                   _deploy_row),
    "ReplicaSet": ([_NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), _AGE,
                    _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                   _rs_row),
    "StatefulSet": ([_NAME, _col("Ready"), _AGE, _col("Containers", priority=1), _col("Images", priority=1)],
                    _sts_row),
    "DaemonSet": ([_NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                   _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), _AGE,
                   _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                  _ds_row),
    "Service": ([_NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _AGE,
                 _col("Selector", priority=1)], _svc_row),
    "Namespace": ([_NAME, _col("Status"), _AGE], _ns_row),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], _event_row),
    "HorizontalPodAutoscaler": ([_NAME, _col("Reference"), _col("Targets"), _col("MinPods", "integer"),
                                 _col("MaxPods", "integer"), _col("Replicas", "integer"), _AGE], _hpa_row),
    "PodDisruptionBudget": ([_NAME, _col("Min Available"), _col("Max Unavailable"),
                             _col("Allowed Disruptions", "integer"), _AGE], _pdb_row),
    "ConfigMap": ([_NAME, _col("Data", "integer"), _AGE], _cm_row),
    "Secret": ([_NAME, _col("Type"), _col("Data", "integer"), _AGE], _secret_row),
    "PersistentVolume": ([_NAME, _col("Capacity"), _col("Access Modes"), _col("Reclaim Policy"), _col("Status"),
                          _col("Claim"), _col("StorageClass"), _col("VolumeAttributesClass"), _col("Reason"), _AGE,
                          _col("VolumeMode", priority=1)], _pv_row),
    "StorageClass": ([_NAME, _col("Provisioner"), _col("ReclaimPolicy"), _col("VolumeBindingMode"),
                      _col("AllowVolumeExpansion", "boolean"), _AGE], _storageclass_row),
    "PersistentVolumeClaim": ([_NAME, _col("Status"), _col("Volume"), _col("Capacity"), _col("Access Modes"),
                               _col("StorageClass"), _col("VolumeAttributesClass"), _AGE], _pvc_row),
    "Job": ([_NAME, _col("Status"), _col("Completions"), _col("Duration"), _AGE], _job_row),
    "CronJob": ([_NAME, _col("Schedule"), _col("Timezone"), _col("Suspend", "boolean"), _col("Active", "integer"),
                 _col("Last Schedule"), _AGE], _cronjob_row),
    "EndpointSlice": ([_NAME, _col("AddressType"), _col("Ports"), _col("Endpoints"), _AGE], _slice_row),
    "Endpoints": ([_NAME, _col("Endpoints"), _AGE], _endpoints_row),
    "CustomResourceDefinition": ([_NAME, _col("Created At", "date")], _crd_row),
}


def _jsonpath_value(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def _custom_printer(columns: list[dict]) -> tuple[list[dict], Callable[[dict], Row]]:
    defs = [_NAME] + [_col(c.get("name", ""), c.get("type", "string"), int(c.get("priority", 0) or 0),
                           c.get("format", ""), c.get("description", "")) for c in columns]

    def row(o: dict) -> Row:
        cells: Row = [_meta(o).get("name")]
        for c in columns:
            v = _jsonpath_value(o, str(c.get("jsonPath", "")))
            if c.get("type") == "date" and isinstance(v, str):
                v = _age(v)
            cells.append(v if v is not None else "<none>" if c.get("type") == "string" else None)
        return cells

    return defs, row


def table(kind: str, objs: list[dict], *, resource_version: str, include_object: str = "Metadata",
          custom_columns: list[dict] | None = None, continue_token: str = "", now: float | None = None) -> dict:
    """``now`` (seconds since the epoch, default the wall clock) is the server's time the Age
    columns count from: kube-apiserver's printers use its own clock, the sim's is the sim clock."""
    token = _NOW.set(now)
    try:
        return _table(kind, objs, resource_version=resource_version, include_object=include_object,
                      custom_columns=custom_columns, continue_token=continue_token)
    finally:
        _NOW.reset(token)


def _table(kind: str, objs: list[dict], *, resource_version: str, include_object: str,
           custom_columns: list[dict] | None, continue_token: str) -> dict:
    if custom_columns:
        columns, row = _custom_printer(custom_columns)
    else:
        columns, row = _PRINTERS.get(kind, ([_NAME, _AGE], _default_row))
    rows = []
    for o in objs:
        entry: dict = {"cells": row(o)}
        if include_object == "Object":
            entry["object"] = o
        elif include_object != "None":
            entry["object"] = {**_PARTIAL, "metadata": {k: v for k, v in _meta(o).items() if k != "managedFields"}}
        rows.append(entry)
    meta: dict = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": columns, "rows": rows}
