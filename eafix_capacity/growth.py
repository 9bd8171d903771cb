"""Growth runway: how long the planned node count lasts while demand grows.

Capacity has to be forecast further ahead than it takes to get it (the SRE rule: the
runway must exceed the lead time for new nodes, quota or a larger node type), so the plan
can say, for a monthly growth rate, in which month the first gate fails at the planned
node count, which gate that is, and how many nodes the workload needs at 6 and 12 months.

What grows. A service's demand growing means its load grows, and its load is carried by
its replicas' total requests. That total is grown compound monthly, (1 + pct/100)^month,
by scaling the *replicas* (and the HPA's min and max with them), each rounded up to whole
pods; per-pod requests and limits stay as they are. Replicas, not per-pod requests,
because that is how a service takes more load (an HPA adds pods at its utilisation
target; a pod's requests are its sizing, set once), and because it keeps every existing
gate meaningful: pods keep a shape that fits a node (scaled requests would outgrow any
node and turn every gate into "larger than a node"), the hostname spread, the rollout's
25% surge, the hpa-max scenario and the StatefulSets' per-replica claims
(``storage-claims``) all scale the way they would in a cluster. Rounding up means a
service with 2 replicas at 5% a month has 3 from month 1: capacity is planned for the pod
an HPA or an operator would add, never for a fraction of one. A service scaled to zero
stays at zero.

Growth is the plan's ``--growth`` figure for every service, or a service's own
``growth_pct`` from the catalogue where it has one. The runway is judged by re-planning
(``make_plan``) the grown catalogue: at the planned count to find the first failing
month, with no count (``nodes=None``) for the nodes needed. Demand only grows, so the
first failing month is found by a galloping then binary search over months (a handful of
plans, not one per month). First-fit packing is not strictly monotone in the pods it
packs, so this finds *a* boundary month; the series of nodes needed (one plan per month)
is what the chart shows. A month whose grown workload exceeds what Kubernetes supports
(``limits.py``) fails as the gate ``cluster-limits``.

Everything here is pure: records in, records out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from .catalog import HPA, Catalog, Service
from .errors import InputError
from .nodes import NodeType
from .plan import Gate, Plan, PlanOptions, make_plan
from .profiles import Profile

DAYS_PER_MONTH = 365.25 / 12
MONTHS_MAX = 36
SERIES_MONTHS = 12
LIMITS_GATE = "cluster-limits"   # a grown month that no supported cluster could run
GATE = "growth-runway"


@dataclass(frozen=True)
class MonthPoint:
    """One month of the series: the demand factor of the --growth figure, the baseline's
    pods and the nodes needed (the plan's recommended count; None with ``note`` when
    no node count of the type runs it)."""

    month: int
    factor: float
    baseline_pods: int
    nodes_needed: int | None
    note: str = ""


@dataclass(frozen=True)
class Runway:
    growth_pct: float
    overrides: Mapping[str, float]          # services with their own growth_pct
    node_type: str
    planned_nodes: int
    months_max: int                         # the horizon searched
    months: int | None                      # first month a gate fails; None: none within months_max
    gate: str | None                        # the first failing gate that month (gate order)
    failed_gates: tuple[str, ...]
    detail: str | None                      # that gate's detail
    nodes_at_6: int | None
    nodes_at_12: int | None
    series: tuple[MonthPoint, ...] = field(repr=False, default=())
    lead_time_days: int | None = None

    @property
    def days(self) -> float | None:
        return None if self.months is None else self.months * DAYS_PER_MONTH

    @property
    def passed(self) -> bool:
        """False only when a lead time is given and the runway is shorter than it."""
        d = self.days
        return self.lead_time_days is None or d is None or d >= self.lead_time_days

    def growth_text(self) -> str:
        text = f"{self.growth_pct:g}%/month"
        if self.overrides:
            text += " (" + ", ".join(f"{n} {p:g}%" for n, p in self.overrides.items()) + ")"
        return text

    def summary(self) -> str:
        """The runway in one line."""
        if self.months is None:
            return (f"runway: no gate fails within {self.months_max} months at {self.growth_text()} "
                    f"on the planned {self.planned_nodes} x {self.node_type}")
        return (f"runway: {_months(self.months)} (~{self.days:.0f} days) at {self.growth_text()}: "
                f"{self.gate} fails in month {self.months} on the planned {self.planned_nodes} x "
                f"{self.node_type}")

    def lines(self) -> list[str]:
        """What ``plan --growth`` prints."""
        return [self.summary(),
                f"nodes needed: month 6: {_count(self.nodes_at_6)}; month 12: {_count(self.nodes_at_12)}",
                f"{GATE}: {'PASS' if self.passed else 'FAIL'}: {self.gate_record().detail}"]

    def gate_record(self) -> Gate:
        if self.months is None:
            runway = f"no gate fails within {self.months_max} months at {self.growth_text()}"
        else:
            runway = (f"runway {_months(self.months)} (~{self.days:.0f} days) at {self.growth_text()} "
                      f"before {self.gate} fails")
        if self.lead_time_days is None:
            judged = "; no lead time given (--lead-time-days judges the runway against it)"
        elif self.passed:
            judged = f", not shorter than the {self.lead_time_days}-day lead time"
        else:
            judged = (f", shorter than the {self.lead_time_days}-day lead time for more capacity: "
                      f"order it now")
        return Gate(GATE, self.passed, runway + judged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "growth_pct": self.growth_pct,
            "service_growth_pct": dict(self.overrides),
            "lead_time_days": self.lead_time_days,
            "planned_nodes": self.planned_nodes,
            "months_max": self.months_max,
            "runway_months": self.months,
            "runway_days": None if self.days is None else round(self.days, 1),
            "first_failing_gate": self.gate,
            "failed_gates": list(self.failed_gates),
            "detail": self.detail,
            "nodes_needed_6_months": self.nodes_at_6,
            "nodes_needed_12_months": self.nodes_at_12,
            "passed": self.passed,
            "series": [{"month": p.month, "factor": round(p.factor, 6), "baseline_pods": p.baseline_pods,
                        "nodes_needed": p.nodes_needed, "note": p.note} for p in self.series],
        }


def _months(n: int) -> str:
    return "1 month" if n == 1 else f"{n} months"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _factor(pct: float, months: int) -> float:
    """(1 + pct/100)^months, capped where it would overflow (far past any pod limit)."""
    exponent = months * math.log1p(pct / 100)
    return math.exp(min(exponent, 700.0))


_HUGE = 10**15   # replicas past any pod limit (limits.MAX_PODS); the plan refuses the month


def _grow(n: int, factor: float) -> int:
    """``n`` replicas grown by ``factor``, rounded up to a whole pod (0 stays 0). Past
    ``_HUGE`` the figure is only "too many" (make_plan refuses it before listing pods)."""
    if n == 0:
        return 0
    grown = n * factor
    # round first: 3 * 1.1**1 is 3.3000000000000003, not a fraction above 3.3
    return math.ceil(round(grown, 9)) if grown < _HUGE else _HUGE


def service_growth(service: Service, growth_pct: float) -> float:
    return service.growth_pct if service.growth_pct is not None else growth_pct


def grown_catalog(catalog: Catalog, *, growth_pct: float, months: int) -> Catalog:
    """The catalogue ``months`` months on: replicas and HPA bounds grown (see the module
    docstring); a service's own ``growth_pct`` overrides ``growth_pct``."""
    out = []
    for s in catalog.services:
        f = _factor(service_growth(s, growth_pct), months)
        hpa = None if s.hpa is None else HPA(_grow(s.hpa.min_replicas, f), _grow(s.hpa.max_replicas, f),
                                             s.hpa.cpu_utilization)
        out.append(replace(s, replicas=_grow(s.replicas, f), hpa=hpa))
    return Catalog(tuple(out), catalog.source_file)


def check_growth(growth: float, months_max: int, lead_time_days: int | None) -> None:
    from .catalog import check_growth_pct
    problem = check_growth_pct(growth)
    if problem:
        raise InputError(problem, field="growth", value=growth, valid="percent demand growth per month, 0 to 1000")
    if isinstance(months_max, bool) or not isinstance(months_max, int) or not 1 <= months_max <= 600:
        raise InputError("invalid horizon", field="months_max", value=months_max, valid="1 to 600 months")
    if lead_time_days is not None and problem_lead_time(lead_time_days):
        raise InputError(str(problem_lead_time(lead_time_days)), field="lead_time_days", value=lead_time_days,
                         valid="whole days, 0 to 3650")


def problem_lead_time(v: Any) -> str | None:
    """Why ``v`` is not a lead time in days (a whole number, 0 to 3650), or None."""
    if isinstance(v, bool) or not isinstance(v, int):
        return "not a whole number of days"
    if v < 0:
        return "negative lead time"
    if v > 3650:
        return "lead time above ten years"
    return None


def runway(catalog: Catalog, profile: Profile, node_type: NodeType, options: PlanOptions, *,
           growth: float, months_max: int = MONTHS_MAX, lead_time_days: int | None = None,
           planned_nodes: int | None = None) -> Runway:
    """The growth runway of the plan ``make_plan(catalog, profile, node_type, options)``
    (at ``planned_nodes``, default: its own node count) at ``growth`` percent a month.
    With a lead time longer than ``months_max`` the horizon extends to cover it."""
    check_growth(growth, months_max, lead_time_days)
    growth = float(growth)
    if lead_time_days is not None:
        months_max = max(months_max, math.ceil(lead_time_days / DAYS_PER_MONTH))
    if planned_nodes is None:
        planned_nodes = make_plan(catalog, profile, node_type, options).nodes
    at_planned = replace(options, nodes=planned_nodes)
    sized = replace(options, nodes=None)

    judged: dict[int, tuple[tuple[str, ...], str] | None] = {}

    def failing(month: int) -> tuple[tuple[str, ...], str] | None:
        """The gates failing at the planned count in ``month`` and the first one's detail."""
        if month not in judged:
            grown = grown_catalog(catalog, growth_pct=growth, months=month)
            try:
                p = make_plan(grown, profile, node_type, at_planned)
            except InputError as e:
                judged[month] = ((LIMITS_GATE,), str(e))
            else:
                failed = p.failed_gates()
                judged[month] = (tuple(g.name for g in failed), failed[0].detail) if failed else None
        return judged[month]

    first = _first_failing(failing, months_max)
    result = failing(first) if first is not None else None

    def needed(month: int) -> MonthPoint:
        grown = grown_catalog(catalog, growth_pct=growth, months=month)
        pods = sum(s.replicas for s in grown.services)
        f = _factor(growth, month)
        try:
            p = make_plan(grown, profile, node_type, sized)
        except InputError as e:
            return MonthPoint(month, f, pods, None, str(e))
        note = "" if p.recommended_nodes is not None else "a pod is larger than a node's room for workloads"
        return MonthPoint(month, f, pods, p.recommended_nodes, note)

    last = max(SERIES_MONTHS, min(first if first is not None else 0, months_max))
    series = tuple(needed(m) for m in range(last + 1))
    return Runway(
        growth_pct=growth,
        overrides={s.name: s.growth_pct for s in catalog.services if s.growth_pct is not None},
        node_type=node_type.name, planned_nodes=planned_nodes, months_max=months_max,
        months=first, gate=result[0][0] if result else None, failed_gates=result[0] if result else (),
        detail=result[1] if result else None, nodes_at_6=series[6].nodes_needed,
        nodes_at_12=series[12].nodes_needed, series=series, lead_time_days=lead_time_days,
    )


def _first_failing(failing: Callable[[int], object], months_max: int) -> int | None:
    """The first month in 0..months_max where ``failing`` is truthy, assuming once failing
    it stays failing (demand only grows): gallop 1, 2, 4, ... then bisect."""
    if failing(0):
        return 0
    good, bad = 0, 1
    while bad < months_max and not failing(bad):
        good, bad = bad, bad * 2
    bad = min(bad, months_max)
    if not failing(bad):
        return None
    while bad - good > 1:
        mid = (good + bad) // 2
        if failing(mid):
            bad = mid
        else:
            good = mid
    return bad


def with_runway(plan: Plan, r: Runway) -> Plan:
    """The plan with its runway and the ``growth-runway`` gate after the existing ones."""
    return replace(plan, gates=plan.gates + (r.gate_record(),), growth=r)


def plan_runway(plan: Plan, *, growth: float, months_max: int = MONTHS_MAX,
                lead_time_days: int | None = None) -> Plan:
    """``plan`` with the runway of its own node count (``plan --growth``)."""
    r = runway(plan.catalog, plan.profile, plan.node_type, plan.options, growth=growth, months_max=months_max,
               lead_time_days=lead_time_days, planned_nodes=plan.nodes)
    return with_runway(plan, r)


def runway_table(r: Runway) -> list[dict[str, Any]]:
    """One row per month of the series: the demand factor, baseline pods, nodes needed
    against the planned count (what notebook 01 shows as a table)."""
    return [{"month": p.month, "demand_factor": round(p.factor, 4), "baseline_pods": p.baseline_pods,
             "nodes_needed": p.nodes_needed, "planned_nodes": r.planned_nodes,
             "above_planned": p.nodes_needed is None or p.nodes_needed > r.planned_nodes,
             "note": p.note} for p in r.series]
