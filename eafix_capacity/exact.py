"""Proven-minimum node counts: the packing problem handed to a constraint solver.

First-Fit Decreasing (``scheduling.min_nodes``) is a heuristic: on a few EAFIX cases
it uses one node more than needed (e2-standard-2 with the mesh, node-drain: 8 where 7
suffice). ``min_nodes_exact`` states the same problem to OR-Tools CP-SAT and either
proves the minimum or returns the best count found within a time budget together with
the best lower bound proven. It never answers above FFD: FFD's placement is the
solver's hint and its count the model's upper bound, and when the solver finds nothing
better FFD's placement is returned.

The model mirrors the rules ``scheduling.check_placement`` checks for the pods the
sizing engine packs (resources, pod slots, a hostname topology spread per group,
hostname anti-affinity within a group):

- pods are grouped in classes of identical pods (same group, requests and rules); the
  variables are how many pods of each class sit on each of U candidate nodes (U = FFD's
  count), and whether each node is in the cluster;
- per node: the sum of cpu, memory and pods within the node's room, and nothing on a node
  that is not in the cluster;
- a group with a DoNotSchedule spread of maxSkew s: on the nodes in the cluster (empty
  ones included, as podtopologyspread counts every eligible node), its largest count
  less its smallest is at most s; a group with anti-affinity: at most one per node.

Pods in ``check_placement``'s order must each pass the filter given the pods before
them; a placement whose final counts meet the spread is emitted group by group in
layers (every node's first pod of the group, then every second one, ...), an order in
which each step meets the skew. Rules the packer does not model (node selectors,
tolerations, node affinity, pod affinity, extra spread constraints, spreads over other
keys or selectors, minDomains) are refused rather than ignored.

Pure: no I/O. ``ortools`` is imported only when the solver runs, so plans that do not
ask for exact counts never load it; a deterministic search (one worker, fixed seed)
gives the same answer on every run whenever it ends before the time budget.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InputError
from .scheduling import (DO_NOT_SCHEDULE, HOSTNAME, NodeShape, PackResult, Placement, PodRequest,
                         check_placement, lower_bound, min_nodes)

DEFAULT_SECONDS = 1.0
SEED = 12345
# Past this many (class x node) count variables the model alone takes longer to build
# than a budget of a second or so; FFD's count then stands, reported as "best found".
MAX_VARIABLES = 20_000


@dataclass(frozen=True)
class ExactResult:
    """The smallest node count found, whether it is proven, and the proven bound.

    ``nodes`` is None only when FFD itself finds no count (a pod larger than a node);
    ``placement`` then is None too. ``ffd_nodes`` is First-Fit Decreasing's count."""

    nodes: int | None
    optimal: bool
    lower_bound: int
    placement: Placement | None
    ffd_nodes: int | None
    solved: bool = False   # False when FFD's count met the bound, or the model was too large, and no solver ran

    def verdict(self, *, offset: int = 0) -> str:
        """``optimal`` or ``best found (bound N)``; ``offset`` shifts the bound (node-drain's +1)."""
        if self.nodes is None:
            return "no node count fits"
        return "optimal" if self.optimal else f"best found (bound {self.lower_bound + offset})"


@dataclass(frozen=True)
class _Class:
    group: str
    cpu_m: int
    memory_bytes: int
    names: tuple[str, ...]


def check_seconds(seconds: object, *, field: str = "exact_seconds", file: str | None = None) -> float:
    """The time budget as a float, or an InputError naming ``field``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds <= 0:
        raise InputError("invalid time budget", file=file, field=field, value=seconds,
                         valid="a finite number of seconds above 0, e.g. 1")
    return float(seconds)


def _rules(pods: Sequence[PodRequest]) -> tuple[list[_Class], dict[str, tuple[int | None, bool]]]:
    """Classes of identical pods, and per group (max skew or None, anti-affinity)."""
    rules: dict[str, tuple[int | None, bool]] = {}
    classes: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for p in pods:
        extra = (p.node_selector or p.tolerations or p.node_affinity or p.spread_constraints
                 or p.pod_affinity or p.pod_anti_affinity)
        spread = [c for c in p.hard_spread]
        if extra or any(c.topology_key != HOSTNAME or c.selector is not None or c.min_domains != 1
                        for c in spread):
            raise InputError("the exact mode models resources, pod slots, one hostname spread and "
                             "hostname anti-affinity per group; this pod has other rules",
                             obj=p.name, field="rules", valid="pods as the sizing engine packs them")
        skew = spread[0].max_skew if spread and spread[0].when_unsatisfiable == DO_NOT_SCHEDULE else None
        rule = (skew, p.anti_affinity)
        if rules.setdefault(p.group, rule) != rule:
            raise InputError("pods of one group carry different rules", obj=p.group, field="rules",
                             value=p.name, valid="the same spread and anti-affinity for every pod of a group")
        classes[(p.group, p.cpu_m, p.memory_bytes)].append(p.name)
    return [_Class(g, c, m, tuple(names)) for (g, c, m), names in classes.items()], rules


def _placement(classes: Sequence[_Class], counts: Sequence[Sequence[int]], nodes: int) -> Placement:
    """The placement of ``counts[k][n]`` pods of class k on node n, in layer order per group."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for k, c in enumerate(classes):
        by_group[c.group].append(k)
    assignment: list[tuple[str, int]] = []
    for ks in by_group.values():
        # per node, the pods of this group it holds, then emitted one layer at a time
        per_node: list[list[str]] = [[] for _ in range(nodes)]
        for k in ks:
            names = iter(classes[k].names)
            for n in range(nodes):
                per_node[n].extend(next(names) for _ in range(counts[k][n]))
        for layer in range(max((len(x) for x in per_node), default=0)):
            assignment.extend((x[layer], n) for n, x in enumerate(per_node) if layer < len(x))
    cpu = [0] * nodes
    mem = [0] * nodes
    pods = [0] * nodes
    for k, c in enumerate(classes):
        for n in range(nodes):
            cpu[n] += c.cpu_m * counts[k][n]
            mem[n] += c.memory_bytes * counts[k][n]
            pods[n] += counts[k][n]
    return Placement(nodes, tuple(assignment), tuple(cpu), tuple(mem), tuple(pods))


def _solve(pods: Sequence[PodRequest], shape: NodeShape, *, upper: int, fixed: bool, at_least: int,
           hint: Placement | None, seconds: float) -> tuple[str, int | None, float, Placement | None]:
    """Solve on ``upper`` candidate nodes (all of them in the cluster when ``fixed``).
    Returns (status name, nodes used, objective bound, placement)."""
    from ortools.sat.python import cp_model   # imported here: plans without --exact never load it

    classes, rules = _rules(pods)
    model = cp_model.CpModel()
    present = [model.new_constant(1) if fixed else model.new_bool_var(f"in{n}") for n in range(upper)]
    y = [[model.new_int_var(0, len(c.names), f"y{k}_{n}") for n in range(upper)]
         for k, c in enumerate(classes)]
    for k, c in enumerate(classes):
        model.add(sum(y[k]) == len(c.names))
    for n in range(upper):
        model.add(sum(c.cpu_m * y[k][n] for k, c in enumerate(classes)) <= shape.cpu_m * present[n])
        model.add(sum(c.memory_bytes * y[k][n] for k, c in enumerate(classes))
                  <= shape.memory_bytes * present[n])
        model.add(sum(y[k][n] for k in range(len(classes))) <= shape.max_pods * present[n])
    if not fixed:
        for n in range(upper - 1):   # the nodes in the cluster come first (identical nodes)
            model.add_implication(present[n + 1], present[n])
    members: dict[str, list[int]] = defaultdict(list)
    for k, c in enumerate(classes):
        members[c.group].append(k)
    for group, ks in members.items():
        skew, anti = rules[group]
        size = sum(len(classes[k].names) for k in ks)
        per_node = [sum(y[k][n] for k in ks) for n in range(upper)]
        if anti:
            for expr in per_node:
                model.add(expr <= 1)
        if skew is not None and size > 0:
            lo = model.new_int_var(0, size, f"lo_{group}")
            hi = model.new_int_var(0, size, f"hi_{group}")
            model.add(hi - lo <= skew)
            for n, expr in enumerate(per_node):
                if fixed:
                    model.add(expr >= lo)
                    model.add(expr <= hi)
                else:
                    model.add(expr >= lo).only_enforce_if(present[n])
                    model.add(expr <= hi).only_enforce_if(present[n])
    used = sum(present)
    if not fixed:
        model.add(used >= at_least)
        model.minimize(used)
    if hint is not None and hint.nodes <= upper:
        index = {name: k for k, c in enumerate(classes) for name in c.names}
        held = [[0] * upper for _ in classes]
        for name, n in hint.assignment:
            held[index[name]][n] += 1
        for k in range(len(classes)):
            for n in range(upper):
                model.add_hint(y[k][n], held[k][n])
        if not fixed:
            for n in range(upper):
                model.add_hint(present[n], int(n < hint.nodes))

    solver = cp_model.CpSolver()
    params: Any = solver.parameters
    params.num_workers = 1
    params.random_seed = SEED
    params.max_time_in_seconds = seconds
    status = solver.solve(model)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None, solver.best_objective_bound if not fixed else 0.0, None
    count = upper if fixed else int(round(solver.objective_value))
    counts = [[int(solver.value(y[k][n])) for n in range(count)] for k in range(len(classes))]
    bound = float(count) if fixed else solver.best_objective_bound
    return name, count, bound, _placement(classes, counts, count)


def min_nodes_exact(pods: Sequence[PodRequest], shape: NodeShape, *, seconds: float = DEFAULT_SECONDS,
                    ffd: PackResult | None = None) -> ExactResult:
    """The minimum node count for ``pods`` on nodes of ``shape``, proven within
    ``seconds``, else the best found and the best bound; never above FFD's count
    (``ffd`` is ``min_nodes(pods, shape)``, computed when not given)."""
    seconds = check_seconds(seconds)
    classes, _ = _rules(pods)   # refuses rules the model lacks, even when no solver runs
    base = ffd if ffd is not None else min_nodes(pods, shape)
    lb = max(lower_bound(pods, shape), base.lower_bound)
    if base.nodes_needed is None or base.placement is None:
        return ExactResult(None, False, lb, None, base.nodes_needed)
    top = base.nodes_needed
    if top <= lb:
        return ExactResult(top, True, top, base.placement, top)
    if len(classes) * top > MAX_VARIABLES:
        return ExactResult(top, False, lb, base.placement, top)
    status, count, bound, placement = _solve(pods, shape, upper=top, fixed=False, at_least=lb,
                                             hint=base.placement, seconds=seconds)
    proven = max(lb, math.ceil(bound - 1e-6)) if math.isfinite(bound) else lb
    if count is None or placement is None or count >= top or check_placement(pods, shape, placement):
        return ExactResult(top, proven >= top or status == "OPTIMAL" and count == top, min(proven, top),
                           base.placement, top, solved=True)
    return ExactResult(count, status == "OPTIMAL" or proven >= count, min(proven, count), placement, top,
                       solved=True)


def pack_exact(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int,
               seconds: float = DEFAULT_SECONDS) -> Placement | None:
    """A placement on exactly ``nodes`` nodes found by the solver within ``seconds``, or
    None (none exists, or none was found in time). For judging a given count where
    FFD, which is not monotone in the count, finds none."""
    seconds = check_seconds(seconds)
    if nodes <= 0:
        return None if pods else Placement(0, (), (), (), ())
    if any(p.cpu_m > shape.cpu_m or p.memory_bytes > shape.memory_bytes for p in pods) or shape.max_pods < 1:
        return None
    classes, _ = _rules(pods)
    if len(classes) * nodes > MAX_VARIABLES:
        return None
    _, _, _, placement = _solve(pods, shape, upper=nodes, fixed=True, at_least=nodes, hint=None,
                                seconds=seconds)
    if placement is None or check_placement(pods, shape, placement):
        return None
    return placement
