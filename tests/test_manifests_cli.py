"""``eafix-capacity manifests generate|check|import`` and the Helm values export."""
from __future__ import annotations

import json

import pytest
import yaml

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main
from eafix_capacity.manifests.helm import camel, helm_values
from eafix_capacity.manifests.importer import import_summary
from eafix_capacity.manifests.layout import read_tree
from eafix_capacity.manifests.render import RenderOptions

CATALOG = load_catalog()


def test_generate_check_and_import_round_trip(tmp_path, capsys):
    out = tmp_path / "rec"
    assert main(["manifests", "generate", "--profile", "recommended", "--mesh", "istio",
                 "--out", str(out)]) == 0
    assert "wrote 105 objects" in capsys.readouterr().out
    assert (out / "istio" / "gateways").is_dir()

    assert main(["manifests", "check", str(out)]) == 0
    assert capsys.readouterr().out.strip().startswith("PASS")

    assert main(["manifests", "import", str(out), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == import_summary(CATALOG)
    assert set(doc["totals"]) == {"cpu_request_m", "memory_request_bytes", "cpu_limit_m",
                                  "memory_limit_bytes", "storage_request_bytes"}

    assert main(["manifests", "import", str(out), "--format", "table"]) == 0
    text = capsys.readouterr().out
    assert "signal-generator" in text and "storage_request_bytes=" in text


def test_check_exits_1_on_a_failing_check(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["manifests", "generate", "--profile", "minimum", "--out", str(out)]) == 0
    f = out / "deployments" / "trading-services.yml"
    f.write_text(f.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
    capsys.readouterr()
    assert main(["manifests", "check", str(out), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    assert {r["check"] for r in doc["rows"]} == {"restricted"}
    assert all(r["file"].endswith("trading-services.yml") for r in doc["rows"])


@pytest.mark.parametrize("argv, needle", [
    (["manifests", "generate", "--profile", "huge"], "unknown profile"),
    (["manifests", "generate", "--profile", "minimum", "--mesh", "linkerd"], "unknown mesh"),
    (["manifests", "generate", "--profile", "minimum", "--image-tag", "latest"], "mutable image tag"),
    (["manifests", "check", "/nonexistent/manifests"], "no such file or directory"),
    (["manifests", "import", "/nonexistent/manifests"], "no such file or directory"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    if argv[1] == "generate":
        argv = argv + ["--out", str(tmp_path / "x")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_unparseable_manifest_is_exit_2_naming_file_and_line(tmp_path, capsys):
    (tmp_path / "bad.yml").write_text("apiVersion: v1\nkind: [\n")
    assert main(["manifests", "import", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yml" in err and "line 3" in err


def test_unwritable_out_is_exit_2_and_leaves_files(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep\n")
    assert main(["manifests", "generate", "--profile", "minimum", "--out", str(blocker)]) == 2
    assert blocker.read_text() == "keep\n"
    assert "not a directory" in capsys.readouterr().err


def test_plan_runs_on_imported_manifests(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["manifests", "generate", "--profile", "recommended", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plan", "--manifests", str(out), "--format", "json"]) == 0
    from_manifests = json.loads(capsys.readouterr().out)
    assert main(["plan", "--format", "json"]) == 0
    from_catalogue = json.loads(capsys.readouterr().out)
    assert from_manifests["totals"] == from_catalogue["totals"]


def test_helm_values_carry_the_catalogue_sizing():
    values = helm_values(CATALOG, RenderOptions(image_tag="v0.1.0"))
    assert values["global"] == {"imageRegistry": "ghcr.io"} and values["image"] == {"tag": "v0.1.0"}
    assert camel("signal-generator") == "signalGenerator" and camel("reentry-matrix-svc") == "reentryMatrixSvc"
    sg = values["services"]["signalGenerator"]
    assert sg["replicas"] == 2 and sg["autoscaling"] == {
        "enabled": True, "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70}
    assert values["resources"]["riskManager"] == {"requests": {"cpu": "300m", "memory": "512Mi"},
                                                  "limits": {"cpu": "700m", "memory": "1Gi"}}
    assert values["services"]["redis"]["persistence"]["size"] == "10Gi"
    assert set(values["services"]) == {camel(n) for n in CATALOG.names()}


def test_committed_helm_values_parse(tmp_path):
    out = tmp_path / "m"
    assert main(["manifests", "generate", "--profile", "recommended", "--out", str(out)]) == 0
    doc = yaml.safe_load(read_tree(out)["helm/values.yaml"])
    assert doc == helm_values(CATALOG)


@pytest.mark.parametrize("command", ["check", "import"])
def test_skipped_documents_are_warned_once_on_stderr(tmp_path, capsys, command):
    out = tmp_path / "m"
    assert main(["manifests", "generate", "--profile", "minimum", "--out", str(out)]) == 0
    notes = out / "deployments" / "trading-services.yml"
    notes.write_text("title: release notes\n---\n" + notes.read_text())
    capsys.readouterr()
    assert main(["manifests", command, str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1
    assert "trading-services.yml: document 0 (line 1): skipped" in err
