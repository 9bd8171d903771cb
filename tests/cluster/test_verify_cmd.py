"""``eafix-capacity verify`` end to end: the committed ``manifests/recommended`` applied to the
sim with the real kubectl, then read through the official client and compared with the plan.

One sim for the module (3 n2-standard-8 nodes, the plan's default), on a ten-times clock from
the trading-day morning as the seed-sequence tests run it, so probes pass in seconds. The
drift test repairs what it changed (and moves the sim clock on for the new pod's probes), so
the tests hold in any order.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from eafix_capacity.cli import main
from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

# the seed's order (storage, secrets, configmaps, workloads, services), with the monitoring
# directory whose claims the plan counts; kubectl applies the -f arguments in the order given
DIRECTORIES = ("namespaces/", "storage/", "secrets/", "configmaps/", "deployments/", "services/", "monitoring/")
NS = "eafix-trading"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    home = tmp_path_factory.mktemp("verify-cmd")
    with SimCluster(kubeconfig=home / "kubeconfig", speed=10, clock_start=TRADING_DAY_START, nodes=3,
                    node_type="n2-standard-8") as cluster:
        args = [a for d in DIRECTORIES for a in ("-f", d)]
        done = subprocess.run(["kubectl", f"--kubeconfig={cluster.kubeconfig}", f"--cache-dir={home / 'cache'}",
                               "apply", *args], cwd=MANIFESTS_DIR / "recommended", capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        cluster.settle()
        assert cluster.clock is not None
        cluster.clock.advance(30)  # past every readiness probe's delay, however busy the machine is
        cluster.settle()
        yield cluster


def _kubectl(sim: SimCluster, *args: str) -> str:
    return run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "cache").stdout


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _on(sim: SimCluster, *more: str) -> list[str]:
    return ["--context", "eafix-sim", "--kubeconfig", str(sim.kubeconfig), "--profile", "recommended", *more]


def _rows(table: str) -> list[str]:
    """The table's data rows (before the blank line and the summary)."""
    return table.split("\n\n")[0].splitlines()[1:]


def _statuses_and_names(table: str) -> list[tuple[str, str]]:
    """(status, name) of each row: the first two cells, which hold no spaces."""
    return [(r.split()[0], r.split()[1]) for r in _rows(table)]


# -- a cluster that runs the plan --------------------------------------------------------------

def test_applied_rendering_passes_every_check_in_the_table(sim, capsys):
    code, out, err = _verify(capsys, *_on(sim))
    assert code == 0, out
    # the target is named on stderr, one line, before the read
    assert len(err) == 1 and err[0].startswith('verify: context "eafix-sim" (the sim): cluster "eafix-sim" at '
                                               f"{sim.url}")
    header = out.splitlines()[0].split()
    assert header == ["status", "name", "subject", "expected", "actual", "evidence"]
    rows = _statuses_and_names(out)
    assert rows and {status for status, _ in rows} == {"PASS"}
    names = {name for _, name in rows}
    assert names >= {"node-count", "node-allocatable", "replicas-ready", "hpa", "resources", "image", "pdb",
                     "pod-pending", "node-requests", "spread", "claim", "quota"}
    assert out.rstrip().splitlines()[-1] == f"{len(rows)} checks: {len(rows)} PASS, 0 WARN, 0 FAIL; overall: PASS"


def test_json_names_the_cluster_identity_and_every_check_passes(sim, capsys):
    code, out, _ = _verify(capsys, *_on(sim, "--format", "json"))
    assert code == 0
    doc = json.loads(out)
    uid = _kubectl(sim, "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}")
    assert doc["target"]["identity"] == uid and doc["target"]["is_sim"] is True
    assert (doc["result"], doc["exit_code"], doc["counts"]["FAIL"], doc["counts"]["WARN"]) == ("PASS", 0, 0, 0)
    assert doc["checks"] and {c["status"] for c in doc["checks"]} == {"PASS"}
    nodes = _kubectl(sim, "get", "nodes", "-o", "name").split()
    assert {c["subject"] for c in doc["checks"] if c["name"] == "node-ready"} == {n.split("/")[1] for n in nodes}


def test_a_warning_exits_1_only_with_fail_on_warn(sim, capsys, tmp_path):
    # the plan in a params file says 2 nodes; the cluster runs 3: more than planned is a WARN
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "recommended", "nodes": 2}))
    base = ["--context", "eafix-sim", "--kubeconfig", str(sim.kubeconfig), "--plan-params", str(params),
            "--format", "json"]
    code, out, _ = _verify(capsys, *base)
    doc = json.loads(out)
    warned = [c for c in doc["checks"] if c["status"] != "PASS"]
    assert [(c["name"], c["status"], c["expected"], c["actual"]) for c in warned] == [
        ("node-count", "WARN", "2", "3")]
    assert code == 0 and doc["result"] == "WARN"
    code, out, _ = _verify(capsys, *base, "--fail-on", "WARN")
    assert code == 1 and json.loads(out)["exit_code"] == 1
    code, _, _ = _verify(capsys, *base, "--fail-on", "FAIL")
    assert code == 0
    # a flag overrides the params file: the plan's 3 nodes again, nothing to warn about
    code, _, _ = _verify(capsys, *base, "--nodes", "3", "--fail-on", "WARN")
    assert code == 0


def test_a_scaled_down_deployment_fails_with_the_check_and_its_evidence(sim, capsys):
    _kubectl(sim, "scale", "deployment", "risk-manager", "--replicas=1", "-n", NS)
    try:
        sim.settle()
        code, out, _ = _verify(capsys, *_on(sim))
        assert code == 1
        failing = [r for r in _rows(out) if r.split()[0] == "FAIL"]
        assert len(failing) == 1
        row = r"FAIL +replicas-desired +Deployment/risk-manager +2 +1 +spec.replicas=1"
        assert re.fullmatch(row, failing[0].strip())
        assert out.rstrip().splitlines()[-1].endswith("overall: FAIL (exit 1: replicas-desired)")
        code, out, _ = _verify(capsys, *_on(sim, "--format", "json"))
        doc = json.loads(out)
        assert code == 1 and doc["result"] == "FAIL"
        assert [c["subject"] for c in doc["checks"] if c["status"] == "FAIL"] == ["Deployment/risk-manager"]
    finally:
        _kubectl(sim, "scale", "deployment", "risk-manager", "--replicas=2", "-n", NS)
        sim.settle()
        assert sim.clock is not None
        sim.clock.advance(300)   # the new replica's probes pass on the sim clock
        sim.settle()
    code, out, _ = _verify(capsys, *_on(sim))
    assert code == 0, [r for r in _rows(out) if not r.startswith("PASS")]


# -- errors: one line, exit 2 ------------------------------------------------------------------

def _one_error_line(err: list[str]) -> str:
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert err[0].startswith("eafix-capacity: error: ")
    return err[0]


def test_a_context_the_kubeconfig_does_not_have_exits_2_with_one_line(sim, capsys):
    code, out, err = _verify(capsys, "--context", "prod", "--kubeconfig", str(sim.kubeconfig))
    assert code == 2 and out == ""
    line = _one_error_line(err)
    assert f'kubeconfig {sim.kubeconfig}: context "prod" does not exist' in line
    assert 'the kubeconfig has the contexts "eafix-sim"' in line


def test_a_closed_port_exits_2_with_one_line_naming_the_server(sim, capsys, tmp_path):
    with socket.socket() as s:       # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = yaml.safe_load(Path(str(sim.kubeconfig)).read_text())
    doc["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    code, out, err = _verify(capsys, "--context", "eafix-sim", "--kubeconfig", str(kubeconfig))
    assert code == 2 and out == ""
    line = _one_error_line(err)
    assert f'context "eafix-sim": http://127.0.0.1:{port}: cannot connect: Connection refused; ' in line


def test_the_current_context_is_read_when_none_is_given_and_named(sim, capsys, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(sim.kubeconfig))
    code, _, err = _verify(capsys, "--profile", "recommended", "--format", "json")
    assert code == 0
    assert len(err) == 1 and err[0].startswith('verify: context "eafix-sim" (the sim)')


@pytest.mark.parametrize(("args", "message"), [
    (["--profile", "huge"], "unknown profile"),
    (["--nodes", "0"], "nodes: not a whole number of at least 1 0"),
    (["--plan-params", "/nonexistent/params.yaml"], "/nonexistent/params.yaml"),
])
def test_bad_plan_input_exits_2_before_any_request(sim, capsys, args, message):
    code, out, err = _verify(capsys, "--context", "eafix-sim", "--kubeconfig", str(sim.kubeconfig), *args)
    assert code == 2 and out == ""
    line = _one_error_line(err)   # the only line: the target was never loaded or named
    assert message in line


def test_an_unknown_fail_on_or_format_is_refused(capsys):
    for flag, value in (("--fail-on", "PASS"), ("--format", "csv")):
        with pytest.raises(SystemExit) as exit_:
            main(["verify", flag, value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: invalid choice: '{value}'" in err and len(err.splitlines()) == 1


READER_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: namespace-reader}
rules: [{apiGroups: [""], resources: [namespaces], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: namespace-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: namespace-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}]
"""


def test_a_list_refused_after_the_identity_read_exits_2_with_one_line(capsys, tmp_path):
    # a user RBAC lets read the kube-system namespace (the identity) but not list nodes: the failure
    # comes from the live-state read, not from loading the target
    with SimCluster(kubeconfig=tmp_path / "admin", nodes=1, auth=True, controllers=False) as secured:
        run_kubectl(secured, "apply", "-f", "-", stdin=READER_RBAC, cache_dir=tmp_path / "cache")
        doc = yaml.safe_load((tmp_path / "admin").read_text())
        doc["users"][0]["user"] = {"token": secured.issue_token("reader")}
        (tmp_path / "reader").write_text(yaml.safe_dump(doc))
        url = secured.url
        code, out, err = _verify(capsys, "--context", "eafix-sim", "--kubeconfig", str(tmp_path / "reader"))
    assert code == 2 and out == ""
    assert len(err) == 2 and err[0].startswith('verify: context "eafix-sim" (the sim): ')
    line = _one_error_line(err[1:])
    assert line == (f'eafix-capacity: error: context "eafix-sim": {url}: 403 Forbidden: nodes is forbidden: '
                    'User "reader" cannot list resource "nodes" in API group "" at the cluster scope; user '
                    '"eafix-sim" is authenticated but RBAC does not allow this; ask for a binding that does '
                    "(kubectl auth can-i --list shows what it may do)")
