"""The sim cluster's control plane behaviour: controllers, scheduler loop, kubelet, eviction, metrics.

A real cluster's kube-controller-manager, kube-scheduler and kubelets turn Deployments into
running Pods and keep status fields moving; ``kubectl rollout status``, ``wait``, ``drain``
and ``top`` only work because of them. ``ControllerManager`` plays all of those parts in
one background thread over the sim's :class:`~eafix_capacity.sim.store.Store`: each pass
lists the objects (shared, read-only snapshots), reconciles every controller against them
and writes the differences back; a pass runs after any relevant change and the loop stops
when a pass writes nothing (a fixpoint), which is what :meth:`ControllerManager.settle`
waits for. The arithmetic (template hash, surge and unavailability, PDB budgets, HPA
proposals) is in pure functions below so it is unit-tested without a store.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from eafix_capacity.errors import ClusterError, InputError
from eafix_capacity.sim import metrics as M
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.kobject import selector_matches
from eafix_capacity.sim.scheduler import (Binding, node_affinity_matches, node_taints, pod_tolerations,
                                          schedule_pending)
from eafix_capacity.sim.store import compact
from eafix_capacity.sim.usage_model import UsageModel, cpu_nanocores, load_usage_model, memory_bytes

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""apimachinery's ``rand`` alphabet: no vowels (no words), no 0/1/3 (no look-alikes)."""

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
STS_REVISION_LABEL = "controller-revision-hash"
STS_POD_NAME = "statefulset.kubernetes.io/pod-name"
STS_POD_INDEX = "apps.kubernetes.io/pod-index"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HPA_SYNC_SECONDS = 15.0
HPA_TOLERANCE = 0.1
EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."

_WATCHED = frozenset(rt.key for rt in (R.POD, R.NODE, R.DEPLOYMENT, R.REPLICASET, R.STATEFULSET, R.DAEMONSET,
                                       R.HPA, R.PDB, R.PVC))


# --- pure arithmetic ------------------------------------------------------------------------


def fnv32a(data: bytes, h: int = 0x811C9DC5) -> int:
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """apimachinery ``rand.SafeEncodeString``: each byte mapped into :data:`SAFE_ALPHABET`."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def template_hash(template: Mapping, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template, computed the way the Deployment controller does.

    FNV-32a over the template (canonical JSON here; Go hashes its struct dump, so the
    values differ from a real cluster's but have the same form), then the decimal digits of
    the 32-bit sum safe-encoded: up to 10 characters of ``[bcdfghjklmnpqrstvwxz2456789]``
    (in practice only the 10 characters digits map to), 10 for sums of 10 digits.
    """
    h = fnv32a(json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode())
    if collision_count:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def semantic(obj: Any) -> Any:
    """``obj`` without null fields: Go decodes ``"creationTimestamp": null`` (which kubectl
    sends back in ``rollout undo``) to the zero value, so the two compare equal there."""
    if isinstance(obj, dict):
        return {k: semantic(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [semantic(v) for v in obj]
    return obj


def random_suffix(rand: random.Random, n: int = 5) -> str:
    """The ``generateName`` suffix: ``n`` characters of :data:`SAFE_ALPHABET`."""
    return "".join(rand.choice(SAFE_ALPHABET) for _ in range(n))


def scaled_value(value: int | str | None, total: int, *, round_up: bool, field: str = "value") -> int:
    """An IntOrString against ``total``: ``3`` -> 3, ``"25%"`` of 10 -> 3 (round up) or 2 (down)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InputError("must be an integer or a percentage", field=field, value=value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError as e:
            raise InputError("not a percentage", field=field, value=value, valid='e.g. "25%"') from e
        return math.ceil(pct * total / 100) if round_up else (pct * total) // 100
    raise InputError("must be an integer or a percentage", field=field, value=value, valid='e.g. 1 or "25%"')


def surge_and_unavailable(max_surge: int | str | None, max_unavailable: int | str | None,
                          replicas: int) -> tuple[int, int]:
    """Deployment rolling update fenceposts: surge rounds up, unavailable rounds down,
    both default to 25%, and when both come out 0 unavailable becomes 1."""
    surge = scaled_value("25%" if max_surge is None else max_surge, replicas, round_up=True, field="maxSurge")
    unavailable = scaled_value("25%" if max_unavailable is None else max_unavailable, replicas, round_up=False,
                               field="maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_rs_replicas(replicas: int, new_current: int, total_current: int, max_surge: int) -> int:
    """Replicas for the new ReplicaSet in a rolling update (``NewRSNewReplicas``)."""
    max_total = replicas + max_surge
    if total_current >= max_total:
        return new_current
    scale_up = min(max_total - total_current, replicas - new_current)
    return new_current + max(scale_up, 0)


def old_rs_scale_down(replicas: int, all_spec: int, new_spec: int, new_available: int,
                      max_unavailable: int) -> int:
    """How many old pods a rolling update may remove now (``reconcileOldReplicaSets``)."""
    min_available = replicas - max_unavailable
    new_unavailable = new_spec - new_available
    return max(0, all_spec - min_available - new_unavailable)


@dataclass(frozen=True)
class Budget:
    expected: int
    desired_healthy: int
    current_healthy: int
    disruptions_allowed: int


def pdb_budget(spec: Mapping, *, matching_pods: int, healthy: int, controller_scale: int) -> Budget:
    """PodDisruptionBudget arithmetic as the disruption controller does it.

    ``minAvailable`` as a number counts the matching pods; as a percentage, and
    ``maxUnavailable`` either way, count the owning controllers' scale; percentages round up.
    """
    if spec.get("maxUnavailable") is not None:
        expected = controller_scale
        unavailable = scaled_value(spec["maxUnavailable"], expected, round_up=True, field="maxUnavailable")
        desired = max(0, expected - unavailable)
    elif isinstance(spec.get("minAvailable"), str):
        expected = controller_scale
        desired = scaled_value(spec["minAvailable"], expected, round_up=True, field="minAvailable")
    elif spec.get("minAvailable") is not None:
        expected = matching_pods
        desired = scaled_value(spec["minAvailable"], expected, round_up=True, field="minAvailable")
    else:
        expected = controller_scale
        desired = expected
    allowed = healthy - desired if expected > 0 else 0
    return Budget(expected, desired, healthy, max(0, allowed))


def hpa_proposal(current: int, utilization: float, target: float, ready_pods: int) -> int:
    """Replica proposal for one utilisation metric: unchanged within 10% tolerance, else
    ``ceil(ready pods x utilisation / target)``."""
    ratio = utilization / target
    if abs(1.0 - ratio) <= HPA_TOLERANCE:
        return current
    return math.ceil(ratio * ready_pods)


def hpa_scale_limits(current: int, behavior: Mapping | None) -> tuple[int, int]:
    """(largest, smallest) replica count one sync may move to under the scaling policies.

    Defaults: up by max(100%, 4 pods), down by 100%; ``selectPolicy: Min``/``Disabled``."""
    behavior = behavior or {}

    def limit(direction: str, default: list[dict], up: bool) -> int:
        rules = behavior.get(direction) or {}
        policies = rules.get("policies") or default
        select = rules.get("selectPolicy") or "Max"
        if select == "Disabled":
            return current
        values = []
        for p in policies:
            v = int(p.get("value", 0))
            if p.get("type") == "Pods":
                values.append(current + v if up else current - v)
            else:
                values.append(math.ceil(current * (1 + v / 100)) if up else math.ceil(current * (1 - v / 100)))
        if up:
            return max(values) if select == "Max" else min(values)
        return min(values) if select == "Max" else max(values)

    return (limit("scaleUp", [{"type": "Percent", "value": 100}, {"type": "Pods", "value": 4}], True),
            max(0, limit("scaleDown", [{"type": "Percent", "value": 100}], False)))


def qos_class(pod: Mapping) -> str:
    containers = list((pod.get("spec") or {}).get("containers") or []) + \
        list((pod.get("spec") or {}).get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            want = req.get(r, lim.get(r))
            if r not in lim or want is None or str(want) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def is_ready(pod: Mapping) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def is_active(pod: Mapping) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def controller_of(obj: Mapping) -> Mapping | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _ns_name(obj: Mapping) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _owner_ref(owner: Mapping, kind: str, api_version: str = "apps/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _strip_hash(template: Mapping) -> dict:
    t = semantic(template)
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def _revision(rs: Mapping) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                   *, now: str, update_time: bool = False) -> list[dict]:
    """Set one condition, keeping lastTransitionTime while its status does not change."""
    out = [c for c in conditions if c.get("type") != ctype]
    old = next((c for c in conditions if c.get("type") == ctype), None)
    cond: dict = {"type": ctype, "status": status}
    if update_time:
        same = old is not None and \
            (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message)
        cond["lastUpdateTime"] = old.get("lastUpdateTime", now) if same and old else now
    cond["lastTransitionTime"] = old["lastTransitionTime"] if old and old.get("status") == status and \
        old.get("lastTransitionTime") else now
    cond["reason"] = reason
    cond["message"] = message
    out.append(cond)
    return out


def _same_status(a: Mapping | None, b: Mapping | None) -> bool:
    return json.dumps(a or {}, sort_keys=True) == json.dumps(b or {}, sort_keys=True)


def _drop_zero(status: dict, keys: Iterable[str]) -> dict:
    for k in keys:
        if not status.get(k):
            status.pop(k, None)
    return status


def _cpu_m_text(nanocores: float) -> str:
    m = int(nanocores // 1_000_000)
    return f"{m}m"


# --- the manager ------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    pods: list[dict]
    nodes: list[dict]
    replicasets: list[dict]
    deployments: list[dict]
    statefulsets: list[dict]
    daemonsets: list[dict]
    pdbs: list[dict]
    hpas: list[dict]
    pods_by_owner: dict[str, list[dict]]
    revisions: list[dict]


KUBELET_EVENTS_MAX_PODS = 1000
BURST_REPLICAS = 500
"""Pods a ReplicaSet creates per pass (the replicaset controller's ``burstReplicas``): a huge
``replicas`` grows over passes instead of holding the controller thread in one endless pass."""
EVENT_CACHE_SIZE = 4096
"""Events remembered for aggregation into ``count`` (client-go's ``maxLruCacheEntries``)."""


class ControllerManager:
    """All sim behaviour behind one start/stop switch (see the module docstring).

    ``kubelet_events``: the kubelet's per-container Pulled/Created/Started events. ``None``
    (the default) records them while the cluster has fewer than
    :data:`KUBELET_EVENTS_MAX_PODS` pods: they are most of the sim's writes and memory at
    scale, where a real cluster's one-hour event TTL would drop them anyway.
    """

    def __init__(self, store: Any, registry: Registry, *, clock: SimClock,
                 usage_model_path: str | Path | None = None, seed: int = 0,
                 usage_model: UsageModel | None = None, kubelet_events: bool | None = None) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.model = usage_model if usage_model is not None else load_usage_model(usage_model_path)
        self.kubelet_events = kubelet_events
        self._rand = random.Random(seed)
        self._cv = threading.Condition()
        self._seq = 0
        self._done = 0
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        self._hpa_last: dict[str, float] = {}
        self._hpa_history: dict[str, list[tuple[float, int]]] = {}
        self._events: dict[tuple, tuple[str, str, int, float]] = {}
        self._event_seq = 0
        self._evict_lock = threading.Lock()
        self._pod_count = 0
        self._progress: dict[str, tuple[tuple, float]] = {}
        self._fresh: dict[str, dict] = {}
        self._deadline_kicked: set[tuple[str, float]] = set()
        store.subscribe(self._on_change)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sim-controllers", daemon=True)
        self._kick()
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def settle(self, timeout: float = 5.0) -> None:
        """Block until a pass has run after every change so far and written nothing new.

        Also runs the periodic work that is due (HPA syncs after ``clock.advance``). Raises
        ``ClusterError`` when the controllers keep changing things past ``timeout`` or a
        pass failed.
        """
        if self._thread is None:
            self.run_once()
            return
        deadline = time.monotonic() + timeout
        self._kick()
        with self._cv:
            while self._done < self._seq or self._busy:
                if self._errors:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClusterError(f"sim controllers did not settle within {timeout}s")
                self._cv.wait(remaining)
            if self._errors:
                err = self._errors[-1]
                self._errors.clear()
                raise ClusterError(f"a sim controller pass failed: {err!r}") from err

    def run_once(self, max_passes: int = 1000) -> int:
        """Run passes in the calling thread until one writes nothing (tests, benchmarks).

        Only without the background thread: two concurrent passes would race each other."""
        if self._thread is not None:
            raise ClusterError("run_once() needs the controllers stopped; use settle() while they run")
        for n in range(1, max_passes + 1):
            with self._cv:
                target = self._seq
            self._pass()
            with self._cv:
                if self._seq == target:
                    self._done = target
                    return n
        raise ClusterError(f"sim controllers did not settle within {max_passes} passes")

    def set_usage_model(self, model: UsageModel) -> None:
        """Swap the usage model (what-if load, tests); metrics and the HPA use it from now on."""
        self.model = model
        self._kick()

    def _kick(self) -> None:
        with self._cv:
            self._seq += 1
            self._cv.notify_all()

    def _on_change(self, etype: str, rt: ResourceType, obj: dict) -> None:
        if rt.key in _WATCHED:
            with self._cv:
                self._seq += 1
                self._cv.notify_all()

    def _tick_seconds(self) -> float:
        speed = self.clock.speed
        if speed <= 0:
            return 1.0
        return min(1.0, max(0.02, HPA_SYNC_SECONDS / speed / 3))

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._done >= self._seq and not self._stopping:
                    self._cv.wait(self._tick_seconds())
                if self._stopping:
                    return
                target = self._seq
                full = self._done < target
                self._busy = True
            try:
                if full:
                    self._pass()
                else:
                    self._periodic()
            except Exception as e:  # keep serving; settle() reports it
                self._errors.append(e)
                del self._errors[:-5]
            finally:
                with self._cv:
                    self._busy = False
                    if full:
                        self._done = max(self._done, target)
                    self._cv.notify_all()

    # --- one pass -------------------------------------------------------------------------------

    def _list(self, rt: ResourceType) -> list[dict]:
        objs, _, _ = self.store.list_objects(rt)
        return objs

    def _snapshot(self) -> _Snapshot:
        # Pods first: an owner listed later is never missing for a pod listed earlier.
        pods = self._list(R.POD)
        by_owner: dict[str, list[dict]] = defaultdict(list)
        for p in pods:
            ref = controller_of(p)
            if ref and is_active(p):
                by_owner[ref.get("uid", "")].append(p)
        return _Snapshot(
            pods=pods, nodes=self._list(R.NODE), replicasets=self._list(R.REPLICASET),
            deployments=self._list(R.DEPLOYMENT), statefulsets=self._list(R.STATEFULSET),
            daemonsets=self._list(R.DAEMONSET), pdbs=self._list(R.PDB), hpas=self._list(R.HPA),
            pods_by_owner=by_owner, revisions=self._list(R.CONTROLLERREVISION),
        )

    def _pass(self) -> None:
        self._fresh.clear()
        snap = self._snapshot()
        self._sync_nodes(snap)
        self._garbage_collect(snap)
        for d in snap.deployments:
            self._guard(self._sync_deployment, d, snap)
        for rs in snap.replicasets:
            # A ReplicaSet the Deployment step just scaled is synced at its new size.
            self._guard(self._sync_replicaset, self._fresh.get(rs["metadata"]["uid"], rs), snap)
        self._fresh.clear()
        for sts in snap.statefulsets:
            self._guard(self._sync_statefulset, sts, snap)
        for ds in snap.daemonsets:
            self._guard(self._sync_daemonset, ds, snap)
        self._bind_claims()
        self._schedule_and_run(snap)
        for pdb in snap.pdbs:
            self._guard(self._sync_pdb, pdb, snap)
        self._periodic(snap)

    def _guard(self, fn: Callable, obj: Mapping, snap: _Snapshot) -> None:
        """Run one object's sync; lost races with other writers are retried next pass."""
        try:
            fn(obj, snap)
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    def _periodic(self, snap: _Snapshot | None = None) -> None:
        elapsed = self.clock.elapsed()
        if snap is None and self._progress:
            # A stalled rollout changes nothing, so nothing triggers the pass that would
            # mark it ProgressDeadlineExceeded: trigger one when a deadline has passed.
            deployments = {d["metadata"]["uid"]: d for d in self._list(R.DEPLOYMENT)}
            for uid, (_, since) in list(self._progress.items()):
                d = deployments.get(uid)
                if d is None:
                    self._progress.pop(uid, None)
                    continue
                deadline = float((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
                if elapsed - since > deadline and (uid, since) not in self._deadline_kicked:
                    self._deadline_kicked.add((uid, since))
                    self._kick()
        hpas = snap.hpas if snap is not None else self._list(R.HPA)
        for hpa in hpas:
            uid = hpa["metadata"]["uid"]
            last = self._hpa_last.get(uid)
            if last is not None and elapsed - last < HPA_SYNC_SECONDS:
                continue
            self._hpa_last[uid] = elapsed
            try:
                self._sync_hpa(hpa, elapsed)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    # --- writes -----------------------------------------------------------------------------------

    def _update(self, rt: ResourceType, obj: dict) -> dict:
        return self.store.update(rt, obj)

    def _update_status(self, rt: ResourceType, obj: Mapping, status: dict) -> None:
        if _same_status(obj.get("status"), status):
            return
        meta = {"name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace"),
                "resourceVersion": obj["metadata"]["resourceVersion"]}
        if not rt.namespaced:
            meta.pop("namespace")
        body = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta, "status": status}
        self.store.update(rt, body, subresource="status")

    def event(self, involved: Mapping, *, reason: str, message: str, etype: str = "Normal",
              component: str, host: str | None = None, field_path: str | None = None) -> None:
        """Record a core/v1 Event, aggregating repeats into ``count`` like the event recorder."""
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid"), reason, message, field_path)
        now = _now()
        known = self._events.get(key)
        if known is not None:
            ev_ns, ev_name, count, last = known
            if time.monotonic() - last < 10:
                return
            try:
                ev = self.store.get(R.EVENT, ev_ns, ev_name)
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = now
                self.store.update(R.EVENT, ev)
                self._remember_event(key, (ev_ns, ev_name, ev["count"], time.monotonic()))
                return
            except ApiError:
                self._events.pop(key, None)
        self._event_seq += 1
        name = f"{meta['name']}.{(time.time_ns() + self._event_seq):x}"[:253]
        involved_ref = {"kind": involved.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
                        "uid": meta.get("uid"), "apiVersion": involved.get("apiVersion"),
                        "resourceVersion": meta.get("resourceVersion")}
        if not meta.get("namespace"):
            involved_ref.pop("namespace")
        if field_path:
            involved_ref["fieldPath"] = field_path
        source = {"component": component}
        if host:
            source["host"] = host
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved_ref, "reason": reason, "message": message, "source": source,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": etype, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or ""}
        try:
            self.store.create(R.EVENT, body)
        except ApiError:
            return
        self._remember_event(key, (ns, name, 1, time.monotonic()))

    def _remember_event(self, key: tuple, value: tuple[str, str, int, float]) -> None:
        """Keep the aggregation key of the :data:`EVENT_CACHE_SIZE` most recent events, like
        client-go's event correlator (an LRU cache): a repeat of an older one is a new Event."""
        self._events.pop(key, None)
        self._events[key] = value
        while len(self._events) > EVENT_CACHE_SIZE:
            del self._events[next(iter(self._events))]

    # --- nodes and garbage ------------------------------------------------------------------------

    def _sync_nodes(self, snap: _Snapshot) -> None:
        """The node lifecycle controller's cordon taint follows ``spec.unschedulable``."""
        for node in snap.nodes:
            spec = node.get("spec") or {}
            taints = spec.get("taints") or []
            has = any(t.get("key") == UNSCHEDULABLE_TAINT for t in taints)
            want = bool(spec.get("unschedulable"))
            if has == want:
                continue
            new = _copy(node)
            if want:
                new.setdefault("spec", {})["taints"] = taints + [
                    {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": _now()}]
            else:
                rest = [t for t in taints if t.get("key") != UNSCHEDULABLE_TAINT]
                if rest:
                    new["spec"]["taints"] = rest
                else:
                    new["spec"].pop("taints", None)
            try:
                self._update(R.NODE, new)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                continue
            name = node["metadata"]["name"]
            state = "NodeNotSchedulable" if want else "NodeSchedulable"
            self.event(node, reason=state, component="kubelet", host=name,
                       message=f"Node {name} status is now: {state}")

    def _garbage_collect(self, snap: _Snapshot) -> None:
        """Delete what lost its controller mid-pass, and pods bound to vanished nodes (PodGC)."""
        owners = {o["metadata"]["uid"] for o in snap.replicasets + snap.statefulsets + snap.daemonsets}
        deployments = {d["metadata"]["uid"] for d in snap.deployments}
        nodes = {n["metadata"]["name"] for n in snap.nodes}
        for p in snap.pods:
            ref = controller_of(p)
            gone = ref is not None and ref.get("kind") in ("ReplicaSet", "StatefulSet", "DaemonSet") \
                and ref.get("uid") not in owners
            node = (p.get("spec") or {}).get("nodeName")
            if gone or (node and node not in nodes):
                self._delete(R.POD, p)
        for rs in snap.replicasets:
            ref = controller_of(rs)
            if ref is not None and ref.get("kind") == "Deployment" and ref.get("uid") not in deployments:
                self._delete(R.REPLICASET, rs)

    def _delete(self, rt: ResourceType, obj: Mapping) -> bool:
        ns, name = _ns_name(obj)
        try:
            self.store.delete(rt, ns or None, name, preconditions={"uid": obj["metadata"]["uid"]})
            return True
        except ApiError as e:
            if e.code in (404, 409):
                return False
            raise

    # --- Deployment -----------------------------------------------------------------------------

    def _sync_deployment(self, d: dict, snap: _Snapshot) -> None:
        ns, name = _ns_name(d)
        uid = d["metadata"]["uid"]
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        owned = [rs for rs in snap.replicasets
                 if rs["metadata"].get("namespace") == ns and (controller_of(rs) or {}).get("uid") == uid]
        stripped = json.dumps(_strip_hash(template), sort_keys=True)
        new_rs = next((rs for rs in sorted(owned, key=lambda r: r["metadata"]["creationTimestamp"])
                       if json.dumps(_strip_hash((rs.get("spec") or {}).get("template") or {}), sort_keys=True)
                       == stripped), None)
        olds = [rs for rs in owned if rs is not new_rs]
        max_rev = max((_revision(rs) for rs in owned), default=0)
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate") or {}
        surge, unavailable = surge_and_unavailable(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas)
        paused = bool(spec.get("paused"))

        if new_rs is None:
            if paused:
                self._deployment_status(d, owned, None, snap, unavailable)
                return
            total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
            if rolling:
                initial = new_rs_replicas(replicas, 0, total, surge)
            else:
                initial = 0 if any(snap.pods_by_owner.get(rs["metadata"]["uid"]) for rs in olds) or total else replicas
            self._create_replicaset(d, template, initial, max_rev + 1, replicas + (surge if rolling else 0))
            return

        # An old template brought back (rollout undo) becomes the newest revision.
        annotations = dict(new_rs["metadata"].get("annotations") or {})
        rev = _revision(new_rs)
        want_ann = dict(annotations)
        if rev < max_rev or rev == 0:
            history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
            if rev:
                history.append(str(rev))
            want_ann[REVISION] = str(max_rev + 1 if rev < max_rev else max(max_rev, 1))
            if history:
                want_ann[REVISION_HISTORY] = ",".join(history)
        want_ann[DESIRED_REPLICAS] = str(replicas)
        want_ann[MAX_REPLICAS] = str(replicas + (surge if rolling else 0))
        if want_ann != annotations:
            new = _copy(new_rs)
            new["metadata"]["annotations"] = want_ann
            new_rs = self._update(R.REPLICASET, new)
        d_ann = d["metadata"].get("annotations") or {}
        if d_ann.get(REVISION) != new_rs["metadata"]["annotations"][REVISION]:
            nd = _copy(d)
            nd["metadata"].setdefault("annotations", {})[REVISION] = new_rs["metadata"]["annotations"][REVISION]
            d = self._update(R.DEPLOYMENT, nd)

        if not paused:
            if rolling:
                self._rolling_update(d, new_rs, olds, replicas, surge, unavailable, snap)
            else:
                self._recreate(d, new_rs, olds, replicas, snap)
            self._cleanup_history(d, olds, snap)
        self._deployment_status(d, owned, new_rs, snap, unavailable)

    def _past_deadline(self, d: Mapping, progress: tuple) -> bool:
        """Whether the rollout made no progress for ``progressDeadlineSeconds`` of sim time."""
        uid = d["metadata"]["uid"]
        elapsed = self.clock.elapsed()
        seen = self._progress.get(uid)
        if seen is None or seen[0] != progress:
            seen = self._progress[uid] = (progress, elapsed)
        deadline = float((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
        return elapsed - seen[1] > deadline

    def _create_replicaset(self, d: Mapping, template: Mapping, replicas: int, revision: int,
                           max_replicas: int) -> None:
        ns, name = _ns_name(d)
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        h = template_hash(template, collisions or None)
        rs_template = _copy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = _copy((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
                       if k not in (LAST_APPLIED, REVISION, REVISION_HISTORY)}
        annotations.update({DESIRED_REPLICAS: str(int((d.get("spec") or {}).get("replicas", 1))),
                            MAX_REPLICAS: str(max_replicas), REVISION: str(revision)})
        spec: dict = {"replicas": replicas, "selector": selector, "template": rs_template}
        if (d.get("spec") or {}).get("minReadySeconds"):
            spec["minReadySeconds"] = d["spec"]["minReadySeconds"]
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{name}-{h}", "namespace": ns,
                           "labels": dict(rs_template["metadata"]["labels"]), "annotations": annotations,
                           "ownerReferences": [_owner_ref(d, "Deployment")]},
              "spec": spec}
        try:
            created = self.store.create(R.REPLICASET, rs)
        except ApiError as e:
            if e.code != 409:
                raise
            existing = self.store.get(R.REPLICASET, ns, f"{name}-{h}")
            if (controller_of(existing) or {}).get("uid") == d["metadata"]["uid"]:
                return
            # A hash collision with someone else's ReplicaSet: bump collisionCount and retry.
            status = _copy(d.get("status") or {})
            status["collisionCount"] = collisions + 1
            self._update_status(R.DEPLOYMENT, d, status)
            return
        self.event(d, reason="ScalingReplicaSet", component="deployment-controller",
                   message=f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}")

    def _scale_rs(self, d: Mapping, rs: Mapping, replicas: int) -> None:
        old = int((rs.get("spec") or {}).get("replicas", 0))
        if old == replicas:
            return
        new = _copy(rs)
        new["spec"]["replicas"] = replicas
        d_replicas = int((d.get("spec") or {}).get("replicas", 1))
        new["metadata"].setdefault("annotations", {})[DESIRED_REPLICAS] = str(d_replicas)
        self._fresh[new["metadata"]["uid"]] = self._update(R.REPLICASET, new)
        direction = "up" if replicas > old else "down"
        self.event(d, reason="ScalingReplicaSet", component="deployment-controller",
                   message=f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {replicas}")

    def _rolling_update(self, d: Mapping, new_rs: Mapping, olds: list[dict], replicas: int, surge: int,
                        unavailable: int, snap: _Snapshot) -> None:
        active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        new_spec = int(new_rs["spec"].get("replicas", 0))
        if not active_olds:
            self._scale_rs(d, new_rs, replicas)
            return
        all_spec = new_spec + sum(int(rs["spec"].get("replicas", 0)) for rs in active_olds)
        if new_spec > replicas:
            self._scale_rs(d, new_rs, replicas)
            return
        want_new = new_rs_replicas(replicas, new_spec, all_spec, surge)
        if want_new != new_spec:
            self._scale_rs(d, new_rs, want_new)
            return
        new_available = int((new_rs.get("status") or {}).get("availableReplicas") or 0)
        budget = old_rs_scale_down(replicas, all_spec, new_spec, new_available, unavailable)
        if budget <= 0:
            return
        # Unhealthy old pods go first, then the oldest ReplicaSets shrink within the budget.
        min_available = replicas - unavailable
        available = new_available + sum(int((rs.get("status") or {}).get("availableReplicas") or 0)
                                        for rs in active_olds)
        for rs in sorted(active_olds, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"])):
            if budget <= 0:
                break
            spec_n = int(rs["spec"].get("replicas", 0))
            rs_available = int((rs.get("status") or {}).get("availableReplicas") or 0)
            unhealthy = max(0, spec_n - rs_available)
            remove = min(unhealthy, budget)
            healthy_room = max(0, available - min_available)
            remove += min(spec_n - remove, healthy_room, budget - remove)
            if remove > 0:
                self._scale_rs(d, rs, spec_n - remove)
                budget -= remove
                available -= max(0, remove - unhealthy)

    def _recreate(self, d: Mapping, new_rs: Mapping, olds: list[dict], replicas: int, snap: _Snapshot) -> None:
        active = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        for rs in active:
            self._scale_rs(d, rs, 0)
        if active or any(snap.pods_by_owner.get(rs["metadata"]["uid"]) for rs in olds):
            return
        self._scale_rs(d, new_rs, replicas)

    def _cleanup_history(self, d: Mapping, olds: list[dict], snap: _Snapshot) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) == 0
                and not int((rs.get("status") or {}).get("replicas") or 0)
                and not snap.pods_by_owner.get(rs["metadata"]["uid"])]
        idle.sort(key=_revision)
        for rs in idle[:max(0, len(idle) - limit)]:
            self._delete(R.REPLICASET, rs)

    def _deployment_status(self, d: Mapping, owned: list[dict], new_rs: Mapping | None, snap: _Snapshot,
                           unavailable: int) -> None:
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        st = lambda rs, k: int((rs.get("status") or {}).get(k) or 0)  # noqa: E731
        actual = sum(st(rs, "replicas") for rs in owned)
        available = sum(st(rs, "availableReplicas") for rs in owned)
        ready = sum(st(rs, "readyReplicas") for rs in owned)
        updated = st(new_rs, "replicas") if new_rs is not None else 0
        total_spec = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        old = d.get("status") or {}
        now = _now()
        conditions = list(old.get("conditions") or [])
        if available >= replicas - unavailable:
            conditions = _set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                        "Deployment has minimum availability.", now=now, update_time=True)
        else:
            conditions = _set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                        "Deployment does not have minimum availability.", now=now, update_time=True)
        if spec.get("paused"):
            conditions = _set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused",
                                        "Deployment is paused", now=now, update_time=True)
        elif new_rs is not None:
            rs_name = new_rs["metadata"]["name"]
            complete = updated == replicas and actual == replicas and available == replicas \
                and int((new_rs.get("status") or {}).get("observedGeneration") or 0) >= \
                int(new_rs["metadata"].get("generation", 1))
            if complete:
                self._progress.pop(d["metadata"]["uid"], None)
                conditions = _set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                            f'ReplicaSet "{rs_name}" has successfully progressed.', now=now,
                                            update_time=True)
            else:
                prog = next((c for c in conditions if c.get("type") == "Progressing"), None)
                if self._past_deadline(d, (rs_name, updated, available, ready, actual)):
                    conditions = _set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                                f'ReplicaSet "{rs_name}" has timed out progressing.', now=now,
                                                update_time=True)
                elif prog is None or prog.get("reason") not in ("NewReplicaSetCreated", "ReplicaSetUpdated") \
                        or rs_name not in prog.get("message", ""):
                    reason, message = (("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
                                       if prog is None or rs_name not in prog.get("message", "")
                                       else ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'))
                    conditions = _set_condition(conditions, "Progressing", "True", reason, message, now=now,
                                                update_time=True)
                elif prog.get("reason") == "NewReplicaSetCreated" and updated > 0:
                    conditions = _set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                                f'ReplicaSet "{rs_name}" is progressing.', now=now, update_time=True)
        order = {"Available": 0, "Progressing": 1}
        conditions.sort(key=lambda c: order.get(c.get("type", ""), 9))
        status = {"observedGeneration": int(d["metadata"].get("generation", 1)), "replicas": actual,
                  "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                  "unavailableReplicas": max(0, total_spec - available), "conditions": conditions}
        if old.get("collisionCount"):
            status["collisionCount"] = old["collisionCount"]
        _drop_zero(status, ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                            "unavailableReplicas"))
        self._update_status(R.DEPLOYMENT, d, status)

    # --- ReplicaSet -------------------------------------------------------------------------------

    def _sync_replicaset(self, rs: dict, snap: _Snapshot) -> None:
        uid = rs["metadata"]["uid"]
        replicas = int((rs.get("spec") or {}).get("replicas", 1))
        pods = snap.pods_by_owner.get(uid, [])
        diff = len(pods) - replicas
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST_REPLICAS)):
                pod = self._pod_from_template(rs, "ReplicaSet", template)
                created = self._create_pod(pod, prefix=f"{rs['metadata']['name']}-")
                if created is None:
                    break
                self.event(rs, reason="SuccessfulCreate", component="replicaset-controller",
                           message=f"Created pod: {created['metadata']['name']}")
        elif diff > 0:
            def rank(p: Mapping) -> tuple:
                phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get((p.get("status") or {}).get("phase", ""), 0)
                return (bool((p.get("spec") or {}).get("nodeName")), phase_rank, is_ready(p),
                        _neg_time(p["metadata"].get("creationTimestamp", "")))
            for p in sorted(pods, key=rank)[:diff]:
                if self._delete(R.POD, p):
                    self.event(rs, reason="SuccessfulDelete", component="replicaset-controller",
                               message=f"Deleted pod: {p['metadata']['name']}")
        labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        ready = sum(1 for p in pods if is_ready(p))
        status = {"replicas": len(pods),
                  "fullyLabeledReplicas": sum(1 for p in pods if all(
                      (p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
                  "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": int(rs["metadata"].get("generation", 1))}
        _drop_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        self._update_status(R.REPLICASET, rs, status)

    def _pod_from_template(self, owner: Mapping, kind: str, template: Mapping) -> dict:
        tmeta = template.get("metadata") or {}
        spec = _copy(template.get("spec") or {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") == "NoExecute" for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        for c in spec.get("containers") or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = str(c.get("image", ""))
            c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
                         else "IfNotPresent")
            c.setdefault("resources", {})
        meta: dict = {"namespace": owner["metadata"].get("namespace"),
                      "labels": dict(tmeta.get("labels") or {}),
                      "ownerReferences": [_owner_ref(owner, kind)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {}}
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
        return pod

    def _create_pod(self, pod: dict, *, prefix: str | None = None) -> dict | None:
        for _ in range(10):
            if prefix is not None:
                pod["metadata"]["generateName"] = prefix
                pod["metadata"]["name"] = f"{prefix}{random_suffix(self._rand)}"
            try:
                return self.store.create(R.POD, pod)
            except ApiError as e:
                if e.code == 409 and prefix is not None:
                    continue
                if e.code in (404, 409):  # namespace being deleted, or a StatefulSet pod that exists
                    return None
                raise
        return None

    # --- StatefulSet ------------------------------------------------------------------------------

    def _sync_statefulset(self, sts: dict, snap: _Snapshot) -> None:
        ns, name = _ns_name(sts)
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        update_rev = f"{name}-{template_hash(template)}"
        status_old = sts.get("status") or {}
        current_rev = status_old.get("currentRevision") or update_rev
        parallel = spec.get("podManagementPolicy") == "Parallel"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        self._sync_revisions(sts, "StatefulSet", update_rev, snap, keep=current_rev)
        pods: dict[int, dict] = {}
        for p in snap.pods_by_owner.get(sts["metadata"]["uid"], []):
            ordinal = _ordinal(p["metadata"]["name"], name)
            if ordinal is not None:
                pods[ordinal] = p

        for i in range(replicas):
            self._ensure_claims(sts, i)

        wrote = False
        for i in range(replicas):
            if i in pods:
                if not parallel and not is_ready(pods[i]):
                    break
                continue
            rev = current_rev if (rolling and i < partition and current_rev != update_rev) else update_rev
            self._create_sts_pod(sts, i, rev, template if rev == update_rev else None)
            wrote = True
            if not parallel:
                break
        condemned = sorted((i for i in pods if i >= replicas), reverse=True)
        if condemned and (parallel or not wrote):
            for i in condemned if parallel else condemned[:1]:
                if self._delete(R.POD, pods[i]):
                    self.event(sts, reason="SuccessfulDelete", component="statefulset-controller",
                               message=f"delete Pod {pods[i]['metadata']['name']} in StatefulSet {name} successful")
            wrote = True
        live = [pods[i] for i in range(replicas) if i in pods]
        if rolling and not wrote and len(live) == replicas and all(is_ready(p) for p in live):
            for i in range(replicas - 1, partition - 1, -1):
                if (pods[i]["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) != update_rev:
                    self._delete(R.POD, pods[i])
                    break

        revs = [(p["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) for p in live]
        updated = sum(1 for r in revs if r == update_rev)
        ready = sum(1 for p in live if is_ready(p))
        if updated == replicas and ready == replicas and len(live) == replicas:
            current_rev = update_rev
        status = {"observedGeneration": int(sts["metadata"].get("generation", 1)), "replicas": len(live),
                  "readyReplicas": ready, "currentReplicas": sum(1 for r in revs if r == current_rev),
                  "updatedReplicas": updated, "currentRevision": current_rev, "updateRevision": update_rev,
                  "collisionCount": 0, "availableReplicas": ready}
        _drop_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas"))
        self._update_status(R.STATEFULSET, sts, status)

    def _bind_claims(self) -> None:
        """Dynamic provisioning: every Pending claim gets a PersistentVolume and is Bound."""
        for pvc in self._list(R.PVC):
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            ns, name = _ns_name(pvc)
            spec = pvc.get("spec") or {}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            volume = spec.get("volumeName") or _volume_name(ns, name)
            modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
            try:
                if not spec.get("volumeName"):
                    new = _copy(pvc)
                    new["spec"]["volumeName"] = volume
                    new["metadata"].setdefault("annotations", {}).update(
                        {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"})
                    pvc = self._update(R.PVC, new)
                self._ensure_volume(pvc, volume, storage, modes)
                self._update_status(R.PVC, pvc, {"phase": "Bound", "accessModes": modes,
                                                 "capacity": {"storage": storage}})
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    def _ensure_volume(self, pvc: Mapping, volume: str, storage: str, modes: list[str]) -> None:
        if self.store.exists(R.PV, None, volume):
            return
        ns, name = _ns_name(pvc)
        spec = pvc.get("spec") or {}
        pv: dict[str, Any] = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume, "annotations": {"pv.kubernetes.io/provisioned-by": "sim.eafix.io"},
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"capacity": {"storage": storage}, "accessModes": modes,
                     "persistentVolumeReclaimPolicy": "Delete", "volumeMode": spec.get("volumeMode", "Filesystem"),
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "apiVersion": "v1",
                                  "uid": pvc["metadata"].get("uid")},
                     "csi": {"driver": "sim.eafix.io", "volumeHandle": volume}},
            "status": {"phase": "Bound"}}
        if spec.get("storageClassName"):
            pv["spec"]["storageClassName"] = spec["storageClassName"]
        try:
            self.store.create(R.PV, pv)
        except ApiError as e:
            if e.code != 409:
                raise

    def _ensure_claims(self, sts: Mapping, i: int) -> None:
        ns, name = _ns_name(sts)
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = f"{tmpl['metadata']['name']}-{name}-{i}"
            if self.store.exists(R.PVC, ns, claim):
                continue
            spec = _copy(tmpl.get("spec") or {})
            spec.setdefault("volumeMode", "Filesystem")
            spec["volumeName"] = _volume_name(ns, claim)
            labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
            labels.update(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": ns, "labels": labels,
                                "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                "pv.kubernetes.io/bound-by-controller": "yes"},
                                "finalizers": ["kubernetes.io/pvc-protection"]},
                   "spec": spec,
                   "status": {"phase": "Bound", "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                              "capacity": {"storage": storage}}}
            try:
                created = self.store.create(R.PVC, pvc)
            except ApiError as e:
                if e.code == 409:
                    continue
                raise
            if (created.get("status") or {}).get("phase") != "Bound":
                self._update_status(R.PVC, created, pvc["status"])
            self._ensure_volume(created, spec["volumeName"], storage, pvc["status"]["accessModes"])
            self.event(sts, reason="SuccessfulCreate", component="statefulset-controller",
                       message=f"create Claim {claim} Pod {name}-{i} in StatefulSet {name} success")

    def _create_sts_pod(self, sts: Mapping, i: int, revision: str, template: Mapping | None) -> None:
        ns, name = _ns_name(sts)
        spec = sts.get("spec") or {}
        pod = self._pod_from_template(sts, "StatefulSet", template or spec.get("template") or {})
        pod_name = f"{name}-{i}"
        pod["metadata"]["name"] = pod_name
        labels = pod["metadata"]["labels"]
        labels[STS_REVISION_LABEL] = revision
        labels[STS_POD_NAME] = pod_name
        labels[STS_POD_INDEX] = str(i)
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = [v for v in pod["spec"].get("volumes") or []]
        for tmpl in spec.get("volumeClaimTemplates") or []:
            vname = tmpl["metadata"]["name"]
            volumes = [v for v in volumes if v.get("name") != vname]
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": f"{vname}-{pod_name}"}})
        if volumes:
            pod["spec"]["volumes"] = volumes
        created = self._create_pod(pod)
        if created is not None:
            self.event(sts, reason="SuccessfulCreate", component="statefulset-controller",
                       message=f"create Pod {pod_name} in StatefulSet {name} successful")

    def _sync_revisions(self, owner: Mapping, kind: str, current: str, snap: _Snapshot, *,
                        keep: str | None = None) -> None:
        """ControllerRevisions of a StatefulSet or DaemonSet, what ``kubectl rollout history``
        and ``rollout undo`` read: one per distinct template, the current one the newest, the
        oldest pruned beyond ``revisionHistoryLimit``. ``data`` is the strategic merge patch
        that restores the template, as the real controllers store it."""
        ns, name = _ns_name(owner)
        uid = owner["metadata"]["uid"]
        template = (owner.get("spec") or {}).get("template") or {}
        owned = [cr for cr in snap.revisions if cr["metadata"].get("namespace") == ns
                 and (controller_of(cr) or {}).get("uid") == uid]
        top = max((int(cr.get("revision") or 0) for cr in owned), default=0)
        mine = next((cr for cr in owned if cr["metadata"]["name"] == current), None)
        if mine is None:
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["controller.kubernetes.io/hash"] = current.rsplit("-", 1)[-1]
            body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": current, "namespace": ns, "labels": labels,
                                 "ownerReferences": [_owner_ref(owner, kind)]},
                    "data": {"spec": {"template": {**semantic(template), "$patch": "replace"}}},
                    "revision": top + 1}
            try:
                self.store.create(R.CONTROLLERREVISION, body)
            except ApiError as e:
                if e.code != 409:
                    raise
        elif int(mine.get("revision") or 0) < top:
            bumped = _copy(mine)
            bumped["revision"] = top + 1
            self._update(R.CONTROLLERREVISION, bumped)
        limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10))
        old = sorted((cr for cr in owned if cr["metadata"]["name"] not in (current, keep)),
                     key=lambda cr: int(cr.get("revision") or 0))
        for cr in old[:max(0, len(old) - limit)]:
            self._delete(R.CONTROLLERREVISION, cr)

    # --- DaemonSet --------------------------------------------------------------------------------

    def _sync_daemonset(self, ds: dict, snap: _Snapshot) -> None:
        ns, name = _ns_name(ds)
        template = (ds.get("spec") or {}).get("template") or {}
        rev = template_hash(template)
        self._sync_revisions(ds, "DaemonSet", f"{name}-{rev}", snap)
        probe = self._pod_from_template(ds, "DaemonSet", template)
        probe["spec"]["tolerations"] += [
            {"key": k, "operator": "Exists", "effect": "NoSchedule"}
            for k in ("node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                      "node.kubernetes.io/pid-pressure", UNSCHEDULABLE_TAINT)]
        tolerations = pod_tolerations(probe)
        eligible = set()
        for node in snap.nodes:
            if not node_affinity_matches(probe, node):
                continue
            if any(t.effect in ("NoSchedule", "NoExecute") and not any(x.tolerates(t) for x in tolerations)
                   for t in node_taints(node)):
                continue
            eligible.add(node["metadata"]["name"])
        by_node: dict[str, list[dict]] = defaultdict(list)
        for p in snap.pods_by_owner.get(ds["metadata"]["uid"], []):
            by_node[_ds_target(p)].append(p)
        for node_name in sorted(eligible):
            if node_name not in by_node:
                pod = _copy(probe)
                pod["metadata"]["labels"][STS_REVISION_LABEL] = rev
                pod["metadata"]["labels"]["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
                pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                            "values": [node_name]}]}]}}}
                created = self._create_pod(pod, prefix=f"{name}-")
                if created is not None:
                    self.event(ds, reason="SuccessfulCreate", component="daemonset-controller",
                               message=f"Created pod: {created['metadata']['name']}")
        for node_name, pods in by_node.items():
            extra = pods if node_name not in eligible else sorted(pods, key=lambda p: p["metadata"]["name"])[1:]
            for p in extra:
                self._delete(R.POD, p)
        current = [ps[0] for n, ps in by_node.items() if n in eligible]
        outdated = [p for p in current if (p["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) != rev]
        if outdated and all(is_ready(p) for p in current):
            self._delete(R.POD, outdated[0])
        ready = sum(1 for p in current if is_ready(p))
        status = {"currentNumberScheduled": sum(1 for p in current if (p.get("spec") or {}).get("nodeName")),
                  "desiredNumberScheduled": len(eligible),
                  "numberMisscheduled": sum(len(ps) for n, ps in by_node.items() if n not in eligible),
                  "numberReady": ready, "numberAvailable": ready,
                  "numberUnavailable": max(0, len(eligible) - ready),
                  "updatedNumberScheduled": len(current) - len(outdated),
                  "observedGeneration": int(ds["metadata"].get("generation", 1))}
        _drop_zero(status, ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"))
        self._update_status(R.DAEMONSET, ds, status)

    # --- scheduler and kubelet --------------------------------------------------------------------

    def _schedule_and_run(self, snap: _Snapshot) -> None:
        pods = snap.pods
        if not pods:
            return
        node_by_name = {n["metadata"]["name"]: n for n in snap.nodes}
        pending = [p for p in pods if not (p.get("spec") or {}).get("nodeName") and is_active(p)]
        by_key = {_ns_name(p): p for p in pending}
        bound_now: dict[tuple[str, str], dict] = {}
        if pending:
            for result in schedule_pending(snap.nodes, pods):
                pod = by_key.get((result.namespace, result.name))
                if pod is None:
                    continue
                if isinstance(result, Binding):
                    bound = self._bind(pod, result.node)
                    if bound is not None:
                        bound_now[(result.namespace, result.name)] = bound
                else:
                    self._unschedulable(pod, result.message)
        self._pod_count = len(pods)
        ips = self._ips_in_use(pods)
        for p in pods:
            key = _ns_name(p)
            current = bound_now.get(key, p)
            node_name = (current.get("spec") or {}).get("nodeName")
            if not node_name or not is_active(current) or node_name not in node_by_name:
                continue
            if (current.get("status") or {}).get("phase") == "Running":
                continue
            self._start_pod(current, node_by_name[node_name], ips)

    def _bind(self, pod: Mapping, node: str) -> dict | None:
        new = _copy(pod)
        new["spec"]["nodeName"] = node
        try:
            # Sharing the snapshot's unchanged parts: a pass binding 10,000 pods keeps every
            # bound pod until the kubelet step, and full decoded copies would double its memory.
            bound = compact(self._update(R.POD, new), pod)
        except ApiError as e:
            if e.code in (404, 409):
                return None
            raise
        ns, name = _ns_name(pod)
        self.event(pod, reason="Scheduled", component="default-scheduler",
                   message=f"Successfully assigned {ns}/{name} to {node}")
        return bound

    def _unschedulable(self, pod: Mapping, message: str) -> None:
        status = _copy(pod.get("status") or {})
        conditions = status.get("conditions") or []
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if not (old and old.get("status") == "False" and old.get("message") == message):
            cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == "False"
                    else _now(), "reason": "Unschedulable", "message": message}
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [cond]
            status["phase"] = "Pending"
            try:
                self._update_status(R.POD, pod, status)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                return
        self.event(pod, reason="FailedScheduling", etype="Warning", component="default-scheduler", message=message)

    def _ips_in_use(self, pods: Sequence[Mapping]) -> dict[str, set[str]]:
        used: dict[str, set[str]] = defaultdict(set)
        for p in pods:
            st = p.get("status") or {}
            if st.get("podIP") and (p.get("spec") or {}).get("nodeName"):
                used[p["spec"]["nodeName"]].add(st["podIP"])
        return used

    def _pod_ip(self, node: Mapping, used: set[str]) -> str:
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if cidr.endswith("/24"):
            base = [int(x) for x in cidr.split("/")[0].split(".")]
        else:
            idx = int(hashlib.sha1(node["metadata"]["name"].encode()).hexdigest(), 16) % (1 << 16)
            base = [10, 244 + (idx >> 8) % 12, idx & 0xFF, 0]
        for host in range(2, 255):
            ip = f"{base[0]}.{base[1]}.{base[2]}.{host}"
            if ip not in used:
                used.add(ip)
                return ip
        return f"{base[0]}.{base[1]}.{base[2]}.254"

    def _start_pod(self, pod: Mapping, node: Mapping, ips: dict[str, set[str]]) -> None:
        """The kubelet's part: containers start, the pod turns Running and Ready."""
        node_name = node["metadata"]["name"]
        now = _now()
        addresses = (node.get("status") or {}).get("addresses") or []
        host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1")
        pod_ip = host_ip if (pod.get("spec") or {}).get("hostNetwork") else self._pod_ip(node, ips[node_name])
        uid = pod["metadata"].get("uid", "")

        def container_status(c: Mapping, init: bool) -> dict:
            cid = hashlib.sha256(f"{uid}/{c.get('name')}".encode()).hexdigest()
            image = str(c.get("image", ""))
            digest = hashlib.sha256(image.encode()).hexdigest()
            repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            full = repo if "/" in repo.split(":")[0] and "." in repo.split("/")[0] else \
                ("docker.io/" + (repo if "/" in repo else f"library/{repo}"))
            st = {"name": c.get("name"), "image": image if "/" in image else f"docker.io/library/{image}",
                  "imageID": f"{full}@sha256:{digest}", "containerID": f"containerd://{cid}",
                  "ready": True, "restartCount": 0, "started": not init,
                  "state": ({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                                            "containerID": f"containerd://{cid}"}} if init and
                            c.get("restartPolicy") != "Always" else {"running": {"startedAt": now}}),
                  "lastState": {}}
            return st

        spec = pod.get("spec") or {}
        status = {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
            ],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": [container_status(c, False) for c in spec.get("containers") or []],
            "qosClass": qos_class(pod),
        }
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [container_status(c, True) for c in spec["initContainers"]]
        try:
            self._update_status(R.POD, pod, status)
        except ApiError as e:
            if e.code in (404, 409):
                return
            raise
        if self.kubelet_events or (self.kubelet_events is None and self._pod_count < KUBELET_EVENTS_MAX_PODS):
            for c in spec.get("containers") or []:
                path = f"spec.containers{{{c.get('name')}}}"
                self.event(pod, reason="Pulled", component="kubelet", host=node_name, field_path=path,
                           message=f'Container image "{c.get("image", "")}" already present on machine')
                self.event(pod, reason="Created", component="kubelet", host=node_name, field_path=path,
                           message=f"Created container: {c.get('name')}")
                self.event(pod, reason="Started", component="kubelet", host=node_name, field_path=path,
                           message=f"Started container {c.get('name')}")

    # --- PodDisruptionBudget and eviction -----------------------------------------------------------

    def _controller_scale(self, pods: Iterable[Mapping], snap_rs: Mapping[str, Mapping],
                          snap_owner: Mapping[str, Mapping]) -> int:
        """Sum of the desired scale of the controllers owning ``pods`` (Deployment over its RS)."""
        seen: set[str] = set()
        total = 0
        for p in pods:
            ref = controller_of(p)
            if ref is None:
                continue
            owner = snap_rs.get(ref.get("uid", "")) or snap_owner.get(ref.get("uid", ""))
            if owner is None:
                continue
            top = owner
            up = controller_of(owner)
            if owner.get("kind") == "ReplicaSet" and up is not None and up.get("uid") in snap_owner:
                top = snap_owner[up["uid"]]
            uid = top["metadata"]["uid"]
            if uid in seen:
                continue
            seen.add(uid)
            if top.get("kind") == "DaemonSet":
                total += int((top.get("status") or {}).get("desiredNumberScheduled") or 0)
            else:
                total += int((top.get("spec") or {}).get("replicas", 1))
        return total

    def _pdb_numbers(self, pdb: Mapping, pods: Sequence[Mapping], owners: Mapping[str, Mapping]) -> Budget:
        ns = pdb["metadata"].get("namespace")
        selector = (pdb.get("spec") or {}).get("selector")
        matching = [p for p in pods if p["metadata"].get("namespace") == ns and is_active(p)
                    and selector_matches(selector, p["metadata"].get("labels") or {})]
        healthy = sum(1 for p in matching if is_ready(p))
        scale = self._controller_scale(matching, owners, owners)
        return pdb_budget(pdb.get("spec") or {}, matching_pods=len(matching), healthy=healthy,
                          controller_scale=scale)

    def _owners_index(self) -> dict[str, Mapping]:
        out: dict[str, Mapping] = {}
        for rt in (R.REPLICASET, R.DEPLOYMENT, R.STATEFULSET, R.DAEMONSET):
            for o in self._list(rt):
                out[o["metadata"]["uid"]] = o
        return out

    def _pdb_status(self, pdb: Mapping, budget: Budget) -> dict:
        old = pdb.get("status") or {}
        allowed = budget.disruptions_allowed > 0
        conditions = _set_condition(list(old.get("conditions") or []), "DisruptionAllowed",
                                    "True" if allowed else "False",
                                    "SufficientPods" if allowed else "InsufficientPods", "", now=_now())
        generation = int(pdb["metadata"].get("generation", 1))
        conditions = [{**c, "observedGeneration": generation} for c in conditions]  # copies: stored ones are shared
        status = {"observedGeneration": int(pdb["metadata"].get("generation", 1)),
                  "disruptionsAllowed": budget.disruptions_allowed, "currentHealthy": budget.current_healthy,
                  "desiredHealthy": budget.desired_healthy, "expectedPods": budget.expected,
                  "conditions": conditions}
        return status

    def _sync_pdb(self, pdb: dict, snap: _Snapshot) -> None:
        owners: dict[str, Mapping] = {}
        for o in snap.replicasets + snap.deployments + snap.statefulsets + snap.daemonsets:
            owners[o["metadata"]["uid"]] = o
        budget = self._pdb_numbers(pdb, snap.pods, owners)
        self._update_status(R.PDB, pdb, self._pdb_status(pdb, budget))

    def evict(self, namespace: str, name: str, body: dict) -> dict:
        """The pods/eviction subresource: delete the pod unless a PodDisruptionBudget forbids it."""
        if isinstance(body, dict):
            meta = body.get("metadata") or {}
            if meta.get("name") and meta["name"] != name:
                raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        with self._evict_lock:
            pod = self.store.get(R.POD, namespace, name)
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed", "Pending") and is_active(pod):
                pdbs = [p for p in self.store.list(R.PDB, namespace)[0]
                        if selector_matches((p.get("spec") or {}).get("selector"), pod["metadata"].get("labels") or {})]
                if len(pdbs) > 1:
                    raise ApiError(500, "InternalError",
                                   "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                   "does not support.")
                if pdbs:
                    pdb = pdbs[0]
                    pods, _, _ = self.store.list_objects(R.POD, namespace)
                    budget = self._pdb_numbers(pdb, pods, self._owners_index())
                    unhealthy_ok = not is_ready(pod) and budget.current_healthy >= budget.desired_healthy
                    if budget.disruptions_allowed <= 0 and not unhealthy_ok:
                        raise ApiError(429, "TooManyRequests", EVICTION_REFUSED, details={"causes": [{
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                       f"{budget.desired_healthy} healthy pods and has {budget.current_healthy} "
                                       f"currently"}]})
                    self.store.delete(R.POD, namespace, name)
                    after = Budget(budget.expected, budget.desired_healthy,
                                   budget.current_healthy - (1 if is_ready(pod) else 0),
                                   max(0, budget.disruptions_allowed - (1 if is_ready(pod) else 0)))
                    try:
                        fresh = self.store.get(R.PDB, namespace, pdb["metadata"]["name"])
                        self._update_status(R.PDB, fresh, self._pdb_status(fresh, after))
                    except ApiError:
                        pass
                    return _success()
            self.store.delete(R.POD, namespace, name)
            return _success()

    # --- HPA ----------------------------------------------------------------------------------------

    def _sync_hpa(self, hpa: dict, elapsed: float) -> None:
        ns, name = _ns_name(hpa)
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        kind = ref.get("kind", "")
        rt = {"Deployment": R.DEPLOYMENT, "StatefulSet": R.STATEFULSET, "ReplicaSet": R.REPLICASET}.get(kind)
        old = hpa.get("status") or {}
        now = _now()
        conditions = list(old.get("conditions") or [])
        status: dict = {"observedGeneration": int(hpa["metadata"].get("generation", 1))}
        if old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        try:
            if rt is None:
                raise ApiError(404, "NotFound", f'no matches for kind "{kind}"')
            target = self.store.get(rt, ns, ref.get("name", ""))
        except ApiError as e:
            conditions = _set_condition(conditions, "AbleToScale", "False", "FailedGetScale",
                                        f"the HPA controller was unable to get the target's current scale: {e.message}",
                                        now=now)
            status.update({"currentReplicas": int(old.get("currentReplicas") or 0), "desiredReplicas": 0,
                           "conditions": conditions})
            self._update_status(R.HPA, hpa, status)
            return
        current = int((target.get("spec") or {}).get("replicas", 1))
        min_r = int(spec.get("minReplicas", 1))
        max_r = int(spec.get("maxReplicas", max(min_r, 1)))
        if current == 0 and min_r > 0:
            conditions = _set_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                                        "scaling is disabled since the replica count of the target is zero", now=now)
            status.update({"currentReplicas": 0, "desiredReplicas": 0, "conditions": conditions})
            self._update_status(R.HPA, hpa, status)
            return
        selector = (target.get("spec") or {}).get("selector")
        pods, _, _ = self.store.list_objects(R.POD, ns)
        pods = [p for p in pods if is_active(p) and selector_matches(selector, p["metadata"].get("labels") or {})]
        default_target = 80  # autoscaling/v2's default when spec.metrics is empty (v1 is not served)
        metric_specs = spec.get("metrics") or [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                       "averageUtilization": default_target}}}]
        proposals: list[tuple[int, str]] = []
        current_metrics = []
        problems = []
        t = self.clock.now()
        for m in metric_specs:
            if m.get("type") != "Resource":
                problems.append(f"metric type {m.get('type')} is not simulated")
                continue
            res = m.get("resource") or {}
            rname = res.get("name", "cpu")
            tgt = res.get("target") or {}
            used = requested = counted = 0
            missing_request = False
            for p in pods:
                if not M.pod_is_measured(p) or not is_ready(p):
                    continue
                containers = (p.get("spec") or {}).get("containers") or []
                for (cname, cpu, mem), c in zip(M.container_usage(p, self.model, t), containers):
                    used += cpu if rname == "cpu" else mem
                    req = ((c.get("resources") or {}).get("requests") or {}).get(rname)
                    if req is None:
                        missing_request = True
                    else:
                        requested += cpu_nanocores(req) if rname == "cpu" else memory_bytes(req)
                counted += 1
            if counted == 0:
                problems.append("did not receive metrics for targeted pods (pods might be unready)")
                continue
            average = used / counted
            avg_text = _cpu_m_text(average) if rname == "cpu" else str(int(average))
            if tgt.get("type", "Utilization") == "Utilization":
                if missing_request or requested == 0:
                    problems.append(f"missing request for {rname} in containers")
                    continue
                util = int(used * 100 // requested)
                want = int(tgt.get("averageUtilization", 80))
                proposals.append((hpa_proposal(current, util, want, counted),
                                  f"{rname} resource utilization (percentage of request)"))
                current_metrics.append({"type": "Resource", "resource": {
                    "name": rname, "current": {"averageUtilization": util, "averageValue": avg_text}}})
            else:
                target_text = tgt.get("averageValue")
                want_v = cpu_nanocores(target_text) if rname == "cpu" else memory_bytes(target_text)
                proposals.append((hpa_proposal(current, average, max(want_v, 1), counted), f"{rname} resource"))
                current_metrics.append({"type": "Resource", "resource": {"name": rname,
                                                                         "current": {"averageValue": avg_text}}})
        if not proposals:
            conditions = _set_condition(conditions, "AbleToScale", "True", "SucceededGetScale",
                                        "the HPA controller was able to get the target's current scale", now=now)
            conditions = _set_condition(conditions, "ScalingActive", "False", "FailedGetResourceMetric",
                                        "the HPA was unable to compute the replica count: " + "; ".join(problems),
                                        now=now)
            status.update({"currentReplicas": current, "desiredReplicas": current, "conditions": conditions})
            if current_metrics:
                status["currentMetrics"] = current_metrics
            self._update_status(R.HPA, hpa, status)
            return
        raw, metric_name = max(proposals)
        # Stabilisation windows: scale down only to the highest recent recommendation.
        behavior = spec.get("behavior") or {}
        down_window = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds", 300)
        up_window = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds", 0)
        uid = hpa["metadata"]["uid"]
        # Like the HPA controller, a newly seen autoscaler starts with the current size as its
        # first recommendation, so it does not scale down before a full stabilisation window.
        known = self._hpa_history.setdefault(uid, [(elapsed, current)])
        earlier = [(ts, r) for ts, r in known if elapsed - ts < max(down_window, up_window)]
        self._hpa_history[uid] = earlier + [(elapsed, raw)]
        up_rec = min([raw] + [r for ts, r in earlier if elapsed - ts < up_window])
        down_rec = max([raw] + [r for ts, r in earlier if elapsed - ts < down_window])
        stabilized = current
        if stabilized < up_rec:
            stabilized = up_rec
        if stabilized > down_rec:
            stabilized = down_rec
        up_limit, down_limit = hpa_scale_limits(current, behavior)
        desired = min(max(stabilized, down_limit), up_limit)
        limited_reason = None
        if desired > max_r:
            desired, limited_reason = max_r, ("TooManyReplicas",
                                              "the desired replica count is more than the maximum replica count")
        elif desired < min_r:
            desired, limited_reason = min_r, ("TooFewReplicas",
                                              "the desired replica count is less than the minimum replica count")
        elif stabilized > up_limit:
            limited_reason = ("ScaleUpLimit",
                              "the desired replica count is increasing faster than the maximum scale rate")
        elif stabilized < down_limit:
            limited_reason = ("ScaleDownLimit",
                              "the desired replica count is decreasing faster than the maximum scale rate")
        if desired != current:
            new = _copy(target)
            new["spec"]["replicas"] = desired
            self._update(rt, new)
            reason = f"{metric_name} above target" if desired > current else "All metrics below target"
            self.event(hpa, reason="SuccessfulRescale", component="horizontal-pod-autoscaler",
                       message=f"New size: {desired}; reason: {reason}")
            status["lastScaleTime"] = now
            conditions = _set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                                        f"the HPA controller was able to update the target scale to {desired}", now=now)
        elif raw < current and stabilized > raw:
            conditions = _set_condition(conditions, "AbleToScale", "True", "ScaleDownStabilized",
                                        "recent recommendations were higher than current one, applying the highest "
                                        "recent recommendation", now=now)
        else:
            conditions = _set_condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                                        "recommended size matches current size", now=now)
        conditions = _set_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                                    f"the HPA was able to successfully calculate a replica count from {metric_name}",
                                    now=now)
        if limited_reason:
            conditions = _set_condition(conditions, "ScalingLimited", "True", *limited_reason, now=now)
        else:
            conditions = _set_condition(conditions, "ScalingLimited", "False", "DesiredWithinRange",
                                        "the desired count is within the acceptable range", now=now)
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        conditions.sort(key=lambda c: order.get(c.get("type", ""), 9))
        status.update({"currentReplicas": current, "desiredReplicas": desired, "currentMetrics": current_metrics,
                       "conditions": conditions})
        self._update_status(R.HPA, hpa, status)

    # --- metrics API -------------------------------------------------------------------------------

    def metrics_list(self, kind: str, namespace: str | None, name: str | None, label_selector: str | None) -> dict:
        """metrics.k8s.io/v1beta1 bodies: ``kind`` is ``pods``/``PodMetrics`` or ``nodes``/``NodeMetrics``."""
        k = kind.lower()
        t = self.clock.now()
        model = self.model
        if k in ("pods", "podmetrics", "podmetricslist"):
            pods, _, _ = self.store.list_objects(R.POD, namespace or None, label_selector=label_selector)
            if name is not None:
                for p in pods:
                    if p["metadata"]["name"] == name and M.pod_is_measured(p):
                        return M.pod_metrics(p, model, t)
                raise ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found',
                               details={"name": f"{namespace}/{name}", "group": "metrics.k8s.io", "kind": "pods"})
            return M.pod_metrics_list(pods, model, t)
        if k in ("nodes", "nodemetrics", "nodemetricslist"):
            nodes, _, _ = self.store.list_objects(R.NODE, label_selector=label_selector)
            if name is not None:
                nodes = [n for n in nodes if n["metadata"]["name"] == name]
                if not nodes:
                    raise ApiError(404, "NotFound", f'nodemetrics.metrics.k8s.io "{name}" not found',
                                   details={"name": name, "group": "metrics.k8s.io", "kind": "nodes"})
            pods, _, _ = self.store.list_objects(R.POD)
            body = M.node_metrics_list(nodes, pods, model, t)
            return body["items"][0] if name is not None else body
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({kind})")


def _success() -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _neg_time(ts: str) -> tuple:
    """Sort key putting newer timestamps first."""
    return tuple(-ord(ch) for ch in ts)


def _ordinal(pod_name: str, sts_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    tail = pod_name[len(prefix):]
    return int(tail) if tail.isdigit() else None


def _volume_name(namespace: str, claim: str) -> str:
    """A stable ``pvc-<uuid>`` volume name for a claim, like a provisioner's."""
    h = hashlib.sha1(f"{namespace}/{claim}".encode()).hexdigest()
    return f"pvc-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _ds_target(pod: Mapping) -> str:
    """The node a DaemonSet pod is for (its nodeName, else its node affinity)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return ""
