"""Placement rules and bin packing: the one scheduler of the kit.

Two users share these rules. The sizing engine packs a scenario's pods onto N identical
nodes and searches the smallest N (``min_nodes``); the sim cluster's scheduler places one
pending pod at a time on real Node objects (``schedule``). Both apply the same filters,
in the order and with the reason strings of kube-scheduler's plugins:

- NodeUnschedulable: ``node(s) were unschedulable`` (cordoned)
- TaintToleration:   ``node(s) had untolerated taint {key: value}``
- NodeAffinity:      ``node(s) didn't match Pod's node affinity/selector``
- NodeResourcesFit:  ``Insufficient cpu``, ``Insufficient memory``, ``Too many pods``
- PodTopologySpread: ``node(s) didn't match pod topology spread constraints``
- InterPodAffinity:  ``node(s) didn't match pod anti-affinity rules``

Topology spread follows the DoNotSchedule semantics: placing a pod on node x is allowed
when ``count(domain of x) + 1 - min(count over eligible domains) <= maxSkew``, where the
eligible domains are those of nodes matching the pod's node selector (and, with
``nodeTaintsPolicy: Honor``, whose taints it tolerates).

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
from math import ceil
from typing import Iterable, Mapping, Sequence

import numpy as np

HOSTNAME = "kubernetes.io/hostname"

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
R_CPU = "Insufficient cpu"
R_MEMORY = "Insufficient memory"
R_PODS = "Too many pods"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def describe(self) -> str:
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


@dataclass(frozen=True)
class SpreadConstraint:
    max_skew: int = 1
    topology_key: str = HOSTNAME
    honor_taints: bool = False


@dataclass(frozen=True)
class PodRequest:
    """What the scheduler needs of a pod. ``group`` is the set of pods its spread
    constraint and anti-affinity count (the service: pods with the same app label)."""

    name: str
    group: str
    cpu_m: int
    memory_bytes: int
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    anti_affinity: bool = False
    spread: SpreadConstraint | None = SpreadConstraint()


@dataclass
class NodeState:
    """A node as the scheduler sees it: free capacity for workload pods, and which
    groups already run there. ``cpu_m``/``memory_bytes``/``max_pods`` are what pods may
    request in total (allocatable less DaemonSets)."""

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

    def __post_init__(self) -> None:
        self.labels.setdefault(HOSTNAME, self.name)

    def add(self, pod: PodRequest) -> None:
        self.used_cpu_m += pod.cpu_m
        self.used_memory_bytes += pod.memory_bytes
        self.pod_count += 1
        self.groups[pod.group] += 1

    def remove(self, pod: PodRequest) -> None:
        self.used_cpu_m -= pod.cpu_m
        self.used_memory_bytes -= pod.memory_bytes
        self.pod_count -= 1
        self.groups[pod.group] -= 1


def _untolerated(pod: PodRequest, node: NodeState) -> Taint | None:
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(
            t.tolerates(taint) for t in pod.tolerations
        ):
            return taint
    return None


def _matches_selector(pod: PodRequest, node: NodeState) -> bool:
    return all(node.labels.get(k) == v for k, v in pod.node_selector)


def _spread_domain_counts(pod: PodRequest, nodes: Iterable[NodeState]) -> dict[str, int]:
    assert pod.spread is not None
    counts: dict[str, int] = {}
    for n in nodes:
        if not _matches_selector(pod, n):
            continue
        if pod.spread.honor_taints and _untolerated(pod, n) is not None:
            continue
        domain = n.labels.get(pod.spread.topology_key)
        if domain is None:
            continue
        counts[domain] = counts.get(domain, 0) + n.groups.get(pod.group, 0)
    return counts


def filter_node(pod: PodRequest, node: NodeState, nodes: Sequence[NodeState],
                *, spread_counts: Mapping[str, int] | None = None) -> list[str]:
    """Reasons ``node`` cannot take ``pod`` (empty when it can), kube-scheduler style.

    Like kube-scheduler, the first failing plugin decides; resource fit lists every
    insufficient resource. ``spread_counts`` may carry precomputed domain counts.
    """
    if node.unschedulable and not any(
        t.tolerates(Taint("node.kubernetes.io/unschedulable")) for t in pod.tolerations
    ):
        return [R_UNSCHEDULABLE]
    taint = _untolerated(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {taint.describe()}"]
    if not _matches_selector(pod, node):
        return [R_SELECTOR]
    reasons = []
    if node.pod_count + 1 > node.max_pods:
        reasons.append(R_PODS)
    if node.used_cpu_m + pod.cpu_m > node.cpu_m:
        reasons.append(R_CPU)
    if node.used_memory_bytes + pod.memory_bytes > node.memory_bytes:
        reasons.append(R_MEMORY)
    if reasons:
        return reasons
    if pod.spread is not None:
        counts = spread_counts if spread_counts is not None else _spread_domain_counts(pod, nodes)
        domain = node.labels.get(pod.spread.topology_key)
        if domain is None or domain not in counts:
            return [R_SPREAD]
        if counts[domain] + 1 - min(counts.values()) > pod.spread.max_skew:
            return [R_SPREAD]
    if pod.anti_affinity and node.groups.get(pod.group, 0) > 0:
        return [R_ANTI_AFFINITY]
    return []


@dataclass(frozen=True)
class Decision:
    """Outcome of scheduling one pod: the chosen node, or why none fits."""

    node: str | None
    reasons: Counter
    total_nodes: int

    def message(self) -> str:
        """The FailedScheduling message, e.g. ``0/3 nodes are available: 3 Insufficient cpu.``"""
        # kube-scheduler's FitError sorts the "<count> <reason>" strings themselves
        parts = ", ".join(sorted(f"{n} {r}" for r, n in self.reasons.items() if n))
        head = f"0/{self.total_nodes} nodes are available"
        return f"{head}: {parts}." if parts else f"{head}."


def schedule(pod: PodRequest, nodes: Sequence[NodeState]) -> Decision:
    """Choose a node for one pod: filter, then score by least allocated (the default
    scoring's dominant term), ties broken by node name. Does not modify the nodes."""
    counts = _spread_domain_counts(pod, nodes) if pod.spread is not None else None
    reasons: Counter = Counter()
    best: tuple[float, str] | None = None
    for node in nodes:
        why = filter_node(pod, node, nodes, spread_counts=counts)
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
    """Pods placed on ``nodes`` identical nodes named node-0..node-(n-1)."""

    nodes: int
    assignment: tuple[tuple[str, int], ...]   # (pod name, node index)
    cpu_m: tuple[int, ...]
    memory_bytes: tuple[int, ...]
    pods: tuple[int, ...]

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

    def __init__(self, shape: NodeShape, n: int) -> None:
        self.shape = shape
        self.n = n
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
    if balanced:
        i = int(np.where(ok, cpu / bins.shape.cpu_m + mem / bins.shape.memory_bytes, -1.0).argmax())
    else:
        i = int(ok.argmax())
    if not ok[i]:
        return False
    if p.spread is not None and p.spread.max_skew == 1 and counts[i] == level:
        bins.rise(p.group, 1)
    cpu[i] -= p.cpu_m
    mem[i] -= p.memory_bytes
    slots[i] -= 1
    counts[i] += 1
    out.append((p.name, i))
    return True


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
        k = (p.group, p.cpu_m, p.memory_bytes, p.spread, p.anti_affinity)
        if k != key:
            runs.append([])
            key = k
        runs[-1].append(p)
    return runs


def pack(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int,
         ordered: bool = False, balanced: bool = False) -> Placement | None:
    """First-Fit Decreasing onto ``nodes`` identical empty nodes with the spread and
    anti-affinity rules of ``filter_node`` (hostname topology). None when a pod finds
    no node. Pods with node selectors or tolerations are not modelled here: the sizing
    engine's pods have neither.

    ``balanced`` places each spread layer on the emptiest allowed nodes instead of the
    first ones (the default scheduler's least-allocated scoring). First-fit piles the
    large pods onto the first nodes; a spread group with more replicas than nodes
    then finds a full node at its minimum and can go nowhere, which balancing avoids."""
    if nodes <= 0:
        return None if pods else Placement(0, (), (), (), ())
    order = pods if ordered else ffd_order(pods, shape)
    bins = _Bins(shape, nodes)
    assignment: list[tuple[str, int]] = []
    for run in _runs(order):
        p = run[0]
        if len(run) == 1 and (p.anti_affinity or (p.spread is not None and p.spread.max_skew == 1)):
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
    )


def place(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int,
          ordered: bool = False) -> Placement | None:
    """Pack with first-fit, and when that fails with balanced layers: the placement
    the sizing engine reports for a node count."""
    order = pods if ordered else ffd_order(pods, shape)
    return (pack(order, shape, nodes=nodes, ordered=True)
            or pack(order, shape, nodes=nodes, ordered=True, balanced=True))


def min_nodes(pods: Sequence[PodRequest], shape: NodeShape, *,
              at_least: int = 0, at_most: int | None = None) -> PackResult:
    """The smallest node count, searched from the lower bound, that ``place`` packs.

    Counts from the lower bound up are tried one by one for four steps, then by
    doubling and bisection; with N >= len(pods) every pod has its own node, so the
    search always ends when each pod fits an empty node. Because packing is not monotone
    in the count, past the first four steps bisection may skip a smaller count that
    would pack: the result is then the smallest count bisection finds. ``at_least``
    raises the floor of the search (for example to keep a node spare); ``at_most`` ends
    it there (a cluster's node limit): nothing packing up to it gives ``beyond``."""
    lb = lower_bound(pods, shape)
    unfit = tuple(p.name for p in pods if p.cpu_m > shape.cpu_m
                  or p.memory_bytes > shape.memory_bytes or shape.max_pods < 1)
    if unfit:
        return PackResult(None, lb, None, unfit)
    order = ffd_order(pods, shape)
    start = max(lb, at_least)
    if at_most is not None and start > at_most:
        return PackResult(None, lb, None, beyond=at_most)
    if not pods:
        return PackResult(start, lb, pack(order, shape, nodes=start, ordered=True))
    failed = start - 1
    n = start
    step = 1
    while True:
        placement = place(order, shape, nodes=n, ordered=True)
        if placement is not None:
            break
        if at_most is not None and n >= at_most:
            return PackResult(None, lb, None, beyond=at_most)
        failed = n
        if n - start >= 3:
            step *= 2
        n = min(n + step, max(len(pods), start))
        if at_most is not None:
            n = min(n, at_most)
    best, best_placement = n, placement
    lo, hi = failed + 1, n - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        placement = place(order, shape, nodes=mid, ordered=True)
        if placement is not None:
            best, best_placement = mid, placement
            hi = mid - 1
        else:
            lo = mid + 1
    return PackResult(best, lb, best_placement)


def check_placement(pods: Sequence[PodRequest], shape: NodeShape,
                    placement: Placement) -> list[str]:
    """Every violation of the filters in ``placement`` (empty when valid), checked with
    the scalar rules the sim scheduler uses: each pod, placed in the given order, must
    pass ``filter_node`` on its node given the pods placed before it."""
    by_name = {p.name: p for p in pods}
    nodes = [NodeState(f"node-{i}", shape.cpu_m, shape.memory_bytes, shape.max_pods)
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


def scheduler_spread(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int,
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
    empty while a pod could go there."""
    states = [NodeState(f"node-{i}", shape.cpu_m, shape.memory_bytes, shape.max_pods) for i in range(nodes)]
    alloc_cpu = max(shape.cpu_m + reserved_cpu_m, 1)
    alloc_mem = max(shape.memory_bytes + reserved_memory_bytes, 1)
    assignment: list[tuple[str, int]] = []
    pending: list[str] = []
    for pod in pods:
        counts = _spread_domain_counts(pod, states) if pod.spread is not None else None
        best: tuple[float, int] | None = None
        for i, node in enumerate(states):
            if filter_node(pod, node, states, spread_counts=counts):
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
                          tuple(s.used_memory_bytes for s in states), tuple(s.pod_count for s in states))
    return ScheduledPods(placement, tuple(pending))
