"""``mesh`` and ``provider`` are parsed once, where user input enters the kit.

``parse_mesh`` and ``parse_provider`` accept the valid spellings and refuse everything
else with one line naming the field, the value and the valid values; every entry point
(plan parameters, plan options, render options, notebook parameters, the sim cluster,
the CLI) goes through them, so the inner code sees only the checked values.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eafix_capacity import cli
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.manifests.notebook import NotebookParams
from eafix_capacity.manifests.render import RenderOptions
from eafix_capacity.mesh import MESHES, parse_mesh
from eafix_capacity.nodes import PROVIDERS, load_node_types, parse_provider
from eafix_capacity.plan import PlanOptions, make_plan
from eafix_capacity.catalog import load_catalog
from eafix_capacity.profiles import load_profiles
from eafix_capacity.sim.cluster import SimCluster

MESH_VALID = "one of: none, istio"
PROVIDER_VALID = "one of: gke, eks, aks, generic"


# ------------------------------------------------------------------ the parse functions


@pytest.mark.parametrize(("raw", "parsed"), [
    (None, "none"), ("", "none"), ("none", "none"), ("NONE", "none"),
    ("istio", "istio"), ("Istio", "istio"), ("ISTIO", "istio"),
])
def test_parse_mesh_accepts_the_valid_spellings(raw: object, parsed: str) -> None:
    assert parse_mesh(raw) == parsed
    assert parse_mesh(raw) in MESHES


@pytest.mark.parametrize("raw", ["linkerd", " istio", "istio-1.22", "no", 0, 1, True, ["istio"], {"mesh": "istio"}])
def test_parse_mesh_refuses_anything_else_in_one_line(raw: object) -> None:
    with pytest.raises(InputError) as e:
        parse_mesh(raw)
    assert str(e.value) == f"mesh: unknown mesh {raw!r}; {MESH_VALID}"
    assert "\n" not in str(e.value)


def test_parse_mesh_names_the_file() -> None:
    with pytest.raises(InputError) as e:
        parse_mesh("linkerd", file="params.yaml")
    assert str(e.value) == f"params.yaml: mesh: unknown mesh 'linkerd'; {MESH_VALID}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parse_provider_accepts_every_provider_in_any_case(provider: str) -> None:
    assert parse_provider(provider) == provider
    assert parse_provider(provider.upper()) == provider


@pytest.mark.parametrize("raw", ["openshift", "gcp", "aws", "", " gke", 3, ["eks"]])
def test_parse_provider_refuses_anything_else_in_one_line(raw: object) -> None:
    with pytest.raises(InputError) as e:
        parse_provider(raw)
    assert str(e.value) == f"provider: unknown provider {raw!r}; {PROVIDER_VALID}"


def test_parse_provider_refuses_none() -> None:
    with pytest.raises(InputError) as e:
        parse_provider(None, file="params.yaml")
    assert str(e.value) == f"params.yaml: provider: no provider given; {PROVIDER_VALID}"


# ------------------------------------------------------------------ the boundaries parse


def test_plan_params_hold_the_parsed_values() -> None:
    p = PlanParams(provider="EKS", node_type="m5.2xlarge", mesh="Istio")
    assert (p.provider, p.mesh) == ("eks", "istio")
    assert PlanParams.from_mapping({"mesh": None}).mesh == "none"
    assert PlanParams.from_notebook(mesh="", provider="AKS", node_type="Standard_D8s_v5").provider == "aks"
    d = plan_from_params(p).to_dict()
    assert (d["inputs"]["provider"], d["inputs"]["mesh"]) == ("eks", "istio")
    assert [cp["name"] for cp in d["mesh_control_plane"]] == ["istiod", "istio-ingressgateway"]


@pytest.mark.parametrize(("values", "message"), [
    ({"mesh": "linkerd"}, f"mesh: unknown mesh 'linkerd'; {MESH_VALID}"),
    ({"provider": "openshift"}, f"provider: unknown provider 'openshift'; {PROVIDER_VALID}"),
])
def test_plan_params_refuse_bad_values(values: dict, message: str) -> None:
    with pytest.raises(InputError) as e:
        PlanParams(**values)
    assert str(e.value).endswith(message) and "\n" not in str(e.value)


def test_plan_options_are_parsed_on_construction() -> None:
    options = PlanOptions(provider="GKE", mesh="Istio")  # type: ignore[arg-type]
    assert (options.provider, options.mesh) == ("gke", "istio")
    assert PlanOptions(provider="gke", mesh=None).mesh == "none"  # type: ignore[arg-type]
    plan = make_plan(load_catalog(), load_profiles()["recommended"], load_node_types()["n2-standard-8"], options)
    assert plan.to_dict()["inputs"]["mesh"] == "istio"
    assert plan.node.provider == "gke"
    assert "istio-cni-node" in [d.name for d in plan.node.daemonsets]
    with pytest.raises(InputError, match="^provider: unknown provider 'EKS ';"):
        PlanOptions(provider="EKS ")  # type: ignore[arg-type]


def test_render_options_are_parsed_on_construction() -> None:
    assert RenderOptions(mesh="Istio").mesh == "istio"  # type: ignore[arg-type]
    assert RenderOptions(mesh=None).mesh == "none"  # type: ignore[arg-type]
    with pytest.raises(InputError, match=f"^mesh: unknown mesh 'linkerd'; {MESH_VALID}$"):
        RenderOptions(mesh="linkerd")  # type: ignore[arg-type]


def test_notebook_params_are_parsed() -> None:
    assert NotebookParams.from_notebook(mesh="ISTIO").mesh == "istio"
    assert NotebookParams.from_notebook(mesh="").mesh == "none"
    with pytest.raises(InputError, match="^mesh: unknown mesh 'linkerd'"):
        NotebookParams.from_notebook(mesh="linkerd")


def test_sim_cluster_parses_its_provider_before_starting(tmp_path: Path) -> None:
    assert SimCluster(provider="EKS", kubeconfig=tmp_path / "kc").provider == "eks"
    assert SimCluster(kubeconfig=tmp_path / "kc").provider is None   # taken from the node type's cloud
    with pytest.raises(InputError, match=f"^provider: unknown provider 'openshift'; {PROVIDER_VALID}$"):
        SimCluster(provider="openshift", kubeconfig=tmp_path / "kc")
    assert not (tmp_path / "kc").exists()


def test_cli_plan_takes_any_case_and_prints_the_parsed_value(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["plan", "--provider", "EKS", "--node-type", "m5.2xlarge", "--mesh", "Istio",
                   "--nodes", "4", "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    inputs = json.loads(out)["inputs"]
    assert (inputs["provider"], inputs["mesh"]) == ("eks", "istio")


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "--mesh", "linkerd"], f"mesh: unknown mesh 'linkerd'; {MESH_VALID}"),
    (["plan", "--provider", "k3s"], f"provider: unknown provider 'k3s'; {PROVIDER_VALID}"),
    (["manifests", "generate", "--profile", "minimum", "--mesh", "linkerd"],
     f"mesh: unknown mesh 'linkerd'; {MESH_VALID}"),
])
def test_cli_refuses_a_bad_choice_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              argv: list[str], message: str) -> None:
    out_dir = tmp_path / "out"
    if argv[0] == "manifests":
        argv = [*argv, "--out", str(out_dir)]
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("eafix-capacity: error: ") and lines[0].endswith(message), err
    assert not out_dir.exists()
