"""The sim cluster's scheduler: binds Pending pods to Nodes with the kit's placement rules.

The placement rules live in ``eafix_capacity.scheduling`` (one scheduler for sizing and
for the sim). That module models pods as ``PodRequest`` records; this adapter turns real
Pod and Node objects into them and adds what the API objects can say but the sizing
model does not: node affinity expressions, several topology spread constraints with
label selectors and any topology key, inter-pod (anti-)affinity with any topology key,
and kube-scheduler's FailedScheduling message including its preemption part. Everything
here is pure: the controller manager feeds it snapshots and writes the bindings.
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

R_TAINT = "node(s) had untolerated taint(s)"
R_SPREAD_MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"
R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
P_NOT_HELPFUL = "Preemption is not helpful for scheduling"
P_NO_VICTIMS = "No preemption victims found for incoming pod"
# Filters whose failure another pod's removal cannot fix (UnschedulableAndUnresolvable).
_UNRESOLVABLE = {S.R_UNSCHEDULABLE, S.R_SELECTOR, R_TAINT, R_SPREAD_MISSING, R_POD_AFFINITY}
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


# --- reading objects ----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _cpu_m(text: object) -> int:
    try:
        return quantity.parse(text).milli_value()  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return 0


@lru_cache(maxsize=4096)
def _bytes(text: object) -> int:
    try:
        return quantity.parse(text).int_value()  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return 0


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


def _node_selector_term_matches(term: Mapping, node_name: str, labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        value = labels.get(key)
        if op == "In" and value not in values:
            return False
        if op == "NotIn" and value is not None and value in values:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
        if op in ("Gt", "Lt"):
            try:
                have, bound = int(value), int(values[0])  # type: ignore[arg-type]
            except (TypeError, ValueError, IndexError):
                return False
            if (op == "Gt" and not have > bound) or (op == "Lt" and not have < bound):
                return False
    for expr in term.get("matchFields") or []:
        if expr.get("key") != "metadata.name":
            return False
        op, values = expr.get("operator"), expr.get("values") or []
        if (op == "In" and node_name not in values) or (op == "NotIn" and node_name in values):
            return False
    return bool(term.get("matchExpressions") or term.get("matchFields"))


def node_affinity_matches(pod: Mapping, node: Mapping) -> bool:
    """nodeSelector and required node affinity (terms ORed, expressions ANDed)."""
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if terms:
        return any(_node_selector_term_matches(t, meta.get("name", ""), labels) for t in terms)
    return True


def pod_tolerations(pod: Mapping) -> tuple[S.Toleration, ...]:
    out = []
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        out.append(S.Toleration(key=t.get("key") or "", operator=t.get("operator") or "Equal",
                                value=t.get("value") or "", effect=t.get("effect") or ""))
    return tuple(out)


def node_taints(node: Mapping) -> tuple[S.Taint, ...]:
    return tuple(S.Taint(key=t.get("key", ""), value=t.get("value") or "", effect=t.get("effect", "NoSchedule"))
                 for t in (node.get("spec") or {}).get("taints") or [])


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
    next_index: int = 0


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
    """Nodes with the pods bound to them, updated as the scheduler binds more."""

    def __init__(self, nodes: Iterable[Mapping], pods: Iterable[Mapping]) -> None:
        self.nodes: list[_Node] = []
        self.by_name: dict[str, _Node] = {}
        for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            meta = n["metadata"]
            alloc = (n.get("status") or {}).get("allocatable") or {}
            labels = dict(meta.get("labels") or {})
            state = S.NodeState(
                name=meta["name"], cpu_m=_cpu_m(alloc.get("cpu", 0)), memory_bytes=_bytes(alloc.get("memory", 0)),
                max_pods=_bytes(alloc.get("pods", 110)), labels=dict(labels), taints=node_taints(n),
                unschedulable=bool((n.get("spec") or {}).get("unschedulable")),
            )
            node = _Node(n, meta["name"], labels, state)
            self.nodes.append(node)
            self.by_name[node.name] = node
        self.anti_affinity_pods: list[tuple[Mapping, _Node]] = []
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
            if node_name and node_name in self.by_name and _is_active(p):
                self._add(p, self.by_name[node_name])
        self._start = 0

    def _add(self, pod: Mapping, node: _Node) -> None:
        cpu, mem = pod_requests(pod)
        node.state.used_cpu_m += cpu
        node.state.used_memory_bytes += mem
        node.state.pod_count += 1
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
        if _required_terms(pod, "podAntiAffinity"):
            self.anti_affinity_pods.append((pod, node))

    def bind(self, pod: Mapping, node_name: str) -> None:
        self._add(pod, self.by_name[node_name])


def _required_terms(pod: Mapping, kind: str) -> list[Mapping]:
    return list((((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _hard_spread(pod: Mapping) -> bool:
    return any(c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
               for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or [])


def _term_namespaces(term: Mapping, pod_ns: str) -> set[str] | None:
    """Namespaces an affinity term covers; ``None`` means all (namespaceSelector {})."""
    if term.get("namespaceSelector") == {}:
        return None
    return set(term.get("namespaces") or [pod_ns])


def _term_matches(term: Mapping, owner_ns: str, pod: Mapping) -> bool:
    meta = pod.get("metadata") or {}
    namespaces = _term_namespaces(term, owner_ns)
    if namespaces is not None and meta.get("namespace") not in namespaces:
        return False
    return selector_matches(term.get("labelSelector"), meta.get("labels") or {})


def num_feasible_nodes_to_find(num_nodes: int) -> int:
    """kube-scheduler's adaptive sample: all nodes below 100, else 50% - n/125 (min 5%, min 100)."""
    if num_nodes < 100:
        return num_nodes
    percentage = max(5, 50 - num_nodes // 125)
    return max(100, num_nodes * percentage // 100)


def fit_error_message(total_nodes: int, node_reasons: Mapping[str, Sequence[str]]) -> str:
    """The FailedScheduling message of kube-scheduler 1.30+ (single final period).

    ``0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. preemption: 0/3
    nodes are available: 3 No preemption victims found for incoming pod.`` Reasons are
    counted per node and sorted as strings ("<count> <reason>"), as FitError.Error does.
    """
    reasons: Counter = Counter()
    preemption: Counter = Counter()
    for why in node_reasons.values():
        reasons.update(why)
        preemption[P_NOT_HELPFUL if any(r in _UNRESOLVABLE for r in why) else P_NO_VICTIMS] += 1
    head = f"0/{total_nodes} nodes are available"
    histogram = sorted(f"{n} {r}" for r, n in reasons.items())
    text = f"{head}: " + ", ".join(histogram) + "." if histogram else f"{head}."
    if total_nodes:
        tail = sorted(f"{n} {r}" for r, n in preemption.items())
        text += f" preemption: {head}: " + ", ".join(tail) + "."
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
        cpu, mem = pod_requests(pod)
        request = S.PodRequest(name=f"{ns}/{name}", group="", cpu_m=cpu, memory_bytes=mem,
                               node_selector=(), tolerations=pod_tolerations(pod), anti_affinity=False, spread=None)
        owner = _controller_uid(pod)
        existing = self._existing_anti_affinity(pod)
        if self._plain(pod):
            best_i = self._fast_pick(pod, request, cpu, mem, owner, existing)
            if best_i is not None:
                best_node = nodes[best_i]
                self.snap.bind(pod, best_node.name)
                return Binding(ns, name, best_node.name)
            # Nothing fits: the node-by-node path below explains why.
        spread = self._spread_state(pod)
        anti = self._anti_affinity_domains(pod)
        affinity = self._affinity_domains(pod)
        want = num_feasible_nodes_to_find(len(nodes))
        reasons: dict[str, list[str]] = {}
        feasible: list[_Node] = []
        n = len(nodes)
        start = self.snap._start
        checked = 0
        for i in range(n):
            node = nodes[(start + i) % n]
            checked += 1
            why = self._filter(pod, request, node, spread, anti, affinity, existing)
            if why:
                reasons[node.name] = why
                continue
            feasible.append(node)
            if len(feasible) >= want:
                break
        self.snap._start = (start + checked) % n
        if not feasible:
            return Failure(ns, name, fit_error_message(n, reasons))
        best = min(feasible, key=lambda nd: self._score(nd, cpu, mem, owner))
        self.snap.bind(pod, best.name)
        return Binding(ns, name, best.name)

    # --- the vectorised path for plain pods ------------------------------------------------

    @staticmethod
    def _plain(pod: Mapping) -> bool:
        """No required pod (anti-)affinity and no hard topology spread: only per-node filters apply."""
        return not (_required_terms(pod, "podAffinity") or _required_terms(pod, "podAntiAffinity")
                    or _hard_spread(pod))

    def _static_mask(self, pod: Mapping, request: S.PodRequest) -> np.ndarray:
        """Nodes passing the filters that do not depend on other pods (cordon, taints, node
        affinity), cached per pass for each distinct (tolerations, selector, affinity)."""
        spec = pod.get("spec") or {}
        key = json.dumps([spec.get("tolerations"), spec.get("nodeSelector"),
                          (spec.get("affinity") or {}).get("nodeAffinity")], sort_keys=True)
        mask = self.snap.static_masks.get(key)
        if mask is None:
            probe = S.PodRequest(name=request.name, group="", cpu_m=0, memory_bytes=0,
                                 tolerations=request.tolerations, spread=None)
            mask = np.zeros(len(self.snap.nodes), dtype=bool)
            for i, node in enumerate(self.snap.nodes):
                saved = node.state.pod_count
                node.state.pod_count = 0  # only the static filters answer here
                try:
                    why = S.filter_node(probe, node.state, ())
                finally:
                    node.state.pod_count = saved
                mask[i] = not why and node_affinity_matches(pod, node.obj)
            self.snap.static_masks[key] = mask
        return mask

    def _fast_pick(self, pod: Mapping, request: S.PodRequest, cpu: int, mem: int, owner: str | None,
                   existing: set[tuple[str, str]]) -> int | None:
        snap = self.snap
        ok = self._static_mask(pod, request).copy()
        if existing:
            for i, node in enumerate(snap.nodes):
                if any(node.labels.get(k) == v for k, v in existing):
                    ok[i] = False
        ok &= snap.pod_count + 1 <= snap.max_pods
        ok &= snap.used_cpu + cpu <= snap.alloc_cpu
        ok &= snap.used_mem + mem <= snap.alloc_mem
        if not ok.any():
            return None
        if owner and owner in snap.owner_counts:
            counts = snap.owner_counts[owner]
            ok &= counts == counts[ok].min()
        score = (snap.used_cpu + cpu) / np.maximum(snap.alloc_cpu, 1) + \
            (snap.used_mem + mem) / np.maximum(snap.alloc_mem, 1)
        return int(np.where(ok, score, np.inf).argmin())

    # --- filters ------------------------------------------------------------------------

    def _filter(self, pod: Mapping, request: S.PodRequest, node: _Node, spread: list, anti: list,
                affinity: list, existing: set[tuple[str, str]]) -> list[str]:
        why = S.filter_node(request, node.state, ())
        if why and (why[0] == S.R_UNSCHEDULABLE):
            return why
        if why and why[0].startswith("node(s) had untolerated taint"):
            return [R_TAINT]
        if not node_affinity_matches(pod, node.obj):
            return [S.R_SELECTOR]
        if why:
            return why
        for key, max_skew, counts, self_match, global_min in spread:
            domain = node.labels.get(key)
            if domain is None:
                return [R_SPREAD_MISSING]
            if counts.get(domain, 0) + self_match - global_min > max_skew:
                return [S.R_SPREAD]
        for key, domains, first_pod in affinity:
            domain = node.labels.get(key)
            if domain is None or (domain not in domains and not first_pod):
                return [R_POD_AFFINITY]
        for key, domains in anti:
            domain = node.labels.get(key)
            if domain is not None and domain in domains:
                return [S.R_ANTI_AFFINITY]
        for key, value in existing:
            if node.labels.get(key) == value:
                return [R_EXISTING_ANTI_AFFINITY]
        return []

    def _eligible_for_spread(self, pod: Mapping, node: _Node, constraint: Mapping, tolerations) -> bool:
        if constraint.get("nodeAffinityPolicy", "Honor") == "Honor" and not node_affinity_matches(pod, node.obj):
            return False
        if constraint.get("nodeTaintsPolicy", "Ignore") == "Honor":
            for taint in node.state.taints:
                if taint.effect in ("NoSchedule", "NoExecute") and not any(t.tolerates(taint) for t in tolerations):
                    return False
        return True

    def _spread_state(self, pod: Mapping) -> list[tuple[str, int, dict[str, int], int, int]]:
        constraints = [c for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []
                       if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
        if not constraints:
            return []
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        keys = [c.get("topologyKey", "") for c in constraints]
        tolerations = pod_tolerations(pod)
        out = []
        for c in constraints:
            selector = json.loads(json.dumps(c.get("labelSelector") or {}))
            for k in c.get("matchLabelKeys") or []:
                if k in labels:
                    selector.setdefault("matchLabels", {})[k] = labels[k]
            counts: dict[str, int] = {}
            for node in self.snap.nodes:
                if not all(k in node.labels for k in keys) or not self._eligible_for_spread(pod, node, c, tolerations):
                    continue
                domain = node.labels[c.get("topologyKey", "")]
                matched = sum(1 for p in node.pods
                              if p["metadata"].get("namespace") == meta.get("namespace")
                              and selector_matches(selector, p["metadata"].get("labels") or {}))
                counts[domain] = counts.get(domain, 0) + matched
            global_min = min(counts.values()) if counts else 0
            if len(counts) < int(c.get("minDomains") or 1):
                global_min = 0
            self_match = 1 if selector_matches(selector, labels) else 0
            out.append((c.get("topologyKey", ""), int(c.get("maxSkew", 1)), counts, self_match, global_min))
        return out

    def _domains_of_matching(self, pod: Mapping, term: Mapping) -> set[str]:
        key = term.get("topologyKey", "")
        ns = pod["metadata"].get("namespace", "default")
        domains = set()
        for node in self.snap.nodes:
            value = node.labels.get(key)
            if value is None or value in domains:
                continue
            if any(_term_matches(term, ns, p) for p in node.pods):
                domains.add(value)
        return domains

    def _anti_affinity_domains(self, pod: Mapping) -> list[tuple[str, set[str]]]:
        return [(t.get("topologyKey", ""), self._domains_of_matching(pod, t))
                for t in _required_terms(pod, "podAntiAffinity")]

    def _affinity_domains(self, pod: Mapping) -> list[tuple[str, set[str], bool]]:
        out = []
        ns = pod["metadata"].get("namespace", "default")
        for t in _required_terms(pod, "podAffinity"):
            domains = self._domains_of_matching(pod, t)
            # The first pod of a group that selects itself may go anywhere with the key.
            first = not domains and _term_matches(t, ns, pod)
            out.append((t.get("topologyKey", ""), domains, first))
        return out

    def _existing_anti_affinity(self, pod: Mapping) -> set[tuple[str, str]]:
        forbidden = set()
        for other, node in self.snap.anti_affinity_pods:
            other_ns = other["metadata"].get("namespace", "default")
            for t in _required_terms(other, "podAntiAffinity"):
                key = t.get("topologyKey", "")
                if key in node.labels and _term_matches(t, other_ns, pod):
                    forbidden.add((key, node.labels[key]))
        return forbidden

    # --- scoring ------------------------------------------------------------------------

    @staticmethod
    def _score(node: _Node, cpu: int, mem: int, owner: str | None) -> tuple[float, int, str]:
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
