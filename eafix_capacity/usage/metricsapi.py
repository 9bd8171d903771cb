"""The same samples as ``kubectl top``, read from metrics.k8s.io through the official client.

In a cluster (a CronJob, a notebook pod) there is usually no kubectl binary, but there is a
service account token the official client loads. metrics-server's PodMetrics and NodeMetrics
(``metrics.k8s.io/v1beta1``) are what ``kubectl top`` prints from, at full precision: CPU as a
rate in nanocores over the ``window`` ending at ``timestamp``, memory as the working set in
``Ki``. Each container's sample keeps its PodMetrics ``timestamp`` (metrics-server's scrape
time, so two reads of one scrape give the same key and the store does not count it twice).
Reads go through :func:`eafix_capacity.cluster.rest.get_json` (plain JSON, no typed models); the
pod list for requests, limits, node and service through ``list_items``. A 404 on the group (no
metrics-server) is :class:`~eafix_capacity.usage.kubectltop.MetricsApiUnavailable`, as
``kubectl top``'s ``Metrics API not available``.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Mapping

from eafix_capacity.cluster.errors import TargetError, classify
from eafix_capacity.errors import QuantityError
from eafix_capacity.usage.kubectltop import (INSTALL_METRICS_SERVER, METRICS_API_NOT_AVAILABLE, MetricsApiUnavailable,
                                             Round, RoundReader, SampleRun, fresh_terminations, round_records,
                                             run_rounds, utc_now)
from eafix_capacity.usage.podinfo import container_infos, parse_time, pod_items, terminations
from eafix_capacity.usage.topparse import NodeUsage, PodUsage, TopParseError, cpu_nanocores, memory_bytes

SOURCE = "metrics-api"
GROUP_VERSION = "metrics.k8s.io/v1beta1"
DEFAULT_TIMEOUT = 30.0


def _usage(usage: object, *, where: str) -> tuple[int | None, int | None]:
    if not isinstance(usage, Mapping):
        raise TopParseError("has no usage map", file=where, valid="usage: {cpu: <nanocores>n, memory: <n>Ki}")
    figures: list[int | None] = []
    for resource, reader in (("cpu", cpu_nanocores), ("memory", memory_bytes)):
        text = usage.get(resource)
        if text is None:
            figures.append(None)
            continue
        try:
            figures.append(reader(str(text)))
        except QuantityError as e:
            raise TopParseError(e.problem, file=where, field=f"usage.{resource}", value=text, valid=e.valid) from None
    return figures[0], figures[1]


def _items(doc: object, kind: str, *, source: str) -> list[Mapping[str, Any]]:
    items = doc.get("items") if isinstance(doc, Mapping) else None
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise TopParseError(f"not a {kind}List (no items list of objects)", file=source,
                            valid=f"the JSON of GET /apis/{GROUP_VERSION}/{kind.lower().removesuffix('metrics')}s")
    return items


def parse_pod_metrics(doc: object, *, source: str) -> tuple[list[PodUsage], dict[tuple[str, str], datetime]]:
    """The container figures of a ``PodMetricsList`` and each pod's ``timestamp`` (pure)."""
    out: list[PodUsage] = []
    times: dict[tuple[str, str], datetime] = {}
    for item in _items(doc, "PodMetrics", source=source):
        meta = item.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        where = f"{source}: PodMetrics {ns}/{name}"
        at = parse_time(item.get("timestamp"))
        if at is None:
            raise TopParseError("timestamp is not an RFC 3339 time", file=where, value=item.get("timestamp"),
                                valid="e.g. 2026-01-14T06:00:00Z")
        times[(ns, name)] = at
        for c in item.get("containers") or []:
            cname = str((c or {}).get("name") or "") if isinstance(c, Mapping) else ""
            cpu, mem = _usage(c.get("usage") if isinstance(c, Mapping) else None,
                              where=f"{where}: container {cname}")
            out.append(PodUsage(ns, name, cname, cpu, mem))
    return out, times


def parse_node_metrics(doc: object, *, source: str) -> list[NodeUsage]:
    """The node figures of a ``NodeMetricsList`` (pure; no percentages, as the API has none)."""
    out = []
    for item in _items(doc, "NodeMetrics", source=source):
        name = str((item.get("metadata") or {}).get("name") or "")
        cpu, mem = _usage(item.get("usage"), where=f"{source}: NodeMetrics {name}")
        out.append(NodeUsage(name, cpu, mem, None, None))
    return out


def _server(api_client: Any) -> str:
    return str(getattr(getattr(api_client, "configuration", None), "host", "") or "")


def _get(api_client: Any, path: str, *, context: str, timeout: float, metrics: bool) -> Any:
    from kubernetes.client.exceptions import ApiException

    from eafix_capacity.cluster.rest import get_json

    try:
        return get_json(api_client, path, timeout=timeout)
    except ApiException as e:
        if metrics and e.status in (404, 503):
            # 404: no metrics.k8s.io group (kubectl top: "Metrics API not available"); 503: the
            # APIService is registered but metrics-server does not answer
            said = "the server could not find the requested resource" if e.status == 404 else \
                "the APIService is registered but metrics-server does not answer (503)"
            raise MetricsApiUnavailable(f"{METRICS_API_NOT_AVAILABLE}: GET {path}: {said}", context=context,
                                        server=_server(api_client), check=INSTALL_METRICS_SERVER,
                                        status=e.status) from e
        raise classify(e, context=context, server=_server(api_client), timeout=timeout) from e
    except ValueError as e:
        raise TargetError(f"GET {path} did not answer JSON: {e}", context=context, server=_server(api_client)) from e
    except Exception as e:
        raise classify(e, context=context, server=_server(api_client), timeout=timeout) from e


def metrics_api_round_reader(api_client: Any, *, context: str, namespace: str | None = None,
                             timeout: float = DEFAULT_TIMEOUT) -> RoundReader:
    """The function that reads one round from metrics.k8s.io and the pod list (``namespace`` None: all)."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    pod_metrics_path = f"/apis/{GROUP_VERSION}{scope}/pods"
    node_metrics_path = f"/apis/{GROUP_VERSION}/nodes"
    pods_path = f"/api/v1{scope}/pods"
    seen: set[tuple[Any, ...]] = set()

    def read(index: int, timestamp: datetime) -> Round:
        pod_doc = _get(api_client, pod_metrics_path, context=context, timeout=timeout, metrics=True)
        node_doc = _get(api_client, node_metrics_path, context=context, timeout=timeout, metrics=True)
        listed = _get(api_client, pods_path, context=context, timeout=timeout, metrics=False)
        items = pod_items(listed, source=f'GET {pods_path} (context "{context}", round {index + 1})')
        pods, times = parse_pod_metrics(pod_doc, source=f'GET {pod_metrics_path} (context "{context}")')
        nodes = parse_node_metrics(node_doc, source=f'GET {node_metrics_path} (context "{context}")')
        infos = container_infos(items)
        notes = [] if pods or not any(i.measured for i in infos.values()) else [
            "metrics.k8s.io has no PodMetrics yet (metrics not available yet)"]
        found = terminations(items, context=context, seen_at=timestamp, source=SOURCE)
        return round_records(index, timestamp, context=context, source=SOURCE, pods=pods, nodes=nodes,
                             infos=infos, namespace=namespace,
                             new_terminations=fresh_terminations(found, seen), notes=notes, pod_times=times)

    return read


def sample_metrics_api(api_client: Any, *, context: str, on_round: Callable[[Round], object],
                       namespace: str | None = None, interval: float = 15.0, duration: float | None = None,
                       samples: int | None = None, quiet: bool = False, clock: Callable[[], datetime] = utc_now,
                       sleep: Callable[[float], object] = time.sleep, timeout: float = DEFAULT_TIMEOUT) -> SampleRun:
    """As :func:`~eafix_capacity.usage.kubectltop.sample_kubectl_top`, through ``api_client`` (the
    official client's ``ApiClient``, e.g. from :func:`eafix_capacity.cluster.context.load_target`)."""
    reader = metrics_api_round_reader(api_client, context=context, namespace=namespace, timeout=timeout)
    return run_rounds(reader, context=context, on_round=on_round, interval=interval, duration=duration,
                      samples=samples, quiet=quiet, clock=clock, sleep=sleep, description="metrics API")
