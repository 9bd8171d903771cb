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
hostname anti-affinity within a group, a zone spread per group):

- pods are grouped in classes of identical pods (same group, requests and rules); the
  variables are how many pods of each class sit on each of U candidate nodes (U = FFD's
  count), and whether each node is in the cluster;
- per node: the sum of cpu, memory and pods within the node's room, and nothing on a node
  that is not in the cluster;
- a group with a DoNotSchedule spread of maxSkew s: on the nodes in the cluster (empty
  ones included, as podtopologyspread counts every eligible node), its largest count
  less its smallest is at most s; a group with anti-affinity: at most one per node;
- with zones (node n of the candidates in zone n mod Z, as ``zones.node_zones`` numbers
  them), a group with a zone spread of maxSkew s: over the zones holding a node in the
  cluster, its largest zone total less its smallest is at most s; and the count can be
  held to ``residue`` modulo ``modulus`` (a regional pool's equal nodes per zone).

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
from .scheduling import (DO_NOT_SCHEDULE, HOSTNAME, ZONE, NodeShape, PackResult, Placement, PodRequest,
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


Rule = tuple[int | None, bool, int | None]   # hostname max skew, anti-affinity, zone max skew


def _rules(pods: Sequence[PodRequest]) -> tuple[list[_Class], dict[str, Rule]]:
    """Classes of identical pods, and per group its rule (hostname max skew or None,
    anti-affinity, zone max skew or None)."""
    rules: dict[str, Rule] = {}
    classes: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for p in pods:
        extra = bool(p.node_selector or p.tolerations or p.node_affinity or p.spread_constraints
                     or p.pod_affinity or p.pod_anti_affinity)
        spread = [c for c in p.hard_spread if c is not p.zone_spread]
        zone = p.zone_spread
        if zone is not None and (zone.topology_key != ZONE or zone.selector is not None or zone.min_domains != 1
                                 or zone.when_unsatisfiable != DO_NOT_SCHEDULE):
            extra = True
        if extra or any(c.topology_key != HOSTNAME or c.selector is not None or c.min_domains != 1
                        for c in spread):
            raise InputError("the exact mode models resources, pod slots, one hostname spread, "
                             "hostname anti-affinity and one zone spread per group; this pod has other rules",
                             obj=p.name, field="rules", valid="pods as the sizing engine packs them")
        skew = spread[0].max_skew if spread and spread[0].when_unsatisfiable == DO_NOT_SCHEDULE else None
        rule: Rule = (skew, p.anti_affinity, zone.max_skew if zone is not None else None)
        if rules.setdefault(p.group, rule) != rule:
            raise InputError("pods of one group carry different rules", obj=p.group, field="rules",
                             value=p.name, valid="the same spread and anti-affinity for every pod of a group")
        classes[(p.group, p.cpu_m, p.memory_bytes)].append(p.name)
    return [_Class(g, c, m, tuple(names)) for (g, c, m), names in classes.items()], rules


def _zone_order(per_node: Sequence[Sequence[str]], zones: Sequence[str], rule: Rule) -> list[tuple[str, int]]:
    """An order in which kube-scheduler, placing one pod at a time, lets a group with a zone
    spread reach these per-node counts: each step takes a node of the zone holding fewest of
    the group (then the node holding fewest) that both spreads allow. Final counts within
    both skews are not always reachable (zones of unequal size: a, a, b with 2, 3, 2); then
    the rest is emitted as it comes and ``check_placement`` refuses the placement."""
    skew, _, zone_skew = rule
    nodes = len(per_node)
    placed = [0] * nodes
    in_zone = {z: 0 for z in zones[:nodes]}
    out: list[tuple[str, int]] = []
    for _ in range(sum(len(x) for x in per_node)):
        low, zone_low = min(placed), min(in_zone.values())
        fits = (n for n in sorted(range(nodes), key=lambda n: (in_zone[zones[n]], placed[n], n))
                if placed[n] < len(per_node[n]) and (skew is None or placed[n] + 1 - low <= skew)
                and (zone_skew is None or in_zone[zones[n]] + 1 - zone_low <= zone_skew))
        n = next(fits, None)
        if n is None:
            return out + [(x[i], m) for m, x in enumerate(per_node) for i in range(placed[m], len(x))]
        out.append((per_node[n][placed[n]], n))
        placed[n] += 1
        in_zone[zones[n]] += 1
    return out


def _placement(classes: Sequence[_Class], counts: Sequence[Sequence[int]], nodes: int,
               zones: Sequence[str] = (), rules: dict[str, Rule] | None = None) -> Placement:
    """The placement of ``counts[k][n]`` pods of class k on node n, in layer order per group
    (a group with a zone spread in :func:`_zone_order`)."""
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
        rule = (rules or {}).get(classes[ks[0]].group)
        if zones and rule is not None and rule[2] is not None:
            assignment.extend(_zone_order(per_node, zones, rule))
            continue
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
    return Placement(nodes, tuple(assignment), tuple(cpu), tuple(mem), tuple(pods), tuple(zones[:nodes]))


def _solve(pods: Sequence[PodRequest], shape: NodeShape, *, upper: int, fixed: bool, at_least: int,
           hint: Placement | None, seconds: float, zones: Sequence[str] = (), modulus: int = 1,
           residue: int = 0) -> tuple[str, int | None, float, Placement | None]:
    """Solve on ``upper`` candidate nodes (all of them in the cluster when ``fixed``), node n
    in zone ``zones[n]`` (none when empty), the count ``residue`` modulo ``modulus``.
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
    zone_nodes: dict[str, list[int]] = defaultdict(list)
    for n, z in enumerate(zones[:upper]):
        zone_nodes[z].append(n)
    for group, ks in members.items():
        skew, anti, zone_skew = rules[group]
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
        if zone_skew is not None and size > 0:
            if not zone_nodes:
                return "INFEASIBLE", None, float(upper), None   # kube-scheduler: missing required label
            zlo = model.new_int_var(0, size, f"zlo_{group}")
            zhi = model.new_int_var(0, size, f"zhi_{group}")
            model.add(zhi - zlo <= zone_skew)
            for z, ns in zone_nodes.items():
                total = sum(per_node[n] for n in ns)
                model.add(total <= zhi)
                # a zone is a domain when a node of it is in the cluster: its first, the nodes coming in order
                model.add(total >= zlo).only_enforce_if(present[ns[0]])
    used = sum(present)
    if not fixed:
        model.add(used >= at_least)
        if modulus > 1:
            per_zone = model.new_int_var(0, upper, "per_zone")
            model.add(used == modulus * per_zone + residue)
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
    return name, count, bound, _placement(classes, counts, count, zones, rules)


def _aligned(count: int, modulus: int, residue: int) -> int:
    """The smallest count at least ``count`` that is ``residue`` modulo ``modulus``."""
    return count + (residue - count) % modulus


def min_nodes_exact(pods: Sequence[PodRequest], shape: NodeShape, *, seconds: float = DEFAULT_SECONDS,
                    ffd: PackResult | None = None, zones: Sequence[str] = (), modulus: int = 1,
                    residue: int = 0) -> ExactResult:
    """The minimum node count for ``pods`` on nodes of ``shape``, proven within
    ``seconds``, else the best found and the best bound; never above FFD's count
    (``ffd`` is ``min_nodes(pods, shape)``, computed when not given).

    With ``zones``, node n is in zone ``zones[n % len(zones)]`` and the count is held to
    ``residue`` modulo ``modulus``; counts are then of the nodes the pods are placed on,
    and ``ffd``'s placement (its ``nodes``) gives FFD's count. ``modulus`` 1 with no zones
    is the count-only problem."""
    seconds = check_seconds(seconds)
    classes, _ = _rules(pods)   # refuses rules the model lacks, even when no solver runs
    base = ffd if ffd is not None else min_nodes(pods, shape)
    lb = lower_bound(pods, shape) if zones else max(lower_bound(pods, shape), base.lower_bound)
    lb = _aligned(lb, modulus, residue)
    if base.nodes_needed is None or base.placement is None:
        return ExactResult(None, False, lb, None, base.nodes_needed)
    top = base.placement.nodes if zones else base.nodes_needed
    if top <= lb:
        return ExactResult(top, True, top, base.placement, top)
    if len(classes) * top > MAX_VARIABLES:
        return ExactResult(top, False, lb, base.placement, top)
    cycle = [zones[n % len(zones)] for n in range(top)] if zones else []
    status, count, bound, placement = _solve(pods, shape, upper=top, fixed=False, at_least=lb,
                                             hint=base.placement, seconds=seconds, zones=cycle,
                                             modulus=modulus, residue=residue)
    proven = max(lb, _aligned(math.ceil(bound - 1e-6), modulus, residue)) if math.isfinite(bound) else lb
    if count is None or placement is None or count >= top or check_placement(pods, shape, placement):
        return ExactResult(top, proven >= top or status == "OPTIMAL" and count == top, min(proven, top),
                           base.placement, top, solved=True)
    return ExactResult(count, status == "OPTIMAL" or proven >= count, min(proven, count), placement, top,
                       solved=True)


def pack_exact(pods: Sequence[PodRequest], shape: NodeShape, *, nodes: int, zones: Sequence[str] = (),
               seconds: float = DEFAULT_SECONDS) -> Placement | None:
    """A placement on exactly ``nodes`` nodes (node n in zone ``zones[n]`` when given) found
    by the solver within ``seconds``, or None (none exists, or none was found in time). For
    judging a given count where FFD, which is not monotone in the count, finds none."""
    seconds = check_seconds(seconds)
    if nodes <= 0:
        return None if pods else Placement(0, (), (), (), ())
    if any(p.cpu_m > shape.cpu_m or p.memory_bytes > shape.memory_bytes for p in pods) or shape.max_pods < 1:
        return None
    classes, _ = _rules(pods)
    if len(classes) * nodes > MAX_VARIABLES:
        return None
    _, _, _, placement = _solve(pods, shape, upper=nodes, fixed=True, at_least=nodes, hint=None,
                                seconds=seconds, zones=zones)
    if placement is None or check_placement(pods, shape, placement):
        return None
    return placement
