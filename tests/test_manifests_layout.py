"""Files, kustomization, determinism, drift from the committed tree, atomic writes."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from eafix_capacity.errors import EafixCapacityError, OutputError
from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.manifests.layout import (KUSTOMIZATION, dump_yaml, layout, read_tree,
                                             tree_diff, write_tree)
from eafix_capacity.manifests.workflow import build_profile, committed_dir, generate

VARIANTS = [("minimum", "none"), ("recommended", "none"), ("recommended", "istio")]
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def test_layout_follows_the_seed_directories():
    files = build_profile("recommended", mesh="istio").files
    for path in ("namespaces/eafix-trading.yml", "storage/storage-class.yml",
                 "storage/persistent-volume-claims.yml", "secrets/trading-secrets.yml",
                 "secrets/external-secrets/external-secret-store.yml", "configmaps/eafix-config.yml",
                 "deployments/infrastructure.yml", "deployments/trading-services.yml",
                 "deployments/supporting-services.yml", "services/infrastructure-services.yml",
                 "services/trading-services.yml", "ingress/ingress.yml", "monitoring/prometheus.yml",
                 "istio/gateways/eafix-trading.yml", "istio/virtual-services/eafix-trading.yml",
                 "istio/destination-rules/eafix-trading.yml",
                 "istio/peer-authentication/eafix-trading.yml",
                 "istio/authorization-policies/eafix-trading.yml", "helm/values.yaml", KUSTOMIZATION):
        assert path in files, path
    infra = list(yaml.safe_load_all(files["deployments/infrastructure.yml"]))
    assert [d["metadata"]["name"] for d in infra if d] == ["redis", "postgres"]
    kustom = yaml.safe_load(files[KUSTOMIZATION])
    assert kustom["kind"] == "Kustomization"
    assert set(kustom["resources"]) == set(files) - {KUSTOMIZATION, "helm/values.yaml",
                                                     "secrets/external-secrets/external-secret-store.yml"}


def test_quantities_are_quoted_strings():
    text = build_profile("recommended").files["deployments/trading-services.yml"].decode()
    assert 'cpu: "200m"' in text and 'memory: "256Mi"' in text


def test_generating_twice_gives_identical_bytes(tmp_path):
    a = generate(profile="minimum", out_dir=tmp_path / "a")[1]
    b = generate(profile="minimum", out_dir=tmp_path / "b")[1]
    assert read_tree(a) == read_tree(b)


def test_libyaml_and_pure_python_emitters_agree():
    for obj in build_profile("recommended", mesh="istio").objects:
        assert dump_yaml(obj) == dump_yaml(obj, pure=True)


@pytest.mark.parametrize("profile, mesh", VARIANTS)
def test_committed_rendering_has_not_drifted(tmp_path, profile, mesh):
    out = generate(profile=profile, mesh=mesh, out_dir=tmp_path / "out")[1]
    committed = committed_dir(profile, mesh)
    assert committed.parent == MANIFESTS_DIR
    diff = tree_diff(read_tree(out), read_tree(committed))
    assert diff == [], (f"manifests/{committed.name} differs from the code; regenerate with "
                        f"`eafix-capacity manifests generate --profile {profile} --mesh {mesh}`: {diff}")


@pytest.mark.kubectl
@pytest.mark.parametrize("name", ["recommended", "minimum", "recommended-istio"])
def test_kubectl_kustomize_renders_offline(name):
    proc = subprocess.run([KUBECTL, "kustomize", str(MANIFESTS_DIR / name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "StatefulSet", "Deployment", "Service", "ResourceQuota",
            "NetworkPolicy"} <= kinds
    assert "ExternalSecret" not in kinds


def _seed(path: Path) -> dict[str, bytes]:
    files = build_profile("minimum").files
    write_tree(files, out_dir=path)
    return read_tree(path)


def test_rewrite_replaces_the_tree_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "m"
    _seed(out)
    (out / "stale.yml").write_text("old\n")
    files = build_profile("recommended").files
    write_tree(files, out_dir=out)
    assert read_tree(out) == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_write_leaves_previous_directory_untouched(tmp_path):
    out = tmp_path / "m"
    before = _seed(out)
    # "a" as a file and as a directory cannot both be written: fails midway
    with pytest.raises(OutputError) as e:
        write_tree({"a": b"x", "a/b.yml": b"y"}, out_dir=out)
    assert "unchanged" in str(e.value)
    assert read_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_unwritable_output_directory_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    with pytest.raises(OutputError):
        write_tree({"a.yml": b"x"}, out_dir=blocker / "sub")
    with pytest.raises(OutputError):
        write_tree({"a.yml": b"x"}, out_dir=blocker)
    assert blocker.read_text() == "not a directory\n"
    with pytest.raises(OutputError):
        generate(profile="minimum", out_dir=blocker / "sub")


def test_refuses_to_replace_a_directory_it_did_not_generate(tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "precious.txt").write_text("keep me\n")
    with pytest.raises(OutputError) as e:
        generate(profile="minimum", out_dir=out)
    assert "not generated by eafix-capacity" in str(e.value)
    assert (out / "precious.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_paths_escaping_the_output_are_refused(tmp_path):
    with pytest.raises(OutputError):
        write_tree({"../evil.yml": b"x"}, out_dir=tmp_path / "m")
    assert not (tmp_path / "evil.yml").exists()


def test_duplicate_objects_are_refused_before_layout():
    objs = build_profile("minimum").objects
    with pytest.raises(EafixCapacityError) as e:
        layout(objs + [objs[1]], description="x")
    assert "duplicate object" in str(e.value) and "ResourceQuota" in str(e.value)


def test_tree_diff_reports_each_kind_of_change():
    assert tree_diff({"a": b"1", "b": b"2"}, {"b": b"3", "c": b"4"}) == [
        ("a", "added"), ("b", "changed"), ("c", "removed")]


def test_shared_sub_objects_are_written_out_not_as_yaml_aliases():
    peer = {"podSelector": {"matchLabels": {"app": "prometheus"}}}
    doc = {"ingress": [{"from": [peer]}], "egress": [{"to": [peer]}]}
    for pure in (False, True):
        text = dump_yaml(doc, pure=pure)
        assert "&" not in text and "*" not in text
        assert yaml.safe_load(text) == doc
    for profile, mesh in VARIANTS:
        for path, data in build_profile(profile, mesh=mesh).files.items():
            assert b"&id0" not in data and b"*id0" not in data, path
