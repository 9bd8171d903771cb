"""Drain one node as ``kubectl drain --ignore-daemonsets --delete-emptydir-data`` does, in sim time.

A node-pool upgrade is a sequence of drains, and what the upgrade rehearsal must show is what
a real drain meets: a PodDisruptionBudget that refuses an eviction (429) for minutes, a bare
pod that ``kubectl drain`` will not touch, a pod that takes its grace period to stop. This
module does the drain the way kubectl's ``pkg/drain`` does it, through the same API calls
(cordon by a strategic merge patch, the pods on the node by a field selector, the policy/v1
Eviction subresource, then waiting for each evicted pod to be gone), but waits through the
caller's ``clock`` and ``sleep`` (:mod:`eafix_capacity.sim.hooks`), so on a frozen-clock sim
a drain that a PDB blocks for an hour takes a few hundred milliseconds. It returns what
happened (:class:`DrainResult`) instead of printing it.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

from ..cluster.rest import get_json, list_items, patch_json, post_json
from .observe import service_of
from .records import BlockedEviction

RETRY_DELAY_SECONDS = 5.0       # kubectl drain's EvictErrorRetryDelay
POLL_SECONDS = 1.0              # its waitForDelete interval
REQUEST_TIMEOUT = 10.0
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

# kubectl pkg/drain/filters.go, word for word
DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"

_PDB_IN_CAUSE = re.compile(r"The disruption budget (\S+) needs")


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints whole seconds: ``1m0s``, ``1h0m0s``."""
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    service: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DrainResult:
    """What one drain did. ``done``: every pod it had to move is gone from the node.
    ``errors`` are kubectl's error lines (a filter's refusal, an eviction refused other than
    with 429, the global timeout); ``refusals`` counts the 429s (each retried after 5 s);
    ``blocked`` has one entry per pod a PDB held up, with the PDB and for how long."""

    node: str
    started: datetime
    finished: datetime
    done: bool
    timed_out: bool = False
    evicted: tuple[PodRef, ...] = ()
    skipped: tuple[PodRef, ...] = ()            # DaemonSet-managed and mirror pods, left on the node
    not_evicted: tuple[PodRef, ...] = ()        # still on the node when the drain gave up
    blocked: tuple[BlockedEviction, ...] = ()
    refusals: int = 0
    errors: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    def summary(self) -> str:
        """One line, as ``kubectl drain`` ends: drained, or the error."""
        if self.done:
            return f"node/{self.node} drained: {len(self.evicted)} pods evicted in {self.seconds:g} s"
        return f'error: unable to drain node "{self.node}" due to error: ' + "; ".join(self.errors)


# --- pure: kubectl's filters ---------------------------------------------------------------------

def _controller_of(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def _ref(pod: Mapping[str, Any]) -> PodRef:
    meta = pod.get("metadata") or {}
    return PodRef(str(meta.get("namespace") or ""), str(meta.get("name") or ""), service_of(pod))


def filter_pods(pods: Sequence[Mapping[str, Any]], *, force: bool = False, ignore_daemonsets: bool = True,
                delete_emptydir_data: bool = True
                ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[str]]:
    """(to evict, skipped, errors) as pkg/drain makeFilters applies them, in their order:
    DaemonSet-managed pods (skipped with ``--ignore-daemonsets``, an error without), mirror pods
    (skipped), emptyDir pods (an error without ``--delete-emptydir-data``), pods without a
    controller (an error without ``--force``); finished pods always go. Errors are grouped as
    PodDeleteList.errors: ``cannot delete <why>: ns/a, ns/b`` (pure)."""
    evict: list[Mapping[str, Any]] = []
    skipped: list[Mapping[str, Any]] = []
    failed: dict[str, list[str]] = {}
    for pod in pods:
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        ref = _controller_of(pod)
        meta = pod.get("metadata") or {}
        if ref is not None and ref.get("kind") == "DaemonSet" and not finished:
            if ignore_daemonsets:
                skipped.append(pod)
            else:
                failed.setdefault(DAEMONSET_FATAL, []).append(str(_ref(pod)))
            continue
        if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
            skipped.append(pod)
            continue
        empty_dir = any(isinstance(v, Mapping) and "emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or [])
        if empty_dir and not finished and not delete_emptydir_data:
            failed.setdefault(LOCAL_STORAGE_FATAL, []).append(str(_ref(pod)))
            continue
        if ref is None and not finished and not force:
            failed.setdefault(UNMANAGED_FATAL, []).append(str(_ref(pod)))
            continue
        evict.append(pod)
    errors = [f"cannot delete {why}: {', '.join(names)}" for why, names in failed.items()]
    return evict, skipped, errors


def refusal_of(exc: Any) -> tuple[int, str, str]:
    """(status, message, PDB name) of an ``ApiException``: the Status body's message, and the PDB
    its ``DisruptionBudget`` cause names ("" when none does)."""
    status = int(getattr(exc, "status", 0) or 0)
    body: Any = getattr(exc, "body", None)
    try:
        doc = json.loads(body) if isinstance(body, (str, bytes)) and body else {}
    except ValueError:
        doc = {}
    message = str(doc.get("message") or getattr(exc, "reason", "") or exc) if isinstance(doc, dict) else str(exc)
    pdb = ""
    causes = ((doc.get("details") or {}).get("causes") or []) if isinstance(doc, dict) else []
    for cause in causes:
        found = _PDB_IN_CAUSE.search(str((cause or {}).get("message") or ""))
        if found:
            pdb = found.group(1)
            break
    return status, message, pdb


# --- the drain -----------------------------------------------------------------------------------

def cordon(api_client: Any, node: str, *, timeout: float = REQUEST_TIMEOUT) -> bool:
    """Mark ``node`` unschedulable as ``kubectl cordon`` does (a strategic merge patch of
    ``spec.unschedulable``); False when it already was."""
    path = f"/api/v1/nodes/{quote(node, safe='')}"
    current = get_json(api_client, path, timeout=timeout)
    if (current.get("spec") or {}).get("unschedulable"):
        return False
    patch_json(api_client, path, {"spec": {"unschedulable": True}}, timeout=timeout)
    return True


def pods_on_node(api_client: Any, node: str, *, timeout: float = REQUEST_TIMEOUT) -> list[dict[str, Any]]:
    """Every namespace's pods bound to ``node`` (the field selector kubectl drain lists with)."""
    return list_items(api_client, f"/api/v1/pods?fieldSelector={quote('spec.nodeName=' + node, safe='')}",
                      "Pod", timeout=timeout)


def evict(api_client: Any, namespace: str, name: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
    """POST a policy/v1 Eviction for the pod (its refusal raises ``ApiException``)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    post_json(api_client, f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}/eviction",
              body, timeout=timeout)


def _seconds_after(start: datetime, pod: Mapping[str, Any]) -> float:
    """When (seconds after ``start``) the pod's grace period ends: its ``deletionTimestamp``."""
    text = str((pod.get("metadata") or {}).get("deletionTimestamp") or "")
    try:
        at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=start.tzinfo)
    except ValueError:
        return 0.0
    return (at - start).total_seconds()


@dataclass
class _Pod:
    ref: PodRef
    uid: str
    state: str = "evict"                # evict -> waiting -> gone | failed
    next_try: float = 0.0
    first_refused: datetime | None = None
    refusal: tuple[str, str] = ("", "")  # (message, pdb)
    evicted_at: datetime | None = None


def drain(api_client: Any, node: str, *, clock: Callable[[], datetime], sleep: Callable[[float], object],
          timeout: float, force: bool = False, ignore_daemonsets: bool = True, delete_emptydir_data: bool = True,
          retry_delay: float = RETRY_DELAY_SECONDS, poll: float = POLL_SECONDS, wait_for_grace: bool = False,
          steady_retry: float = 0.0, request_timeout: float = REQUEST_TIMEOUT) -> DrainResult:
    """Cordon ``node``, then evict its pods as ``kubectl drain --ignore-daemonsets
    --delete-emptydir-data --timeout=<timeout>s`` does (see :func:`filter_pods`): a filter's
    error stops the drain before any eviction (the node stays cordoned); a 429 is retried after
    ``retry_delay`` seconds; a 404 means the pod is already gone; any other refusal fails that
    pod; each evicted pod is waited for until it is gone (or replaced: another UID), looked for
    every ``poll`` seconds; with ``wait_for_grace`` not before its ``deletionTimestamp`` (the end
    of its grace period: the sim's kubelet removes a pod exactly then, so the drain ends at the
    same sim time with far fewer steps). ``timeout`` seconds (0: no limit) bound the evictions
    and the waiting together, as kubectl's global timeout. ``steady_retry`` (seconds, 0: off):
    when every eviction of a round was refused with 429 and no evicted pod is waiting, try again
    only after that long (a whole number of retry periods, never past the timeout) and count the
    retries kubectl would have made meanwhile as refused: on the frozen sim a budget that blocks
    for an hour then takes 60 steps instead of 720, and a pod it lets go leaves at most that much
    sim time late. Transport errors propagate."""
    from kubernetes.client.exceptions import ApiException

    started = clock()
    cordon(api_client, node, timeout=request_timeout)
    listed = pods_on_node(api_client, node, timeout=request_timeout)
    to_evict, skipped, errors = filter_pods(listed, force=force, ignore_daemonsets=ignore_daemonsets,
                                            delete_emptydir_data=delete_emptydir_data)
    skipped_refs = tuple(_ref(p) for p in skipped)
    if errors:
        return DrainResult(node, started, clock(), done=False, skipped=skipped_refs,
                           not_evicted=tuple(_ref(p) for p in to_evict), errors=tuple(errors))
    pods = [_Pod(_ref(p), str((p.get("metadata") or {}).get("uid") or "")) for p in to_evict]
    refusals, failures = 0, []
    timed_out = False

    def elapsed() -> float:
        return (clock() - started).total_seconds()

    while True:
        now = elapsed()
        expired = timeout > 0 and now >= timeout
        refused_now: list[_Pod] = []
        progressed = False
        for p in pods:
            if p.state != "evict" or p.next_try > now:
                continue
            if expired:
                p.state = "failed"
                failures.append(f'error when evicting pods/"{p.ref.name}" -n "{p.ref.namespace}": '
                                f"global timeout reached: {go_duration(timeout)}")
                continue
            try:
                evict(api_client, p.ref.namespace, p.ref.name, timeout=request_timeout)
                p.state, p.evicted_at = "waiting", clock()
                progressed = True
            except ApiException as e:
                status, message, pdb = refusal_of(e)
                if status == 404:
                    p.state, progressed = "gone", True
                elif status == 429:
                    refusals += 1
                    at = clock()
                    p.first_refused = p.first_refused or at
                    p.refusal = (message, pdb or p.refusal[1])
                    p.next_try = now + retry_delay
                    refused_now.append(p)
                else:
                    p.state, progressed = "failed", True
                    failures.append(f'error when evicting pods/"{p.ref.name}" -n "{p.ref.namespace}": {message}')
        waiting = [p for p in pods if p.state == "waiting"]
        grace_ends: list[float] = []
        if waiting:
            present = {str((q.get("metadata") or {}).get("uid") or ""): q
                       for q in pods_on_node(api_client, node, timeout=request_timeout)}
            for p in waiting:
                if wait_for_grace and p.uid in present:
                    grace_ends.append(_seconds_after(started, present[p.uid]))
                if p.uid not in present:
                    p.state = "gone"
                elif expired:
                    p.state = "failed"
                    failures.append(f'error when waiting for pod "{p.ref.name}" in namespace "{p.ref.namespace}" '
                                    "to terminate: context deadline exceeded")
        if steady_retry > retry_delay and refused_now and not progressed and not waiting:
            periods = max(1, int(steady_retry // retry_delay))
            for p in refused_now:
                p.next_try = now + periods * retry_delay
                if timeout > 0:
                    p.next_try = min(p.next_try, float(timeout))
                # kubectl's retries in between: at now + k * retry_delay before the next try
                refusals += max(0, math.ceil((p.next_try - now) / retry_delay) - 1)
        if expired:
            timed_out = any(p.state == "failed" for p in pods)
        if all(p.state in ("gone", "failed") for p in pods):
            break
        # sleep to the next thing due: a retry, a poll of the evicted pods, or the timeout
        due = [p.next_try for p in pods if p.state == "evict"]
        if any(p.state == "waiting" for p in pods):
            due.append(max([now + poll, *[g for g in grace_ends if g > now]]) if grace_ends else now + poll)
        if timeout > 0:
            due.append(float(timeout))
        sleep(max(min(due) - now, 0.001))
    finished = clock()
    blocked = tuple(BlockedEviction(
        namespace=p.ref.namespace, pod=p.ref.name, pdb=p.refusal[1], first_refused=p.first_refused,
        seconds=((p.evicted_at or finished) - p.first_refused).total_seconds(), message=p.refusal[0])
        for p in pods if p.first_refused is not None)
    return DrainResult(node, started, finished, done=not failures, timed_out=timed_out,
                       evicted=tuple(p.ref for p in pods if p.state == "gone"), skipped=skipped_refs,
                       not_evicted=tuple(p.ref for p in pods if p.state == "failed"), blocked=blocked,
                       refusals=refusals, errors=tuple(failures))
