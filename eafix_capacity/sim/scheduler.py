"""The sim cluster's scheduler: binds Pending pods to Nodes with the kit's placement rules.

The rules (fit, taints, node affinity, topology spread, inter-pod affinity and
anti-affinity, and their reason strings) live once, in ``eafix_capacity.scheduling``, as
pure functions of ``PodRequest``/``NodeState`` records; the sizing engine packs with the
same ones. This module adapts real Pod and Node objects to those records, asks the rules
which nodes may take each pending pod, and scores the feasible ones as kube-scheduler
does; it also writes kube-scheduler's FailedScheduling message with its preemption part.
Everything here is pure: the controller manager feeds it snapshots and writes the
bindings.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

import numpy as np

from eafix_capacity import quantity
from eafix_capacity import scheduling as S
from eafix_capacity.errors import QuantityError
from eafix_capacity.kobject import selector_matches

__all__ = ["Binding", "ClusterSnapshot", "Failure", "PodScheduler", "fit_error_message", "node_affinity_matches",
           "node_state", "node_taints", "num_feasible_nodes_to_find", "pod_request", "pod_requests",
           "pod_tolerations", "schedule_pending", "selector_matches", "taint_reason"]

P_NOT_HELPFUL = "Preemption is not helpful for scheduling"
P_NO_VICTIMS = "No preemption victims found for incoming pod"
UNSCHEDULABLE_TAINT = S.UNSCHEDULABLE_TAINT


# --- reading objects ----------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _amount(text: object, milli: bool) -> int:
    """A quantity in millis or units; 0 for one the API would not have stored."""
    try:
        q = quantity.parse(text)  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return 0
    return q.milli_value() if milli else q.int_value()


def _cpu_m(text: object) -> int:
    return _amount(text, True)


def _bytes(text: object) -> int:
    return _amount(text, False)


def pod_requests(pod: Mapping) -> tuple[int, int]:
    """(cpu millicores, memory bytes) the scheduler reserves for a pod.

    As kube-scheduler computes it: the larger of the sum over containers (plus sidecar
    init containers) and the largest regular init container, plus pod overhead.
    """
    spec = pod.get("spec") or {}
    cpu = mem = 0
    sidecar_cpu = sidecar_mem = 0
    init_cpu = init_mem = 0
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += _cpu_m(req.get("cpu", 0))
        mem += _bytes(req.get("memory", 0))
    for c in spec.get("initContainers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        c_cpu, c_mem = _cpu_m(req.get("cpu", 0)), _bytes(req.get("memory", 0))
        if c.get("restartPolicy") == "Always":
            sidecar_cpu += c_cpu
            sidecar_mem += c_mem
        else:
            init_cpu = max(init_cpu, sidecar_cpu + c_cpu)
            init_mem = max(init_mem, sidecar_mem + c_mem)
    cpu = max(cpu + sidecar_cpu, init_cpu)
    mem = max(mem + sidecar_mem, init_mem)
    overhead = spec.get("overhead") or {}
    return cpu + _cpu_m(overhead.get("cpu", 0)), mem + _bytes(overhead.get("memory", 0))


def _requirements(exprs: Iterable[Mapping] | None) -> tuple[S.NodeSelectorRequirement, ...]:
    return tuple(S.NodeSelectorRequirement(e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
                 for e in exprs or [])


def node_selector_terms(spec: Mapping) -> tuple[S.NodeSelectorTerm, ...]:
    """The required node affinity's terms (ORed)."""
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    return tuple(S.NodeSelectorTerm(_requirements(t.get("matchExpressions")), _requirements(t.get("matchFields")))
                 for t in required.get("nodeSelectorTerms") or [])


def _required_terms(spec: Mapping, kind: str) -> list[Mapping]:
    return list(((spec.get("affinity") or {}).get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
                or [])


def _affinity_terms(spec: Mapping, kind: str) -> tuple[S.AffinityTerm, ...]:
    out = []
    for t in _required_terms(spec, kind):
        # namespaceSelector {} selects every namespace; a non-empty one is not modelled
        # (the snapshot has no Namespace labels), so its term reads the listed namespaces
        namespaces = None if t.get("namespaceSelector") == {} else frozenset(t.get("namespaces") or ())
        out.append(S.AffinityTerm(t.get("topologyKey", ""), S.LabelSelector.of(t.get("labelSelector")), namespaces))
    return tuple(out)


def spread_constraints(spec: Mapping, labels: Mapping[str, str]) -> tuple[S.SpreadConstraint, ...]:
    out = []
    for c in spec.get("topologySpreadConstraints") or []:
        extra = {k: labels[k] for k in c.get("matchLabelKeys") or [] if k in labels}
        out.append(S.SpreadConstraint(
            max_skew=int(c.get("maxSkew", 1)), topology_key=c.get("topologyKey", ""),
            honor_taints=c.get("nodeTaintsPolicy", "Ignore") == "Honor",
            honor_affinity=c.get("nodeAffinityPolicy", "Honor") == "Honor",
            selector=S.LabelSelector.of(c.get("labelSelector"), extra=extra),
            min_domains=int(c.get("minDomains") or 1),
            when_unsatisfiable=c.get("whenUnsatisfiable", S.DO_NOT_SCHEDULE)))
    return tuple(out)


def pod_tolerations(pod: Mapping) -> tuple[S.Toleration, ...]:
    return tuple(S.Toleration(key=t.get("key") or "", operator=t.get("operator") or "Equal",
                              value=t.get("value") or "", effect=t.get("effect") or "")
                 for t in (pod.get("spec") or {}).get("tolerations") or [])


def node_taints(node: Mapping) -> tuple[S.Taint, ...]:
    return tuple(S.Taint(key=t.get("key", ""), value=t.get("value") or "", effect=t.get("effect", "NoSchedule"))
                 for t in (node.get("spec") or {}).get("taints") or [])


def pod_request(pod: Mapping) -> S.PodRequest:
    """A Pod object as the rules' record: every rule its spec states."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = meta.get("namespace", "default")
    labels = meta.get("labels") or {}
    cpu, mem = pod_requests(pod)
    return S.PodRequest(
        name=f"{ns}/{meta.get('name', '')}", group="", cpu_m=cpu, memory_bytes=mem,
        node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())), tolerations=pod_tolerations(pod),
        spread=None, namespace=ns, labels=labels, node_affinity=node_selector_terms(spec),
        spread_constraints=spread_constraints(spec, labels) if spec.get("topologySpreadConstraints") else (),
        pod_affinity=_affinity_terms(spec, "podAffinity"), pod_anti_affinity=_affinity_terms(spec, "podAntiAffinity"))


def node_state(node: Mapping) -> S.NodeState:
    """A Node object as the rules' record, empty: allocatable, labels, taints, cordon."""
    meta = node["metadata"]
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return S.NodeState(
        name=meta["name"], cpu_m=_cpu_m(alloc.get("cpu", 0)), memory_bytes=_bytes(alloc.get("memory", 0)),
        max_pods=_bytes(alloc.get("pods", 110)), labels=dict(meta.get("labels") or {}), taints=node_taints(node),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")))


def node_affinity_matches(pod: Mapping, node: Mapping) -> bool:
    """nodeSelector and required node affinity, read from the objects."""
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    probe = S.PodRequest(name="", group="", cpu_m=0, memory_bytes=0,
                         node_selector=tuple((spec.get("nodeSelector") or {}).items()),
                         node_affinity=node_selector_terms(spec))
    return S.node_affinity_matches(probe, meta.get("name", ""), meta.get("labels") or {})


def _is_active(pod: Mapping) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not (pod.get("metadata") or {}).get("deletionTimestamp")


def _controller_uid(pod: Mapping) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


# --- cluster snapshot ---------------------------------------------------------------------


@dataclass
class _Node:
    obj: Mapping
    name: str
    labels: Mapping[str, str]
    state: S.NodeState
    pods: list[Mapping] = field(default_factory=list)
    owners: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Binding:
    namespace: str
    name: str
    node: str


@dataclass(frozen=True)
class Failure:
    namespace: str
    name: str
    message: str


class ClusterSnapshot:
    """Nodes with the pods bound to them, updated as the scheduler binds more.

    Each node's ``state`` is the rules' record. Its pod records (``state.pods``), which
    only label-selector rules read, are built on first need (``records``), so a pass of
    plain pods never converts the thousands already bound; pods with required
    anti-affinity are converted at once, since every newcomer is checked against them."""

    def __init__(self, nodes: Iterable[Mapping], pods: Iterable[Mapping]) -> None:
        self.nodes: list[_Node] = []
        self.by_name: dict[str, _Node] = {}
        for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            state = node_state(n)
            node = _Node(n, state.name, state.labels, state)
            self.nodes.append(node)
            self.by_name[node.name] = node
        self.states = [n.state for n in self.nodes]
        self.anti_affinity_nodes: list[_Node] = []
        self._records = False
        # Column arrays of the same numbers, for the vectorised path of plain pods.
        self.index = {node.name: i for i, node in enumerate(self.nodes)}
        self.alloc_cpu = np.array([n.state.cpu_m for n in self.nodes], dtype=np.int64)
        self.alloc_mem = np.array([n.state.memory_bytes for n in self.nodes], dtype=np.int64)
        self.max_pods = np.array([n.state.max_pods for n in self.nodes], dtype=np.int64)
        self.used_cpu = np.zeros(len(self.nodes), dtype=np.int64)
        self.used_mem = np.zeros(len(self.nodes), dtype=np.int64)
        self.pod_count = np.zeros(len(self.nodes), dtype=np.int64)
        self.owner_counts: dict[str, np.ndarray] = {}
        self.static_masks: dict[str, np.ndarray] = {}
        for p in pods:
            node_name = (p.get("spec") or {}).get("nodeName")
            if not node_name or node_name not in self.by_name:
                continue
            if _is_active(p):
                self._add(p, self.by_name[node_name], None)
            elif (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self._hold(p, self.by_name[node_name])
        self._start = 0

    def _hold(self, pod: Mapping, node: _Node) -> None:
        """A Terminating pod keeps its node's resources until it is gone, as in kube-scheduler's
        cache (the NodeInfo drops a pod only on its delete event); topology spread skips it
        (``countPodsMatchSelector`` ignores pods with a deletionTimestamp), so it counts here only."""
        cpu, mem = pod_requests(pod)
        st = node.state
        st.used_cpu_m += cpu
        st.used_memory_bytes += mem
        st.pod_count += 1
        i = self.index[node.name]
        self.used_cpu[i] += cpu
        self.used_mem[i] += mem
        self.pod_count[i] += 1

    def _add(self, pod: Mapping, node: _Node, record: S.PodRequest | None) -> None:
        cpu, mem = (record.cpu_m, record.memory_bytes) if record is not None else pod_requests(pod)
        st = node.state
        st.used_cpu_m += cpu
        st.used_memory_bytes += mem
        st.pod_count += 1
        node.pods.append(pod)
        i = self.index[node.name]
        self.used_cpu[i] += cpu
        self.used_mem[i] += mem
        self.pod_count[i] += 1
        uid = _controller_uid(pod)
        if uid:
            node.owners[uid] += 1
            counts = self.owner_counts.get(uid)
            if counts is None:
                counts = self.owner_counts[uid] = np.zeros(len(self.nodes), dtype=np.int64)
            counts[i] += 1
        if self._records or _required_terms(pod.get("spec") or {}, "podAntiAffinity"):
            record = record if record is not None else pod_request(pod)
            if self._records:
                st.pods.append(record)
            if record.anti_affinity_terms:
                if not st.anti_affinity_pods:
                    self.anti_affinity_nodes.append(node)
                st.anti_affinity_pods.append(record)

    def records(self) -> list[S.NodeState]:
        """The node records with every bound pod's record in ``pods``."""
        if not self._records:
            for node in self.nodes:
                node.state.pods = [pod_request(p) for p in node.pods]
            self._records = True
        return self.states

    def bind(self, pod: Mapping, node_name: str, record: S.PodRequest | None = None) -> None:
        self._add(pod, self.by_name[node_name], record)


def num_feasible_nodes_to_find(num_nodes: int) -> int:
    """kube-scheduler's adaptive sample: all nodes below 100, else 50% - n/125 (min 5%, min 100)."""
    if num_nodes < 100:
        return num_nodes
    percentage = max(5, 50 - num_nodes // 125)
    return max(100, num_nodes * percentage // 100)


def taint_reason(taint: S.Taint) -> str:
    """TaintToleration's Filter reason, naming the node's first untolerated taint as 1.32
    words it: ``fmt.Sprintf("node(s) had untolerated taint {%s: %s}", taint.Key, taint.Value)``."""
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def fit_error_message(total_nodes: int, node_reasons: Mapping[str, Sequence[str]], *,
                      unresolvable: frozenset[str] = frozenset(),
                      taint_reasons: Mapping[str, str] | None = None) -> str:
    """The FailedScheduling message of kube-scheduler 1.30+ (single final period).

    ``0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. preemption: 0/3
    nodes are available: 3 No preemption victims found for incoming pod.`` Reasons are
    counted per node and sorted as strings ("<count> <reason>"), as FitError.Error does;
    a node failing an UnschedulableAndUnresolvable filter is one preemption cannot help
    (``unresolvable``: more such reasons, from filters outside the rules, as VolumeBinding's).
    ``taint_reasons``: per node, the rules' ``R_TAINT`` as :func:`taint_reason` words it.
    """
    reasons: Counter = Counter()
    preemption: Counter = Counter()
    named = taint_reasons or {}
    for node, why in node_reasons.items():
        reasons.update(named.get(node, r) if r == S.R_TAINT else r for r in why)
        preemption[P_NOT_HELPFUL if any(r in S.UNRESOLVABLE or r in unresolvable for r in why)
                   else P_NO_VICTIMS] += 1
    head = f"0/{total_nodes} nodes are available"
    histogram = S.reason_histogram(reasons)
    text = f"{head}: {histogram}." if histogram else f"{head}."
    if total_nodes:
        text += f" preemption: {head}: {S.reason_histogram(preemption)}."
    return text


class PodScheduler:
    """Places pods one at a time on a :class:`ClusterSnapshot` (pure; no I/O)."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snap = snapshot

    def schedule(self, pod: Mapping) -> Binding | Failure:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", "default"), meta["name"]
        nodes = self.snap.nodes
        if not nodes:
            return Failure(ns, name, fit_error_message(0, {}))
        request = pod_request(pod)
        owner = _controller_uid(pod)
        if self._plain(request):
            best_i = self._fast_pick(pod, request, owner)
            if best_i is not None:
                best_node = nodes[best_i]
                self.snap.bind(pod, best_node.name, request)
                return Binding(ns, name, best_node.name)
            # Nothing fits: the node-by-node path below explains why.
        states = self.snap.records()
        state = S.prefilter(request, states)
        want = num_feasible_nodes_to_find(len(nodes))
        reasons: dict[str, list[str]] = {}
        feasible: list[_Node] = []
        n = len(nodes)
        start = self.snap._start
        checked = 0
        for i in range(n):
            node = nodes[(start + i) % n]
            checked += 1
            why = S.filter_node(request, node.state, states, state=state)
            if why:
                reasons[node.name] = why
                continue
            feasible.append(node)
            if len(feasible) >= want:
                break
        self.snap._start = (start + checked) % n
        if not feasible:
            return Failure(ns, name, fit_error_message(n, reasons, taint_reasons=self.taint_reasons(pod, reasons)))
        best = min(feasible, key=lambda nd: self._score(nd, request.cpu_m, request.memory_bytes, owner))
        self.snap.bind(pod, best.name, request)
        return Binding(ns, name, best.name)

    def filter_reasons(self, pod: Mapping, *, only: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Each node's verdict for ``pod`` from the rules (an empty list: it may go there),
        for every node or the ``only`` ones, without sampling or binding: what
        ``schedule`` filters with."""
        request = pod_request(pod)
        states = self.snap.records()
        state = S.prefilter(request, states)
        nodes = self.snap.nodes if only is None else [self.snap.by_name[n] for n in only]
        return {node.name: S.filter_node(request, node.state, states, state=state) for node in nodes}

    def taint_reasons(self, pod: Mapping, reasons: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """For the nodes ``reasons`` fail on an untolerated taint: the reason naming it."""
        tolerations = pod_tolerations(pod)
        out = {}
        for node_name, why in reasons.items():
            if S.R_TAINT in why and node_name in self.snap.by_name:
                taint = S.untolerated_taint(self.snap.by_name[node_name].state.taints, tolerations)
                if taint is not None:
                    out[node_name] = taint_reason(taint)
        return out

    # --- the vectorised path for plain pods ------------------------------------------------

    @staticmethod
    def _plain(request: S.PodRequest) -> bool:
        """No required pod (anti-)affinity and no hard topology spread: only per-node
        filters and existing pods' anti-affinity apply."""
        return not (request.pod_affinity or request.anti_affinity_terms or request.hard_spread)

    def _static_mask(self, pod: Mapping, request: S.PodRequest) -> np.ndarray:
        """Nodes passing ``S.static_filter`` (cordon, taints, node affinity), cached per
        pass for each distinct (tolerations, selector, affinity)."""
        spec = pod.get("spec") or {}
        key = json.dumps([spec.get("tolerations"), spec.get("nodeSelector"),
                          (spec.get("affinity") or {}).get("nodeAffinity")], sort_keys=True)
        mask = self.snap.static_masks.get(key)
        if mask is None:
            mask = np.zeros(len(self.snap.nodes), dtype=bool)
            for i in self._named_candidates(spec):
                mask[i] = not S.static_filter(request, self.snap.nodes[i].state)
            self.snap.static_masks[key] = mask
        return mask

    def _named_candidates(self, spec: Mapping) -> Iterable[int]:
        """Indices of the nodes the pod's required node affinity can match: only the named
        ones when every term pins ``metadata.name In`` (a DaemonSet pod's), else all."""
        terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                  .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
        names: set[str] = set()
        for term in terms:
            pinned = [f for f in term.get("matchFields") or []
                      if f.get("key") == "metadata.name" and f.get("operator") == "In"]
            if not pinned:
                return range(len(self.snap.nodes))
            names.update(pinned[0].get("values") or [])
        if not terms:
            return range(len(self.snap.nodes))
        return sorted(self.snap.index[n] for n in names if n in self.snap.index)

    def _fast_pick(self, pod: Mapping, request: S.PodRequest, owner: str | None) -> int | None:
        snap = self.snap
        ok = self._static_mask(pod, request).copy()
        forbidden = S.existing_anti_affinity(request, (n.state for n in snap.anti_affinity_nodes))
        if forbidden:
            for i, node in enumerate(snap.nodes):
                if any(node.labels.get(k) == v for k, v in forbidden):
                    ok[i] = False
        # S.resource_fit over every node at once (the slow path's scalar rule; a property
        # test holds the two paths equal)
        ok &= snap.pod_count + 1 <= snap.max_pods
        ok &= snap.used_cpu + request.cpu_m <= snap.alloc_cpu
        ok &= snap.used_mem + request.memory_bytes <= snap.alloc_mem
        if not ok.any():
            return None
        if owner and owner in snap.owner_counts:
            counts = snap.owner_counts[owner]
            ok &= counts == counts[ok].min()
        score = (snap.used_cpu + request.cpu_m) / np.maximum(snap.alloc_cpu, 1) + \
            (snap.used_mem + request.memory_bytes) / np.maximum(snap.alloc_mem, 1)
        return int(np.where(ok, score, np.inf).argmin())

    # --- scoring ------------------------------------------------------------------------

    @staticmethod
    def _score(node: _Node, cpu: int, mem: int, owner: str | None) -> tuple[float, int, str]:
        """Fewest pods of the same owner first (the default spreading's aim), then least
        allocated, then the name."""
        st = node.state
        used = ((st.used_cpu_m + cpu) / max(st.cpu_m, 1)
                + (st.used_memory_bytes + mem) / max(st.memory_bytes, 1))
        return (node.owners.get(owner, 0) if owner else 0, used, node.name)  # type: ignore[return-value]


def schedule_pending(nodes: Iterable[Mapping], pods: Sequence[Mapping]) -> list[Binding | Failure]:
    """Schedule every unbound, active pod of ``pods`` in creation order onto ``nodes``."""
    snap = ClusterSnapshot(nodes, pods)
    sched = PodScheduler(snap)
    pending = [p for p in pods if not (p.get("spec") or {}).get("nodeName") and _is_active(p)
               and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"]
    pending.sort(key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0),
                                p["metadata"].get("creationTimestamp", ""), p["metadata"].get("namespace", ""),
                                p["metadata"]["name"]))
    return [sched.schedule(p) for p in pending]
