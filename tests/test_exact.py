"""The exact mode (eafix_capacity/exact.py, ``plan --exact``): never above First-Fit
Decreasing, placements that pass ``check_placement``, the known FFD miss closed, and the
default plan left exactly as it was."""
from __future__ import annotations

from dataclasses import replace

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eafix_capacity import cli
from eafix_capacity.errors import InputError
from eafix_capacity.exact import min_nodes_exact, pack_exact
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.scheduling import (NodeShape, PodRequest, SpreadConstraint, check_placement, lower_bound,
                                       min_nodes)

MI = 2**20
EXACT_KEYS = ("exact", "exact_lower_bound", "first_fit_nodes")


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[PodRequest], NodeShape]:
    shape = NodeShape(1000, 4096 * MI, draw(st.integers(2, 8)))
    pods = []
    for g in range(draw(st.integers(1, 4))):
        skew = draw(st.sampled_from([None, 1, 2]))
        anti = draw(st.booleans())
        cpu = draw(st.integers(1, 20)) * 50
        mem = draw(st.integers(1, 32)) * 128 * MI
        spread = SpreadConstraint(max_skew=skew) if skew is not None else None
        pods += [PodRequest(f"g{g}-{i}", f"g{g}", cpu, mem, anti_affinity=anti, spread=spread)
                 for i in range(draw(st.integers(1, 5)))]
    return pods, shape


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_exact_count_is_never_above_ffd_and_its_placement_passes_check_placement(case):
    pods, shape = case
    ffd = min_nodes(pods, shape)
    r = min_nodes_exact(pods, shape, seconds=1.0)
    assert r.ffd_nodes == ffd.nodes_needed
    assert r.nodes is not None and ffd.nodes_needed is not None
    assert lower_bound(pods, shape) <= r.lower_bound <= r.nodes <= ffd.nodes_needed
    assert r.placement is not None and r.placement.nodes == r.nodes
    assert check_placement(pods, shape, r.placement) == []
    assert r.optimal == (r.lower_bound == r.nodes)


def test_a_hand_computed_instance_where_the_lower_bound_is_tight_and_ffd_misses_it():
    # cpu 500+400+300+300+250+250 = 2000m on 1000m nodes: the bound is 2, and
    # {500, 250, 250} + {400, 300, 300} reach it; first-fit (and its balanced retry)
    # puts 500+400 (or 500+300+...) together and needs a third node
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [PodRequest(f"p{i}", f"s{i}", cpu, 64 * MI) for i, cpu in enumerate([500, 400, 300, 300, 250, 250])]
    assert lower_bound(pods, shape) == 2
    assert min_nodes(pods, shape).nodes_needed == 3
    r = min_nodes_exact(pods, shape)
    assert (r.nodes, r.optimal, r.lower_bound, r.ffd_nodes, r.solved) == (2, True, 2, 3, True)
    assert r.verdict() == "optimal"
    assert r.placement is not None and check_placement(pods, shape, r.placement) == []
    assert sorted(r.placement.cpu_m) == [1000, 1000]


def test_when_ffd_meets_the_bound_no_solver_runs():
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [PodRequest(f"p{i}", "web", 500, 64 * MI) for i in range(4)]
    r = min_nodes_exact(pods, shape)
    assert (r.nodes, r.optimal, r.lower_bound, r.solved) == (2, True, 2, False)


def test_the_spread_counts_empty_nodes_on_a_given_count():
    # 6 replicas of 300m with maxSkew 1 on 4 nodes: 3 + 3 would fit the cpu of two nodes,
    # but the spread counts the two empty nodes too, so every node holds 1 or 2
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [PodRequest(f"w{i}", "web", 300, 64 * MI) for i in range(6)]
    placed = pack_exact(pods, shape, nodes=4)
    assert placed is not None and placed.nodes == 4 and check_placement(pods, shape, placed) == []
    assert sorted(placed.pods) == [1, 1, 2, 2]
    # 2 pods of 600m cannot share a node: one node is not enough
    big = [PodRequest(f"b{i}", f"b{i}", 600, 64 * MI) for i in range(2)]
    assert pack_exact(big, shape, nodes=1) is None


def test_a_model_too_large_to_build_keeps_ffd_and_says_best_found(monkeypatch):
    import eafix_capacity.exact as exact
    monkeypatch.setattr(exact, "MAX_VARIABLES", 0)
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [PodRequest(f"p{i}", f"s{i}", cpu, 64 * MI) for i, cpu in enumerate([500, 400, 300, 300, 250, 250])]
    r = min_nodes_exact(pods, shape)
    assert (r.nodes, r.optimal, r.lower_bound, r.solved) == (3, False, 2, False)
    assert r.verdict() == "best found (bound 2)" and r.verdict(offset=1) == "best found (bound 3)"
    assert r.placement is not None and check_placement(pods, shape, r.placement) == []


def test_a_pod_larger_than_a_node_has_no_count():
    shape = NodeShape(1000, 4096 * MI, 110)
    r = min_nodes_exact([PodRequest("huge", "db", 1500, MI)], shape)
    assert (r.nodes, r.placement, r.optimal) == (None, None, False)
    assert r.verdict() == "no node count fits"


def test_rules_the_model_does_not_have_are_refused_not_ignored():
    shape = NodeShape(1000, 4096 * MI, 110)
    pods = [PodRequest(f"p{i}", "db", 400, 64 * MI, node_selector=(("pool", "memory"),)) for i in range(3)]
    with pytest.raises(InputError, match="p0: rules: the exact mode models"):
        min_nodes_exact(pods, shape)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "1", None, True])
def test_a_bad_time_budget_is_one_line_of_input_error(seconds):
    pods = [PodRequest("p0", "web", 100, MI)]
    with pytest.raises(InputError) as e:
        min_nodes_exact(pods, NodeShape(1000, 4096 * MI, 110), seconds=seconds)
    assert "\n" not in str(e.value) and "exact_seconds: invalid time budget" in str(e.value)
    with pytest.raises(InputError, match="exact_seconds: invalid time budget"):
        plan_from_params(PlanParams(exact=True, exact_seconds=seconds))


@pytest.mark.parametrize(("argv", "message"), [
    (["--exact", "--exact-seconds", "0"], "--exact-seconds: invalid time budget 0.0; a finite number"),
    (["--exact", "--exact-seconds", "-2"], "--exact-seconds: invalid time budget -2.0;"),
    (["--exact", "--exact-seconds", "soon"], "argument --exact-seconds: invalid float value: 'soon'"),
    (["--exact-seconds", "1"], "--exact-seconds: only with --exact (or --pools), got 1.0"),
    (["--no-exact", "--exact-seconds", "1"], "--exact-seconds: only with --exact (or --pools), got 1.0"),
])
def test_cli_refuses_a_bad_budget_in_one_line(capsys, argv, message):
    try:
        rc = cli.main(["plan", *argv])
    except SystemExit as e:   # argparse's own refusals exit through the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == cli.EXIT_BAD_INPUT
    assert message in err and err.count("\n") == 1


MISS = PlanParams(node_type="e2-standard-2", mesh="istio")


def test_the_known_ffd_miss_is_closed_through_the_plan():
    """Issue 12: e2-standard-2 with the mesh, node-drain: FFD 8 where 7 suffice."""
    ffd = plan_from_params(MISS).scenarios["node-drain"]
    assert ffd.nodes_needed == 8 and ffd.exact is None
    exact = plan_from_params(replace(MISS, exact=True)).scenarios["node-drain"]
    assert (exact.nodes_needed, exact.exact, exact.first_fit_nodes) == (7, "optimal", 8)
    assert exact.exact_lower_bound == 7


def test_a_given_count_ffd_cannot_pack_is_judged_on_the_solvers_placement():
    # 7 nodes: node-drain runs the baseline on 6, which FFD cannot pack and CP-SAT can
    params = PlanParams(node_type="e2-standard-2", mesh="istio", nodes=7)
    assert not plan_from_params(params).scenarios["node-drain"].fits
    plan = plan_from_params(replace(params, exact=True))
    r = plan.scenarios["node-drain"]
    assert r.fits and r.nodes_evaluated == 6 and r.placement is not None and r.placement.nodes == 6
    from eafix_capacity.plan import _requests
    from eafix_capacity.scenarios import demand
    pods = _requests(demand(plan.catalog, "node-drain", mesh="istio"))
    assert check_placement(pods, NodeShape(plan.node.workload_cpu_m, plan.node.workload_memory_bytes,
                                           plan.node.workload_pods), r.placement) == []
    assert next(g for g in plan.gates if g.name == "node-drain").passed


def test_plan_exact_shows_the_mode_in_text_and_json(capsys):
    argv = ["plan", "--node-type", "e2-standard-2", "--mesh", "istio", "--exact"]
    assert cli.main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    drain = doc["scenarios"]["node-drain"]
    assert (drain["nodes_needed"], drain["exact"], drain["exact_lower_bound"], drain["first_fit_nodes"]) == \
        (7, "optimal", 7, 8)
    assert all(s["exact"] == "optimal" for s in doc["scenarios"].values())
    assert cli.main([*argv, "--exact-seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "exact node counts (CP-SAT, at most 0.5 s per scenario):" in out
    assert "  node-drain: 7 nodes, optimal; first-fit decreasing 8" in out


def test_the_default_plan_json_is_unchanged_and_loads_no_solver():
    code = ("import json, sys; from eafix_capacity import cli; cli.main(['plan', '--format', 'json']); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ortools'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text, _, loaded = proc.stdout.rpartition("\n[")
    assert json.loads("[" + loaded) == []
    default = json.loads(text)
    assert not any(k in s for s in default["scenarios"].values() for k in EXACT_KEYS)
    assert default == plan_from_params(PlanParams()).to_dict()
    # n2-standard-8: FFD is already optimal, so --exact adds its three fields and nothing else
    exact = plan_from_params(PlanParams(exact=True)).to_dict()
    for s in exact["scenarios"].values():
        assert s.pop("exact") == "optimal" and s.pop("first_fit_nodes") == s["nodes_needed"]
        assert s.pop("exact_lower_bound") == s["nodes_needed"]
    assert exact == default
