"""The report's evidence figures: ready replicas per service, the rehearsal steps, the gates."""
from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from eafix_capacity.errors import InputError
from eafix_capacity.signoff import charts
from eafix_capacity.signoff.records import Rehearsal

from .outputs_helpers import T0, gates_mixed, rehearsal


def test_ready_series_per_service_marks_the_steps_below_the_pdb():
    series = {s.service: s for s in charts.ready_series(rehearsal())}
    assert sorted(series) == ["order-router", "risk-manager"]
    router = series["order-router"]
    assert router.steps == (0, 1, 2, 3) and router.ready == (2, 2, 1, 2)
    assert router.required == 2 and router.desired == 2 and router.below_required == (2,)
    assert series["risk-manager"].below_required == ()


def test_an_unknown_service_names_those_the_rehearsal_has():
    with pytest.raises(InputError, match="no such service.*order-router, risk-manager"):
        charts.ready_series(rehearsal(), ["pricing"])


def test_the_ready_timeline_has_one_panel_per_service_with_the_required_line():
    fig = charts.ready_timeline(rehearsal())
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["order-router", "risk-manager"]
    router = panels[0]
    labels = [ln.get_label() for ln in router.get_lines()]
    assert "required (PDB)" in labels and "below required" in labels
    marked = next(ln for ln in router.get_lines() if ln.get_label() == "below required")
    assert list(marked.get_xdata()) == [2] and list(marked.get_ydata()) == [1]
    assert "below required" not in [ln.get_label() for ln in panels[1].get_lines()]


def test_step_counts_and_their_figure():
    c = charts.step_counts(rehearsal())
    assert c.nodes == (3, 4, 3, 3) and c.pending == (0, 0, 1, 0) and c.blocked == (0, 1, 0, 0)
    fig = charts.rehearsal_steps(rehearsal())
    nodes_ax, pods_ax = fig.axes[:2]
    assert [p.get_height() for p in pods_ax.patches] == [0, 0, 1, 0, 0, 1, 0, 0]
    assert "completed" in fig.get_suptitle()


def test_a_rehearsal_without_observations_says_so():
    empty = Rehearsal(name="node-loss:n1", kind="node-loss", completed=False, reason="the twin has no nodes",
                      started=T0, finished=T0, observations=(), min_ready={}, desired={}, required_ready={})
    for fig in (charts.ready_timeline(empty), charts.rehearsal_steps(empty)):
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("no observations" in t and "the twin has no nodes" in t for t in texts)


def test_the_gates_figure_colours_each_gate_by_its_verdict():
    gates = gates_mixed()
    fig = charts.gate_verdicts(gates)
    ax = fig.axes[0]
    colours = [tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.patches]
    from matplotlib.colors import to_rgb
    want = [tuple(round(c, 3) for c in to_rgb(charts.VERDICT_COLOURS[g.verdict])) for g in gates]
    assert colours == want
    top_down = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
    assert [name for _, name in top_down] == [g.name for g in gates]     # the first gate on top
    assert ax.get_title() == "Gates: 1 FAIL, 1 WARN, 2 PASS"
    assert "no gate was judged" in charts.gate_verdicts(()).axes[0].texts[0].get_text()
