"""``eafix-capacity apply`` and ``diff`` end to end: the committed renderings applied to the sim
through the kit's own server-side apply, the rollouts waited for, then ``verify`` PASSes; a
second apply changes nothing; drift made with the real kubectl is found by ``verify``, named by
``diff`` and repaired by ``apply``; the secrets guard on a cluster that is not the sim.

Sims of 3 n2-standard-8 nodes (the plan's default) on a ten-times clock from the trading-day
morning, so probes pass in seconds: one nothing is applied to, one the ``applied`` fixture
applies manifests/recommended to with the command (the tests that change it repair what they
changed, so they hold in any order), and one for the Istio rendering.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from eafix_capacity.cli import main
from eafix_capacity.cluster.applycmd import diff_text, parse_duration, record_line, summary_line
from eafix_capacity.cluster.records import ApplyRecord, FieldChange
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.crds import stand_in_crds
from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import kubectl_on

NS = "eafix-trading"
RECOMMENDED = str(MANIFESTS_DIR / "recommended")
TRADING = f"{RECOMMENDED}/deployments/trading-services.yml"
SECRETS = f"{RECOMMENDED}/secrets"   # the template and its External Secrets alternative
FAKE_SECRET = "fake-test-value-8c1e"  # not a secret: a marker the output must never show


# -- pure ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [("300s", 300), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5),
                                               ("0", 0), ("250ms", 0.25)])
def test_timeouts_read_as_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["300", "5x", "", "s", "5m3", "-"])
def test_a_duration_without_a_unit_or_with_a_wrong_one_is_refused(text):
    with pytest.raises(InputError, match=r"--timeout: invalid duration .* give a number with a unit"):
        parse_duration(text)


def _record(kind: str, outcome: str, *changes: FieldChange, api_version: str = "apps/v1") -> ApplyRecord:
    return ApplyRecord(phase="workloads", file="deployments/x.yml", document=2, kind=kind, api_version=api_version,
                       namespace=NS, name="risk-manager", outcome=outcome, diff=tuple(c.path for c in changes),
                       dry_run=True, changes=changes)


def test_lines_and_diff_name_the_object_the_paths_and_the_values():
    rec = _record("Deployment", "changed", FieldChange(".spec.replicas", 1, 2))
    assert record_line(rec) == ("deployment.apps/risk-manager -n eafix-trading changed (server dry run): "
                                ".spec.replicas")
    assert diff_text([rec, _record("Deployment", "unchanged")]) == (
        "changed deployment.apps/risk-manager -n eafix-trading (deployments/x.yml, document 2)\n"
        "  .spec.replicas: 1 -> 2")
    assert summary_line([rec, rec, _record("Service", "created", api_version="v1")], dry_run=True) == (
        "3 objects: 1 created, 2 changed (dry run: nothing was changed)")


# -- against the sim ---------------------------------------------------------------------------

def _sim(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[SimCluster]:
    home = tmp_path_factory.mktemp(name)
    with SimCluster(kubeconfig=home / "kubeconfig", speed=10, clock_start=TRADING_DAY_START, nodes=3,
                    node_type="n2-standard-8") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """A sim nothing is applied to (its tests only read or are refused)."""
    yield from _sim(tmp_path_factory, "apply-cmd-fresh")


@dataclass(frozen=True)
class Applied:
    sim: SimCluster
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    """A sim with manifests/recommended applied by the command, rollouts waited for; the tests that
    change it repair what they changed."""
    for cluster in _sim(tmp_path_factory, "apply-cmd"):
        capture = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(capture[0]), contextlib.redirect_stderr(capture[1]):
            code = main(["apply", RECOMMENDED, "--context", "eafix-sim", *_kc(cluster), "--timeout", "120s"])
        yield Applied(cluster, code, capture[0].getvalue(), capture[1].getvalue())


@pytest.fixture()
def sim(applied: Applied) -> SimCluster:
    assert applied.code == 0, applied.err
    return applied.sim


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _kc(sim: SimCluster) -> list[str]:
    return ["--kubeconfig", str(sim.kubeconfig)]


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("eafix-capacity: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]




@pytest.mark.sim
@pytest.mark.kubectl
def test_a_dry_run_reports_every_object_and_creates_nothing(fresh, capsys):
    sim = fresh
    code, out, err = _run(capsys, "apply", RECOMMENDED, "--context", "eafix-sim", *_kc(sim), "--dry-run")
    assert code == 0, err
    assert err.splitlines()[-1].startswith('dry run: context "eafix-sim" (the sim)')
    lines = out.splitlines()
    assert lines[-1].endswith("created, 2 skipped (dry run: nothing was changed)")
    # the namespace is new: the server cannot check what goes into it, and the line says so
    assert ("deployment.apps/risk-manager -n eafix-trading created (server dry run) [not checked by the server: "
            'namespace "eafix-trading" is created by this apply]') in lines
    # the External Secrets variant is the alternative to the template, not applied with it
    assert any(line.startswith("externalsecret.external-secrets.io/trading-secrets -n eafix-trading skipped")
               for line in lines)
    gone = kubectl_on(sim, "get", "namespace", NS, ok=False)
    assert gone.returncode == 1 and f'namespaces "{NS}" not found' in gone.stderr


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_real_apply_needs_an_explicit_context_and_sends_nothing_without_it(fresh, capsys, monkeypatch):
    sim = fresh
    monkeypatch.setenv("KUBECONFIG", str(sim.kubeconfig))
    code, out, err = _run(capsys, "apply", RECOMMENDED)
    assert code == 2 and out == ""
    assert "refusing to write to the current context: a write needs an explicit context" in _one_error(err)
    assert kubectl_on(sim, "get", "namespace", NS, ok=False).returncode == 1


@pytest.mark.sim
@pytest.mark.kubectl
def test_apply_waits_for_the_rollouts_and_then_verify_passes(applied, capsys):
    sim = applied.sim
    assert applied.code == 0, applied.err
    assert "rollout infrastructure" in applied.err and "rollout workloads" in applied.err  # the bars, on stderr
    assert applied.out.splitlines()[-1] == "85 objects: 83 created, 2 skipped"
    code, out, err = _run(capsys, "verify", "--context", "eafix-sim", *_kc(sim), "--profile", "recommended")
    assert code == 0, [line for line in out.splitlines() if " PASS " not in line]
    # at most an HPA that has not synced since the rollout warns; after its period everything passes
    assert all(" WARN " not in line or line.split()[1] == "hpa" for line in out.splitlines()), out
    assert sim.clock is not None
    sim.clock.advance(30)
    sim.settle()
    code, out, err = _run(capsys, "verify", "--context", "eafix-sim", *_kc(sim), "--profile", "recommended")
    assert code == 0 and out.rstrip().endswith("overall: PASS"), out
    # or against the rendered directory itself, imported as the plan's catalogue
    code, out2, err = _run(capsys, "verify", "--context", "eafix-sim", *_kc(sim), "--profile", "recommended",
                           "--manifests", RECOMMENDED, "--format", "json")
    assert code == 0, err
    assert json.loads(out2)["result"] == "PASS" and len(json.loads(out2)["checks"]) == len(out.splitlines()) - 3


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_second_apply_changes_nothing_and_diff_exits_0(sim, capsys):
    code, out, err = _run(capsys, "diff", RECOMMENDED, "--context", "eafix-sim", *_kc(sim))
    assert (code, out) == (0, ""), out
    code, out, err = _run(capsys, "apply", RECOMMENDED, "--context", "eafix-sim", *_kc(sim), "--quiet",
                          "--format", "json")
    assert code == 0, err
    outcomes = {r["outcome"] for r in json.loads(out)}
    assert outcomes == {"unchanged", "skipped"}
    assert "rollout" not in err  # --quiet: no bar


@pytest.mark.sim
@pytest.mark.kubectl
def test_drift_is_found_by_verify_named_by_diff_and_repaired_by_apply(sim, capsys):
    kubectl_on(sim, "set", "image", "deployment/risk-manager", "risk-manager=ghcr.io/x/risk-manager:v9", "-n", NS)
    kubectl_on(sim, "set", "resources", "deployment/signal-generator", "-c", "signal-generator",
               "--requests=cpu=100m", "-n", NS)
    kubectl_on(sim, "delete", "pdb", "execution-engine-pdb", "-n", NS)
    kubectl_on(sim, "cordon", "sim-n2-standard-8-2")
    sim.settle()
    code, out, _ = _run(capsys, "verify", "--context", "eafix-sim", *_kc(sim), "--profile", "recommended",
                        "--format", "json")
    failing = {(c["name"], c["subject"]) for c in json.loads(out)["checks"] if c["status"] == "FAIL"}
    assert code == 1
    assert {("image", "Deployment/risk-manager container risk-manager"),
            ("resources", "Deployment/signal-generator container signal-generator"),
            ("pdb", "service execution-engine")} <= failing
    assert any(name.startswith("node") and "sim-n2-standard-8-2" in subject for name, subject in failing), failing
    # the fields kubectl set took are another manager's: diff names them, and nothing is forced
    code, out, err = _run(capsys, "diff", TRADING, *_kc(sim))
    assert code == 2
    line = _one_error(err)
    assert 'dry run stopped in phase workloads' in line
    assert (f'{TRADING} (document 7): Deployment eafix-trading/risk-manager: 409: conflicts: .spec.template.spec.'
            'containers[name="risk-manager"].image owned by "kubectl-set"') in line, line
    code, out, err = _run(capsys, "diff", TRADING, *_kc(sim), "--force-conflicts")
    assert code == 1, err
    assert (f"changed deployment.apps/risk-manager -n {NS}" in out
            and '"ghcr.io/x/risk-manager:v9" -> "ghcr.io/dicky1987/eafix-modular/risk-manager:v0.1.0"' in out), out
    assert f"created poddisruptionbudget.policy/execution-engine-pdb -n {NS}" in out
    code, out, err = _run(capsys, "apply", TRADING, "--context", "eafix-sim", *_kc(sim), "--force-conflicts",
                          "--timeout", "120s")
    assert code == 0, err
    kubectl_on(sim, "uncordon", "sim-n2-standard-8-2")
    sim.settle()
    assert sim.clock is not None
    sim.clock.advance(300)   # the replaced pods' probes pass on the sim clock
    sim.settle()
    code, out, _ = _run(capsys, "verify", "--context", "eafix-sim", *_kc(sim), "--profile", "recommended")
    assert code == 0, [line for line in out.splitlines() if " PASS " not in line]


def _other_context(sim: SimCluster, tmp_path: Path) -> str:
    """The sim's kubeconfig with its context renamed: to the kit, a cluster that is not the sim."""
    doc = yaml.safe_load(Path(str(sim.kubeconfig)).read_text())
    doc["contexts"][0]["name"] = doc["current-context"] = "prod-like"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.sim
@pytest.mark.kubectl
def test_placeholders_are_never_applied_to_a_cluster_that_is_not_the_sim(sim, capsys, tmp_path):
    kubeconfig = _other_context(sim, tmp_path)
    before = kubectl_on(sim, "get", "secret", "trading-secrets", "-n", NS, "-o", "json").stdout
    code, out, err = _run(capsys, "apply", SECRETS, "--context", "prod-like", "--kubeconfig", kubeconfig, "--yes")
    assert code == 2 and out == ""
    line = _one_error(err)
    assert ("Secret eafix-trading/trading-secrets" in line and "REDIS_PASSWORD" in line
            and "--secrets-from" in line), line
    # nothing was sent: the stored Secret is the one from before
    assert kubectl_on(sim, "get", "secret", "trading-secrets", "-n", NS, "-o", "json").stdout == before
    # a dry run there shows everything else, and says why the Secret is left out
    code, out, err = _run(capsys, "diff", SECRETS, "--context", "prod-like", "--kubeconfig", kubeconfig)
    assert code == 0, out
    assert "note: secret/trading-secrets -n eafix-trading skipped (server dry run) [holds placeholders for" in err


@pytest.mark.sim
@pytest.mark.kubectl
def test_supplied_secret_values_are_applied_and_never_printed(sim, capsys, tmp_path):
    kubeconfig = _other_context(sim, tmp_path)
    keys = ("REDIS_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "BROKER_API_KEY")
    values = tmp_path / "secrets.env"
    values.write_text("".join(f"{k}={FAKE_SECRET}-{i}\n" for i, k in enumerate(keys)))
    code, out, err = _run(capsys, "diff", SECRETS, "--context", "prod-like", "--kubeconfig", kubeconfig,
                          "--secrets-from", str(values))
    assert code == 1, err
    assert '  .data.REDIS_PASSWORD: "***" -> "***"' in out
    code, out2, err2 = _run(capsys, "apply", SECRETS, "--context", "prod-like", "--kubeconfig", kubeconfig,
                            "--yes", "--secrets-from", str(values), "--format", "json")
    assert code == 0, err2
    assert FAKE_SECRET not in out + err + out2 + err2
    stored = json.loads(kubectl_on(sim, "get", "secret", "trading-secrets", "-n", NS, "-o", "json").stdout)
    assert base64.b64decode(stored["data"]["REDIS_PASSWORD"]).decode() == f"{FAKE_SECRET}-0"
    # back to the template, so later runs of the module see the committed rendering
    code, _, err = _run(capsys, "apply", SECRETS, "--context", "eafix-sim", *_kc(sim), "--quiet")
    assert code == 0, err


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_rollout_that_cannot_finish_says_which_workload_and_why(sim, capsys, tmp_path):
    big = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "too-big", "namespace": "default"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "too-big"}},
                    "template": {"metadata": {"labels": {"app": "too-big"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                                          "resources": {"requests": {"cpu": "64"}}}]}}}}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big))
    code, out, err = _run(capsys, "apply", str(path), "--context", "eafix-sim", *_kc(sim), "--timeout", "2s")
    assert code == 2
    assert "deployment.apps/too-big -n default created" in out  # what was applied is still reported
    assert "rollout not finished within 2 s: 1 workload(s) not ready" in err
    assert re.search(r"Deployment default/too-big: .*Insufficient cpu", err), err
    kubectl_on(sim, "delete", "deployment", "too-big", "-n", "default")


@pytest.fixture(scope="module")
def istio_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    yield from _sim(tmp_path_factory, "apply-cmd-istio")


@pytest.mark.sim
@pytest.mark.kubectl
def test_the_istio_rendering_applies_after_its_crds_and_verify_passes(istio_sim, capsys, tmp_path):
    # Istio itself (its CRDs) is installed before the kit's rendering, as istioctl or its Helm chart does
    crds = tmp_path / "istio-crds.yaml"
    crds.write_text(yaml.safe_dump_all(stand_in_crds(groups=("networking.istio.io", "security.istio.io"))))
    code, out, err = _run(capsys, "apply", str(crds), "--context", "eafix-sim", *_kc(istio_sim))
    assert code == 0, err
    assert "rollout crds" in err  # waited until the CRDs are served
    code, out, err = _run(capsys, "apply", str(MANIFESTS_DIR / "recommended-istio"), "--context", "eafix-sim",
                          *_kc(istio_sim), "--timeout", "120s", "--quiet")
    assert code == 0, err
    code, out, err = _run(capsys, "verify", "--context", "eafix-sim", *_kc(istio_sim), "--profile", "recommended",
                          "--mesh", "istio")
    assert code == 0, [line for line in out.splitlines() if " PASS " not in line]


@pytest.mark.sim
@pytest.mark.kubectl
def test_prune_deletes_what_an_earlier_apply_made_and_the_directory_dropped(sim, capsys, tmp_path):
    def configmap(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "namespace": "default", "labels": {"app.kubernetes.io/managed-by": "eafix-capacity"}},
            "data": {"flag": "on"}}))
        return path

    kept, dropped = configmap("feature-flags"), configmap("old-feature-flags")
    code, _, err = _run(capsys, "apply", str(kept), str(dropped), "--context", "eafix-sim", *_kc(sim), "--quiet")
    assert code == 0, err
    code, out, err = _run(capsys, "diff", str(kept), *_kc(sim), "--prune")
    assert code == 1, err
    assert out.splitlines() == ["pruned configmap/old-feature-flags -n default",
                                "  not in the applied set; last applied by eafix-capacity"]
    code, out, err = _run(capsys, "apply", str(kept), "--context", "eafix-sim", *_kc(sim), "--prune")
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "configmap/feature-flags -n default unchanged",
        "configmap/old-feature-flags -n default pruned [not in the applied set; last applied by eafix-capacity]"]
    gone = kubectl_on(sim, "get", "configmap", "old-feature-flags", "-n", "default", ok=False)
    assert gone.returncode == 1 and "not found" in gone.stderr
    # only the namespaces the apply touched are looked in: the rendering's own objects are all there
    assert kubectl_on(sim, "get", "configmap", "redis-config", "-n", NS, ok=False).returncode == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.sim
@pytest.mark.kubectl
@pytest.mark.parametrize(("answer", "code"), [("n\n", 2), ("", 2), ("y\n", 0)])
def test_a_cluster_that_is_not_the_sim_is_written_only_after_confirming_its_identity(sim, capsys, tmp_path,
                                                                                    monkeypatch, answer, code):
    kubeconfig = _other_context(sim, tmp_path)
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    got, out, err = _run(capsys, "apply", f"{RECOMMENDED}/configmaps", "--context", "prod-like", "--kubeconfig",
                         kubeconfig, "--quiet")
    identity = json.loads(kubectl_on(sim, "get", "namespace", "kube-system", "-o", "json").stdout)["metadata"]["uid"]
    assert f'Write to context "prod-like" (cluster "eafix-sim" at {sim.url}' in err
    assert f"kube-system uid {identity})? This is not the sim. [y/N] " in err
    assert got == code, err
    if code:
        assert f"the write to kube-system uid {identity} was not confirmed" in _one_error(err.split("[y/N] ")[-1])
    else:
        assert out.splitlines()[-1] == "3 objects: 3 unchanged"


@pytest.mark.sim
def test_discovery_is_not_cached_where_another_cluster_at_the_same_url_would_read_it(sim):
    from kubernetes.dynamic import DynamicClient

    from eafix_capacity.cluster.context import load_target
    from eafix_capacity.cluster.dynamic import dynamic_client

    # the official client's default: /tmp/osrcp-<md5 of the URL>.json, reused by any later process
    default = Path(tempfile.gettempdir()) / f"osrcp-{hashlib.md5(sim.url.encode()).hexdigest()}.json"
    assert not default.exists()   # the applies of the `applied` fixture wrote none
    _, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
    try:
        dynamic_client(api).resources.get(api_version="v1", kind="ConfigMap")
        assert not default.exists()
        DynamicClient(api)   # the default, to show the path above is the one it writes
        assert default.exists()
    finally:
        default.unlink(missing_ok=True)
        api.close()
