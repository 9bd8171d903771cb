"""metrics.k8s.io/v1beta1 bodies for the sim cluster, in metrics-server's shape.

``kubectl top`` and the HPA read PodMetrics and NodeMetrics from the aggregated
metrics API; the sim answers them from the usage model instead of cAdvisor. The
functions here are pure (pods, nodes, a model and a time in; JSON-ready dicts out) so they
are unit-tested without a server. Quantities use metrics-server's formatting: CPU as a
nano-scaled decimal quantity (``123456789n``), memory as a binary quantity of whole pages
(``12345Ki``), both in apimachinery's canonical form.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping

from eafix_capacity.sim.clock import rfc3339
from eafix_capacity.sim.usage_model import UsageModel

API_VERSION = "metrics.k8s.io/v1beta1"
WINDOW = "30s"
METRIC_RESOLUTION_SECONDS = 15
"""metrics-server's default ``--metric-resolution``: it scrapes every kubelet this often and
reports a pod or node once it has two scrapes of it."""
_PAGE = 4096


def format_cpu(nanocores: int) -> str:
    """Canonical decimal quantity of a nano-scaled value: ``1500000n`` -> ``1500u``, ``2000000000n`` -> ``2``."""
    if nanocores == 0:
        return "0"
    for suffix, scale in (("", 10**9), ("m", 10**6), ("u", 10**3)):
        if nanocores % scale == 0:
            return f"{nanocores // scale}{suffix}"
    return f"{nanocores}n"


def format_memory(nbytes: int) -> str:
    """Working-set bytes, rounded to whole pages, as a canonical binary quantity (mostly ``Ki``)."""
    nbytes = (nbytes + _PAGE - 1) // _PAGE * _PAGE
    if nbytes == 0:
        return "0"
    for suffix, scale in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if nbytes % scale == 0:
            return f"{nbytes // scale}{suffix}"
    return str(nbytes)


def _since(text: object, t: datetime) -> float | None:
    """Seconds from the metav1.Time ``text`` to ``t`` (None when ``text`` is not one)."""
    try:
        then = datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return (t - then).total_seconds()


def pod_is_measured(pod: Mapping, t: datetime | None = None) -> bool:
    """metrics-server only knows pods whose containers run on a node, and (at time ``t``) only
    once it has scraped them twice, :data:`METRIC_RESOLUTION_SECONDS` apart: a pod has no
    metrics for its first resolution after it started (``status.startTime``)."""
    if not (pod.get("spec", {}).get("nodeName") and pod.get("status", {}).get("phase") == "Running"):
        return False
    if t is None:
        return True
    age = _since(pod.get("status", {}).get("startTime"), t)
    return age is None or age >= METRIC_RESOLUTION_SECONDS


def node_is_measured(node: Mapping, t: datetime) -> bool:
    """metrics-server scrapes a node's kubelet: none while the node is not Ready (the kubelet
    is unreachable or not posting), and a new node only after two scrapes, as for pods."""
    conds = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
        return False
    age = _since((node.get("metadata") or {}).get("creationTimestamp"), t)
    return age is None or age >= METRIC_RESOLUTION_SECONDS


def container_usage(pod: Mapping, model: UsageModel, t: datetime) -> list[tuple[str, int, int]]:
    """(container name, cpu nanocores, memory bytes) for each container of a pod."""
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    out = []
    for c in pod.get("spec", {}).get("containers") or []:
        res = c.get("resources") or {}
        cpu, mem = model.usage(labels, c.get("name", ""), res.get("requests"), res.get("limits"), t, key=key)
        out.append((c.get("name", ""), cpu, mem))
    return out


def pod_metrics(pod: Mapping, model: UsageModel, t: datetime) -> dict:
    meta = pod.get("metadata", {})
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "creationTimestamp": rfc3339(t),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": rfc3339(t),
        "window": WINDOW,
        "containers": [
            {"name": name, "usage": {"cpu": format_cpu(cpu), "memory": format_memory(mem)}}
            for name, cpu, mem in container_usage(pod, model, t)
        ],
    }


def node_usage(node_name: str, pods: Iterable[Mapping], model: UsageModel, t: datetime) -> tuple[int, int]:
    """(cpu nanocores, memory bytes) of a node: its measured pods plus the system overhead."""
    cpu = model.node_overhead_cpu_nanocores
    mem = model.node_overhead_memory_bytes
    for pod in pods:
        if pod.get("spec", {}).get("nodeName") != node_name or not pod_is_measured(pod, t):
            continue
        for _, c, m in container_usage(pod, model, t):
            cpu += c
            mem += m
    return cpu, mem


def node_metrics(node: Mapping, usage: tuple[int, int], t: datetime) -> dict:
    meta = node.get("metadata", {})
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": meta.get("name"),
            "creationTimestamp": rfc3339(t),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": rfc3339(t),
        "window": WINDOW,
        "usage": {"cpu": format_cpu(usage[0]), "memory": format_memory(usage[1])},
    }


def list_item(obj: dict) -> dict:
    """``obj`` as an item of a list: without kind and apiVersion, which only the list carries
    (metrics-server's List returns items with an empty TypeMeta, as kube-apiserver's lists)."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def pod_metrics_list(pods: Iterable[Mapping], model: UsageModel, t: datetime) -> dict:
    return {
        "kind": "PodMetricsList",
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": [list_item(pod_metrics(p, model, t)) for p in pods if pod_is_measured(p, t)],
    }


def node_metrics_list(nodes: Iterable[Mapping], pods: Iterable[Mapping], model: UsageModel, t: datetime) -> dict:
    by_node: dict[str, list[Mapping]] = {}
    for p in pods:
        if pod_is_measured(p, t):
            by_node.setdefault(p["spec"]["nodeName"], []).append(p)
    items = []
    for n in nodes:
        if not node_is_measured(n, t):
            continue
        name = n.get("metadata", {}).get("name", "")
        items.append(list_item(node_metrics(n, node_usage(name, by_node.get(name, []), model, t), t)))
    return {"kind": "NodeMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}
