"""The monthly cost of a plan, and ``plan --compare-node-types`` (issue 12, "Cost")."""
from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from eafix_capacity import cli
from eafix_capacity.catalog import load_catalog
from eafix_capacity.charts import node_type_costs
from eafix_capacity.cost import (HOURS_PER_MONTH, Comparison, cheapest, compare_node_types, monthly_cost,
                                 plan_cost, rank_of)
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.nodes import CSV_COLUMNS, GIB, PRICE_BASES, NodeType, load_node_types
from eafix_capacity.paths import data_file
from eafix_capacity.plan import PlanOptions, make_plan
from eafix_capacity.profiles import load_profiles
from eafix_capacity.tables import comparison_frame, cost_frame

# the top-level keys of `plan --format json` before the cost section (issue 11)
KEYS_BEFORE_COST = ["inputs", "services", "mesh_control_plane", "totals", "cluster", "scenarios", "gates", "passed"]


@pytest.fixture(scope="module")
def inputs() -> tuple:
    return load_catalog(), load_profiles()["recommended"], load_node_types()


@pytest.fixture(scope="module")
def comparisons(inputs: tuple) -> list[Comparison]:
    catalog, profile, types = inputs
    return compare_node_types(catalog, profile, types, PlanOptions(provider="generic"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------ the plan's cost


def test_monthly_cost_by_hand() -> None:
    # 0.388472 USD/h x 730 h = 283.58456 per node; x 3 nodes = 850.75368
    assert monthly_cost(Decimal("0.388472"), 3) == Decimal("850.75368")
    assert monthly_cost(Decimal("0.096"), 12) == Decimal("840.960")   # 0.096 x 730 = 70.08; x 12
    assert monthly_cost(Decimal("0.1"), 2, hours=10) == Decimal("2.0")
    assert monthly_cost(None, 3) is None
    assert HOURS_PER_MONTH == 730


def test_plan_cost_of_the_default_plan() -> None:
    plan = plan_from_params(PlanParams())       # 3 x n2-standard-8 on gke
    cost = plan_cost(plan)
    assert [(p.pool, p.node_type, p.nodes) for p in cost.pools] == [("default", "n2-standard-8", 3)]
    assert cost.total_monthly_usd == Decimal("850.75368")
    d = plan.to_dict()["cost"]
    assert d["total_monthly_usd"] == 850.75 and d["pools"][0]["monthly_usd"] == 850.75
    assert d["pools"][0]["price_usd_per_hour"] == 0.388472 and d["pools"][0]["price_basis"] == "derived"
    assert "per-vCPU + per-GB" in d["pools"][0]["price_source"]
    assert d["hours_per_month"] == 730 and d["currency"] == "USD"


def test_unknown_price_gives_unknown_cost(inputs: tuple) -> None:
    catalog, profile, types = inputs
    plan = make_plan(catalog, profile, types["c2-standard-8"], PlanOptions(provider="gke"))
    cost = plan_cost(plan)
    assert cost.total_monthly_usd is None and cost.pools[0].price_basis == "unknown"
    assert plan.to_dict()["cost"]["total_monthly_usd"] is None
    assert "unknown" in cost.line()


def test_json_gains_only_the_cost_key(capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_from_params(PlanParams())
    with_cost = plan.to_dict()
    assert list(with_cost) == KEYS_BEFORE_COST[:-1] + ["cost", "passed"]
    # the plan's other sections are those of the same plan's record: nothing else moved
    assert set(with_cost) - set(KEYS_BEFORE_COST) == {"cost"}
    rc, out, _ = run(capsys, "plan", "--format", "json")
    assert rc == 0
    cli_json = json.loads(out)
    assert set(cli_json) - set(KEYS_BEFORE_COST) == {"cost"}
    assert {k: v for k, v in cli_json.items() if k != "cost"} == json.loads(
        json.dumps({k: v for k, v in with_cost.items() if k != "cost"}))


def test_text_output_names_the_monthly_cost(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--node-type", "e2-standard-4")
    assert rc == 0
    last = out.rstrip().splitlines()[-2]     # just above the summary line
    # 0.134012 x 730 x 6 = 586.97256
    assert last.startswith("cost per month (730 h): 6 x e2-standard-4 at $0.134012/h (derived: ")
    assert last.endswith("= $586.97; total $586.97")


def test_cost_table(capsys: pytest.CaptureFixture[str]) -> None:
    df = cost_frame(plan_from_params(PlanParams(provider="eks", node_type="m5.large")))
    assert list(df["pool"]) == ["default", "total"]
    assert list(df["monthly_usd"]) == [840.96, 840.96] and list(df["nodes"]) == [12, 12]
    rc, out, _ = run(capsys, "plan", "--provider", "eks", "--node-type", "m5.large", "--format", "csv",
                     "--table", "cost")
    assert rc == 0
    assert out.splitlines()[0] == "pool,node_type,nodes,price_usd_per_hour,price_basis,price_source,monthly_usd"
    assert out.splitlines()[1].startswith("default,m5.large,12,0.096,list,") and out.splitlines()[2].endswith(",840.96")


# ------------------------------------------------------------------ node-types.csv


def test_every_shipped_price_states_its_basis() -> None:
    types = load_node_types()
    for t in types.values():
        assert t.price_basis in PRICE_BASES, t.name
        assert (t.price_usd_per_hour is None) == (t.price_basis == "unknown"), t.name
        # a price computed from per-vCPU and per-GB rates is not a figure of the price list
        if "per-vCPU" in t.price_source:
            assert t.price_basis == "derived", t.name
    assert types["c2-standard-4"].price_basis == "unknown"
    assert types["m5.large"].price_basis == "list"


def _csv(tmp_path: Path, row: str, *, basis: bool = True) -> Path:
    path = tmp_path / "types.csv"
    header = ",".join(CSV_COLUMNS) + (",price_basis" if basis else "")
    path.write_text(header + "\n" + row + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("row", "field", "problem"), [
    ("m5.large,aws,general,2,8,29,cheap,AWS 2024,list", "price_usd_per_hour", "not a price 'cheap'"),
    ("m5.large,aws,general,2,8,29,,AWS 2024,list", "price_usd_per_hour", "missing price"),
    ("m5.large,aws,general,2,8,29,0.096,AWS 2024,guessed", "price_basis", "unknown price basis 'guessed'"),
    ("m5.large,aws,general,2,8,29,0.096,AWS 2024,unknown", "price_basis", "a price whose basis is unknown"),
])
def test_bad_price_row_is_a_one_line_error(tmp_path: Path, row: str, field: str, problem: str) -> None:
    path = _csv(tmp_path, row)
    with pytest.raises(InputError) as e:
        load_node_types(path)
    text = str(e.value)
    assert "\n" not in text and e.value.field == field
    assert text.startswith(f"{path}: line 2 (m5.large): {field}: ") and problem in text


def test_csv_without_basis_column_still_loads(tmp_path: Path) -> None:
    types = load_node_types(_csv(tmp_path, "m5.large,aws,general,2,8,29,0.096,AWS 2024", basis=False))
    assert types["m5.large"].price_basis == "unstated"
    types = load_node_types(_csv(tmp_path, "m5.large,aws,general,2,8,29,,", basis=False))
    assert types["m5.large"].price_basis == "unknown"


# ------------------------------------------------------------------ comparison


def test_comparison_is_sorted_by_cost_and_names_the_cheapest(comparisons: list[Comparison]) -> None:
    assert len(comparisons) == 38
    priced = [c for c in comparisons if c.passed and c.monthly_usd is not None]
    costs = [c.monthly_usd for c in priced if c.monthly_usd is not None]
    assert costs == sorted(costs) and comparisons[:len(priced)] == priced
    best = cheapest(comparisons)
    assert best is not None and best is comparisons[0] and rank_of(comparisons, best.node_type) == 1
    types = load_node_types()
    for c in comparisons:
        if c.passed:
            assert c.monthly_usd == monthly_cost(types[c.node_type].price_usd_per_hour, c.nodes or 0)
    # the c2 types have no price: they pass, and come after every priced type
    assert [c.node_type for c in comparisons[len(priced):]] == ["c2-standard-16", "c2-standard-8", "c2-standard-4"]


def test_cheapest_replanned_alone_passes_and_one_fewer_does_not(inputs: tuple,
                                                               comparisons: list[Comparison]) -> None:
    catalog, profile, types = inputs
    best = cheapest(comparisons)
    assert best is not None and best.nodes is not None and best.nodes > 1
    options = PlanOptions(provider=best.provider)
    alone = make_plan(catalog, profile, types[best.node_type], replace(options, nodes=best.nodes))
    assert alone.passed and alone.failed_gates() == []
    fewer = make_plan(catalog, profile, types[best.node_type], replace(options, nodes=best.nodes - 1))
    assert not fewer.passed
    # and the count is the smallest for every passing type, not just the cheapest
    for c in comparisons:
        if c.passed and c.nodes is not None and c.nodes > 1:
            t = types[c.node_type]
            assert make_plan(catalog, profile, t, PlanOptions(provider=c.provider, nodes=c.nodes)).passed
            assert not make_plan(catalog, profile, t, PlanOptions(provider=c.provider, nodes=c.nodes - 1)).passed


def test_filters(inputs: tuple) -> None:
    catalog, profile, types = inputs
    options = PlanOptions(provider="generic")
    eks = compare_node_types(catalog, profile, types, options, providers=["eks"])
    assert {c.provider for c in eks} == {"eks"}
    assert len(eks) == sum(1 for t in types.values() if t.provider == "aws")
    both = compare_node_types(catalog, profile, types, options, providers=["gke", "aks"], families=["memory"])
    assert {(c.provider, c.family) for c in both} == {("gke", "memory"), ("aks", "memory")}
    assert {c.node_type for c in both} == {t.name for t in types.values()
                                           if t.provider in ("gcp", "azure") and t.family == "memory"}
    with pytest.raises(InputError, match="providers"):
        compare_node_types(catalog, profile, types, options, providers=["generic"])


def test_a_type_that_cannot_pass_is_listed_with_why(inputs: tuple) -> None:
    catalog, profile, types = inputs
    tiny = NodeType("tiny.small", "aws", "general", 1, 1 * GIB, 4, Decimal("0.001"), "made up for the test", "estimate")
    own = {"tiny.small": tiny, "m5.xlarge": types["m5.xlarge"]}
    out = compare_node_types(catalog, profile, own, PlanOptions(provider="generic"))
    assert [c.node_type for c in out] == ["m5.xlarge", "tiny.small"]     # the cheap one cannot pass: last
    assert out[1].nodes is None and out[1].monthly_usd is None and not out[1].passed
    assert "tiny.small" in out[1].why and cheapest(out) is out[0]
    # storage does not depend on the count: no count passes, and the failing gates are named
    short = compare_node_types(catalog, profile, own, PlanOptions(provider="generic", storage_bytes=GIB))
    assert all(not c.passed for c in short) and cheapest(short) is None
    assert "storage-claims FAIL" in short[0].why and "profile-storage FAIL" in short[0].why


def test_mesh_is_respected(inputs: tuple) -> None:
    catalog, _, types = inputs
    profile = load_profiles()["minimum"]
    own = {"e2-standard-2": types["e2-standard-2"]}
    plain = compare_node_types(catalog, profile, own, PlanOptions(provider="generic"))[0]
    meshed = compare_node_types(catalog, profile, own, PlanOptions(provider="generic", mesh="istio"))[0]
    expected = make_plan(catalog, profile, types["e2-standard-2"], PlanOptions(provider="gke", mesh="istio"))
    assert meshed.nodes == expected.recommended_nodes == 11 and plain.nodes == 6


def test_cli_compare_respects_profile_mesh_and_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    catalog = tmp_path / "services.yaml"
    catalog.write_text(data_file("services.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    rc, out, _ = run(capsys, "plan", "--compare-node-types", "--providers", "gke", "--families", "general",
                     "--profile", "minimum", "--mesh", "istio", "--catalog", str(catalog), "--format", "json")
    assert rc == 0
    nodes = {t["node_type"]: t["nodes"] for t in json.loads(out)["node_types"]}
    types = load_node_types()
    for name, n in nodes.items():
        plan = plan_from_params(PlanParams(provider="gke", node_type=name, profile="minimum", mesh="istio",
                                           catalog=str(catalog)))
        assert n == plan.recommended_nodes, name
    assert nodes["e2-standard-2"] == 11 and set(nodes) == {t.name for t in types.values()
                                                            if t.provider == "gcp" and t.family == "general"}


def test_chart(comparisons: list[Comparison]) -> None:
    fig = node_type_costs(comparisons, chosen="m5.xlarge")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 35     # 38 types less the three without a price
    labels = [t.get_text() for t in ax.get_yticklabels()]
    best = cheapest(comparisons)
    assert best is not None and labels[0] == f"{best.node_type} x {best.nodes}"
    assert best.node_type in ax.get_title()


def test_frame(comparisons: list[Comparison]) -> None:
    df = comparison_frame(comparisons)
    assert list(df["node_type"]) == [c.node_type for c in comparisons]
    assert df.loc[df["node_type"] == "e2-standard-2", "price_usd_per_hour"].item() == "0.067006"


# ------------------------------------------------------------------ the command


def test_cli_compare_json_and_chart(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "costs.png"
    rc, out, err = run(capsys, "plan", "--compare-node-types", "--providers", "aks", "--families", "general,memory",
                       "--format", "json", "--chart", str(chart), "--node-type", "Standard_D4s_v5")
    assert rc == 0 and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(chart) in err
    d = json.loads(out)
    names = [t["node_type"] for t in d["node_types"]]
    assert set(names) == {"Standard_D2s_v5", "Standard_D4s_v5", "Standard_D8s_v5", "Standard_D16s_v5",
                          "Standard_E4s_v5", "Standard_E8s_v5", "Standard_E16s_v5"}
    costs = [t["monthly_usd"] for t in d["node_types"]]
    assert costs == sorted(costs) and d["cheapest"] == names[0]
    assert d["chosen"] == "Standard_D4s_v5" and d["chosen_rank"] == names.index("Standard_D4s_v5") + 1
    assert not list(tmp_path.glob(".*"))     # written atomically: no temporary left


def test_cli_compare_text_names_the_cheapest(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--compare-node-types", "--providers", "eks", "--families", "compute")
    assert rc == 0
    lines = out.rstrip().splitlines()
    assert lines[0].split()[:3] == ["node_type", "provider", "family"]
    assert lines[-1].startswith("cheapest passing node type: c5.")
    assert len([line for line in lines if " eks " in line]) == 4


@pytest.mark.parametrize(("argv", "flag", "valid"), [
    (["--providers", "gke,azure"], "--providers", "gke, eks, aks"),
    (["--providers", ""], "--providers", "gke, eks, aks"),
    (["--families", "gpu"], "--families", "general, compute, memory"),
])
def test_cli_bad_filter_is_a_one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], flag: str,
                                            valid: str) -> None:
    rc, out, err = run(capsys, "plan", "--compare-node-types", *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert flag in err and valid in err


@pytest.mark.parametrize("argv", [["--providers", "gke"], ["--chart", "x.png"], ["--families", "memory"]])
def test_cli_compare_flags_need_compare(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc, out, err = run(capsys, "plan", *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "only with --compare-node-types" in err


@pytest.mark.parametrize("argv", [["--nodes", "3"], ["--provider", "gke"], ["--growth", "5"]])
def test_cli_compare_refuses_plan_only_flags(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc, out, err = run(capsys, "plan", "--compare-node-types", *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1 and argv[0] in err
