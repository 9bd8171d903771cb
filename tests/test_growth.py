"""The growth runway (eafix_capacity/growth.py): months until the first gate fails at the
planned node count as demand grows, the nodes needed at 6 and 12 months, the
``growth-runway`` gate against a lead time, and its inputs."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eafix_capacity.catalog import Catalog, catalog_from_dict
from eafix_capacity.cli import main
from eafix_capacity.errors import InputError
from eafix_capacity.growth import DAYS_PER_MONTH, Runway, grown_catalog, runway, runway_table
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.nodes import NodeType, allocatable, load_node_types
from eafix_capacity.plan import PlanOptions
from eafix_capacity.profiles import Profile, load_profiles

MI = 2**20
NODE = "n2-standard-8"


@pytest.fixture(scope="module")
def node_type() -> NodeType:
    return load_node_types()[NODE]


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profiles()["minimum"]


@pytest.fixture(scope="module")
def pod_cpu_m(node_type: NodeType) -> int:
    """A pod's CPU request such that exactly five fit one node's room for workloads (and
    four within the baseline's 20% headroom)."""
    room = allocatable(node_type, provider="gke").workload_cpu_m
    cpu = int(room / 5.5)
    assert room // cpu == 5 and int(room * 0.8) // cpu == 4
    return cpu


def service(name: str, *, cpu_m: int, replicas: int = 1, growth_pct: object = None, **extra: object) -> dict:
    svc = {
        "name": name, "port": 8080, "tier": "trading", "kind": "Deployment", "replicas": replicas,
        "containers": [{"name": name, "requests": {"cpu": f"{cpu_m}m", "memory": "64Mi"},
                        "limits": {"cpu": f"{cpu_m}m", "memory": "64Mi"}}],
        "source": {"port": "seed", "replicas": "seed", "resources": "seed"}, **extra,
    }
    if growth_pct is not None:
        svc["growth_pct"] = growth_pct
    return svc


def tiny(*services: dict) -> Catalog:
    return catalog_from_dict({"services": list(services)}, file="tiny.yaml")


def two_nodes() -> PlanOptions:
    return PlanOptions(provider="gke", nodes=2)


# ------------------------------------------------------------------ the runway by hand

@pytest.fixture(scope="module")
def hand(profile, node_type, pod_cpu_m) -> Runway:
    return runway(tiny(service("feed", cpu_m=pod_cpu_m)), profile, node_type, two_nodes(), growth=50)


def test_hand_computed_runway(hand, pod_cpu_m) -> None:
    """One Deployment of 1 replica at 50% a month on 2 planned nodes. Replicas month by
    month: ceil(1.5^m) = 1, 2, 3, 4, 6. node-drain runs them all on 1 node, which holds 5,
    so month 4 (6 replicas) is the first failure; the baseline (3 a node, 4 allowed) and
    the rollout (6 + 2 surge over 2 nodes, 4 a node, 5 allowed) still fit there.
    Month 6: 12 replicas; node-drain packs them on 3 (+1 drained), the baseline on 3 at 4
    a node, the rollout's 15 pods on 3: 4 nodes. Month 12: ceil(1.5^12) = 130 replicas;
    the baseline needs ceil(130 / 4) = 33 nodes, more than node-drain's 26 + 1 or the
    rollout's ceil(163 / 5) = 33: 33 nodes."""
    cat, r = tiny(service("feed", cpu_m=pod_cpu_m)), hand
    assert [s.replicas for m in range(5) for s in grown_catalog(cat, growth_pct=50, months=m).services] \
        == [1, 2, 3, 4, 6]
    assert (r.months, r.gate, r.failed_gates) == (4, "node-drain", ("node-drain",))
    assert r.planned_nodes == 2 and "does not fit on 1 nodes" in (r.detail or "")
    assert (r.nodes_at_6, r.nodes_at_12) == (4, 33)
    assert [p.nodes_needed for p in r.series[:5]] == [2, 2, 2, 2, 3]
    assert r.summary().startswith("runway: 4 months (~122 days) at 50%/month: node-drain fails in month 4")


def test_hpa_bounds_grow_with_the_replicas(profile, node_type, pod_cpu_m) -> None:
    cat = tiny(service("feed", cpu_m=pod_cpu_m, replicas=2,
                       hpa={"min_replicas": 2, "max_replicas": 3, "cpu_utilization": 70},
                       source={"port": "seed", "replicas": "seed", "resources": "seed", "hpa": "seed"}))
    grown = grown_catalog(cat, growth_pct=10, months=1).services[0]
    # 2 x 1.1 = 2.2 and 3 x 1.1 = 3.3: whole pods, rounded up
    assert (grown.replicas, grown.hpa.min_replicas, grown.hpa.max_replicas) == (3, 3, 4)
    assert grown.hpa.cpu_utilization == 70 and grown.pod_resources == cat.services[0].pod_resources


def test_per_service_growth_overrides_the_global_figure(profile, node_type, pod_cpu_m) -> None:
    own = tiny(service("feed", cpu_m=pod_cpu_m, growth_pct=50))
    r = runway(own, profile, node_type, two_nodes(), growth=0)
    assert (r.months, r.gate) == (4, "node-drain")
    assert r.overrides == {"feed": 50.0} and "feed 50%" in r.growth_text()
    flat = tiny(service("feed", cpu_m=pod_cpu_m, growth_pct=0))
    assert runway(flat, profile, node_type, two_nodes(), growth=50).months is None


def test_zero_growth_never_fails_and_says_so(profile, node_type, pod_cpu_m) -> None:
    r = runway(tiny(service("feed", cpu_m=pod_cpu_m)), profile, node_type, two_nodes(), growth=0)
    assert (r.months, r.gate, r.detail) == (None, None, None)
    assert r.summary() == f"runway: no gate fails within 36 months at 0%/month on the planned 2 x {NODE}"
    assert r.passed and {p.nodes_needed for p in r.series} == {2}


def test_a_plan_failing_now_has_no_runway(profile, node_type, pod_cpu_m) -> None:
    r = runway(tiny(service("feed", cpu_m=pod_cpu_m, replicas=6)), profile, node_type, two_nodes(),
               growth=5, lead_time_days=1)
    assert (r.months, r.gate) == (0, "node-drain") and not r.passed


def test_growth_past_the_pod_limit_fails_as_cluster_limits(profile, node_type, monkeypatch) -> None:
    """At 1000% a month 1 replica becomes 11, 121, 1,331: with the pod limit lowered to
    1,000 (150,000 would take packing 14,641 pods first), month 3 is more than a cluster
    supports, whatever its node count."""
    import eafix_capacity.plan
    monkeypatch.setattr(eafix_capacity.plan, "MAX_PODS", 1000)
    cat = tiny(service("feed", cpu_m=1))
    r = runway(cat, profile, node_type, PlanOptions(provider="gke", nodes=20), growth=1000, months_max=6)
    assert (r.months, r.gate) == (3, "cluster-limits")
    assert "the hpa-max scenario runs 1,331 pods; at most 1,000 pods in all" in (r.detail or "")
    assert [p.nodes_needed is None for p in r.series] == [False] * 3 + [True] * 10
    assert r.series[3].note == r.detail


# ------------------------------------------------------------------ the lead time

@pytest.mark.parametrize("lead, passed", [(121, True), (122, False)])
def test_lead_time_against_the_runway(profile, node_type, pod_cpu_m, lead, passed) -> None:
    """The runway is 4 months, 4 x 365.25 / 12 = 121.75 days."""
    assert 121 < 4 * DAYS_PER_MONTH < 122
    cat = tiny(service("feed", cpu_m=pod_cpu_m))
    plan = plan_from_params(PlanParams(profile="minimum", nodes=2, growth_pct=50, lead_time_days=lead), catalog=cat)
    gate = plan.gates[-1]
    assert gate.name == "growth-runway" and gate.passed is passed and plan.passed is passed
    assert ("shorter than the 122-day lead time" in gate.detail) is not passed
    d = plan.to_dict()
    assert d["growth"]["runway_months"] == 4 and d["growth"]["passed"] is passed
    assert d["growth"]["first_failing_gate"] == "node-drain" and d["growth"]["lead_time_days"] == lead


def test_without_a_lead_time_the_gate_reports_and_passes(profile, node_type, pod_cpu_m) -> None:
    cat = tiny(service("feed", cpu_m=pod_cpu_m))
    plan = plan_from_params(PlanParams(profile="minimum", nodes=2, growth_pct=50), catalog=cat)
    assert plan.gates[-1].passed and "no lead time given" in plan.gates[-1].detail


def test_a_lead_time_beyond_the_horizon_extends_it(profile, node_type, pod_cpu_m) -> None:
    cat = tiny(service("feed", cpu_m=pod_cpu_m))
    r = runway(cat, profile, node_type, two_nodes(), growth=50, months_max=2, lead_time_days=150)
    assert r.months_max == 5 and r.months == 4 and not r.passed


# ------------------------------------------------------------------ the plan and its JSON

def test_without_growth_the_plan_and_its_json_are_unchanged(capsys) -> None:
    base = plan_from_params(PlanParams())
    assert plan_from_params(PlanParams(growth_pct=None)).to_dict() == base.to_dict()
    d = base.to_dict()
    assert "growth" not in d and "growth-runway" not in [g["name"] for g in d["gates"]]
    assert main(["plan", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == d
    grown = plan_from_params(PlanParams(growth_pct=5)).to_dict()
    assert grown["gates"][-1]["name"] == "growth-runway"
    assert {k: v for k, v in grown.items() if k != "growth"} | {"gates": grown["gates"][:-1]} == d


def test_cli_prints_the_runway_lines(capsys) -> None:
    assert main(["plan", "--growth", "5", "--lead-time-days", "90"]) == 0
    out = capsys.readouterr().out.splitlines()
    runway_line = next(line for line in out if line.startswith("runway: "))
    assert "5%/month" in runway_line and "on the planned 3 x n2-standard-8" in runway_line
    assert any(line.startswith("nodes needed: month 6: ") for line in out)
    assert any(line.startswith("growth-runway: PASS: ") for line in out)


@pytest.mark.parametrize("argv, message", [
    (["--growth", "nan"], "growth_pct: not a finite number nan"),
    (["--growth", "-1"], "growth_pct: negative growth -1.0"),
    (["--growth", "1001"], "growth_pct: growth above 1000% a month 1001.0"),
    (["--growth", "five"], "argument --growth: invalid float value: 'five'"),
    (["--lead-time-days", "30"], "lead_time_days: a lead time needs a growth rate to judge 30"),
    (["--growth", "5", "--lead-time-days", "-3"], "lead_time_days: negative lead time -3"),
    (["--growth", "5", "--lead-time-days", "3651"], "lead_time_days: lead time above ten years 3651"),
    (["--growth", "5", "--lead-time-days", "1.5"], "argument --lead-time-days: invalid int value: '1.5'"),
])
def test_bad_growth_flags_are_one_line(capsys, argv, message) -> None:
    try:
        code = main(["plan", *argv])
    except SystemExit as e:   # argparse's own refusals (a flag's type) exit from the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and err.startswith("eafix-capacity: error: ")


@pytest.mark.parametrize("value, problem", [
    ("5%", "not a number"), (True, "not a number"), (float("nan"), "not a finite number"),
    (-0.5, "negative growth"), (1000.5, "growth above 1000% a month"),
])
def test_bad_growth_in_the_catalogue_is_one_line(pod_cpu_m, value, problem) -> None:
    with pytest.raises(InputError) as e:
        tiny(service("feed", cpu_m=100, growth_pct=value))
    assert str(e.value).startswith(f"tiny.yaml: feed: growth_pct: {problem}") and "\n" not in str(e.value)


def test_growth_pct_in_the_catalogue_is_optional_and_round_trips() -> None:
    from eafix_capacity.usage.recommend import catalog_document
    cat = tiny(service("feed", cpu_m=100), service("book", cpu_m=100, growth_pct=7))
    assert [s.growth_pct for s in cat.services] == [None, 7.0]
    assert catalog_from_dict(catalog_document(cat)).services[1].growth_pct == 7.0
    assert "growth_pct" not in catalog_document(cat)["services"][0]


@pytest.mark.parametrize("bad", [{"growth_pct": "5"}, {"growth_pct": 5, "lead_time_days": True},
                                 {"lead_time_days": 10}, {"growth": 5}])
def test_bad_growth_params_in_python(bad) -> None:
    with pytest.raises(InputError):
        PlanParams.from_mapping(bad)


# ------------------------------------------------------------------ table, chart, property

def test_runway_table_and_chart(hand) -> None:
    from eafix_capacity.charts import growth_runway
    r = hand
    rows = runway_table(r)
    assert [row["month"] for row in rows] == list(range(13))
    assert [row["above_planned"] for row in rows[:5]] == [False, False, False, False, True]
    assert rows[12]["nodes_needed"] == 33 and rows[12]["baseline_pods"] == 130
    fig = growth_runway(r)
    ax = fig.axes[0]
    step = ax.lines[0]
    assert list(step.get_ydata()) == [p.nodes_needed for p in r.series]
    assert any(list(line.get_ydata()) == [2, 2] for line in ax.lines[1:])        # the planned count
    assert any(list(line.get_xdata()) == [4, 4] for line in ax.lines[1:])        # month 4 marked
    assert "50%/month" in fig.axes[0].get_title()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(50, 2500), st.integers(0, 3), st.sampled_from([None, 0, 10, 25])),
                min_size=1, max_size=3),
       st.floats(0, 25))
def test_nodes_needed_never_decrease_month_over_month(profile, node_type, services, growth) -> None:
    cat = tiny(*(service(f"s{i}", cpu_m=cpu, replicas=n, growth_pct=g) for i, (cpu, n, g) in enumerate(services)))
    r = runway(cat, profile, node_type, PlanOptions(provider="gke"), growth=growth, months_max=12)
    needed = [p.nodes_needed for p in r.series]
    assert all(n is not None for n in needed)
    assert all(a <= b for a, b in zip(needed, needed[1:])), needed
