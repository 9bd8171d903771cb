"""`eafix-capacity report`: papermill run, HTML without code, summary.json, exit codes."""
from __future__ import annotations

import json

import pytest

from eafix_capacity.cli import main

pytestmark = pytest.mark.notebook


def test_report_writes_notebook_html_and_summary(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out), "--profile", "minimum", "--node-type", "n2-standard-4"]) == 0
    runs = list(out.iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("Z")
    run = runs[0]
    names = sorted(p.name for p in run.iterdir())
    assert names == ["01_capacity_model.html", "01_capacity_model.ipynb", "summary.json"]
    printed = capsys.readouterr().out.strip()
    assert printed == str(run / "01_capacity_model.html")
    html = (run / "01_capacity_model.html").read_text()
    assert "plan_from_params" not in html          # code cells are excluded
    assert "profile-cpu" in html and "PASS" in html  # outputs are kept
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"]["profile"] == "minimum"
    assert summary["inputs"]["node_type"] == "n2-standard-4"
    assert summary["passed"] is True


def test_fail_on_gate_exits_1_and_keeps_the_evidence(tmp_path, capsys):
    out = tmp_path / "r"
    params = tmp_path / "params.yaml"
    params.write_text("profile: recommended\nnode_type: n2-standard-8\nnodes: 1\n")
    assert main(["report", "--out", str(out), "--params", str(params), "--fail-on-gate"]) == 1
    err = capsys.readouterr().err
    assert "gates failed:" in err and "node-drain" in err
    (run,) = out.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cluster"]["nodes"] == 1
    assert not summary["passed"]


@pytest.mark.parametrize("argv,needle", [
    (["--node-type", "n9-imaginary"], "unknown node type"),
    (["--provider", "gcp"], "unknown provider"),
    (["--profile", "huge"], "unknown profile"),
    (["--replicas", "reporter=-1"], "negative replicas"),
    (["--replicas", "nosuch=2"], "unknown service"),
])
def test_bad_input_exits_2_before_writing(tmp_path, capsys, argv, needle):
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eafix-capacity: error:") and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unknown_parameter_in_yaml_file_is_rejected(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("profile: minimum\nnode_typ: m5.large\n")
    assert main(["report", "--out", str(tmp_path / "r"), "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert "p.yaml" in err and "unknown parameter" in err and "node_typ" in err


# ------------------------------------------------------------------ every parameter reaches the notebook


def _parameters_cell_names() -> list[str]:
    import nbformat
    from papermill.translators import PythonTranslator

    from eafix_capacity.report import CAPACITY_NOTEBOOK
    nb = nbformat.read(str(CAPACITY_NOTEBOOK), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    return [p.name for p in PythonTranslator.inspect(first)]


def test_the_notebook_declares_every_parameter_the_report_passes():
    from eafix_capacity.inputs import PlanParams
    passed = set(PlanParams().notebook_parameters()) | {"output_dir"}
    assert passed <= set(_parameters_cell_names())


def test_notebook_parameters_round_trip_every_plan_parameter():
    """What `report` hands papermill must come back as the same parameters in the
    notebook's validation cell: a flag that is dropped on the way plans something else."""
    from eafix_capacity.inputs import PlanParams
    params = PlanParams(profile="minimum", provider="eks", node_type="m5.2xlarge", nodes=4, mesh="istio",
                        headroom_pct=30.0, cpu_limit_ratio=3.0, memory_limit_ratio=1.2, storage_gib=200.0,
                        max_pods=20, replicas={"reporter": 3, "signal-generator": 0})
    from dataclasses import fields
    assert set(params.notebook_parameters()) == {f.name for f in fields(PlanParams)}
    back = PlanParams.from_notebook(**params.notebook_parameters())
    assert back == params
    assert PlanParams.from_notebook(**PlanParams().notebook_parameters()) == PlanParams()


@pytest.mark.parametrize("text", ["reporter", "reporter:", ":2", "reporter:two", "reporter=2"])
def test_bad_replicas_text_in_the_notebook_is_bad_input(text):
    from eafix_capacity.errors import InputError
    from eafix_capacity.inputs import PlanParams
    with pytest.raises(InputError) as e:
        PlanParams.from_notebook(replicas=text)
    assert "replicas" in str(e.value) and "SERVICE:N" in str(e.value)


def test_report_honours_max_pods_and_replicas(tmp_path, capsys):
    from eafix_capacity.inputs import PlanParams, plan_from_params
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out), "--max-pods", "12", "--replicas", "reporter=3"]) == 0
    (run,) = out.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"]["max_pods"] == 12
    assert summary["cluster"]["per_node"]["max_pods"] == 12
    assert {s["name"]: s["replicas"] for s in summary["services"]}["reporter"] == 3
    expected = plan_from_params(PlanParams(max_pods=12, replicas={"reporter": 3})).to_dict()
    assert summary["cluster"]["recommended_nodes"] == expected["cluster"]["recommended_nodes"]
    assert summary["gates"] == expected["gates"]
    # the HTML is the evidence a change request carries: every gate's detail in full
    import html
    page = (run / "01_capacity_model.html").read_text()
    for gate in summary["gates"]:
        assert html.escape(gate["detail"], quote=False) in page, gate["detail"]


# ------------------------------------------------------------------ atomic writes (fsio)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    from eafix_capacity.fsio import atomic_write_text
    target = tmp_path / "deep" / "summary.json"
    assert atomic_write_text(target, "one\n") == target
    atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_a_failed_atomic_write_keeps_the_previous_output(tmp_path, monkeypatch):
    import os

    from eafix_capacity.errors import OutputError
    from eafix_capacity.fsio import atomic_write_text
    target = tmp_path / "summary.json"
    target.write_text("previous\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="summary.json: cannot write .No space left on device"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_an_unwritable_directory_is_an_output_error(tmp_path):
    from eafix_capacity.errors import OutputError
    from eafix_capacity.fsio import atomic_write_text
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(blocker / "summary.json", "x")


def test_a_report_that_cannot_be_moved_into_place_is_an_output_error(tmp_path, monkeypatch, capsys):
    """The last step of a run is a rename; its failure is one line and exit 2 like any
    other output error, and leaves no partial run behind."""
    from pathlib import Path

    real_rename = Path.rename

    def rename(self, target):
        if self.name.endswith(".partial"):
            raise OSError(39, "Directory not empty")
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", rename)
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot move the finished report into place (Directory not empty)" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(out.iterdir()) == []
