"""Placement rules and bin packing: the one scheduler of the kit.

Two users share these rules. The sizing engine packs a scenario's pods onto N identical
nodes and searches the smallest N (``min_nodes``); the sim cluster's scheduler
(``sim/scheduler.py``) turns real Pod and Node objects into the records here, asks
``filter_node`` which nodes may take a pending pod, and scores those. The records carry
what the API objects can say, and the filters run in the order and with the reason
strings of kube-scheduler's plugins (pkg/scheduler/framework/plugins, 1.32+):

- NodeUnschedulable: ``node(s) were unschedulable`` (cordoned)
- TaintToleration:   ``node(s) had untolerated taint(s)``
- NodeAffinity:      ``node(s) didn't match Pod's node affinity/selector``
- NodeResourcesFit:  ``Too many pods``, ``Insufficient cpu``, ``Insufficient memory``
- PodTopologySpread: ``node(s) didn't match pod topology spread constraints`` (and
  ``... (missing required label)`` on a node without the topology key)
- InterPodAffinity:  ``node(s) didn't match pod affinity rules``, ``node(s) didn't match
  pod anti-affinity rules``, ``node(s) didn't satisfy existing pods anti-affinity rules``

The sizing model names the pods a spread or anti-affinity rule counts by a ``group`` (a
service's replicas); a rule whose ``selector`` is None counts the pod's own group, which
is what the generated manifests' label selectors say; a pod's ``zone_spread`` is its group's spread
over ``topology.kubernetes.io/zone``. Topology spread follows the
DoNotSchedule semantics of podtopologyspread/filtering.go: placing a pod on node x is
allowed when ``count(domain of x) + self - min(count over eligible domains) <= maxSkew``,
where the eligible domains are those of nodes carrying every constraint's topology key
and (``nodeAffinityPolicy: Honor``, the default) matching the pod's node selector and
affinity, and (``nodeTaintsPolicy: Honor``) whose taints it tolerates; with fewer eligible
domains than ``minDomains`` the minimum is 0.

Packing guarantees (``pack``/``min_nodes``): every placement returned satisfies the
resource, pod-count, spread and anti-affinity filters above for every pod
(``check_placement`` verifies it, and the property tests run it); node selectors, taints
and tolerations are not modelled by the packer (the sizing engine's pods carry none), so
a pod with a selector is placed as if it had none. The node count returned is never below
``lower_bound``. Pods are placed First-Fit Decreasing by their share of a node (cpu share
+ memory share), the order Cluster Autoscaler's binpacking estimator uses, so the count
is a heuristic upper bound on the optimum, not the optimum itself. First-fit with a
maxSkew-1 spread is not monotone in the node count: a workload packed on k nodes can fail
on k+1 (a spread layer finds its only allowed node full), so "packs on k" says nothing
about larger counts; callers that judge a given count pack at that count.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from math import ceil
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .kobject import selector_matches

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_TAINT = "node(s) had untolerated taint(s)"
R_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
R_CPU = "Insufficient cpu"
R_MEMORY = "Insufficient memory"
R_PODS = "Too many pods"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"
R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
R_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
# The reasons kube-scheduler returns as UnschedulableAndUnresolvable: removing another
# pod cannot fix them, so preemption is not helpful on those nodes.
UNRESOLVABLE = frozenset({R_UNSCHEDULABLE, R_TAINT, R_SELECTOR, R_SPREAD_MISSING, R_POD_AFFINITY})
DO_NOT_SCHEDULE = "DoNotSchedule"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """As v1.Toleration.ToleratesTaint: an empty effect or key matches any."""
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


def untolerated_taint(taints: Iterable[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration tolerates (PreferNoSchedule
    only scores), as v1helper.FindMatchingUntoleratedTaint with the scheduler's filter."""
    for taint in taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector; ``nothing`` stands for a missing one, which selects no pod."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    nothing: bool = False

    @classmethod
    def of(cls, selector: Mapping | None, *, extra: Mapping[str, str] | None = None) -> LabelSelector:
        """From the API's mapping; ``extra`` labels are ANDed in (matchLabelKeys)."""
        if selector is None and not extra:
            return cls(nothing=True)
        selector = selector or {}
        labels = {**(selector.get("matchLabels") or {}), **(extra or {})}
        exprs = tuple((e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
                      for e in selector.get("matchExpressions") or [])
        return cls(tuple(sorted(labels.items())), exprs)

    @cached_property
    def _mapping(self) -> Mapping | None:
        if self.nothing:
            return None
        return {"matchLabels": dict(self.match_labels),
                "matchExpressions": [{"key": k, "operator": op, "values": list(v)}
                                     for k, op, v in self.match_expressions]}

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self._mapping, labels)


@dataclass(frozen=True)
class NodeSelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        """As nodeaffinity's requirement matching (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""
        op = self.operator
        if op == "In":
            return value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op in ("Gt", "Lt"):
            try:
                have, bound = int(value), int(self.values[0])  # type: ignore[arg-type]
            except (TypeError, ValueError, IndexError):
                return False
            return have > bound if op == "Gt" else have < bound
        return False


@dataclass(frozen=True)
class NodeSelectorTerm:
    """One of requiredDuringScheduling's nodeSelectorTerms: requirements ANDed; an empty
    term matches no node. ``matchFields`` supports ``metadata.name`` only, as the API does."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()

    def matches(self, node_name: str, labels: Mapping[str, str]) -> bool:
        if not (self.match_expressions or self.match_fields):
            return False
        return (all(r.matches(labels.get(r.key)) for r in self.match_expressions)
                and all(r.key == "metadata.name" and r.matches(node_name) for r in self.match_fields))


@dataclass(frozen=True)
class SpreadConstraint:
    """One topologySpreadConstraint. ``selector`` None counts the pod's group (the sizing
    model); ``honor_affinity``/``honor_taints`` are nodeAffinityPolicy (default Honor) and
    nodeTaintsPolicy (default Ignore). ScheduleAnyway constraints only score, so the
    filter passes over them."""

    max_skew: int = 1
    topology_key: str = HOSTNAME
    honor_taints: bool = False
    honor_affinity: bool = True
    selector: LabelSelector | None = None
    min_domains: int = 1
    when_unsatisfiable: str = DO_NOT_SCHEDULE


@dataclass(frozen=True)
class AffinityTerm:
    """A required PodAffinityTerm. ``selector`` None selects the pod's own group;
    ``namespaces`` empty means the pod's own namespace, None every namespace
    (``namespaceSelector: {}``)."""

    topology_key: str = HOSTNAME
    selector: LabelSelector | None = None
    namespaces: frozenset[str] | None = frozenset()


@dataclass(frozen=True)
class PodRequest:
    """What the scheduler needs of a pod. ``group`` is the set of pods its sizing-model
    rules count (the service: pods with the same app label): ``spread`` is its one spread
    constraint and ``anti_affinity`` a hostname anti-affinity to its own group. A Pod
    object says more, and the sim's adapter fills the rest: every constraint in
    ``spread_constraints``, required (anti-)affinity terms, node affinity terms ORed."""

    name: str
    group: str
    cpu_m: int
    memory_bytes: int
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    anti_affinity: bool = False
    spread: SpreadConstraint | None = SpreadConstraint()
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    node_affinity: tuple[NodeSelectorTerm, ...] = ()
    spread_constraints: tuple[SpreadConstraint, ...] = ()
    pod_affinity: tuple[AffinityTerm, ...] = ()
    pod_anti_affinity: tuple[AffinityTerm, ...] = ()
    zone_spread: SpreadConstraint | None = None   # the sizing model's zone spread over its group

    @cached_property
    def hard_spread(self) -> tuple[SpreadConstraint, ...]:
        """The DoNotSchedule constraints, the only ones that filter."""
        every = tuple(c for c in (self.spread, self.zone_spread) if c is not None) + self.spread_constraints
        return tuple(c for c in every if c.when_unsatisfiable == DO_NOT_SCHEDULE)

    @cached_property
    def anti_affinity_terms(self) -> tuple[AffinityTerm, ...]:
        return ((AffinityTerm(),) if self.anti_affinity else ()) + self.pod_anti_affinity


@dataclass
class NodeState:
    """A node as the scheduler sees it: free capacity for workload pods, and the pods
    already there. ``cpu_m``/``memory_bytes``/``max_pods`` are what pods may request in
    total (allocatable less DaemonSets). ``pods`` may be left empty by a caller that
    only packs groups (``groups`` counts them); rules with label selectors read it."""

    name: str
    cpu_m: int
    memory_bytes: int
    max_pods: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    used_cpu_m: int = 0
    used_memory_bytes: int = 0
    pod_count: int = 0
    groups: Counter = field(default_factory=Counter)
    pods: list[PodRequest] = field(default_factory=list)
    anti_affinity_pods: list[PodRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels.setdefault(HOSTNAME, self.name)

    def add(self, pod: PodRequest) -> None:
        self.used_cpu_m += pod.cpu_m
        self.used_memory_bytes += pod.memory_bytes
        self.pod_count += 1
        self.groups[pod.group] += 1
        self.pods.append(pod)
        if pod.anti_affinity_terms:
            self.anti_affinity_pods.append(pod)

    def remove(self, pod: PodRequest) -> None:
        self.used_cpu_m -= pod.cpu_m
        self.used_memory_bytes -= pod.memory_bytes
        self.pod_count -= 1
        self.groups[pod.group] -= 1
        self.pods.remove(pod)
        if pod in self.anti_affinity_pods:
            self.anti_affinity_pods.remove(pod)


# --- the rules ------------------------------------------------------------------------------


def node_affinity_matches(pod: PodRequest, node_name: str, labels: Mapping[str, str]) -> bool:
    """nodeSelector and required node affinity (terms ORed), as the NodeAffinity filter."""
    if any(labels.get(k) != v for k, v in pod.node_selector):
        return False
    return not pod.node_affinity or any(t.matches(node_name, labels) for t in pod.node_affinity)


def _selects(owner: PodRequest, selector: LabelSelector | None, namespaces: frozenset[str] | None,
             other: PodRequest) -> bool:
    """Whether a rule of ``owner`` counts ``other``."""
    if selector is None:
        return other.group == owner.group
    if namespaces is not None and other.namespace not in (namespaces or (owner.namespace,)):
        return False
    return selector.matches(other.labels)


def _count_on(owner: PodRequest, selector: LabelSelector | None, namespaces: frozenset[str] | None,
              node: NodeState) -> int:
    if selector is None:
        return node.groups.get(owner.group, 0)
    return sum(1 for q in node.pods if _selects(owner, selector, namespaces, q))


@dataclass(frozen=True)
class SpreadState:
    """One DoNotSchedule constraint's counts over the eligible domains (PreFilter)."""

    constraint: SpreadConstraint
    counts: Mapping[str, int]
    self_match: int
    global_min: int


@dataclass(frozen=True)
class FilterState:
    """What the cluster-wide filters precompute once per pod (kube-scheduler's PreFilter):
    spread counts, the domains holding pods the pod's (anti-)affinity terms select, and
    the domains existing pods' anti-affinity closes to it."""

    spread: tuple[SpreadState, ...] = ()
    affinity: tuple[tuple[str, frozenset[str]], ...] = ()
    affinity_first: bool = False
    anti_affinity: tuple[tuple[str, frozenset[str]], ...] = ()
    existing_anti_affinity: frozenset[tuple[str, str]] = frozenset()


def _spread_eligible(pod: PodRequest, c: SpreadConstraint, node: NodeState) -> bool:
    if c.honor_affinity and not node_affinity_matches(pod, node.name, node.labels):
        return False
    return not (c.honor_taints and untolerated_taint(node.taints, pod.tolerations) is not None)


def _spread_state(pod: PodRequest, nodes: Sequence[NodeState]) -> tuple[SpreadState, ...]:
    constraints = pod.hard_spread
    keys = {c.topology_key for c in constraints}
    out = []
    for c in constraints:
        counts: dict[str, int] = {}
        for n in nodes:
            if not all(k in n.labels for k in keys) or not _spread_eligible(pod, c, n):
                continue
            # kube counts the pods of the pod's own namespace (countPodsMatchSelector)
            matched = _count_on(pod, c.selector, frozenset(), n)
            domain = n.labels[c.topology_key]
            counts[domain] = counts.get(domain, 0) + matched
        global_min = min(counts.values()) if counts else 0
        if len(counts) < c.min_domains:
            global_min = 0
        self_match = 1 if c.selector is None or c.selector.matches(pod.labels) else 0
        out.append(SpreadState(c, counts, self_match, global_min))
    return tuple(out)


def _term_domains(pod: PodRequest, term: AffinityTerm, nodes: Sequence[NodeState]) -> frozenset[str]:
    domains = set()
    for n in nodes:
        value = n.labels.get(term.topology_key)
        if value is not None and value not in domains and _count_on(pod, term.selector, term.namespaces, n):
            domains.add(value)
    return frozenset(domains)


def _affinity_domains(pod: PodRequest, nodes: Sequence[NodeState]) -> tuple[tuple[str, frozenset[str]], ...]:
    """Per required affinity term, the domains (of its key) holding a pod that matches
    every term: interpodaffinity counts a pod for its terms only when it matches all."""
    terms = pod.pod_affinity
    domains: list[set[str]] = [set() for _ in terms]
    for n in nodes:
        if any(all(_selects(pod, t.selector, t.namespaces, q) for t in terms) for q in n.pods):
            for t, d in zip(terms, domains):
                value = n.labels.get(t.topology_key)
                if value is not None:
                    d.add(value)
    return tuple((t.topology_key, frozenset(d)) for t, d in zip(terms, domains))


def existing_anti_affinity(pod: PodRequest, nodes: Iterable[NodeState]) -> frozenset[tuple[str, str]]:
    """(topology key, value) pairs where a placed pod's required anti-affinity selects
    ``pod``: the symmetric half of InterPodAffinity."""
    forbidden = set()
    for n in nodes:
        for other in n.anti_affinity_pods:
            for t in other.anti_affinity_terms:
                value = n.labels.get(t.topology_key)
                if value is not None and _selects(other, t.selector, t.namespaces, pod):
                    forbidden.add((t.topology_key, value))
    return frozenset(forbidden)


def prefilter(pod: PodRequest, nodes: Sequence[NodeState]) -> FilterState:
    """The per-pod state ``filter_node`` reads, computed over every node once."""
    affinity = _affinity_domains(pod, nodes) if pod.pod_affinity else ()
    # interpodaffinity satisfyPodAffinity: the first pod of a group whose terms select
    # itself may go to any node with the keys, when no pod anywhere matches the terms
    first = (bool(affinity) and not any(d for _, d in affinity)
             and all(_selects(pod, t.selector, t.namespaces, pod) for t in pod.pod_affinity))
    return FilterState(
        spread=_spread_state(pod, nodes) if pod.hard_spread else (),
        affinity=affinity, affinity_first=first,
        anti_affinity=tuple((t.topology_key, _term_domains(pod, t, nodes)) for t in pod.anti_affinity_terms),
        existing_anti_affinity=existing_anti_affinity(pod, nodes),
    )


def static_filter(pod: PodRequest, node: NodeState) -> list[str]:
    """The filters that read only the node itself: NodeUnschedulable, TaintToleration,
    NodeAffinity (the first failing plugin decides)."""
    if node.unschedulable and not any(t.tolerates(Taint(UNSCHEDULABLE_TAINT)) for t in pod.tolerations):
        return [R_UNSCHEDULABLE]
    if untolerated_taint(node.taints, pod.tolerations) is not None:
        return [R_TAINT]
    if not node_affinity_matches(pod, node.name, node.labels):
        return [R_SELECTOR]
    return []


def resource_fit(pod: PodRequest, node: NodeState) -> list[str]:
    """NodeResourcesFit: every insufficient resource, pods first as fit.go lists them."""
    reasons = []
    if node.pod_count + 1 > node.max_pods:
        reasons.append(R_PODS)
    if node.used_cpu_m + pod.cpu_m > node.cpu_m:
        reasons.append(R_CPU)
    if node.used_memory_bytes + pod.memory_bytes > node.memory_bytes:
        reasons.append(R_MEMORY)
    return reasons


def placement_rules(pod: PodRequest, node: NodeState, state: FilterState) -> list[str]:
    """PodTopologySpread, then InterPodAffinity (affinity, anti-affinity, existing pods'
    anti-affinity), against the state ``prefilter`` computed."""
    for s in state.spread:
        domain = node.labels.get(s.constraint.topology_key)
        if domain is None:
            return [R_SPREAD_MISSING]
        if s.counts.get(domain, 0) + s.self_match - s.global_min > s.constraint.max_skew:
            return [R_SPREAD]
    if state.affinity:
        values = [node.labels.get(key) for key, _ in state.affinity]
        if any(v is None for v in values):
            return [R_POD_AFFINITY]
        if not state.affinity_first and not all(v in d for v, (_, d) in zip(values, state.affinity)):
            return [R_POD_AFFINITY]
    for key, domains in state.anti_affinity:
        value = node.labels.get(key)
        if value is not None and value in domains:
            return [R_ANTI_AFFINITY]
    for key, value in state.existing_anti_affinity:
        if node.labels.get(key) == value:
            return [R_EXISTING_ANTI_AFFINITY]
    return []


def filter_node(pod: PodRequest, node: NodeState, nodes: Sequence[NodeState],
                *, state: FilterState | None = None) -> list[str]:
    """Reasons ``node`` cannot take ``pod`` (empty when it can), kube-scheduler style.

    Like kube-scheduler, the first failing plugin decides; resource fit lists every
    insufficient resource. ``state`` is ``prefilter(pod, nodes)``, computed here when
    not given (pass it when filtering many nodes for one pod)."""
    why = static_filter(pod, node) or resource_fit(pod, node)
    if why:
        return why
    return placement_rules(pod, node, state if state is not None else prefilter(pod, nodes))


def reason_histogram(reasons: Mapping[str, int]) -> str:
    """``1 Insufficient memory, 2 Insufficient cpu``: kube-scheduler's FitError sorts the
    "<count> <reason>" strings themselves."""
    return ", ".join(sorted(f"{n} {r}" for r, n in reasons.items() if n))


@dataclass(frozen=True)
class Decision:
    """Outcome of scheduling one pod: the chosen node, or why none fits."""

    node: str | None
    reasons: Counter
    total_nodes: int

    def message(self) -> str:
        """The FailedScheduling message, e.g. ``0/3 nodes are available: 3 Insufficient cpu.``"""
        parts = reason_histogram(self.reasons)
        head = f"0/{self.total_nodes} nodes are available"
        return f"{head}: {parts}." if parts else f"{head}."


def schedule(pod: PodRequest, nodes: Sequence[NodeState]) -> Decision:
    """Choose a node for one pod: filter, then score by least allocated (the default
    scoring's dominant term), ties broken by node name. Does not modify the nodes."""
    state = prefilter(pod, nodes)
    reasons: Counter = Counter()
    best: tuple[float, str] | None = None
    for node in nodes:
        why = filter_node(pod, node, nodes, state=state)
        if why:
            reasons.update(why)
            continue
        used = ((node.used_cpu_m + pod.cpu_m) / max(node.cpu_m, 1)
                + (node.used_memory_bytes + pod.memory_bytes) / max(node.memory_bytes, 1))
        key = (used, node.name)
        if best is None or key < best:
            best = key
    return Decision(best[1] if best else None, reasons, len(nodes))


# ---------------------------------------------------------------------------------------
# Packing onto identical nodes (the sizing engine)


@dataclass(frozen=True)
class NodeShape:
    """Room for workload pods on one node of a type: allocatable less DaemonSets."""

    cpu_m: int
    memory_bytes: int
    max_pods: int


@dataclass(frozen=True)
class Placement:
    """Pods placed on ``nodes`` identical nodes named node-0..node-(n-1), in the zones
    ``zones`` (one ``topology.kubernetes.io/zone`` value per node; empty: no zones)."""

    nodes: int
    assignment: tuple[tuple[str, int], ...]   # (pod name, node index)
    cpu_m: tuple[int, ...]
    memory_bytes: tuple[int, ...]
    pods: tuple[int, ...]
    zones: tuple[str, ...] = ()

    def by_node(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {i: [] for i in range(self.nodes)}
        for pod, i in self.assignment:
            out[i].append(pod)
        return out


@dataclass(frozen=True)
class PackResult:
    nodes_needed: int | None      # None when some pod fits no node at all, or no count up to at_most packs
    lower_bound: int
    placement: Placement | None
    unfit: tuple[str, ...] = ()   # pods larger than an empty node
    beyond: int | None = None     # the at_most that no count up to packed


def lower_bound(pods: Sequence[PodRequest], shape: NodeShape) -> int:
    """A count no valid placement can go below: the largest of ceil(total cpu / node
    cpu), the same for memory, ceil(pods / max pods), the number of pods above half a
    node's cpu (or memory), which cannot share a node, and the largest anti-affinity
    group. (The floor(r/N) pods a maxSkew-1 spread forces onto every node add nothing:
    their sum never exceeds total / N.)"""
    if not pods:
        return 0
    if shape.cpu_m <= 0 or shape.memory_bytes <= 0 or shape.max_pods <= 0:
        return len(pods)
    cpu = sum(p.cpu_m for p in pods)
    mem = sum(p.memory_bytes for p in pods)
    anti = Counter(p.group for p in pods if p.anti_affinity)
    return max(
        ceil(cpu / shape.cpu_m), ceil(mem / shape.memory_bytes), ceil(len(pods) / shape.max_pods),
        sum(1 for p in pods if 2 * p.cpu_m > shape.cpu_m),
        sum(1 for p in pods if 2 * p.memory_bytes > shape.memory_bytes),
        max(anti.values(), default=0), 1,
    )


def ffd_order(pods: Sequence[PodRequest], shape: NodeShape) -> list[PodRequest]:
    """Pods by decreasing (cpu share + memory share) of a node; ties by group, name."""
    c = max(shape.cpu_m, 1)
    m = max(shape.memory_bytes, 1)
    return sorted(pods, key=lambda p: (-(p.cpu_m / c + p.memory_bytes / m), p.group, p.name))


class _Bins:
    """Free room of ``n`` identical nodes (rows cpu, memory, pod slots) and, per group,
    its pod count on each node, the spread's current minimum and how many nodes sit at
    that minimum (with maxSkew 1 every count is the minimum or one above it, so when no
    node is left at the minimum, the minimum has risen by one)."""

    def __init__(self, shape: NodeShape, n: int, zones: Sequence[str] = ()) -> None:
        self.shape = shape
        self.n = n
        names = list(dict.fromkeys(zones))
        self.zone = np.array([names.index(z) for z in zones], dtype=np.int64)   # each node's zone index
        self.zone_count = len(names)
        self.free = np.empty((3, n), dtype=np.int64)
        self.free[0], self.free[1], self.free[2] = shape.cpu_m, shape.memory_bytes, shape.max_pods
        self.counts: dict[str, np.ndarray] = {}
        self.level: dict[str, int] = {}
        self.at_level: dict[str, int] = {}

    def group(self, name: str) -> np.ndarray:
        c = self.counts.get(name)
        if c is None:
            c = self.counts[name] = np.zeros(self.n, dtype=np.int64)
            self.level[name] = 0
            self.at_level[name] = self.n
        return c

    def fits(self, need: np.ndarray) -> np.ndarray:
        return np.asarray((self.free >= need).all(axis=0))

    def put(self, p: PodRequest, need: np.ndarray, idx: np.ndarray | int) -> None:
        self.free[:, idx] -= need
        self.counts[p.group][idx] += 1

    def rise(self, group: str, placed: int) -> None:
        """``placed`` pods of a maxSkew-1 group went onto nodes at its minimum."""
        self.at_level[group] -= placed
        if self.at_level[group] == 0:
            self.level[group] += 1
            self.at_level[group] = self.n


def _place_one(bins: _Bins, p: PodRequest, out: list[tuple[str, int]], *, balanced: bool) -> bool:
    """One pod with maxSkew-1 spread or anti-affinity: the common case of mixed sizes,
    kept to a handful of array operations because it runs once per pod."""
    counts = bins.group(p.group)
    level = bins.level[p.group]
    cpu, mem, slots = bins.free[0], bins.free[1], bins.free[2]
    ok = cpu >= p.cpu_m
    ok &= mem >= p.memory_bytes
    ok &= slots > 0
    ok &= counts == (0 if p.anti_affinity else level)
    return _take(bins, p, ok, out, balanced=balanced)


def _take(bins: _Bins, p: PodRequest, ok: np.ndarray, out: list[tuple[str, int]], *, balanced: bool) -> bool:
    """Place ``p`` on the first node ``ok`` allows (the emptiest with ``balanced``)."""
    cpu, mem, slots = bins.free[0], bins.free[1], bins.free[2]
    if balanced:
        i = int(np.where(ok, cpu / bins.shape.cpu_m + mem / bins.shape.memory_bytes, -1.0).argmax())
    else:
        i = int(ok.argmax())
    if not ok[i]:
        return False
    counts = bins.counts[p.group]
    if p.spread is not None and p.spread.max_skew == 1 and counts[i] == bins.level[p.group]:
        bins.rise(p.group, 1)
    cpu[i] -= p.cpu_m
    mem[i] -= p.memory_bytes
    slots[i] -= 1
    counts[i] += 1
    out.append((p.name, i))
    return True


def _place_zoned(bins: _Bins, p: PodRequest, out: list[tuple[str, int]], *, balanced: bool) -> bool:
    """One pod with a zone spread (and the hostname rules): allowed on a node whose zone
    holds at most ``maxSkew - 1`` more of its group than the emptiest zone, every zone of the
    nodes being a domain (nodeAffinityPolicy Honor: the packed nodes are the pool the pod
    may run on). Without zone labels the pod fits nowhere, as kube-scheduler's "missing
    required label"."""
    if bins.zone_count == 0 or p.zone_spread is None:
        return False
    counts = bins.group(p.group)
    cpu, mem, slots = bins.free[0], bins.free[1], bins.free[2]
    ok = (cpu >= p.cpu_m) & (mem >= p.memory_bytes) & (slots > 0)
    if p.anti_affinity:
        ok &= counts == 0
    skew1 = p.spread is not None and p.spread.max_skew == 1
    if skew1:
        ok &= counts == bins.level[p.group]
    elif p.spread is not None:
        ok &= counts + 1 - int(counts.min()) <= p.spread.max_skew
    per_zone = np.bincount(bins.zone, weights=counts, minlength=bins.zone_count).astype(np.int64)
    ok &= per_zone[bins.zone] + 1 - int(per_zone.min()) <= p.zone_spread.max_skew
    return _take(bins, p, ok, out, balanced=balanced)


def _place_run(bins: _Bins, run: Sequence[PodRequest], out: list[tuple[str, int]],
               *, balanced: bool = False) -> bool:
    """First-fit a run of identical pods (same group, size and rules) in one go.

    Equivalent to placing them one by one: with maxSkew 1 a pod may only go to a node
    holding the group's current minimum, so each layer takes the fitting nodes at that
    level in index order; with anti-affinity each node takes at most one; without
    either, each node in index order takes as many as fit."""
    p = run[0]
    counts = bins.group(p.group)
    need1 = np.array([p.cpu_m, p.memory_bytes, 1], dtype=np.int64)
    need = need1[:, None]
    names = iter(q.name for q in run)
    left = len(run)
    skew1 = p.spread is not None and p.spread.max_skew == 1
    if p.anti_affinity or skew1:
        while left:
            level = 0 if p.anti_affinity else bins.level[p.group]
            allowed = counts == level
            chosen = np.flatnonzero(allowed & bins.fits(need))
            if balanced and len(chosen) > left:
                room = (bins.free[0, chosen] / bins.shape.cpu_m
                        + bins.free[1, chosen] / bins.shape.memory_bytes)
                chosen = np.sort(chosen[np.argsort(-room, kind="stable")[:left]])
            chosen = chosen[:left]
            if len(chosen) == 0:
                return False
            if skew1:
                bins.rise(p.group, int(np.count_nonzero(counts[chosen] == bins.level[p.group])))
            bins.free[:, chosen] -= need
            counts[chosen] += 1
            out.extend((next(names), int(i)) for i in chosen)
            left -= len(chosen)
            if left and (p.anti_affinity or (skew1 and bins.level[p.group] == level)):
                return False
        return True
    if p.spread is None:
        with np.errstate(divide="ignore"):
            per = np.where(need1[:, None] > 0, bins.free // np.maximum(need, 1), np.iinfo(np.int64).max)
        room = per.min(axis=0)
        take = np.minimum(room, np.maximum(left - (np.cumsum(room) - room), 0))
        if int(take.sum()) < left:
            return False
        for j in np.flatnonzero(take):
            out.extend((next(names), int(j)) for _ in range(int(take[j])))
        bins.free -= need * take
        counts += take
        return True
    max_skew = p.spread.max_skew  # the same for every pod of the run
    for q in run:  # maxSkew above 1: one pod at a time
        ok = bins.fits(need) & (counts + 1 - int(counts.min()) <= max_skew)
        i = int(ok.argmax())
        if not ok[i]:
            return False
        bins.put(q, need1, i)
        out.append((q.name, i))
    return True


def _runs(order: Sequence[PodRequest]) -> list[list[PodRequest]]:
    runs: list[list[PodRequest]] = []
    key = None
    for p in order:
        k = (p.group, p.cpu_m, p.memory_bytes, p.spread, p.anti_affinity, p.zone_spread)
        if k != key:
            runs.append([])
            key = k
        runs[-1].append(p)
    return runs


def pack(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int, zones: Sequence[str] = (),
         ordered: bool = False, balanced: bool = False) -> Placement | None:
    """First-Fit Decreasing onto ``nodes`` identical empty nodes with the spread and
    anti-affinity rules of ``filter_node`` (hostname topology, and the zone spread of pods
    that have one over ``zones``, each node's zone). None when a pod finds no node. Pods
    with node selectors or tolerations are not modelled here: the sizing engine's pods
    have neither.

    ``balanced`` places each spread layer on the emptiest allowed nodes instead of the
    first ones (the default scheduler's least-allocated scoring). First-fit piles the
    large pods onto the first nodes; a spread group with more replicas than nodes
    then finds a full node at its minimum and can go nowhere, which balancing avoids."""
    if nodes <= 0:
        return None if pods else Placement(0, (), (), (), ())
    if zones and len(zones) != nodes:
        raise ValueError(f"{len(zones)} zones given for {nodes} nodes")
    order = pods if ordered else ffd_order(pods, shape)
    bins = _Bins(shape, nodes, zones)
    assignment: list[tuple[str, int]] = []
    for run in _runs(order):
        p = run[0]
        if p.zone_spread is not None:
            placed = all(_place_zoned(bins, q, assignment, balanced=balanced) for q in run)
        elif len(run) == 1 and (p.anti_affinity or (p.spread is not None and p.spread.max_skew == 1)):
            placed = _place_one(bins, p, assignment, balanced=balanced)
        else:
            placed = _place_run(bins, run, assignment, balanced=balanced)
        if not placed:
            return None
    return Placement(
        nodes, tuple(assignment),
        tuple(int(x) for x in shape.cpu_m - bins.free[0]),
        tuple(int(x) for x in shape.memory_bytes - bins.free[1]),
        tuple(int(x) for x in shape.max_pods - bins.free[2]),
        tuple(zones),
    )


def place(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int, zones: Sequence[str] = (),
          ordered: bool = False) -> Placement | None:
    """Pack with first-fit, and when that fails with balanced layers: the placement
    the sizing engine reports for a node count."""
    order = pods if ordered else ffd_order(pods, shape)
    return (pack(order, shape, nodes=nodes, zones=zones, ordered=True)
            or pack(order, shape, nodes=nodes, zones=zones, ordered=True, balanced=True))


def min_nodes(pods: Sequence[PodRequest], shape: NodeShape, *,
              at_least: int = 0, at_most: int | None = None,
              zones: Callable[[int], Sequence[str]] | None = None, step: int = 1) -> PackResult:
    """The smallest node count, searched from the lower bound, that ``place`` packs.

    Counts from the lower bound up are tried one by one for four steps, then by
    doubling and bisection; with N >= len(pods) every pod has its own node, so the
    search always ends when each pod fits an empty node. Because packing is not monotone
    in the count, past the first four steps bisection may skip a smaller count that
    would pack: the result is then the smallest count bisection finds. ``at_least``
    raises the floor of the search (for example to keep a node spare); ``at_most`` ends
    it there (a cluster's node limit): nothing packing up to it gives ``beyond``.

    With ``zones``, a count n is a cluster of n nodes and is judged on the nodes
    ``zones(n)`` lists, one zone per node (all n; after a drain, n - 1; after a zone loss,
    those outside it), and only multiples of ``step`` are counts (a regional pool's equal
    nodes per zone); ``nodes_needed`` and ``lower_bound`` are cluster counts then."""
    lb = lower_bound(pods, shape)
    unfit = tuple(p.name for p in pods if p.cpu_m > shape.cpu_m
                  or p.memory_bytes > shape.memory_bytes or shape.max_pods < 1)
    if unfit:
        return PackResult(None, lb, None, unfit)
    order = ffd_order(pods, shape)
    if zones is None:
        start = max(lb, at_least)
        cap = max(len(pods), start)

        def try_at(n: int) -> Placement | None:
            return place(order, shape, nodes=n, ordered=True)
    else:
        layout = zones

        def size(n: int) -> int:
            return len(layout(n))

        top = at_most if at_most is not None else MAX_SEARCH
        pods_bound = lb
        lb = _smallest_count(lambda n: size(n) >= pods_bound, step=step, top=top)   # as a cluster count
        start = max(lb, _smallest_count(lambda n: n >= at_least, step=step, top=top))
        # with as many nodes per zone as pods, an empty node is left in every zone for each pod
        per_zone = max(len(set(layout(start))), 1) * len(pods)
        cap = max(_smallest_count(lambda n: size(n) >= per_zone, step=step, top=top), start)

        def try_at(n: int) -> Placement | None:
            names = layout(n)
            return place(order, shape, nodes=len(names), zones=names, ordered=True)
    if at_most is not None:
        at_most -= at_most % step
    if at_most is not None and start > at_most:
        return PackResult(None, lb, None, beyond=at_most)
    if not pods:
        return PackResult(start, lb, try_at(start) if zones is not None else pack(order, shape, nodes=start, ordered=True))
    found = _search(try_at, start=start, cap=cap, at_most=at_most, step=step)
    if found is None:
        return PackResult(None, lb, None, beyond=at_most if at_most is not None else cap)
    return PackResult(found[0], lb, found[1])


MAX_SEARCH = 1_000_000   # a count no search reaches: MAX_NODES bounds every plan's


def _smallest_count(ok: Callable[[int], bool], *, step: int, top: int) -> int:
    """The smallest positive multiple of ``step`` for which the monotone ``ok`` holds
    (``top`` rounded up to a multiple when none up to ``top`` does)."""
    lo, hi = 1, max(-(-top // step), 1)
    if not ok(hi * step):
        return hi * step
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid * step):
            hi = mid
        else:
            lo = mid + 1
    return lo * step


def _search(try_at: Callable[[int], Placement | None], *, start: int, cap: int, at_most: int | None,
            step: int) -> tuple[int, Placement] | None:
    """``min_nodes``' search over the counts start, start + step, ...: one by one for four
    steps, then doubling, then bisection below the first count that packs."""
    failed = start - step
    n = start
    jump = 1
    while True:
        placement = try_at(n)
        if placement is not None:
            break
        if (at_most is not None and n >= at_most) or n >= cap:
            return None
        failed = n
        if n - start >= 3 * step:
            jump *= 2
        n = min(n + jump * step, cap)
        if at_most is not None:
            n = min(n, at_most)
    best, best_placement = n, placement
    lo, hi = failed + step, n - step
    while lo <= hi:
        mid = lo + (hi - lo) // step // 2 * step
        placement = try_at(mid)
        if placement is not None:
            best, best_placement = mid, placement
            hi = mid - step
        else:
            lo = mid + step
    return best, best_placement


def check_placement(pods: Sequence[PodRequest], shape: NodeShape,
                    placement: Placement) -> list[str]:
    """Every violation of the filters in ``placement`` (empty when valid), checked with
    the scalar rules the sim scheduler uses: each pod, placed in the given order, must
    pass ``filter_node`` on its node given the pods placed before it."""
    by_name = {p.name: p for p in pods}
    nodes = [NodeState(f"node-{i}", shape.cpu_m, shape.memory_bytes, shape.max_pods,
                       labels={ZONE: placement.zones[i]} if placement.zones else {})
             for i in range(placement.nodes)]
    problems = []
    placed = set()
    for name, i in placement.assignment:
        pod = by_name[name]
        why = filter_node(pod, nodes[i], nodes)
        if why:
            problems.append(f"{name} on node-{i}: {', '.join(why)}")
        nodes[i].add(pod)
        placed.add(name)
    missing = set(by_name) - placed
    if missing:
        problems.append(f"not placed: {', '.join(sorted(missing))}")
    return problems


# ---------------------------------------------------------------------------------------
# The default scheduler's spread (what a cluster of a given size would actually do)


@dataclass(frozen=True)
class ScheduledPods:
    """Pods placed one at a time, as kube-scheduler would, and those left Pending."""

    placement: Placement
    pending: tuple[str, ...]


def scheduler_spread(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int, zones: Sequence[str] = (),
                     reserved_cpu_m: int = 0, reserved_memory_bytes: int = 0) -> ScheduledPods:
    """Place ``pods`` in the given (creation) order on ``nodes`` empty nodes the way the
    default scheduler spreads them, where the packer fills the first nodes.

    Filters are ``filter_node``'s. Scores are the default profile's that differ between
    identical nodes (pkg/scheduler/apis/config/v1/default_plugins.go): NodeResourcesFit
    with the LeastAllocated strategy, the mean over cpu and memory of
    ``(allocatable - requested) / allocatable``, plus NodeResourcesBalancedAllocation,
    ``1 - |cpu fraction - memory fraction| / 2`` (balanced_allocation.go), each weight
    1, with the pod's own requests and the node's DaemonSets (``reserved_*``) counted
    as requested. PodTopologySpread scores only ScheduleAnyway constraints
    (podtopologyspread/scoring.go), and the spread here is DoNotSchedule, so it only
    filters. kube-scheduler breaks a tie at random; here the lowest node index wins,
    so the result is reproducible. An empty node scores highest, so no node stays
    empty while a pod could go there. ``zones`` gives each node's zone, for zone spreads."""
    states = [NodeState(f"node-{i}", shape.cpu_m, shape.memory_bytes, shape.max_pods,
                        labels={ZONE: zones[i]} if zones else {}) for i in range(nodes)]
    alloc_cpu = max(shape.cpu_m + reserved_cpu_m, 1)
    alloc_mem = max(shape.memory_bytes + reserved_memory_bytes, 1)
    assignment: list[tuple[str, int]] = []
    pending: list[str] = []
    for pod in pods:
        state = prefilter(pod, states)
        best: tuple[float, int] | None = None
        for i, node in enumerate(states):
            if filter_node(pod, node, states, state=state):
                continue
            cpu = min((reserved_cpu_m + node.used_cpu_m + pod.cpu_m) / alloc_cpu, 1.0)
            mem = min((reserved_memory_bytes + node.used_memory_bytes + pod.memory_bytes) / alloc_mem, 1.0)
            score = ((1 - cpu) + (1 - mem)) / 2 + (1 - abs(cpu - mem) / 2)
            if best is None or score > best[0]:
                best = (score, i)
        if best is None:
            pending.append(pod.name)
            continue
        states[best[1]].add(pod)
        assignment.append((pod.name, best[1]))
    placement = Placement(nodes, tuple(assignment), tuple(s.used_cpu_m for s in states),
                          tuple(s.used_memory_bytes for s in states), tuple(s.pod_count for s in states),
                          tuple(zones))
    return ScheduledPods(placement, tuple(pending))
