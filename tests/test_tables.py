"""Report tables and charts (tables.py, charts.py), the default scheduler's spread, and
`plan --format csv --table` / `plan --out DIR`."""
from __future__ import annotations

import csv
import io
import os
import stat

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from eafix_capacity import charts, tables
from eafix_capacity.cli import main
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.profiles import load_profiles
from eafix_capacity.scheduling import NodeShape, PodRequest, check_placement, scheduler_spread


@pytest.fixture(scope="module")
def plan():
    return plan_from_params(PlanParams())


# ------------------------------------------------------------------ placements


@pytest.mark.parametrize("scenario", ["baseline", "hpa-max", "rollout", "node-drain"])
def test_the_scheduler_spread_leaves_no_planned_node_empty(plan, scenario):
    """The packer fills the first nodes (the default plan's baseline leaves node-2 empty);
    the default scheduler's least-allocated scoring puts pods on every node."""
    df = tables.placement_frame(plan, scenario)
    r = plan.scenarios[scenario]
    assert list(df["node"]) == [f"node-{i}" for i in range(r.nodes_evaluated)]
    assert (df["pods"] > 0).all(), df
    assert df["pods"].sum() == r.pods
    s = tables.scheduler_placement(plan, scenario)
    assert s.pending == ()
    assert check_placement(tables.scenario_pods(plan, scenario), tables.full_shape(plan), s.placement) == []


@pytest.mark.parametrize("scenario", ["baseline", "hpa-max", "rollout", "node-drain"])
def test_the_minimal_packing_is_the_one_behind_nodes_needed(plan, scenario):
    r = plan.scenarios[scenario]
    p = tables.minimal_packing(plan, scenario)
    assert p is not None
    assert p.nodes == (r.nodes_needed - 1 if scenario == "node-drain" else r.nodes_needed)
    shape = plan.headroom_shape if scenario == "baseline" else tables.full_shape(plan)
    assert check_placement(tables.scenario_pods(plan, scenario), shape, p) == []
    df = tables.placement_frame(plan, scenario, layout=tables.PACKING)
    assert len(df) == p.nodes and set(df["layout"]) == {tables.PACKING}


def test_pods_that_fit_nowhere_are_listed_as_pending():
    plan = plan_from_params(PlanParams(nodes=1, node_type="n2-standard-4"))
    s = tables.scheduler_placement(plan, "hpa-max")
    assert s.pending
    df = tables.placement_frame(plan, "hpa-max")
    pending = df[df["node"].str.startswith("Pending")]
    assert len(pending) == 1 and int(pending["pods"].iloc[0]) == len(s.pending)
    assert df["pods"].sum() == plan.scenarios["hpa-max"].pods


def test_scheduler_spread_scores_least_allocated_and_keeps_the_spread():
    shape = NodeShape(4000, 8 * 2**30, 110)
    big = [PodRequest(f"db-{i}", "db", 1500, 2**30) for i in range(2)]
    small = [PodRequest(f"web-{i}", "web", 100, 2**28) for i in range(4)]
    s = scheduler_spread(big + small, shape, nodes=3)
    where = dict(s.placement.assignment)
    assert where["db-0"] != where["db-1"]                     # maxSkew 1 on the hostname
    assert where["web-0"] == 2                                 # the empty node scores highest
    assert sorted(s.placement.pods) == [2, 2, 2]
    assert check_placement(big + small, shape, s.placement) == []
    too_big = scheduler_spread([PodRequest("huge-0", "huge", 5000, 2**30)], shape, nodes=2)
    assert too_big.pending == ("huge-0",) and too_big.placement.assignment == ()


# ------------------------------------------------------------------ tables


def test_scenarios_say_whether_headroom_applies(plan):
    df = tables.scenarios_frame(plan)
    kept = dict(zip(df["scenario"], df["headroom_pct"]))
    assert kept == {"baseline": 20.0, "hpa-max": 0.0, "rollout": 0.0, "node-drain": 0.0}
    judged = dict(zip(df["scenario"], df["judged_on"]))
    assert judged["baseline"].startswith("80%") and "full room" in judged["rollout"]


def test_report_tables_have_units_no_index_and_no_missing_markers(plan):
    page = tables.show(tables.services_frame(plan))._repr_html_()
    assert "<th>CPU request (cores/pod)</th>" in page and "<th>memory limit (MiB/pod)</th>" in page
    assert "NA" not in page.replace("NAME", "") and "nan" not in page.lower().replace("nanos", "")
    assert "<tbody><tr><th" not in page and 'class="dataframe"' not in page
    text = repr(tables.show(tables.services_frame(plan)))
    assert "<NA>" not in text and "NaN" not in text
    profiles = tables.show(tables.profiles_frame(plan, load_profiles()))
    assert "None" not in profiles._repr_html_() and "nan" not in profiles._repr_html_().lower()


def test_gates_can_be_listed_failing_first():
    plan = plan_from_params(PlanParams(nodes=1))
    df = tables.gates_frame(plan, failing_first=True)
    results = list(df["result"])
    assert "FAIL" in results and "PASS" in results
    assert results == sorted(results)          # every FAIL before every PASS
    assert set(df["gate"]) == {g.name for g in plan.gates}
    assert 'class="eafix-fail"' in tables.show_gates(plan)._repr_html_()


def test_unknown_table_and_layout_are_refused(plan):
    with pytest.raises(ValueError, match="unknown table 'nodes'"):
        tables.frame(plan, "nodes")
    with pytest.raises(ValueError, match="unknown placement layout"):
        tables.placement_frame(plan, "baseline", layout="random")


# ------------------------------------------------------------------ charts


def _figures(plan):
    return {
        "requests_and_limits": charts.requests_and_limits(plan),
        "totals": charts.totals_against_profiles(plan, load_profiles()),
        "nodes": charts.nodes_per_scenario(plan),
        "scheduler": charts.placement(plan, "baseline"),
        "packing": charts.placement(plan, "baseline", layout=tables.PACKING),
    }


def test_legends_cover_nothing(plan):
    for name, fig in _figures(plan).items():
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        assert fig.legends, name
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                assert not box.overlaps(ax.get_tightbbox(renderer)), name
                assert ax.get_legend() is None, name
            for text in fig.texts:
                if text.get_text():
                    assert not box.overlaps(text.get_window_extent(renderer)), name


def test_node_counts_have_integer_ticks(plan):
    fig = charts.nodes_per_scenario(plan)
    FigureCanvasAgg(fig).draw()
    ticks = [t for t in fig.axes[0].get_yticks() if fig.axes[0].get_ylim()[0] <= t <= fig.axes[0].get_ylim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "baseline\n(20% headroom)" and labels[2] == "rollout\n(no headroom)"


def test_the_placement_chart_shows_every_planned_node(plan):
    fig = charts.placement(plan, "baseline")
    bars = fig.axes[0].patches
    assert len(bars) == plan.nodes and all(b.get_height() > 0 for b in bars)


# ------------------------------------------------------------------ plan --format csv


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("table,key,count", [
    ("services", "service", 14), ("scenarios", "scenario", 4), ("gates", "gate", 10), ("placement", "node", None),
])
def test_plan_csv_table_choice(capsys, table, key, count):
    assert main(["plan", "--format", "csv", "--table", table]) == 0
    rows = _csv(capsys.readouterr().out)
    assert rows and key in rows[0]
    if count is not None:
        assert len(rows) == count
    if table == "scenarios":
        assert {r["scenario"]: r["headroom_pct"] for r in rows}["baseline"] == "20.0"
    if table == "placement":
        assert {r["layout"] for r in rows} == {tables.SCHEDULER, tables.PACKING}
        assert {r["scenario"] for r in rows} == {"baseline", "hpa-max", "rollout", "node-drain"}


def test_plan_csv_default_is_still_the_services(capsys):
    assert main(["plan", "--format", "csv"]) == 0
    assert len(_csv(capsys.readouterr().out)) == 14


def test_plan_table_format_prints_one_chosen_table(capsys):
    assert main(["plan", "--table", "gates"]) == 0
    out = capsys.readouterr().out
    assert "profile-cpu" in out and "data-ingestor" not in out and "<NA>" not in out


def test_plan_out_writes_one_csv_per_table(tmp_path, capsys):
    out = tmp_path / "csv"
    old = os.umask(0o022)
    try:
        assert main(["plan", "--out", str(out), "--nodes", "1"]) == 0
    finally:
        os.umask(old)
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gates.csv", "placement.csv", "scenarios.csv", "services.csv"]
    assert sorted(printed) == sorted(str(out / n) for n in names)
    for n in names:
        assert stat.S_IMODE((out / n).stat().st_mode) == 0o644
    gates = _csv((out / "gates.csv").read_text())
    assert {g["gate"]: g["result"] for g in gates}["node-drain"] == "FAIL"
    assert len(_csv((out / "services.csv").read_text())) == 14


@pytest.mark.parametrize("argv,needle", [
    (["--out", "DIR", "--format", "json"], "--format: --out writes one CSV file per table, not 'json'"),
    (["--out", "DIR", "--table", "gates"], "--table: --out writes every table"),
    (["--format", "json", "--table", "gates"], "--table: --format json is the whole plan"),
    (["--table", "nodes"], "invalid choice: 'nodes'"),
])
def test_bad_table_flags_are_one_line_errors(tmp_path, capsys, argv, needle):
    argv = [str(tmp_path / "out") if a == "DIR" else a for a in argv]
    try:
        code = main(["plan", *argv])
    except SystemExit as e:      # argparse's own choices check
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_plan_out_under_a_file_is_an_output_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["plan", "--out", str(blocker / "csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and err.count("\n") == 1
    assert blocker.read_text() == ""

