"""The sim's scrape endpoints: what a cluster's Prometheus scrapes, from the sim's usage model.

A real cluster's monitoring scrapes each kubelet's ``/metrics/cadvisor`` (container CPU and
working set) and kube-state-metrics (requests, limits, labels, restarts, terminations),
often through the API server's proxy. The sim serves both on those same proxy paths, from
the usage model its metrics API uses, in the Prometheus text exposition format 0.0.4, so a
real Prometheus (``metrics_path`` the proxy path, ``static_configs`` the sim's address) can
scrape it and the kit's Prometheus source reads the sim as it reads a real cluster:

- ``/api/v1/nodes/NAME/proxy/metrics/cadvisor``: ``container_cpu_usage_seconds_total`` and
  ``container_memory_working_set_bytes`` per container of the node's measured pods (the
  labels of the kubelet's cAdvisor: container, id, image, name, namespace, pod), and the
  node's root cgroup (``id="/"``, empty container).
- ``/api/v1/namespaces/NS/services/[SCHEME:]kube-state-metrics[:PORT]/proxy/metrics``:
  kube-state-metrics' pod, container and node families, when that Service exists (as a real
  API server, which proxies only to a Service it has: 404 ``services "NAME" not found``).
  A proxy to any other Service is 503 ``no endpoints available for service "NAME"``: the sim's
  pods run no containers (pkg/registry/core/service/storage ResourceLocation's refusal).

The CPU counter is the usage model's figure at each 15 s grid point (metrics-server's
resolution) since the pod started, times 15 s: monotonic, and ``rate`` over a window of a
few grid points reads the model's figure back. Its running sums are memoised in a dict the
``Api`` owns (``Api.scrape_counters``); the value at a time is the same whether memoised or
not. Samples carry no timestamps: the sim clock may run fast or in the past, and Prometheus
refuses samples out of its own time (it stamps them at scrape time).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping, MutableMapping
from urllib.parse import unquote

from eafix_capacity.sim import metrics as M
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError, not_found
from eafix_capacity.sim.usage_model import UsageModel, cpu_nanocores, memory_bytes
from eafix_capacity.usage.openmetrics import decimal, labels_text, sanitize_label_name

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GRID_SECONDS = M.METRIC_RESOLUTION_SECONDS
KSM_SERVICE = "kube-state-metrics"
_NOT_FOUND_PAGE = b"404 page not found\n"  # what the kubelet's and kube-state-metrics' muxes answer

Counters = MutableMapping[tuple[str, str], tuple[int, int]]
"""(pod uid or namespace/name, container) -> (last grid index summed, CPU nanoseconds up to it)."""


def _time(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def cpu_seconds_counter(pod: Mapping, container: Mapping, model: UsageModel, t: datetime,
                        counters: Counters | None = None) -> int:
    """CPU nanoseconds a container has used from its pod's start to ``t``: the model's figure at
    each grid point after the start, times :data:`GRID_SECONDS`."""
    meta = pod.get("metadata") or {}
    started = _time((pod.get("status") or {}).get("startTime")) or _time(meta.get("creationTimestamp")) or t
    first = math.floor(started.timestamp() / GRID_SECONDS) + 1
    last = math.floor(t.timestamp() / GRID_SECONDS)
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    ckey = (str(meta.get("uid") or key), str(container.get("name", "")))
    done, total = first - 1, 0
    if counters is not None:
        cached = counters.get(ckey)
        if cached is not None and first - 1 <= cached[0] <= last:
            done, total = cached
    res = container.get("resources") or {}
    labels = meta.get("labels") or {}
    for k in range(done + 1, last + 1):
        at = datetime.fromtimestamp(k * GRID_SECONDS, timezone.utc)
        cpu, _ = model.usage(labels, str(container.get("name", "")), res.get("requests"), res.get("limits"), at,
                             key=key)
        total += cpu * GRID_SECONDS
    if counters is not None and last >= first - 1:
        counters[ckey] = (last, total)
    return total


def _cadvisor_labels(pod: Mapping, container: Mapping) -> str:
    meta = pod.get("metadata") or {}
    name = str(container.get("name", ""))
    return labels_text((("container", name), ("id", f"/kubepods/pod{meta.get('uid', '')}/{name}"),
                        ("image", str(container.get("image", ""))), ("name", name),
                        ("namespace", str(meta.get("namespace", ""))), ("pod", str(meta.get("name", "")))))


def cadvisor_text(node: Mapping, pods: list[Mapping], model: UsageModel, t: datetime,
                  counters: Counters | None = None) -> str:
    """The kubelet's ``/metrics/cadvisor`` of ``node`` at ``t`` (pods: all pods; the node's measured ones count)."""
    name = str((node.get("metadata") or {}).get("name", ""))
    mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name and M.pod_is_measured(p, t)]
    _, node_mem = M.node_usage(name, mine, model, t)
    root = labels_text((("container", ""), ("id", "/"), ("image", ""), ("name", ""), ("namespace", ""), ("pod", "")))
    out = ["# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n",
           "# TYPE container_cpu_usage_seconds_total counter\n"]
    root_total = 0
    cpu_lines = []
    for p in mine:
        for c in (p.get("spec") or {}).get("containers") or []:
            total = cpu_seconds_counter(p, c, model, t, counters)
            root_total += total
            lbl = _cadvisor_labels(p, c)
            cpu_lines.append(f"container_cpu_usage_seconds_total{lbl[:-1]},cpu=\"total\"}} {decimal(total, 10**9)}\n")
    # the root cgroup: the containers' time plus the system's, at the model's overhead rate since the node came
    created = _time((node.get("metadata") or {}).get("creationTimestamp")) or t
    overhead = model.node_overhead_cpu_nanocores * max(0, int((t - created).total_seconds()))
    out.append(f"container_cpu_usage_seconds_total{root[:-1]},cpu=\"total\"}} "
               f"{decimal(root_total + overhead, 10**9)}\n")
    out.extend(cpu_lines)
    out += ["# HELP container_memory_working_set_bytes Current working set in bytes.\n",
            "# TYPE container_memory_working_set_bytes gauge\n",
            f"container_memory_working_set_bytes{root} {node_mem}\n"]
    for p in mine:
        usage = {n: m for n, _, m in M.container_usage(p, model, t)}
        for c in (p.get("spec") or {}).get("containers") or []:
            out.append(f"container_memory_working_set_bytes{_cadvisor_labels(p, c)} {usage[c.get('name', '')]}\n")
    return "".join(out)


def _pod_ids(pod: Mapping) -> tuple[tuple[str, str], ...]:
    meta = pod.get("metadata") or {}
    return (("namespace", str(meta.get("namespace", ""))), ("pod", str(meta.get("name", ""))),
            ("uid", str(meta.get("uid", ""))))


def _amount(resource: str, quantity: object) -> str:
    """kube-state-metrics' value of a quantity: CPU in cores, memory in bytes, pods a count."""
    return decimal(cpu_nanocores(quantity), 10**9) if resource == "cpu" else str(memory_bytes(quantity))


def ksm_text(pods: list[Mapping], nodes: list[Mapping]) -> str:
    """kube-state-metrics' families the right-sizing reads, for ``pods`` and ``nodes``."""
    requests: list[str] = []
    limits: list[str] = []
    restarts: list[str] = []
    reasons: list[str] = []
    labels: list[str] = []
    info: list[str] = []
    for p in pods:
        ids = _pod_ids(p)
        node = str((p.get("spec") or {}).get("nodeName") or "")
        meta = p.get("metadata") or {}
        pairs = [*ids, *sorted((sanitize_label_name(k), str(v)) for k, v in (meta.get("labels") or {}).items())]
        labels.append(f"kube_pod_labels{labels_text(pairs)} 1\n")
        owner: Mapping[str, Any] = next(iter(meta.get("ownerReferences") or []), {})
        created_by = (("created_by_kind", str(owner.get("kind", ""))), ("created_by_name", str(owner.get("name", ""))))
        info.append(f"kube_pod_info{labels_text((*ids, ('node', node), *created_by))} 1\n")
        statuses = {str(cs.get("name", "")): cs for cs in (p.get("status") or {}).get("containerStatuses") or []}
        for c in (p.get("spec") or {}).get("containers") or []:
            name = str(c.get("name", ""))
            res = c.get("resources") or {}
            cids = (*ids, ("container", name))
            for values, lines in ((res.get("requests") or {}, requests), (res.get("limits") or {}, limits)):
                for resource, unit in (("cpu", "core"), ("memory", "byte")):
                    if resource in values:
                        lbl = labels_text((*cids, ("node", node), ("resource", resource), ("unit", unit)))
                        lines.append(f"{lbl} {_amount(resource, values[resource])}\n")
            cs = statuses.get(name)
            if cs is not None:
                restarts.append(f"kube_pod_container_status_restarts_total{labels_text(cids)} "
                                f"{int(cs.get('restartCount') or 0)}\n")
                reason = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
                if reason:
                    reasons.append(f"kube_pod_container_status_last_terminated_reason"
                                   f"{labels_text((*cids, ('reason', str(reason))))} 1\n")
    alloc = []
    for n in nodes:
        name = str((n.get("metadata") or {}).get("name", ""))
        a = (n.get("status") or {}).get("allocatable") or {}
        for resource, unit in (("cpu", "core"), ("memory", "byte"), ("pods", "integer")):
            if resource in a:
                lbl = labels_text((("node", name), ("resource", resource), ("unit", unit)))
                alloc.append(f"kube_node_status_allocatable{lbl} {_amount(resource, a[resource])}\n")
    out: list[str] = []
    for fam, kind, family, prefix in (
            ("kube_pod_container_resource_requests", "gauge", requests, True),
            ("kube_pod_container_resource_limits", "gauge", limits, True),
            ("kube_pod_container_status_restarts_total", "counter", restarts, False),
            ("kube_pod_container_status_last_terminated_reason", "gauge", reasons, False),
            ("kube_pod_labels", "gauge", labels, False),
            ("kube_pod_info", "gauge", info, False),
            ("kube_node_status_allocatable", "gauge", alloc, False)):
        out.append(f"# TYPE {fam} {kind}\n")
        out.extend(fam + line if prefix else line for line in family)
    return "".join(out)


def _parse_service(text: str) -> str:
    """The Service name of a proxy id ``[scheme:]name[:port]`` (apimachinery's SplitSchemeNamePort)."""
    parts = text.split(":")
    if len(parts) == 3:
        return parts[1]
    if len(parts) == 2:
        return parts[0]
    return text


def serve(api: Any, method: str, path: str) -> tuple[int, bytes, str] | None:
    """(status, body, content type) of a scrape path, or None when ``path`` is none of them."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] != ["api", "v1"]:
        return None
    rest = parts[2:]
    if len(rest) >= 3 and rest[0] == "nodes" and rest[2] == "proxy":
        kind, namespace, name, sub = "node", None, rest[1], rest[3:]
    elif len(rest) >= 5 and rest[0] == "namespaces" and rest[2] == "services" and rest[4] == "proxy":
        kind, namespace, name, sub = "service", rest[1], _parse_service(rest[3]), rest[5:]
    else:
        return None
    if method not in ("GET", "HEAD"):
        return None  # the existing routing answers other verbs as before
    store = api.store
    if kind == "node":
        node = store.get(R.NODE, None, name)  # 404 nodes "NAME" not found, as the real proxy
        if sub != ["metrics", "cadvisor"]:
            return 404, _NOT_FOUND_PAGE, "text/plain; charset=utf-8"
    else:
        if not store.exists(R.SERVICE, namespace, name):
            raise not_found("services", "", name)
        if name != KSM_SERVICE:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        if sub != ["metrics"]:
            return 404, _NOT_FOUND_PAGE, "text/plain; charset=utf-8"
    controllers = api.controllers
    model = getattr(controllers, "model", None)
    clock = getattr(store, "clock", None)
    if model is None or clock is None:
        raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request "
                                                  "(no metrics source)")
    t = clock.now()
    pods, _, _ = store.list_objects(R.POD)
    if kind == "node":
        text = cadvisor_text(node, pods, model, t, getattr(api, "scrape_counters", None))
    else:
        nodes, _, _ = store.list_objects(R.NODE)
        text = ksm_text(pods, nodes)
    return 200, text.encode("utf-8"), CONTENT_TYPE
