"""`eafix-capacity report`: papermill run, HTML without code, summary.json, exit codes."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
from dataclasses import fields
from html.parser import HTMLParser
from pathlib import Path

import pytest

from eafix_capacity.cli import main

pytestmark = pytest.mark.notebook


def test_report_writes_notebook_html_and_summary(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out), "--profile", "minimum", "--node-type", "n2-standard-4"]) == 0
    runs = list(out.iterdir())
    assert len(runs) == 1 and re.fullmatch(r"\d{8}T\d{6}Z-1", runs[0].name), runs
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


def test_fail_on_gate_exits_1_and_keeps_the_evidence(failing_report):
    assert failing_report["rc"] == 1
    err = failing_report["stderr"]
    assert "gates failed:" in err and "profile-cpu" in err
    summary = failing_report["summary"]
    assert summary["cluster"]["nodes"] == 2
    assert not summary["passed"]
    assert (failing_report["run"] / "01_capacity_model.html").exists()


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


def test_report_honours_max_pods_and_replicas(failing_report):
    from eafix_capacity.inputs import PlanParams, plan_from_params
    summary = failing_report["summary"]
    assert summary["inputs"]["max_pods"] == 12
    assert summary["cluster"]["per_node"]["max_pods"] == 12
    assert {s["name"]: s["replicas"] for s in summary["services"]}["reporter"] == 2
    expected = plan_from_params(PlanParams(catalog=str(failing_report["catalog"]), nodes=2, max_pods=12,
                                           replicas={"reporter": 2})).to_dict()
    assert summary["cluster"]["recommended_nodes"] == expected["cluster"]["recommended_nodes"]
    assert summary["gates"] == expected["gates"]
    # the HTML is the evidence a change request carries: every gate's detail in full
    import html
    for gate in summary["gates"]:
        assert html.escape(gate["detail"], quote=False) in failing_report["text"], gate["detail"]


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
    _stub_notebook(monkeypatch)  # the rename is under test, not the notebook
    out = tmp_path / "reports"
    assert main(["report", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot move the finished report into place (Directory not empty)" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ run directories


def _stub_notebook(monkeypatch, *, barrier=None):
    """Replace the papermill run with one that writes what the notebook would (fast),
    meeting the other runs at ``barrier`` so they overlap."""
    import nbformat

    from eafix_capacity import report

    def fake_execute(source, target, parameters, *, cwd):
        if barrier is not None:
            barrier.wait(timeout=30)
        out = Path(parameters["output_dir"])
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"run for {parameters['profile']}")]
        nbformat.write(nb, str(target))
        if barrier is not None:
            barrier.wait(timeout=30)
        report.write_summary(out, {"inputs": {"profile": parameters["profile"]}, "gates": [],
                                   "evidence": {"title": f"stub {parameters['profile']}"}})
    monkeypatch.setattr(report, "execute_notebook", fake_execute)


def test_concurrent_runs_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    import threading
    from datetime import datetime, timezone

    from eafix_capacity.inputs import PlanParams
    from eafix_capacity.report import run_report
    barrier = threading.Barrier(2)
    _stub_notebook(monkeypatch, barrier=barrier)
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    results: dict[str, object] = {}

    def run(profile):
        try:
            results[profile] = run_report(PlanParams(profile=profile), out_root=tmp_path, now=now)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[profile] = e
            barrier.abort()
    threads = [threading.Thread(target=run, args=(p,)) for p in ("minimum", "recommended")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    mine, theirs = results["minimum"], results["recommended"]
    assert not isinstance(mine, BaseException), mine
    assert not isinstance(theirs, BaseException), theirs
    assert mine.directory != theirs.directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261201T120000Z-1", "20261201T120000Z-2"]
    for profile, result in results.items():
        assert json.loads(result.summary.read_text())["inputs"]["profile"] == profile
        assert result.html.parent == result.directory and f"run for {profile}" in result.html.read_text()


def test_a_finished_directory_of_the_same_second_is_never_reused(tmp_path):
    from eafix_capacity.report import reserve_run_dirs
    (tmp_path / "20261201T120000Z-1").mkdir()
    (tmp_path / ".20261201T120000Z-2.partial").mkdir()   # a live run holds -2
    dirs = reserve_run_dirs(tmp_path, "20261201T120000Z")
    assert dirs.final.name == "20261201T120000Z-3" and not dirs.final.exists()
    assert dirs.work.name == ".20261201T120000Z-3.partial" and dirs.work.is_dir()
    assert (dirs.work / ".owner").read_text().split()[0] == str(os.getpid())


def _dead_pid() -> int:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_partial_directories_of_dead_runs_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    import socket
    import time

    from eafix_capacity.inputs import PlanParams
    from eafix_capacity.report import ORPHAN_AGE_S, run_report
    host = socket.gethostname()
    dead = tmp_path / ".20261130T000000Z-1.partial"
    live = tmp_path / ".20261130T000000Z-2.partial"
    other_host = tmp_path / ".20261130T000000Z-3.partial"
    old_orphan = tmp_path / ".20261130T000000Z-4.partial"
    new_orphan = tmp_path / ".20261130T000000Z-5.partial"
    for d in (dead, live, other_host, old_orphan, new_orphan):
        d.mkdir()
        (d / "01_capacity_model.ipynb").write_text("{}")
    (dead / ".owner").write_text(f"{_dead_pid()} {host}\n")
    (live / ".owner").write_text(f"{os.getpid()} {host}\n")
    (other_host / ".owner").write_text(f"{_dead_pid()} not-{host}\n")
    stale = time.time() - ORPHAN_AGE_S - 60
    os.utime(old_orphan, (stale, stale))
    _stub_notebook(monkeypatch)
    result = run_report(PlanParams(), out_root=tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, other_host.name, new_orphan.name, result.directory.name])


def test_report_files_are_readable_with_the_users_umask(tmp_path, monkeypatch):
    from eafix_capacity.inputs import PlanParams
    from eafix_capacity.report import run_report
    _stub_notebook(monkeypatch)
    old = os.umask(0o022)
    try:
        result = run_report(PlanParams(), out_root=tmp_path / "r")
    finally:
        os.umask(old)
    for path in (result.html, result.summary):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert sorted(p.name for p in result.directory.iterdir()) == [
        "01_capacity_model.html", "01_capacity_model.ipynb", "summary.json"]


def test_atomic_writes_apply_the_umask_to_the_mode(tmp_path):
    from eafix_capacity.fsio import atomic_write_text
    old = os.umask(0o027)
    try:
        shared = atomic_write_text(tmp_path / "shared.txt", "x", mode=0o666)
        private = atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


# ------------------------------------------------------------------ the HTML as evidence


class _Page(HTMLParser):
    """Title, the text of each element with a class, tables as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.scripts: list[dict[str, str | None]] = []
        self.tables: list[dict] = []
        self._stack: list[tuple[str, dict]] = []
        self.classed: dict[str, list[str]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "table":
            self.tables.append({"class": a.get("class") or "", "head": [], "rows": [], "body_th": 0})
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag in ("td", "th") and self.tables:
            in_head = any(t == "thead" for t, _ in self._stack)
            table = self.tables[-1]
            if in_head:
                table["head"].append("")
            else:
                table["rows"][-1].append("")
                table["body_th"] += tag == "th"
        self._stack.append((tag, a))

    def handle_endtag(self, tag):
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        if not self._stack:
            return
        tag, a = self._stack[-1]
        if tag == "title":
            self.title += data
        for t, attrs in self._stack:
            for cls in (attrs.get("class") or "").split():
                self.classed.setdefault(cls, []).append(data)
        if any(t in ("td", "th") for t, _ in self._stack) and self.tables:
            in_head = any(t == "thead" for t, _ in self._stack)
            table = self.tables[-1]
            if in_head:
                table["head"][-1] += data
            elif table["rows"] and table["rows"][-1]:
                table["rows"][-1][-1] += data


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory):
    """One real run (report runs are the suite's slowest tests, so several tests share it): a
    copied catalogue (its own path and hash) on too few nodes, with --max-pods, --replicas and
    --fail-on-gate."""
    import shutil

    from eafix_capacity.paths import data_file
    tmp = tmp_path_factory.mktemp("evidence")
    catalog = tmp / "my services.yaml"
    shutil.copy(data_file("services.yaml"), catalog)
    out = tmp / "reports"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["report", "--out", str(out), "--catalog", str(catalog), "--nodes", "2",
                   "--replicas", "reporter=2", "--max-pods", "12", "--fail-on-gate"])
    (run,) = out.iterdir()
    text = (run / "01_capacity_model.html").read_text()
    page = _Page()
    page.feed(text)
    for table in page.tables:
        table["rows"] = [r for r in table["rows"] if r]   # the header's row
    return {"catalog": catalog, "run": run, "text": text, "page": page, "rc": rc, "stderr": err.getvalue(),
            "summary": json.loads((run / "summary.json").read_text())}


def test_html_title_and_verdict_name_the_report_and_its_result(failing_report):
    page, summary = failing_report["page"], failing_report["summary"]
    assert summary["passed"] is False
    assert page.title.startswith("EAFIX capacity report: FAIL (2 x n2-standard-8 on gke")
    assert [t.strip() for t in page.classed["eafix-verdict"]] == ["FAIL"]
    text = failing_report["text"]
    failed = [g["name"] for g in summary["gates"] if not g["passed"]]
    assert failed
    # the failing gates come first: before the verdict's inputs, and before any table of services
    failing_table = next(t for t in page.tables if "eafix-failed" in t["class"])
    assert [r[0] for r in failing_table["rows"] if r] == failed
    assert text.index("eafix-failed") < text.index("eafix-inputs") < text.index("data-ingestor")


def test_html_inputs_name_every_parameter_the_catalogue_and_its_hash(failing_report):
    import hashlib
    import shlex
    from importlib.metadata import version

    from eafix_capacity.cli import build_parser, params_from_args
    from eafix_capacity.inputs import PlanParams
    page = failing_report["page"]
    inputs = next(t for t in page.tables if "eafix-inputs" in t["class"])
    rows = {r[0]: r[1] for r in inputs["rows"] if r}
    for name in (f.name for f in fields(PlanParams)):
        assert name in rows, name
    catalog = failing_report["catalog"]
    digest = hashlib.sha256(catalog.read_bytes()).hexdigest()
    assert str(catalog.resolve()) in rows["catalogue file"] and digest in rows["catalogue file"]
    assert rows["kit version"] == version("eafix-capacity")
    assert re.fullmatch(r"[0-9a-f]{40}( \(with uncommitted changes\))?|not a git checkout", rows["git commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", rows["generated (UTC)"])
    assert rows["nodes"].startswith("2 (given)") and rows["replicas"] == "reporter=2"
    # the command reproduces the same parameters
    argv = shlex.split(rows["reproduce with"])
    assert argv[:2] == ["eafix-capacity", "report"]
    again = params_from_args(build_parser().parse_args(argv[1:]))
    assert again == PlanParams(catalog=str(catalog), nodes=2, replicas={"reporter": 2}, max_pods=12)
    assert failing_report["summary"]["evidence"]["command"] == rows["reproduce with"]


def test_html_is_self_contained_and_its_tables_are_whole(failing_report):
    page, text = failing_report["page"], failing_report["text"]
    assert not [s for s in page.scripts if (s.get("src") or "").startswith(("http:", "https:", "//"))]
    assert "cdnjs" not in text and "require.js" not in text and "mathjax" not in text.lower()
    assert "<NA>" not in text and "&lt;NA&gt;" not in text and ">NaN<" not in text and ">None<" not in text
    assert 'class="dataframe"' not in text          # every table is the kit's, without an index column
    images = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    data_tables = [t for t in page.tables if "eafix-inputs" not in t["class"]]
    assert len(data_tables) >= 7
    for t in data_tables:
        assert t["body_th"] == 0 and all(h.strip() for h in t["head"]), t["head"]
    services = next(t for t in data_tables if "service" in t["head"] and "tier" in t["head"])
    assert "CPU request (cores/pod)" in services["head"] and "memory limit (MiB/pod)" in services["head"]
    assert len([r for r in services["rows"] if r]) == 14
    # nothing cut off: every pod of the scheduler's placement is listed in full
    pods = {p for t in data_tables if "pods on the node" in t["head"] for r in t["rows"] if r
            for p in r[-1].split(", ")}
    assert {"reporter-0", "reporter-1", "postgres-0"} <= pods
    assert "..." not in "".join(r[-1] for t in data_tables if "pods on the node" in t["head"] for r in t["rows"])


def test_html_scenarios_say_where_headroom_applies(failing_report):
    page = failing_report["page"]
    t = next(t for t in page.tables if "headroom kept per node (%)" in t["head"])
    col = t["head"].index("headroom kept per node (%)")
    kept = {r[0]: r[col] for r in t["rows"] if r}
    assert kept == {"baseline": "20", "hpa-max": "0", "rollout": "0", "node-drain": "0"}


def test_git_commit_outside_a_checkout_is_none_without_an_error(tmp_path, monkeypatch):
    import subprocess

    from eafix_capacity.paths import ROOT
    from eafix_capacity.report import git_commit
    assert git_commit(tmp_path) is None
    if (ROOT / ".git").exists():
        assert re.match(r"[0-9a-f]{40}", git_commit(ROOT) or "")

        def no_git(*a, **k):
            raise FileNotFoundError(2, "No such file or directory", "git")
        monkeypatch.setattr(subprocess, "run", no_git)
        assert git_commit(ROOT) is None


def test_sha256_of_a_manifests_directory_changes_with_any_file(tmp_path):
    from eafix_capacity.report import sha256_of
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.yml").write_text("kind: Service\n")
    first = sha256_of(tmp_path)
    (tmp_path / "a" / "x.yml").write_text("kind: Service \n")
    assert sha256_of(tmp_path) != first


def test_the_reproduce_command_of_every_option_parses_back_through_report(tmp_path):
    import shlex

    from eafix_capacity.inputs import PlanParams
    from eafix_capacity.cli import build_parser, params_from_args
    from eafix_capacity.report import reproduce_command
    (tmp_path / "m").mkdir()
    params = PlanParams(manifests=str(tmp_path / "m"), ignore_unknown_kinds=True, nodes=4, storage_gib=250.5,
                        max_pods=64, mesh="istio", provider="eks", node_type="m5.2xlarge",
                        replicas={"reporter": 3, "gui-gateway": 2})
    argv = shlex.split(reproduce_command(params))
    assert argv[:2] == ["eafix-capacity", "report"]
    assert params_from_args(build_parser().parse_args(argv[1:])) == params
