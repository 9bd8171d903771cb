"""`eafix-capacity signoff`: params file, papermill run directory, report, summary, JUnit, Markdown, index, exit codes.

The runner is tested with a stand-in notebook (tests/data/signoff/signoff_stub.ipynb) that
declares the sign-off's parameters and writes a summary.json of the real records: two real
kernel runs (a WARN sign-off, and a cell that fails); the other outcomes replace the papermill
run with a function that writes what the notebook would.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from eafix_capacity.cli import main
from eafix_capacity.signoff import cli as signoff_cli
from eafix_capacity.signoff import runindex
from eafix_capacity.signoff.records import GateResult

from .outputs_helpers import signoff

STUB = Path(__file__).resolve().parent.parent / "data" / "signoff" / "signoff_stub.ipynb"


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def kernel_runs(tmp_path_factory):
    """The two real papermill runs, into one reports root: a WARN sign-off with a params file
    (inline policy), --context and --usage; then a run whose cell fails."""
    tmp = tmp_path_factory.mktemp("signoff")
    (tmp / "usage").mkdir()
    params = tmp / "signoff.yaml"
    params.write_text("profile: minimum\nnode_type: n2-standard-4\npolicy:\n  usage:\n    min_samples: 10\n")
    broken = tmp / "broken.yaml"
    broken.write_text("nodes: 4\n")
    out = tmp / "reports"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(signoff_cli, "SIGNOFF_NOTEBOOK", STUB)
        warn = _main(["signoff", "--params", str(params), "--context", "prod-eu", "--usage", str(tmp / "usage"),
                      "--out", str(out)])
        failed = _main(["signoff", "--params", str(broken), "--out", str(out)])
    return {"tmp": tmp, "out": out, "warn": warn, "failed": failed}


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.notebook
def test_a_run_writes_the_report_summary_junit_markdown_and_the_index(kernel_runs):
    rc, stdout, stderr = kernel_runs["warn"]
    assert rc == 0, stderr                     # WARN, and the policy is not strict
    assert stderr == "sign-off: WARN (not passing: usage:data)\n"
    run = Path(stdout.strip()).parent
    assert re.fullmatch(r"\d{8}T\d{6}Z-\d+", run.name)
    assert sorted(p.name for p in run.iterdir()) == ["SUMMARY.md", "junit.xml", "policy.yaml", "signoff_stub.html",
                                                     "signoff_stub.ipynb", "summary.json"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "WARN"
    got = summary["parameters"]
    assert (got["profile"], got["node_type"], got["context"]) == ("minimum", "n2-standard-4", "prod-eu")
    assert got["usage"] == str(kernel_runs["tmp"] / "usage")
    assert Path(got["policy"]).name == "policy.yaml" and "min_samples: 10" in got["policy_text"]
    suite = ET.fromstring((run / "junit.xml").read_bytes())
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    md = (run / "SUMMARY.md").read_text()
    assert md.startswith("## Capacity sign-off: **WARN**")
    assert f"- Report: {run / 'signoff_stub.html'}" in md
    html = (run / "signoff_stub.html").read_text()
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    assert title.startswith("EAFIX capacity sign-off: WARN (minimum profile, gke")
    assert "SIGN-OFF WARN" in html and "GateResult(" not in html          # outputs kept, code cells left out
    assert not re.search(r"<script[^>]+src=\"https?:", html)
    assert (kernel_runs["out"] / "index.html").is_file()


@pytest.mark.notebook
def test_a_cell_error_exits_2_with_its_line_and_keeps_the_notebook_as_evidence(kernel_runs):
    rc, stdout, stderr = kernel_runs["failed"]
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    m = re.fullmatch(r"eafix-capacity: error: signoff_stub.ipynb: cell \d+ failed: RuntimeError: stub: the twin did "
                     r"not start \(the executed notebook is kept as evidence: (.+)\)\n", stderr)
    assert m, stderr
    kept = Path(m.group(1))
    assert kept.is_file() and not kept.parent.name.startswith(".")
    cells = nbformat.read(str(kept), as_version=4).cells
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in cells)
    assert "RuntimeError: stub: the twin did not start" in (kept.parent / "error.txt").read_text()
    assert not (kept.parent / "summary.json").exists()
    index = (kernel_runs["out"] / "index.html").read_text()
    assert f">{kept.parent.name}</a></td><td class=\"verdict\">failed</td>" in index
    assert "WARN</td>" in index                  # the earlier run is still listed
    assert not list(kernel_runs["out"].glob(".*.partial"))


# --- the rest without a kernel -------------------------------------------------------------------

@pytest.fixture()
def fake_notebook(monkeypatch, tmp_path):
    """Replace papermill with a function that writes the notebook's outputs for ``result["signoff"]``."""
    from eafix_capacity import report
    notebook = tmp_path / "05_upgrade_signoff.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), str(notebook))
    monkeypatch.setattr(signoff_cli, "SIGNOFF_NOTEBOOK", notebook)
    result: dict = {"signoff": signoff(), "calls": []}

    def fake_execute(source, target, parameters, *, cwd):
        result["calls"].append(parameters)
        nb = nbformat.v4.new_notebook()
        data = result["signoff"] if isinstance(result["signoff"], dict) else result["signoff"].as_dict()
        nb.cells = [nbformat.v4.new_markdown_cell(f"verdict {data.get('verdict')}")]
        nbformat.write(nb, str(target))
        report.write_summary(parameters["output_dir"], data)
    monkeypatch.setattr(report, "execute_notebook", fake_execute)
    # the HTML export, the index's chart and git are exercised by the kernel runs above; here they only cost time
    monkeypatch.setattr(report, "export_html", lambda nb, target, *, title=None: Path(target).write_text(title or ""))
    monkeypatch.setattr(runindex, "headroom_chart", lambda entries: None)
    monkeypatch.setattr(report, "git_commit", lambda: "abc123")
    return result


def test_a_fail_exits_1_and_names_the_failing_gates(fake_notebook, tmp_path):
    rc, stdout, stderr = _main(["signoff", "--out", str(tmp_path / "r")])
    assert rc == 1
    assert stderr == "sign-off: FAIL (not passing: n+1:cpu, usage:samples:risk-manager)\n"
    run = Path(stdout.strip()).parent
    assert ET.fromstring((run / "junit.xml").read_bytes()).get("failures") == "1"
    assert "Failing: n+1:cpu." in (run / "SUMMARY.md").read_text()


def test_without_params_the_defaults_sign_off_the_recommended_plan_on_its_twin(fake_notebook, tmp_path):
    from eafix_capacity.inputs import PlanParams
    fake_notebook["signoff"] = signoff((GateResult("n+1:cpu", "capacity", "PASS", "fits"),))
    rc, stdout, stderr = _main(["signoff", "--out", str(tmp_path / "r")])
    assert rc == 0 and stderr == "sign-off: PASS\n"
    (params,) = fake_notebook["calls"]
    assert {k: params[k] for k in PlanParams().notebook_parameters()} == PlanParams().notebook_parameters()
    assert params["profile"] == "recommended"
    assert (params["context"], params["kubeconfig"], params["usage"]) == ("", "", "")
    assert (Path(stdout.strip()).parent / "policy.yaml").read_text().endswith("{}\n")   # no policy given: the defaults


def test_a_warn_exits_1_when_the_policy_is_strict(fake_notebook, tmp_path):
    fake_notebook["signoff"] = signoff((GateResult("live:verify", "live", "WARN", "not judged", required=False),))
    policy = tmp_path / "strict.yaml"
    policy.write_text("strict: true\n")
    params = tmp_path / "signoff.yaml"
    params.write_text("policy: strict.yaml\n")         # relative to the params file
    rc, stdout, stderr = _main(["signoff", "--params", str(params), "--out", str(tmp_path / "r")])
    assert rc == 1 and stderr.startswith("sign-off: WARN")
    assert Path(fake_notebook["calls"][0]["policy"]).name == "policy.yaml"
    assert "strict: true" in (Path(stdout.strip()).parent / "policy.yaml").read_text()


def test_a_summary_that_is_not_a_signoff_exits_2_and_leaves_no_run(fake_notebook, tmp_path):
    fake_notebook["signoff"] = {"passed": True, "gates": []}
    out = tmp_path / "r"
    rc, _, stderr = _main(["signoff", "--out", str(out)])
    assert rc == 2 and "not a sign-off summary" in stderr and stderr.count("\n") == 1
    assert [p.name for p in out.iterdir()] == []


def test_keep_leaves_the_newest_runs(fake_notebook, tmp_path):
    out = tmp_path / "r"
    for _ in range(3):
        assert _main(["signoff", "--out", str(out), "--keep", "2"])[0] == 1
    assert len(_runs(out)) == 2


@pytest.mark.parametrize("params_text,extra,needle", [
    ("node_typ: m5.large\n", [], "signoff.yaml: node_typ: unknown parameter"),
    ("nodes: -1\n", [], "signoff.yaml: nodes: not a whole number"),
    ("policy:\n  usage:\n    min_sample: 3\n", [], "signoff.yaml: policy: usage.min_sample: unknown key"),
    ("policy: 3\n", [], "signoff.yaml: policy: not a policy"),
    ("policy: nosuch.yaml\n", [], "nosuch.yaml"),
    ("policy: bad-policy.yaml\n", [], "bad-policy.yaml: strict: not true or false"),
    ("context: ''\n", [], "signoff.yaml: context: not a non-empty string"),
    ("usage: nosuch-dir\n", [], "signoff.yaml: usage: not a directory"),
    ("", ["--usage", "nosuch-dir"], "command line: usage: not a directory"),
    ("", ["--kubeconfig", "nosuch-config"], "command line: kubeconfig: no such file"),
    ("", ["--keep", "0"], "--keep: not a number of runs to keep"),
    ("- a list\n", [], "signoff.yaml: expected a mapping"),
])
def test_bad_input_is_one_line_naming_the_file_and_key_before_anything_is_written(
        fake_notebook, tmp_path, monkeypatch, params_text, extra, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad-policy.yaml").write_text("strict: maybe\n")
    params = tmp_path / "signoff.yaml"
    params.write_text(params_text)
    out = tmp_path / "r"
    rc, stdout, stderr = _main(["signoff", "--params", str(params), "--out", str(out), *extra])
    assert rc == 2 and stdout == ""
    assert stderr.startswith("eafix-capacity: error:") and needle in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert not out.exists() and fake_notebook["calls"] == []


def test_a_missing_notebook_is_an_error_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(signoff_cli, "SIGNOFF_NOTEBOOK", tmp_path / "05_upgrade_signoff.ipynb")
    rc, _, stderr = _main(["signoff", "--out", str(tmp_path / "r")])
    assert rc == 2 and "no such notebook" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("verdict,strict,code", [("PASS", False, 0), ("PASS", True, 0), ("WARN", False, 0),
                                                 ("WARN", True, 1), ("FAIL", False, 1), ("FAIL", True, 1)])
def test_exit_codes(verdict, strict, code):
    assert signoff_cli.exit_code(verdict, strict=strict) == code
