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
