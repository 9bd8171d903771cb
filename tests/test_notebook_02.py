"""Notebook 02 (generate manifests): nbval over the committed notebook, papermill matrix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.importer import import_manifests, import_summary
from eafix_capacity.manifests.layout import read_tree
from eafix_capacity.manifests.notebook import NotebookParams
from eafix_capacity.manifests.workflow import build_profile, committed_dir
from eafix_capacity.paths import NOTEBOOKS_DIR
from notebook_helpers import ROOT, run_nbval, run_papermill

NOTEBOOK = NOTEBOOKS_DIR / "02_generate_manifests.ipynb"

pytestmark = pytest.mark.notebook


def test_committed_notebook_matches_its_outputs(tmp_path):
    result = run_nbval(NOTEBOOK, root=tmp_path)   # outputs in tmp_path/reports
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    out = tmp_path / "reports" / "02_generate_manifests"
    assert (out / "rendered-manifests" / "recommended" / "kustomization.yaml").is_file()
    # the default parameters' row of the matrix: (recommended, none)
    _assert_matches_the_library(json.loads((out / "summary.json").read_text()), out, "recommended", "none")


# Every profile and every mesh once (each kernel run costs seconds): the defaults are nbval's run
# above; the library tests render all four.
@pytest.mark.parametrize("profile, mesh", [("minimum", "istio")])
def test_papermill_summary_matches_the_library(tmp_path, profile, mesh):
    summary = run_papermill(NOTEBOOK, tmp_path, {"profile": profile, "mesh": mesh})
    _assert_matches_the_library(summary, tmp_path, profile, mesh)


def _assert_matches_the_library(summary: dict, out: Path, profile: str, mesh: str) -> None:
    gen = build_profile(profile, mesh=mesh)
    rendered = out / "rendered-manifests" / committed_dir(profile, mesh).name
    assert read_tree(rendered) == gen.files
    assert summary["profile"] == profile and summary["mesh"] == mesh
    assert summary["objects"] == len(gen.objects) and summary["files"] == len(gen.files)
    assert summary["passed"] is True and summary["validation_errors"] == 0
    assert summary["checks"]["fail"] == 0
    assert summary["catalogue_matches"] is True
    assert summary["totals"] == import_summary(load_catalog())["totals"]
    assert summary["totals"] == import_summary(import_manifests(rendered))["totals"]
    assert ("Gateway" in summary["kinds"]) == (mesh == "istio")
    committed = committed_dir(profile, mesh)
    assert summary["matches_committed"] is committed.is_dir()


def test_parameters_reach_the_rendering(tmp_path):
    out = tmp_path / "custom"
    summary = run_papermill(NOTEBOOK, tmp_path, {
        "profile": "minimum", "namespace": "eafix-uat", "image_registry": "registry.example.com",
        "image_tag": "v0.2.0", "out_dir": str(out)})
    assert summary["namespace"] == "eafix-uat" and summary["image_tag"] == "v0.2.0"
    assert summary["matches_committed"] is False and summary["passed"] is True
    text = (out / "deployments" / "trading-services.yml").read_text()
    assert "image: registry.example.com/dicky1987/eafix-modular/data-ingestor:v0.2.0" in text
    assert "namespace: eafix-uat" in text
    # the committed tree is never the default target
    assert read_tree(committed_dir("minimum")) == build_profile("minimum").files


BAD_PARAMETERS = [
    ({"profile": "huge"}, "unknown profile"),
    ({"image_tag": "latest"}, "mutable image tag"),
    ({"mesh": "consul"}, "unknown mesh"),
]


def test_bad_parameter_fails_in_the_validation_cell(tmp_path):
    with pytest.raises(InputError, match="unknown profile"):
        run_papermill(NOTEBOOK, tmp_path, {"profile": "huge"})
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "rendered-manifests").exists()


@pytest.mark.parametrize("params, needle", BAD_PARAMETERS)
def test_the_validation_cells_check_refuses_each_bad_parameter(params, needle):
    """What the validation cell runs (the kernel run above shows the cell raises it)."""
    with pytest.raises(InputError, match=needle):
        NotebookParams.from_notebook(**params)


def test_notebook_has_the_conventions():
    import nbformat
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    assert nb.metadata.kernelspec.name == "eafix-capacity"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.tags == ["parameters"]
    names = [line.split(":")[0] for line in code[0].source.splitlines()]
    assert names == ["profile", "mesh", "output_dir", "out_dir", "image_registry", "image_tag", "namespace",
                     "zone_spread", "pools"]
    assert all("  # " in line for line in code[0].source.splitlines())
    assert "NotebookParams.from_notebook" in code[1].source
    assert all(c.get("outputs") for c in code[1:]), "committed executed"
    assert str(ROOT) not in NOTEBOOK.read_text() and "/tmp/" not in NOTEBOOK.read_text()


def test_sizing_and_catalogue_diff_come_from_the_rendering_not_the_catalogue(tmp_path, monkeypatch):
    from dataclasses import replace

    from eafix_capacity.manifests import notebook

    real_build = notebook.build

    def drifted(*args, **kwargs):
        gen = real_build(*args, **kwargs)
        objects = [dict(o) for o in gen.objects]
        for i, o in enumerate(objects):
            if o["kind"] == "Deployment" and o["metadata"]["name"] == "risk-manager":
                objects[i] = {**o, "spec": {**o["spec"], "replicas": 5}}
        return replace(gen, objects=objects)

    monkeypatch.setattr(notebook, "build", drifted)
    result = notebook.run(notebook.NotebookParams.from_notebook(output_dir=str(tmp_path)))
    catalogue = import_summary(load_catalog())
    rm = next(s for s in load_catalog().services if s.name == "risk-manager")
    assert result.sizing["totals"]["cpu_request_m"] == \
        catalogue["totals"]["cpu_request_m"] + 3 * rm.pod_resources.cpu_request_m
    rows = {(r.service, r.field): (r.left, r.right) for r in result.catalogue_diff.itertuples()}
    assert rows == {("risk-manager", "replicas"): (5, 2)}
    assert result.summary()["totals"] == result.sizing["totals"]
