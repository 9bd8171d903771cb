"""A manifest set is read whole or the gaps are said (issue 7): unreadable paths, unknown
kinds, empty sets and memory typos, through the library and the CLI (``plan --manifests``,
``manifests import``, ``manifests check``).

Tests run as root, and root reads a ``chmod 000`` directory anyway. Unreadability is made
real in two ways: in-process, ``os.scandir`` or ``Path.read_text`` raise the
PermissionError the kernel would raise for one chosen path (the loader's own code handles
it); in a subprocess, the CLI runs as root without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH (``setpriv --bounding-set``), so the kernel itself refuses a
``chmod 000`` directory, as it would for any other user.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from eafix_capacity.cli import main
from eafix_capacity.errors import InputError, ManifestError, QuantityError
from eafix_capacity.inputs import PlanParams, load_inputs_catalog
from eafix_capacity.manifests.checks import run_checks
from eafix_capacity.manifests.importer import import_manifests
from eafix_capacity.manifests.kinds import known_kinds
from eafix_capacity.manifests.load import ManifestNote, ManifestWarning, load_manifests, scan
from eafix_capacity.manifests.workflow import check_paths, generate

DEPLOYMENT = """\
apiVersion: {api}
kind: {kind}
metadata:
  name: {name}
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: example.com/{name}:1.0
        ports:
        - containerPort: 8080
        resources:
          requests: {{cpu: 100m, memory: {memory}}}
          limits: {{cpu: "1", memory: {limit}}}
"""


def _deploy(name: str = "web", *, kind: str = "Deployment", api: str = "apps/v1",
            memory: str = "128Mi", limit: str = "256Mi") -> str:
    return DEPLOYMENT.format(name=name, kind=kind, api=api, memory=memory, limit=limit)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _shop(root: Path, *, extra: str = "") -> Path:
    """Two Deployments in two subdirectories (and ``extra`` in a third file)."""
    _write(root / "web" / "deploy.yaml", _deploy("web"))
    _write(root / "api" / "deploy.yaml", _deploy("api"))
    if extra:
        _write(root / "more" / "extra.yaml", extra)
    return root


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ManifestWarning)
        rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("eafix-capacity: error: ")
    return err.strip()


def _refuse(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """``os.scandir(target)`` fails as the kernel fails it for a user without read access."""
    real = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


# -- unreadable paths -----------------------------------------------------------------------

def test_an_unreadable_subdirectory_is_an_error_naming_it(tmp_path, monkeypatch):
    root = _shop(tmp_path / "m")
    _refuse(monkeypatch, root / "web")
    with pytest.raises(ManifestError) as e:
        load_manifests(root)
    assert e.value.file == str(root / "web")
    assert "cannot read directory (Permission denied)" in str(e.value)


@pytest.mark.parametrize("command", [["plan", "--manifests"], ["manifests", "import"],
                                     ["manifests", "check"]])
def test_cli_on_an_unreadable_subdirectory_is_one_line_exit_2(tmp_path, monkeypatch, capsys, command):
    root = _shop(tmp_path / "m")
    _refuse(monkeypatch, root / "api")
    line = _one_line_error(capsys, command + [str(root)])
    assert f"{root / 'api'}: cannot read directory (Permission denied)" in line


def test_plan_on_an_unreadable_manifests_directory_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    root = _shop(tmp_path / "m")
    _refuse(monkeypatch, root)
    line = _one_line_error(capsys, ["plan", "--manifests", str(root)])
    assert f"{root}: cannot read directory (Permission denied)" in line


def test_plan_on_a_nonexistent_directory_is_one_line_exit_2(tmp_path, capsys):
    line = _one_line_error(capsys, ["plan", "--manifests", str(tmp_path / "nope")])
    assert f"{tmp_path / 'nope'}: no such file or directory" in line


def test_an_unreadable_file_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    root = _shop(tmp_path / "m")
    target = root / "web" / "deploy.yaml"
    real = Path.read_text

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    line = _one_line_error(capsys, ["plan", "--manifests", str(root)])
    assert f"{target}: cannot read file (Permission denied)" in line


def test_a_broken_symlink_to_a_manifest_is_an_error_naming_it(tmp_path, capsys):
    root = _shop(tmp_path / "m")
    (root / "web" / "gone.yaml").symlink_to(root / "web" / "does-not-exist.yaml")
    line = _one_line_error(capsys, ["manifests", "import", str(root)])
    assert f"{root / 'web' / 'gone.yaml'}: cannot read file (a broken symbolic link" in line


def _without_dac_override(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions bind, as root or not."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's permission override"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] + argv


@pytest.mark.parametrize("which", ["subdirectory", "root"])
def test_a_chmod_000_directory_really_refused_by_the_kernel(tmp_path, which):
    root = _shop(tmp_path / "m")
    locked = root / "web" if which == "subdirectory" else root
    locked.chmod(0)
    try:
        proc = subprocess.run(_without_dac_override(
            [sys.executable, "-m", "eafix_capacity.cli", "plan", "--manifests", str(root)]),
            capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{locked}: cannot read directory (Permission denied)" in proc.stderr


# -- every path used or reported --------------------------------------------------------------

def test_paths_passed_over_are_reported_and_json_is_read(tmp_path):
    root = _shop(tmp_path / "m")
    _write(root / "jobs" / "worker.json", json.dumps(yaml.safe_load(_deploy("worker"))))
    _write(root / "notes.txt", "release notes\n")
    _write(root / "kustomization.yaml", "resources: []\n")
    _write(root / "helm" / "values.yaml", "replicas: 3\n")
    _write(root / ".git" / "config.yaml", "x: 1\n")
    (root / "linked").symlink_to(root / "web", target_is_directory=True)
    files, skipped = scan(root)
    assert [f.relative_to(root).as_posix() for f in files] == [
        "api/deploy.yaml", "jobs/worker.json", "web/deploy.yaml"]
    assert {Path(s.path.rstrip("/")).name: s.reason for s in skipped} == {
        ".git": "a hidden entry", "helm": "Helm values, not cluster objects",
        "kustomization.yaml": "kustomize configuration, not a cluster object",
        "linked": "a symbolic link to a directory (not followed)",
        "notes.txt": "not a manifest file (kubectl reads .json, .yaml and .yml)"}
    with pytest.warns(ManifestNote):
        assert import_manifests(root).names() == ["api", "worker", "web"]


def test_cli_prints_a_note_for_each_path_passed_over(tmp_path, capsys):
    root = _shop(tmp_path / "m")
    _write(root / "notes.txt", "release notes\n")
    assert main(["plan", "--manifests", str(root), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["services"]
    assert err == f"note: {root / 'notes.txt'}: passed over, not a manifest file " \
                  "(kubectl reads .json, .yaml and .yml)\n"


def test_a_file_without_objects_is_warned_about(tmp_path, capsys):
    root = _shop(tmp_path / "m")
    _write(root / "empty.yaml", "# nothing yet\n")
    assert main(["manifests", "import", str(root), "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert err == f"warning: {root / 'empty.yaml'}: skipped, holds no Kubernetes object " \
                  "(empty, or only comments)\n"


def test_pods_the_plan_does_not_size_are_warned_about(tmp_path):
    daemonset = _deploy("agent").replace("kind: Deployment", "kind: DaemonSet").replace("  replicas: 2\n", "")
    root = _shop(tmp_path / "m", extra=daemonset)
    with pytest.warns(ManifestWarning, match=r"extra\.yaml: DaemonSet/shop/agent \(document 0, line 1\): "
                                             r"not planned, its pods are not counted"):
        assert import_manifests(root).names() == ["api", "web"]


# -- unknown kinds ----------------------------------------------------------------------------

def test_a_misspelt_kind_is_an_error_naming_file_document_and_kind(tmp_path):
    f = _write(tmp_path / "m" / "all.yaml", _deploy("web") + "---\n" + _deploy("api", kind="Deploymnt"))
    with pytest.raises(ManifestError) as e:
        import_manifests(tmp_path / "m")
    assert e.value.file == str(f) and e.value.field == "kind"
    assert e.value.obj == "Deploymnt/shop/api (document 1, line 23)"
    assert "unknown kind 'Deploymnt' in apps/v1 (did you mean Deployment?)" in str(e.value)
    assert "--ignore-unknown-kinds" in str(e.value)


def test_a_kind_in_a_version_no_longer_served_says_where_it_is(tmp_path):
    _write(tmp_path / "m" / "old.yaml", _deploy("web", api="extensions/v1beta1"))
    with pytest.raises(ManifestError, match=r"unknown kind 'Deployment' in extensions/v1beta1 "
                                            r"\(Deployment is served as apps/v1\)"):
        import_manifests(tmp_path / "m")


def test_no_hint_without_a_close_match():
    known = known_kinds()
    assert known.hint("example.com/v1", "Widget") is None
    assert known.hint("apps/v1", "statefulset") == "did you mean StatefulSet?"
    assert ("networking.istio.io/v1beta1", "VirtualService") in known
    assert ("networking.istio.io/v1", "VirtualService") in known   # Istio 1.22+ serves v1 too
    assert ("networking.istio.io/v1", "VirtualServce") not in known
    assert known.hint("networking.istio.io/v1", "VirtualServce") == "did you mean VirtualService?"
    assert known.hint("example.com/v1", "VirtualService") == "VirtualService is served as networking.istio.io/*"
    assert ("external-secrets.io/v1beta1", "ExternalSecret") in known
    assert ("v1", "ConfigMap") in known and ("autoscaling/v2", "HorizontalPodAutoscaler") in known


def test_ignore_unknown_kinds_skips_each_with_a_warning(tmp_path):
    root = _shop(tmp_path / "m", extra=_deploy("a", kind="Deploymnt") + "---\n" + _deploy("b", kind="Widget"))
    with pytest.warns(ManifestWarning) as caught:
        cat = import_manifests(root, ignore_unknown_kinds=True)
    assert cat.names() == ["api", "web"]
    skipped = [str(w.message) for w in caught if "skipped, unknown kind" in str(w.message)]
    assert skipped == [
        f"{root / 'more' / 'extra.yaml'}: Deploymnt/shop/a (document 0, line 1): skipped, "
        "unknown kind 'Deploymnt' in apps/v1 (did you mean Deployment?)",
        f"{root / 'more' / 'extra.yaml'}: Widget/shop/b (document 1, line 23): skipped, "
        "unknown kind 'Widget' in apps/v1"]


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: shop}
spec: {size: 3}
"""


def test_a_kind_defined_by_a_crd_in_the_set_is_known(tmp_path):
    root = _shop(tmp_path / "m", extra=CRD)
    assert import_manifests(root).names() == ["api", "web"]
    report = check_paths(root)
    assert not (report.table.check == "kind").any()
    # the same custom resource without its CRD is unknown
    _write(root / "more" / "extra.yaml", CRD.split("---\n")[1])
    with pytest.raises(ManifestError, match="unknown kind 'Widget' in example.com/v1"):
        import_manifests(root)


def test_plan_params_carry_ignore_unknown_kinds_to_the_importer(tmp_path):
    root = _shop(tmp_path / "m", extra=_deploy("a", kind="Deploymnt"))
    with pytest.raises(ManifestError, match="Deploymnt"):
        load_inputs_catalog(PlanParams(manifests=str(root)))
    with pytest.warns(ManifestWarning, match="skipped, unknown kind 'Deploymnt'"):
        assert load_inputs_catalog(PlanParams(manifests=str(root), ignore_unknown_kinds=True)).names() \
            == ["api", "web"]
    with pytest.raises(InputError, match="ignore_unknown_kinds: not a boolean 'yes'"):
        PlanParams.from_mapping({"ignore_unknown_kinds": "yes"}, source="p.yaml")


def test_plan_refuses_a_misspelt_kind_and_skips_it_when_told(tmp_path, capsys):
    root = _shop(tmp_path / "m", extra=_deploy("a", kind="Deploymnt"))
    line = _one_line_error(capsys, ["plan", "--manifests", str(root)])
    assert f"{root / 'more' / 'extra.yaml'}: Deploymnt/shop/a (document 0, line 1): kind: " \
           "unknown kind 'Deploymnt' in apps/v1 (did you mean Deployment?)" in line
    assert main(["plan", "--manifests", str(root), "--ignore-unknown-kinds", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [s["name"] for s in json.loads(out)["services"]] == ["api", "web"]
    assert err == f"warning: {root / 'more' / 'extra.yaml'}: Deploymnt/shop/a (document 0, line 1): " \
                  "skipped, unknown kind 'Deploymnt' in apps/v1 (did you mean Deployment?)\n"


def test_manifests_import_refuses_a_misspelt_kind_unless_told(tmp_path, capsys):
    root = _shop(tmp_path / "m", extra=_deploy("a", kind="Deploymnt"))
    assert "did you mean Deployment?" in _one_line_error(capsys, ["manifests", "import", str(root)])
    assert main(["manifests", "import", str(root), "--ignore-unknown-kinds", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [s["name"] for s in json.loads(out)["services"]] == ["api", "web"]
    assert "warning: " in err and "Deploymnt/shop/a" in err


def _generated_with(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    """The minimum rendering with the first ``old`` in trading-services.yml made ``new``."""
    _, out = generate(profile="minimum", out_dir=tmp_path / "m")
    f = out / "deployments" / "trading-services.yml"
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new, 1))
    return out, f


def test_manifests_check_fails_a_misspelt_kind_and_warns_when_told(tmp_path, capsys):
    out, f = _generated_with(tmp_path, "kind: Deployment\n", "kind: Deploymnt\n")
    assert main(["manifests", "check", str(out), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["rows"] if r["status"] == "fail"]
    assert (row["object"], row["file"], row["check"]) == ("Deploymnt/eafix-trading/data-ingestor", str(f), "kind")
    assert row["detail"].startswith("unknown kind 'Deploymnt' in apps/v1 (did you mean Deployment?)")
    assert main(["manifests", "check", str(out), "--format", "json", "--ignore-unknown-kinds"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["rows"] if r["check"] == "kind"]
    assert row["status"] == "warn" and row["detail"].startswith("skipped, unknown kind 'Deploymnt'")
    assert doc["summary"]["fail"] == 0 and doc["summary"]["warn"] == 1
    assert doc["passed_over"] == [f"{out / 'helm'}/", str(out / "kustomization.yaml")]


@pytest.mark.parametrize("command", [["plan"], ["manifests", "import"], ["manifests", "check"]])
def test_the_flag_is_on_plan_import_and_check(capsys, command):
    with pytest.raises(SystemExit) as e:
        main(command + ["--help"])
    assert e.value.code == 0 and "--ignore-unknown-kinds" in capsys.readouterr().out


# -- empty sets -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["plan", "--manifests"], ["manifests", "import"],
                                     ["manifests", "check"]])
def test_an_empty_directory_is_an_error(tmp_path, capsys, command):
    (tmp_path / "empty").mkdir()
    line = _one_line_error(capsys, command + [str(tmp_path / "empty")])
    assert f"{tmp_path / 'empty'}: no manifest files (0 path(s) passed over)" in line


@pytest.mark.parametrize("command", [["plan", "--manifests"], ["manifests", "import"],
                                     ["manifests", "check"]])
def test_files_without_objects_are_an_error(tmp_path, capsys, command):
    _write(tmp_path / "m" / "a.yaml", "# TODO\n")
    _write(tmp_path / "m" / "b.yml", "---\ntitle: notes\n---\n")
    _write(tmp_path / "m" / "README.md", "# manifests\n")
    line = _one_line_error(capsys, command + [str(tmp_path / "m")])
    assert f"{tmp_path / 'm'}: no Kubernetes objects in 2 manifest file(s)" in line


def test_check_of_an_empty_path_among_others_names_it(tmp_path):
    root = _shop(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError) as e:
        check_paths(root, tmp_path / "empty")
    assert e.value.file == str(tmp_path / "empty")


def test_a_check_of_no_objects_does_not_pass():
    report = run_checks([])
    assert not report.passed and report.summary() == {"pass": 0, "fail": 0, "warn": 0}


def test_allow_empty_loads_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert load_manifests(tmp_path / "empty", allow_empty=True).objects == []


# -- memory in millibytes ---------------------------------------------------------------------

@pytest.mark.parametrize("memory, limit, field, needle", [
    ("256m", "256Mi", "requests.memory", "did you mean 256Mi?"),
    ("128Mi", '"0.5"', "limits.memory", "is a fraction of a byte"),
    ("128Mi", "512m", "limits.memory", "did you mean 512Mi?"),
])
def test_import_refuses_memory_in_millibytes(tmp_path, memory, limit, field, needle):
    f = _write(tmp_path / "m" / "web.yaml", _deploy("web", memory=memory, limit=limit))
    with pytest.raises(QuantityError) as e:
        import_manifests(tmp_path / "m")
    assert (e.value.file, e.value.obj) == (str(f), "Deployment/shop/web")
    assert e.value.field == f"spec.template.spec.containers[0].resources.{field}"
    assert needle in str(e.value) and e.value.value in (memory, limit.strip('"'))


def test_plan_refuses_256m_memory_in_one_line(tmp_path, capsys):
    f = _write(tmp_path / "m" / "web.yaml", _deploy("web", memory="256m"))
    line = _one_line_error(capsys, ["plan", "--manifests", str(tmp_path / "m")])
    assert f"{f}: Deployment/shop/web: spec.template.spec.containers[0].resources.requests.memory: " \
           "not a whole number of bytes '256m'; memory '256m' has a milli (or smaller) suffix" in line
    assert "did you mean 256Mi?" in line


def test_check_flags_256m_memory_on_the_object(tmp_path, capsys):
    out, f = _generated_with(tmp_path, 'memory: "256Mi"', 'memory: "256m"')
    assert main(["manifests", "check", str(out), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["rows"] if r["status"] == "fail"]
    assert (row["object"], row["file"], row["check"]) == ("Deployment/eafix-trading/data-ingestor", str(f),
                                                          "resources")
    assert row["detail"] == ("data-ingestor: requests.memory: memory '256m' has a milli (or smaller) "
                             "suffix: 0.256 bytes; did you mean 256Mi?")


def test_check_library_flags_256m_memory():
    obj = yaml.safe_load(_deploy("web", limit="1024m"))
    report = run_checks([obj], validate=False)
    row = report.table[report.table.check == "resources"].iloc[0]
    assert row.status == "fail" and row.detail == (
        "main: limits.memory: memory '1024m' has a milli (or smaller) suffix: 1.024 bytes; "
        "did you mean 1024Mi?")


# --- a YAML bomb ------------------------------------------------------------------------------------

_BOMB = "\n".join(["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "data:",
                   '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
                  + [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\n"


@pytest.mark.parametrize("command", [["manifests", "check"], ["manifests", "import"], ["plan", "--manifests"]])
def test_a_billion_laughs_manifest_is_refused_in_one_short_line(tmp_path, capsys, command):
    # 9^9 strings once expanded: the loader refuses the aliases before building anything
    _write(tmp_path / "m" / "bomb.yaml", _BOMB)
    line = _one_line_error(capsys, command + [str(tmp_path / "m")])
    assert "bomb.yaml" in line and "alias" in line and len(line) < 1300
