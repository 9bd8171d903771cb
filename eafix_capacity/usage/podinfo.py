"""What a pod list says about each container: its service, node, requests and limits, and its last termination.

Usage figures (``kubectl top``, PodMetrics) name only the namespace, the pod and the container;
right-sizing needs the request and limit the container ran with at that time, the service it
belongs to (``app.kubernetes.io/name``) and the node it ran on, and the sign-off needs the OOM
kills. All of that is in the pod list, read in the same sampling round. Pure: the list's JSON
in, records out. Quantities are read with :mod:`eafix_capacity.quantity` (apimachinery's
rules), requests in millicores rounded up (``MilliValue``) and bytes rounded up (``Value``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from eafix_capacity.errors import InputError, QuantityError
from eafix_capacity.quantity import parse as parse_quantity
from eafix_capacity.usage.samples import SERVICE_LABEL, Termination

Key = tuple[str, str, str]
"""(namespace, pod, container)."""


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container of a pod as the pod list describes it."""

    namespace: str
    pod: str
    container: str
    service: str
    node: str
    measured: bool
    """Whether metrics-server would report it: the pod is bound to a node and Running (a Pending,
    Succeeded or Failed pod has no usage, so its absence from ``kubectl top`` is not a gap)."""
    cpu_request_m: int | None
    cpu_limit_m: int | None
    memory_request_bytes: int | None
    memory_limit_bytes: int | None


def _figure(resources: Mapping[str, Any], kind: str, resource: str, *, where: str,
            cache: dict[tuple[str, object], int]) -> int | None:
    """``resources[kind][resource]`` in millicores (cpu) or bytes; ``cache`` keeps each text's figure
    for the call (a list of 1,000 pods repeats a handful of quantities, and a parse costs ~35 us)."""
    section = resources.get(kind) or {}
    if not isinstance(section, Mapping) or section.get(resource) is None:
        return None
    text = section[resource]
    key = ("cpu" if resource == "cpu" else "bytes", text)
    known = cache.get(key) if isinstance(text, (str, int)) and not isinstance(text, bool) else None
    if known is not None:
        return known
    try:
        q = parse_quantity(text)
    except QuantityError as e:
        raise InputError(e.problem, obj=where, field=f"resources.{kind}.{resource}", value=text,
                         valid=e.valid) from None
    figure = q.milli_value() if resource == "cpu" else q.int_value()
    if isinstance(text, (str, int)) and not isinstance(text, bool):
        cache[key] = figure
    return figure


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The containers that run beside the app: ``containers`` and the native sidecars
    (``initContainers`` with ``restartPolicy: Always``), which metrics-server reports too."""
    out = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    out += [c for c in spec.get("initContainers") or []
            if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"]
    return out


def pod_items(doc: object, *, source: str) -> list[Mapping[str, Any]]:
    """The items of a pod list's JSON (``kubectl get --raw /api/v1/pods`` or a ``PodList``), or
    an :class:`InputError` naming ``source`` when it is not one."""
    items = doc.get("items") if isinstance(doc, Mapping) else None
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InputError("not a pod list (no items list of objects)", file=source,
                         valid="the JSON of GET /api/v1/pods (kind PodList)")
    return items


def container_infos(pods: Iterable[Mapping[str, Any]]) -> dict[Key, ContainerInfo]:
    """Per (namespace, pod, container): service, node, whether it is measured, requests and limits."""
    out: dict[Key, ContainerInfo] = {}
    cache: dict[tuple[str, object], int] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        service = str(labels.get(SERVICE_LABEL) or "") if isinstance(labels, Mapping) else ""
        node = str(spec.get("nodeName") or "")
        measured = bool(node) and status.get("phase") == "Running"
        for c in _containers(spec):
            cname = str(c.get("name") or "")
            res = c.get("resources") or {}
            where = f"pod {namespace}/{name}: container {cname}"
            out[(namespace, name, cname)] = ContainerInfo(
                namespace, name, cname, service, node, measured,
                _figure(res, "requests", "cpu", where=where, cache=cache),
                _figure(res, "limits", "cpu", where=where, cache=cache),
                _figure(res, "requests", "memory", where=where, cache=cache),
                _figure(res, "limits", "memory", where=where, cache=cache))
    return out


def parse_time(text: object) -> datetime | None:
    """A metav1.Time (``2026-01-14T06:00:00Z``, fractions allowed) as an aware UTC datetime, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.astimezone(timezone.utc) if t.tzinfo is not None else None


def terminations(pods: Iterable[Mapping[str, Any]], *, context: str, seen_at: datetime,
                 source: str) -> list[Termination]:
    """The last termination of each container that has one (``containerStatuses[].lastState.terminated``:
    the reason, e.g. ``OOMKilled``, the ``restartCount`` and the memory limit it ran with). The
    timestamp is the termination's ``finishedAt``, or ``seen_at`` when the status has none."""
    out: list[Termination] = []
    cache: dict[tuple[str, object], int] = {}
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if not any(isinstance(st, Mapping) and isinstance((st.get("lastState") or {}).get("terminated"), Mapping)
                   for st in statuses):
            continue
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        service = str(labels.get(SERVICE_LABEL) or "") if isinstance(labels, Mapping) else ""
        limits = {str(c.get("name") or ""): _figure(c.get("resources") or {}, "limits", "memory", cache=cache,
                                                   where=f"pod {namespace}/{name}: container {c.get('name')}")
                  for c in _containers(pod.get("spec") or {})}
        for st in statuses:
            if not isinstance(st, Mapping):
                continue
            last = (st.get("lastState") or {}).get("terminated")
            if not isinstance(last, Mapping):
                continue
            cname = str(st.get("name") or "")
            finished = parse_time(last.get("finishedAt"))
            out.append(Termination(timestamp=finished or seen_at, context=context, namespace=namespace, pod=name,
                                   container=cname, service=service, reason=str(last.get("reason") or ""),
                                   restart_count=int(st.get("restartCount") or 0),
                                   memory_limit_bytes=limits.get(cname), source=source))
    return out
