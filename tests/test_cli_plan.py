"""``eafix-capacity plan``: formats, help, bad input (one line, exit 2) and gate exits.

Runs ``cli.main`` in-process; one subprocess run proves the installed console script.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from eafix_capacity import cli
from eafix_capacity.inputs import PlanParams
from eafix_capacity.paths import ROOT, data_file

GATES = ["profile-cpu", "profile-memory", "profile-storage", "baseline-headroom", "hpa-max", "rollout",
         "node-drain", "storage-claims", "cpu-limit-overcommit", "memory-limit-overcommit"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, out: str, err: str) -> str:
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("eafix-capacity: error: ")
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ help


def test_help_lists_plan_and_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "plan" in out and "report" in out
    assert "size the cluster" in out
    assert "papermill" in out


def test_plan_help_lists_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["plan", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--profile", "--provider", "--node-type", "--nodes", "--mesh", "--format", "--fail-on-gate"):
        assert flag in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys)
    assert rc == 2
    assert "plan" in out and "report" in out


# ------------------------------------------------------------------ formats


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "plan", "--profile", "recommended", "--provider", "gke",
                       "--node-type", "n2-standard-8", "--format", "json")
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert len(d["services"]) == 14
    gen = next(s for s in d["services"] if s["name"] == "signal-generator")
    assert (gen["port"], gen["replicas"], gen["cpu_request_m"], gen["memory_request_bytes"],
            gen["cpu_limit_m"], gen["memory_limit_bytes"]) == (8083, 2, 200, 256 * 2**20, 500, 512 * 2**20)
    assert d["totals"]["cpu_request_m"] == sum(s["cpu_request_m"] * s["replicas"] for s in d["services"])
    assert d["totals"]["memory_limit_bytes"] == sum(s["memory_limit_bytes"] * s["replicas"]
                                                    for s in d["services"])
    assert list(d["scenarios"]) == ["baseline", "hpa-max", "rollout", "node-drain"]
    assert [g["name"] for g in d["gates"]] == GATES
    assert d["inputs"]["node_type"] == "n2-standard-8" and d["inputs"]["provider"] == "gke"


def test_json_with_mesh_nodes_and_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--format", "json", "--mesh", "istio", "--nodes", "4",
                     "--replicas", "reporter=3", "--replicas", "signal-generator=4")
    assert rc == 0
    d = json.loads(out)
    assert d["inputs"]["mesh"] == "istio" and d["inputs"]["nodes"] == 4
    assert d["cluster"]["nodes"] == 4
    replicas = {s["name"]: s["replicas"] for s in d["services"]}
    assert replicas["reporter"] == 3 and replicas["signal-generator"] == 4
    own = sum(s["cpu_request_m"] * s["replicas"] for s in d["services"])
    pods = sum(replicas.values())
    assert d["totals"]["cpu_request_m"] == own + 100 * pods + 500 + 100   # sidecars, istiod, gateway


def test_table_format(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "plan")
    assert rc == 0 and err == ""
    for name in ("data-ingestor", "compliance-monitor", "postgres", "node-drain", "hpa-max", *GATES):
        assert name in out
    assert "PASS" in out
    assert out.rstrip().splitlines()[-1] == "nodes: 3 x n2-standard-8 (gke); recommended: 3; overall: PASS"


def test_table_shows_failures(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--nodes", "1")
    assert rc == 0
    assert "FAIL" in out
    assert out.rstrip().endswith("overall: FAIL")


def test_csv_format(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "plan", "--format", "csv", "--profile", "minimum", "--provider", "eks",
                       "--node-type", "m5.xlarge")
    assert rc == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 14
    assert {"service", "port", "replicas", "cpu_request", "cpu_limit"} <= set(rows[0])
    risk = next(r for r in rows if r["service"] == "risk-manager")
    assert (risk["port"], float(risk["cpu_request"]), float(risk["mem_limit_mib"])) == ("8084", 0.3, 1024.0)


# ------------------------------------------------------------------ bad input


def bad_catalog(tmp_path: Path) -> Path:
    doc = yaml.safe_load(data_file("services.yaml").read_text(encoding="utf-8"))
    next(s for s in doc["services"] if s["name"] == "reporter")["containers"][0]["limits"]["memory"] = "1.1.M"
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


BAD = [
    ("unknown-profile", ["--profile", "maximum"], ["profile", "'maximum'", "minimum, recommended"]),
    ("unknown-provider", ["--provider", "openshift"], ["provider", "'openshift'", "gke, eks, aks, generic"]),
    ("unknown-node-type", ["--node-type", "n2-standard-80"], ["node type", "'n2-standard-80'", "n2-standard-8"]),
    ("node-type-of-another-cloud", ["--provider", "aks"], ["aks", "n2-standard-8", "provider generic"]),
    ("unknown-mesh", ["--mesh", "linkerd"], ["mesh", "'linkerd'", "none, istio"]),
    ("unknown-service", ["--replicas", "risk-manger=2"], ["unknown service", "'risk-manger'", "risk-manager"]),
    ("negative-replicas", ["--replicas", "reporter=-1"], ["reporter", "replicas", "-1", "0 or more"]),
    ("replicas-not-a-number", ["--replicas", "reporter=two"], ["'reporter=two'", "SERVICE=N"]),
    ("replicas-above-hpa", ["--replicas", "signal-generator=11"], ["signal-generator", "11", "max_replicas 10"]),
    ("negative-nodes", ["--nodes", "-3"], ["nodes", "-3", "at least 1"]),
    ("zero-nodes", ["--nodes", "0"], ["nodes", "0", "at least 1"]),
    ("headroom-100", ["--headroom", "100"], ["headroom", "100"]),
    ("negative-storage", ["--storage-gib", "-5"], ["storage_gib", "-5", "0 or more"]),
    ("zero-ratio", ["--cpu-limit-ratio", "0"], ["cpu_limit_ratio", "above 0"]),
    ("too-few-pods-per-node", ["--max-pods", "2"], ["DaemonSets", "pod slots"]),
    ("missing-catalogue", ["--catalog", "{tmp}/nope.yaml"], ["{tmp}/nope.yaml", "file not found"]),
    ("bad-catalogue", ["--catalog", "{bad}"],
     ["{bad}", "reporter", "containers[0].limits.memory", "'1.1.M'", "Kubernetes quantity"]),
    ("invalid-yaml-catalogue", ["--catalog", "{broken}"], ["{broken}", "line 2, column 1", "invalid YAML"]),
    ("catalogue-is-a-directory", ["--catalog", "{tmp}"], ["{tmp}", "cannot read"]),
    ("bad-flag-value", ["--nodes", "three"], ["--nodes", "'three'", "eafix-capacity plan --help"]),
    ("bad-format", ["--format", "xml"], ["--format", "'xml'"]),
    ("unknown-flag", ["--nodez", "3"], ["--nodez"]),
    # beyond what a Kubernetes cluster supports: refused before anything is allocated
    ("a-billion-nodes", ["--nodes", "1000000000"],
     ["command line: nodes: too many nodes 1000000000", "at most 5,000",
      "Kubernetes supports at most 5,000 nodes per cluster", "Considerations for large clusters"]),
    ("a-billion-pods-per-node", ["--max-pods", "1000000000"],
     ["max_pods", "1000000000", "Kubernetes supports at most 150,000 pods per cluster"]),
    ("a-hundred-million-replicas", ["--replicas", "reporter=100000000"],
     ["reporter: replicas: too many replicas 100000000", "Kubernetes supports at most 150,000 pods per cluster"]),
    ("replicas-past-the-pod-limit-in-all", ["--replicas", "reporter=100000", "--replicas", "grafana=100000"],
     ["replicas override: the services run 200,0", "150,000 pods per cluster"]),
    ("replicas-million-digits", ["--replicas", "reporter=" + "9" * 5000], ["invalid --replicas", "SERVICE=N"]),
    ("replicas-superscript", ["--replicas", "reporter=²"], ["invalid --replicas", "'reporter=²'"]),
    # numbers that are not finite
    ("storage-nan", ["--storage-gib", "nan"], ["storage_gib: not a finite number nan", "0 or more",
                                               "leave the flag out for the default"]),
    ("storage-inf", ["--storage-gib", "inf"], ["storage_gib: not a finite number inf"]),
    ("headroom-nan", ["--headroom", "nan"], ["headroom_pct: not a finite number nan", "from 0 up to"]),
    ("headroom-minus-inf", ["--headroom=-inf"], ["headroom_pct: not a finite number -inf"]),
    ("cpu-ratio-inf", ["--cpu-limit-ratio", "inf"], ["cpu_limit_ratio: not a finite number inf", "above 0"]),
    ("memory-ratio-nan", ["--memory-limit-ratio", "nan"], ["memory_limit_ratio: not a finite number nan"]),
]


@pytest.mark.parametrize(("args", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          args: list[str], fragments: list[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("services:\n\t- name: x\n", encoding="utf-8")     # a tab on line 2
    subst = {"tmp": str(tmp_path), "bad": str(bad_catalog(tmp_path)), "broken": str(broken)}
    args = [a.format(**subst) for a in args]
    try:
        rc = cli.main(["plan", *args])
    except SystemExit as e:     # argparse's own errors leave through SystemExit
        assert isinstance(e.code, int)
        rc = e.code
    out, err = capsys.readouterr()
    line = assert_one_line_error(rc, out, err)
    for f in fragments:
        assert f.format(**subst) in line, line


def test_bad_input_writes_nothing_on_stdout_even_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "plan", "--format", "json", "--profile", "huge"))


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["plna"])
    out, err = capsys.readouterr()
    assert isinstance(e.value.code, int)
    assert_one_line_error(e.value.code, out, err)
    assert "'plna'" in err


# ------------------------------------------------------------------ gates and exits


def test_fail_on_gate_exits_1_when_a_gate_fails(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "plan", "--nodes", "1", "--fail-on-gate", "--format", "json")
    assert rc == 1
    d = json.loads(out)
    assert d["passed"] is False
    assert not next(g for g in d["gates"] if g["name"] == "node-drain")["passed"]


def test_fail_on_gate_exits_0_when_every_gate_passes(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--fail-on-gate", "--format", "json")
    assert rc == 0
    assert json.loads(out)["passed"] is True


def test_failed_gates_exit_0_without_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "plan", "--storage-gib", "1", "--format", "json")
    assert rc == 0
    failed = {g["name"] for g in json.loads(out)["gates"] if not g["passed"]}
    assert failed == {"profile-storage", "storage-claims"}


def test_recommended_count_is_the_default_and_explicit_count_overrides(capsys) -> None:
    _, out, _ = run(capsys, "plan", "--format", "json", "--node-type", "n2-standard-4")
    rec = json.loads(out)["cluster"]
    assert rec["nodes"] == rec["recommended_nodes"] and rec["nodes_given"] is False
    _, out, _ = run(capsys, "plan", "--format", "json", "--node-type", "n2-standard-4",
                    "--nodes", str(rec["recommended_nodes"] + 2))
    given = json.loads(out)["cluster"]
    assert given["nodes"] == rec["recommended_nodes"] + 2 and given["nodes_given"] is True
    assert given["recommended_nodes"] == rec["recommended_nodes"]


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(monkeypatch, capsys) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["plan", "--format", "json"]) == cli.EXIT_BROKEN_PIPE


# ------------------------------------------------------------------ the console script


def test_console_script_prints_the_plan_as_json() -> None:
    # the script installed beside the interpreter running the tests (.venv/bin under make)
    exe = Path(sys.executable).parent / "eafix-capacity"
    assert exe.exists(), exe
    proc = subprocess.run([str(exe), "plan", "--format", "json", "--profile", "minimum"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    d = json.loads(proc.stdout)
    assert d["inputs"]["profile"] == "minimum"
    assert len(d["services"]) == 14 and d["passed"] is True


def test_a_bad_replicas_flag_is_blamed_on_the_override_not_the_file(capsys) -> None:
    assert cli.main(["plan", "--replicas", "reporter=-1"]) == 2
    err = capsys.readouterr().err
    assert "command line: reporter: replicas: negative replicas -1" in err
    assert "services.yaml" not in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--node-type", "n2-standard-9"], "data/node-types.csv: node_type: unknown node type 'n2-standard-9'"),
    (["--profile", "huge"], "data/profiles.yaml: profile: unknown profile 'huge'; one of: minimum, recommended"),
])
def test_an_unknown_name_names_the_file_that_lists_the_valid_ones(capsys, argv, needle) -> None:
    assert cli.main(["plan", *argv]) == 2
    assert needle in capsys.readouterr().err


# ------------------------------------------------------------------ bad services files


def services_file(tmp_path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    doc = yaml.safe_load(data_file("services.yaml").read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def reporter(doc: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in doc["services"] if s["name"] == "reporter")


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda d: reporter(d)["containers"][0]["requests"].update(memory="256m"),
     ["reporter: containers[0].requests.memory", "'256m'", "did you mean 256Mi?"]),
    (lambda d: reporter(d)["containers"][0]["limits"].update(gpu=1),
     ["reporter: containers[0].limits.gpu: unknown resource name 'gpu'", "cpu or memory", "nvidia.com/gpu"]),
    (lambda d: reporter(d)["containers"][0]["limits"].update({"nvidia.com/gpu": 1}),
     ["containers[0].limits.nvidia.com/gpu: an extended resource", "left out of the plan"]),
    (lambda d: d.update(services=[]), ["services: empty catalogue: no services"]),
    (lambda d: d.update(defaults={}), ["defaults: unknown top-level key 'defaults'", "one of: services"]),
    (lambda d: reporter(d).update(name="Reporter"), ["Reporter: name: service not a DNS label"]),
    (lambda d: reporter(d).update(replicas=10**7),
     ["reporter: replicas: too many replicas 10000000", "150,000 pods per cluster"]),
    (lambda d: next(s for s in d["services"] if s["name"] == "signal-generator")["hpa"].update(
        max_replicas=10**7), ["signal-generator: hpa.max_replicas", "10000000", "150,000 pods per cluster"]),
], ids=["memory-millibytes", "gpu", "extended-resource", "empty", "unknown-top-key", "service-name",
        "ten-million-replicas", "ten-million-hpa-max"])
def test_a_bad_services_file_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   change: Callable[[dict[str, Any]], object],
                                                   fragments: list[str]) -> None:
    path = services_file(tmp_path, change)
    line = assert_one_line_error(*run(capsys, "plan", "--catalog", str(path)))
    assert line.startswith(f"eafix-capacity: error: {path}: "), line
    for f in fragments:
        assert f in line, (f, line)


@pytest.mark.parametrize("text", [
    "services: " + "[" * 5000 + "]" * 5000 + "\n",
    "".join("  " * i + "services:\n" for i in range(5000)),
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n" for i in range(1, 9))
    + "services: *a8\n",
], ids=["5000-deep-flow", "5000-deep-block", "billion-laughs"])
def test_a_hostile_services_file_is_one_short_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   text: str) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(text, encoding="utf-8")
    line = assert_one_line_error(*run(capsys, "plan", "--catalog", str(path)))
    assert line.startswith(f"eafix-capacity: error: {path}: "), line
    assert "invalid YAML" in line and len(line) < 400, line


# ------------------------------------------------------------------ report: checked before anything exists


def params_yaml(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("args", "fragments"), [
    (["--storage-gib", "nan"], ["command line: storage_gib: not a finite number nan"]),
    (["--nodes", "1000000000"], ["nodes: too many nodes", "5,000 nodes per cluster"]),
    (["--params", "{params}"], ["{params}: headroom_pct: not a finite number inf"]),
    (["--params", "{params_nodes}"], ["{params_nodes}: nodes: not a whole number of at least 1 'three'",
                                      "null or leave it out for the default"]),
    (["--params", "{params_mesh}"], ["{params_mesh}: mesh: unknown mesh 3"]),
    (["--params", "{params_profile}"], ["{params_profile}: profile: null, not a name"]),
    (["--catalog", "{empty}"], ["services: empty catalogue"]),
])
def test_report_refuses_bad_input_before_the_output_directory_exists(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    subst = {
        "params": str(params_yaml(tmp_path / "inf", "headroom_pct: .inf\n")),
        "params_nodes": str(params_yaml(tmp_path / "nodes", 'nodes: "three"\n')),
        "params_mesh": str(params_yaml(tmp_path / "mesh", "mesh: 3\n")),
        "params_profile": str(params_yaml(tmp_path / "profile", "profile: null\n")),
        "empty": str(services_file(tmp_path, lambda d: d.update(services=[]))),
    }
    out_root = tmp_path / "R"
    argv = ["report", *[a.format(**subst) for a in args], "--out", str(out_root)]
    line = assert_one_line_error(*run(capsys, *argv))
    for f in fragments:
        assert f.format(**subst) in line, (f, line)
    assert not out_root.exists()


def test_report_passes_absolute_paths_to_the_kernel(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook runs with notebooks/ as its working directory: a relative --catalog
    must reach it already resolved against the caller's directory."""
    import eafix_capacity.report as report

    seen: dict[str, dict[str, Any]] = {}

    def fake_run_report(params: PlanParams, **kwargs: Any) -> None:
        seen["params"] = params.notebook_parameters()
        raise cli.InputError("stop here")

    services_file(tmp_path, lambda d: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "run_report", fake_run_report)
    assert run(capsys, "report", "--catalog", "services.yaml")[0] == 2
    assert seen["params"]["catalog"] == str(tmp_path / "services.yaml")
    # and plan reads the same file from there
    rc, out, _ = run(capsys, "plan", "--catalog", "services.yaml", "--format", "json")
    assert rc == 0 and json.loads(out)["inputs"]["catalog"] == str(tmp_path / "services.yaml")
