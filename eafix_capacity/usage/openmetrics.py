"""The usage model's history of a set of pods as the metrics a cluster's Prometheus would hold.

A real cluster's Prometheus scrapes the kubelet's cAdvisor endpoint and kube-state-metrics;
the sim has no past, so ``sim history`` writes what those scrapes would have collected over
a window as an OpenMetrics file, which ``promtool tsdb create-blocks-from openmetrics`` turns
into TSDB blocks a real Prometheus then serves. The kit's Prometheus source reads it back
with the same queries it runs against a real cluster: this closes the loop from the usage
model to the Prometheus source without a cluster running for 14 days.

Every pod is taken to run over the whole window (the history is synthetic). Per container
and step it writes cAdvisor's ``container_cpu_usage_seconds_total`` (a counter of CPU
seconds, each step adding the model's usage at that step times the step, so
``rate(...[step])`` at a step reads the model's figure back), and
``container_memory_working_set_bytes``; and kube-state-metrics'
``kube_pod_container_resource_requests``/``_limits`` (``resource``, ``unit``),
``kube_pod_labels`` (``label_app_kubernetes_io_name``), ``kube_pod_info`` (``node``),
``kube_pod_container_status_restarts_total`` and, once a container wanted more memory than
its limit (the kubelet's OOM kill, see :meth:`UsageModel.usage` ``clamp=False``),
``kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}``.

Pure: :func:`history_lines` yields text; :func:`write_history` is the one function that
writes (atomically) a file.
"""
from __future__ import annotations

import os
import secrets
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from eafix_capacity.errors import InputError, OutputError
from eafix_capacity.sim.usage_model import UsageModel, cpu_nanocores, memory_bytes

SERVICE_LABEL = "app.kubernetes.io/name"


def escape(value: str) -> str:
    """A label value as the text formats quote it (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels_text(labels: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}"


def sanitize_label_name(name: str) -> str:
    """kube-state-metrics' ``label_`` name of a Kubernetes label (every invalid character to ``_``)."""
    return "label_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def decimal(numerator: int, scale: int) -> str:
    """``numerator / scale`` (scale a power of ten) as an exact decimal string: 250, 1000 -> ``0.25``."""
    sign = "-" if numerator < 0 else ""
    whole, frac = divmod(abs(numerator), scale)
    if frac == 0:
        return f"{sign}{whole}"
    digits = len(str(scale)) - 1
    return f"{sign}{whole}." + f"{frac:0{digits}d}".rstrip("0")


@dataclass(frozen=True)
class ContainerInfo:
    """What the scrapes know of one container: its pod's identity and its resources."""

    namespace: str
    pod: str
    uid: str
    node: str
    container: str
    image: str
    labels: Mapping[str, str]
    requests: Mapping[str, object]
    limits: Mapping[str, object]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"

    @property
    def cadvisor_labels(self) -> tuple[tuple[str, str], ...]:
        """The labels a scrape of the kubelet's ``/metrics/cadvisor`` carries (plus ``node``, as the
        usual kubernetes_sd relabelling adds)."""
        cid = f"/kubepods/pod{self.uid}/{self.container}"
        return (("container", self.container), ("id", cid), ("image", self.image), ("name", self.container),
                ("namespace", self.namespace), ("node", self.node), ("pod", self.pod))

    @property
    def ksm_container_labels(self) -> tuple[tuple[str, str], ...]:
        return (("namespace", self.namespace), ("pod", self.pod), ("uid", self.uid), ("container", self.container))


def containers_of(pods: Iterable[Mapping]) -> list[ContainerInfo]:
    """The containers of ``pods`` (Pod objects as the API serves them) that run on a node."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        for c in spec.get("containers") or []:
            res = c.get("resources") or {}
            out.append(ContainerInfo(
                namespace=str(meta.get("namespace", "")), pod=str(meta.get("name", "")),
                uid=str(meta.get("uid", "")), node=str(spec.get("nodeName") or ""),
                container=str(c.get("name", "")), image=str(c.get("image", "")),
                labels=dict(meta.get("labels") or {}), requests=dict(res.get("requests") or {}),
                limits=dict(res.get("limits") or {})))
    return out


def check_window(start: datetime, end: datetime, step: timedelta) -> int:
    """The number of steps from ``start`` to ``end`` inclusive; refuses a bad window."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError("needs a time zone", field="start/end", value=f"{start} .. {end}",
                         valid="timezone-aware UTC datetimes")
    if step.total_seconds() < 1 or step.total_seconds() != int(step.total_seconds()):
        raise InputError("not a whole number of seconds", field="--step", value=str(step),
                         valid="a step of at least 1 s in whole seconds, e.g. 60s")
    if start.microsecond or end < start:
        raise InputError("bad window", field="--days", value=f"{start} .. {end}",
                         valid="a start in whole seconds before the end")
    return int((end - start) // step) + 1


def _resource_lines(name: str, infos: Sequence[ContainerInfo], which: str, stamps: Sequence[int]) -> Iterator[str]:
    yield f"# TYPE {name} gauge\n"
    for info in infos:
        values = info.requests if which == "requests" else info.limits
        for resource, unit in (("cpu", "core"), ("memory", "byte")):
            if resource not in values:
                continue
            amount = values[resource]
            value = decimal(cpu_nanocores(amount), 10**9) if resource == "cpu" else str(memory_bytes(amount))
            lbl = labels_text((*info.ksm_container_labels, ("node", info.node), ("resource", resource),
                               ("unit", unit)))
            for ts in stamps:
                yield f"{name}{lbl} {value} {ts}\n"


def history_lines(pods: Iterable[Mapping], model: UsageModel, *, start: datetime, end: datetime,
                  step: timedelta) -> Iterator[str]:
    """The OpenMetrics text (chunks ending in a line feed, the last ``# EOF``) of what cAdvisor and
    kube-state-metrics would have reported for ``pods`` every ``step`` from ``start`` to ``end``."""
    n = check_window(start, end, step)
    step_s = int(step.total_seconds())
    times = [start + i * step for i in range(n)]
    stamps = [int(t.timestamp()) for t in times]
    infos = containers_of(pods)
    cpu: list[array] = []
    mem: list[array] = []
    kills: list[array] = []
    for info in infos:
        c, m, k = array("q"), array("q"), array("q")
        killed = 0
        limit = memory_bytes(info.limits["memory"]) if "memory" in info.limits else None
        for t in times:
            cpu_n, mem_b = model.usage(info.labels, info.container, info.requests, info.limits, t, key=info.key,
                                       clamp=False)
            if limit is not None and mem_b > limit:  # the kubelet's OOM kill: metrics never show more
                killed += 1
                mem_b = limit
            c.append(cpu_n)
            m.append(mem_b)
            k.append(killed)
        cpu.append(c)
        mem.append(m)
        kills.append(k)

    yield "# TYPE container_cpu_usage_seconds counter\n"
    yield "# UNIT container_cpu_usage_seconds seconds\n"
    yield "# HELP container_cpu_usage_seconds Cumulative cpu time consumed in seconds.\n"
    for info, values in zip(infos, cpu):
        lbl = labels_text((("container", info.container), ("cpu", "total"), *info.cadvisor_labels[1:]))
        total = 0  # CPU nanoseconds, exact
        for ts, nanocores in zip(stamps, values):
            total += nanocores * step_s
            yield f"container_cpu_usage_seconds_total{lbl} {decimal(total, 10**9)} {ts}\n"
    yield "# TYPE container_memory_working_set_bytes gauge\n"
    yield "# UNIT container_memory_working_set_bytes bytes\n"
    yield "# HELP container_memory_working_set_bytes Current working set in bytes.\n"
    for info, values in zip(infos, mem):
        lbl = labels_text(info.cadvisor_labels)
        for ts, nbytes in zip(stamps, values):
            yield f"container_memory_working_set_bytes{lbl} {nbytes} {ts}\n"
    yield from _resource_lines("kube_pod_container_resource_requests", infos, "requests", stamps)
    yield from _resource_lines("kube_pod_container_resource_limits", infos, "limits", stamps)
    yield "# TYPE kube_pod_container_status_restarts counter\n"
    for info, values in zip(infos, kills):
        lbl = labels_text(info.ksm_container_labels)
        for ts, count in zip(stamps, values):
            yield f"kube_pod_container_status_restarts_total{lbl} {count} {ts}\n"
    yield "# TYPE kube_pod_container_status_last_terminated_reason gauge\n"
    for info, values in zip(infos, kills):
        lbl = labels_text((*info.ksm_container_labels, ("reason", "OOMKilled")))
        for ts, count in zip(stamps, values):
            if count:  # kube-state-metrics shows the reason once the container has terminated
                yield f"kube_pod_container_status_last_terminated_reason{lbl} 1 {ts}\n"
    seen: dict[str, ContainerInfo] = {}
    for info in infos:
        seen.setdefault(info.key, info)
    yield "# TYPE kube_pod_labels gauge\n"
    for info in seen.values():
        pairs = [("namespace", info.namespace), ("pod", info.pod), ("uid", info.uid)]
        pairs += sorted((sanitize_label_name(k), str(v)) for k, v in info.labels.items())
        lbl = labels_text(pairs)
        for ts in stamps:
            yield f"kube_pod_labels{lbl} 1 {ts}\n"
    yield "# TYPE kube_pod_info gauge\n"
    for info in seen.values():
        lbl = labels_text((("namespace", info.namespace), ("pod", info.pod), ("uid", info.uid), ("node", info.node)))
        for ts in stamps:
            yield f"kube_pod_info{lbl} 1 {ts}\n"
    yield "# EOF\n"


def history_text(pods: Iterable[Mapping], model: UsageModel, *, start: datetime, end: datetime,
                 step: timedelta) -> str:
    return "".join(history_lines(pods, model, start=start, end=end, step=step))


def default_window(*, days: float, step: timedelta, now: datetime | None = None) -> tuple[datetime, datetime]:
    """A window of ``days`` ending on a whole step at least 3 h before ``now``: promtool's backfill
    is not meant for the last 3 h (Prometheus' head block), and Prometheus' default 15-day retention
    keeps blocks newer than 15 days."""
    if not 0 < days <= 365:
        raise InputError("out of range", field="--days", value=days, valid="a number of days from 0 to 365")
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    step_s = int(step.total_seconds())
    if step_s < 1:
        raise InputError("too small", field="--step", value=str(step), valid="at least 1s")
    end_epoch = (int(now.timestamp()) - 3 * 3600 - 60) // step_s * step_s
    end = datetime.fromtimestamp(end_epoch, timezone.utc)
    start = datetime.fromtimestamp(end_epoch - int(days * 86400) // step_s * step_s, timezone.utc)
    return start, end


def write_history(path: str | Path, lines: Iterable[str]) -> int:
    """Stream ``lines`` to a temporary file beside ``path`` and rename it into place; the bytes written."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    written = 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            buf: list[str] = []
            for line in lines:
                buf.append(line)
                if len(buf) >= 4096:
                    written += f.write("".join(buf))
                    buf.clear()
            written += f.write("".join(buf))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{p}: cannot write ({e.strerror or e})") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
