"""Waiting for applied workloads to roll out, and saying why one has not.

``apply`` returns once the API server has stored the objects; the pods may still be Pending,
pulling images or failing probes. The readiness predicates and :func:`why_not_ready` are pure
(plain Kubernetes JSON in, a bool or one line out) so they are tested on small dicts;
:func:`wait_for` is the only I/O: one list call per kind each round through the official
client, and pods and events read once, when the timeout is reached, to explain it.
:func:`waiter` adapts it to ``apply``'s ``after_phase(phase, records)`` hook.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eafix_capacity.cluster.livestate import LIST_TIMEOUT
from eafix_capacity.errors import ClusterError

FIRST_POLL = 0.1
"""Seconds before the second look; the wait doubles up to ``poll_interval``."""
KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CustomResourceDefinition")
_IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull")


class RolloutTimeout(ClusterError):
    """Workloads were not ready within the timeout; the message has one line per workload
    that says why, and ``lines`` holds the same lines."""

    def __init__(self, lines: Sequence[str], *, timeout: float) -> None:
        self.lines, self.timeout = tuple(lines), timeout
        head = f"rollout not finished within {timeout:g} s: {len(self.lines)} workload(s) not ready"
        super().__init__("\n".join([head, *self.lines]))

    def __reduce__(self) -> tuple:  # keyword-only argument: rebuilt from the parts
        return (_rebuild, (self.lines, self.timeout))


def _rebuild(lines: Sequence[str], timeout: float) -> RolloutTimeout:
    return RolloutTimeout(lines, timeout=timeout)


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def ref_of(obj: Mapping[str, Any]) -> WorkloadRef:
    meta = obj.get("metadata") or {}
    return WorkloadRef(str(obj.get("kind") or ""), str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


# -- readiness (pure) -------------------------------------------------------------------------

def _generation_current(obj: Mapping[str, Any]) -> bool:
    # Reading the counts before the controller has seen the new generation races on a real cluster.
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and observed >= ((obj.get("metadata") or {}).get("generation") or 0)


def _desired(obj: Mapping[str, Any]) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)  # the API server defaults spec.replicas to 1


def deployment_ready(obj: Mapping[str, Any]) -> bool:
    """Mirrors kubectl's DeploymentStatusViewer (rollout_status.go): generation observed, every
    replica updated, no old replica pending termination, all updated ones available (and ready)."""
    st, want = obj.get("status") or {}, _desired(obj)
    return (_generation_current(obj) and (st.get("replicas") or 0) == want
            and all((st.get(k) or 0) == want for k in ("updatedReplicas", "readyReplicas", "availableReplicas")))


def statefulset_ready(obj: Mapping[str, Any]) -> bool:
    """Mirrors kubectl's StatefulSetStatusViewer: generation observed, readyReplicas = replicas,
    and (RollingUpdate) the current revision is the update revision."""
    st, want = obj.get("status") or {}, _desired(obj)
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    revision_done = strategy != "RollingUpdate" or st.get("currentRevision") == st.get("updateRevision")
    return _generation_current(obj) and (st.get("readyReplicas") or 0) == want and revision_done


def daemonset_ready(obj: Mapping[str, Any]) -> bool:
    """Mirrors kubectl's DaemonSetStatusViewer: generation observed, every scheduled pod updated and ready."""
    st = obj.get("status") or {}
    want = st.get("desiredNumberScheduled") or 0
    return (_generation_current(obj) and (st.get("numberReady") or 0) == want
            and (st.get("updatedNumberScheduled") or 0) == want)


def _crd_condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def crd_established(obj: Mapping[str, Any]) -> bool:
    """A CRD is served once its names are accepted and it is Established (the apiextensions
    server sets both; a custom resource sent before gets ``no matches for kind``), as
    ``kubectl wait --for condition=established`` waits for."""
    return all(_crd_condition(obj, kind).get("status") == "True" for kind in ("NamesAccepted", "Established"))


_READY: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "Deployment": deployment_ready, "StatefulSet": statefulset_ready, "DaemonSet": daemonset_ready,
    "CustomResourceDefinition": crd_established}


def is_ready(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` (a Deployment, StatefulSet or DaemonSet as JSON) has rolled out."""
    kind = obj.get("kind")
    if kind not in _READY:
        raise ValueError(f"no readiness rule for kind {kind!r} (only {', '.join(KINDS)})")
    return _READY[str(kind)](obj)


# -- why not (pure) ---------------------------------------------------------------------------

def _counts(obj: Mapping[str, Any]) -> str:
    st, kind = obj.get("status") or {}, obj.get("kind")
    if kind == "CustomResourceDefinition":
        said = [f"{k} {c.get('status')}: {c.get('message') or c.get('reason') or ''}".rstrip(": ")
                for k in ("NamesAccepted", "Established") if (c := _crd_condition(obj, k)).get("status") != "True"]
        return "not served yet: " + ("; ".join(said) if said else "no conditions")
    if kind == "DaemonSet":
        text = (f"{st.get('numberReady') or 0}/{st.get('desiredNumberScheduled') or 0} ready, "
                f"{st.get('updatedNumberScheduled') or 0} updated")
    elif kind == "StatefulSet":
        text = f"{st.get('readyReplicas') or 0}/{_desired(obj)} ready"
        if st.get("currentRevision") != st.get("updateRevision"):
            text += f", revision {st.get('currentRevision')} -> {st.get('updateRevision')}"
    else:
        text = (f"{st.get('readyReplicas') or 0}/{_desired(obj)} ready, {st.get('updatedReplicas') or 0} updated, "
                f"{st.get('availableReplicas') or 0} available")
        old = (st.get("replicas") or 0) - (st.get("updatedReplicas") or 0)
        if old > 0:
            text += f", {old} old pending termination"
        for cond in st.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                text += f", {cond.get('message') or 'progress deadline exceeded'}"
    if not _generation_current(obj):
        observed = st.get("observedGeneration")
        text += f", generation {(obj.get('metadata') or {}).get('generation')} not yet observed (at {observed})"
    return text


def _selects(obj: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    meta, pmeta = obj.get("metadata") or {}, pod.get("metadata") or {}
    if (pmeta.get("namespace") or "default") != (meta.get("namespace") or "default"):
        return False
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = pmeta.get("labels") or {}
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values)
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _latest_event(events: Iterable[Mapping[str, Any]], pod: Mapping[str, Any], reason: str) -> str | None:
    meta = pod.get("metadata") or {}
    found = [e for e in events if e.get("reason") == reason
             and (e.get("involvedObject") or {}).get("kind") == "Pod"
             and (e.get("involvedObject") or {}).get("name") == meta.get("name")
             and (e.get("involvedObject") or {}).get("namespace", meta.get("namespace")) == meta.get("namespace")]
    found.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or
                                 (e.get("metadata") or {}).get("creationTimestamp") or ""))
    return str(found[-1].get("message") or "") if found else None


def pod_reason(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> str | None:
    """Why one pod is not Ready, or None when it is (or nothing says why)."""
    if _pod_ready(pod):
        return None
    events = list(events)
    st = pod.get("status") or {}
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            message = cond.get("message") or _latest_event(events, pod, "FailedScheduling") or ""
            return f"Pending: {cond.get('reason') or 'Unschedulable'}: {message}".rstrip(": ")
    statuses = list(st.get("initContainerStatuses") or []) + list(st.get("containerStatuses") or [])
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _IMAGE_PULL:
            return f"{waiting['reason']}: container {cs.get('name')}: {waiting.get('message') or ''}".rstrip(": ")
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            exit_text = f", last exit {last.get('reason') or ''} {last.get('exitCode')}".rstrip() if last else ""
            return (f"CrashLoopBackOff: container {cs.get('name')} ({cs.get('restartCount') or 0} restarts"
                    f"{exit_text})")
    unhealthy = _latest_event(events, pod, "Unhealthy")
    if unhealthy:
        return f"probe failing: {unhealthy}"
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: container {cs.get('name')}"
    if st.get("phase") == "Pending":
        return "Pending"
    return None


def why_not_ready(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                  events: Iterable[Mapping[str, Any]]) -> str | None:
    """One line that says why ``workload`` is not ready, from the pods it selects and their
    events, or None when it is ready. ``pods`` and ``events`` may hold others' too."""
    if is_ready(workload):
        return None
    events = list(events)
    reasons: dict[str, list[str]] = {}
    for pod in pods:
        if _selects(workload, pod) and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            reason = pod_reason(pod, events)
            if reason:
                reasons.setdefault(reason, []).append(str((pod.get("metadata") or {}).get("name")))
    parts = [_counts(workload)]
    for reason, names in reasons.items():
        more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
        parts.append(f"pod {names[0]}{more}: {reason}")
    return f"{ref_of(workload)}: " + "; ".join(parts)


def not_found_line(ref: WorkloadRef) -> str:
    return f"{ref}: not found"


# -- waiting (I/O) ----------------------------------------------------------------------------

LIST_PATHS = {"CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
              "Deployment": "/apis/apps/v1/deployments", "StatefulSet": "/apis/apps/v1/statefulsets",
              "DaemonSet": "/apis/apps/v1/daemonsets", "Pod": "/api/v1/pods", "Event": "/api/v1/events"}


def _list_calls(api_client: Any) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """Per kind, the one call that lists it cluster-wide (items with their kind)."""
    from functools import partial

    from eafix_capacity.cluster.rest import list_items

    return {kind: partial(list_items, api_client, path, kind, timeout=LIST_TIMEOUT) for kind, path in LIST_PATHS.items()}


def wait_for(api_client: Any, refs: Iterable[WorkloadRef], *, timeout: float, progress: bool = True,
             poll_interval: float = 0.5, desc: str = "rollout",
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until every workload in ``refs`` is ready (one list call per kind a round), with a
    tqdm bar of ready workloads (``progress=False``: none). Raises :class:`RolloutTimeout`
    after ``timeout`` seconds, having read pods and events once to say why. Errors from the
    client (``ApiException``, urllib3's) propagate for the caller to translate."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs in the venv

    wanted = list(dict.fromkeys(r for r in refs if r.kind in KINDS))
    if not wanted:
        return
    calls = _list_calls(api_client)
    kinds = sorted({r.kind for r in wanted})
    deadline = clock() + timeout
    # the first rounds come quickly (a rollout that is nearly done is seen at once), then every poll_interval
    interval = min(FIRST_POLL, poll_interval)
    with tqdm(total=len(wanted), desc=desc, unit="workload", disable=not progress) as bar:
        while True:
            live = {ref_of(o): o for kind in kinds for o in calls[kind]()}
            pending = [r for r in wanted if r not in live or not is_ready(live[r])]
            if len(wanted) - len(pending) != bar.n:  # redraw only on a change: a log gets one bar per change
                bar.update(len(wanted) - len(pending) - bar.n)
            if not pending:
                return
            left = deadline - clock()
            if left <= 0:
                break
            sleep(min(interval, left))
            interval = min(poll_interval, interval * 2)
    pods, events = calls["Pod"](), calls["Event"]()
    lines = [not_found_line(r) if r not in live else (why_not_ready(live[r], pods, events) or f"{r}: ready")
             for r in pending]
    raise RolloutTimeout(lines, timeout=timeout)


def refs_of_records(records: Iterable[Any]) -> list[WorkloadRef]:
    """The workloads among ``apply``'s records (a dry run's records are skipped: nothing rolls out)."""
    return [WorkloadRef(r.kind, r.namespace or "default", r.name) for r in records
            if r.kind in KINDS and not getattr(r, "dry_run", False)]


def waiter(api_client: Any, *, timeout: float, progress: bool = True, poll_interval: float = 0.5,
           only_wait_after: bool = False) -> Callable[[Any, Sequence[Any]], None]:
    """An ``after_phase(phase, records)`` hook for ``apply`` that waits for the phase's
    workloads (``timeout`` per phase). ``only_wait_after=True`` waits only after the phases
    marked ``wait_after`` (the infrastructure the trading workloads need)."""
    def after_phase(phase: Any, records: Sequence[Any]) -> None:
        if only_wait_after and not getattr(phase, "wait_after", False):
            return
        wait_for(api_client, refs_of_records(records), timeout=timeout, progress=progress,
                 poll_interval=poll_interval, desc=f"rollout {getattr(phase, 'name', phase)}")
    return after_phase


__all__ = ["KINDS", "RolloutTimeout", "WorkloadRef", "daemonset_ready", "deployment_ready", "is_ready",
           "pod_reason", "ref_of", "refs_of_records", "statefulset_ready", "wait_for", "waiter",
           "why_not_ready"]
