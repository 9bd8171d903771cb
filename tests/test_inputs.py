"""Plan parameters: every bad value is refused with the source it came from (a params
file, the command line, notebook parameters), the right way to ask for the default there,
and Kubernetes' own limits; relative paths are resolved before a kernel starts."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams, check_params, parse_count, parse_replicas_text
from eafix_capacity.limits import MAX_NODES, MAX_PODS
from eafix_capacity.paths import data_file

NODES_LIMIT = "Kubernetes supports at most 5,000 nodes per cluster"
PODS_LIMIT = "Kubernetes supports at most 150,000 pods per cluster"


def params_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(InputError) as e:
        PlanParams.from_yaml(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert e.value.file == str(path)
    assert msg.startswith(f"{path}: "), msg
    return msg


# ------------------------------------------------------------------ params files name themselves


@pytest.mark.parametrize(("text", "fragments"), [
    ('nodes: "three"\n', ["nodes: not a whole number of at least 1 'three'",
                          "an integer from 1 to 5,000, or null or leave it out for the default"]),
    ("nodes: 2.5\n", ["nodes", "2.5"]),
    ("nodes: true\n", ["nodes", "True"]),
    ("profile: null\n", ["profile: null, not a name", "leave it out for the default 'recommended'"]),
    ("profile: 3\n", ["profile: not a non-empty string 3"]),
    ("node_type: ''\n", ["node_type: not a non-empty string ''", "n2-standard-8"]),
    ("mesh: 3\n", ["mesh: unknown mesh 3", "one of: none, istio"]),
    ("provider: [gke]\n", ["provider: unknown provider ['gke']", "gke"]),
    ("headroom_pct: fast\n", ["headroom_pct: not a number 'fast'"]),
    ("catalog: 7\n", ["catalog: not a path 7"]),
    ("replicas: [reporter]\n", ["replicas: not a mapping"]),
    ("replicas: {reporter: two}\n", ["reporter: replicas: not an integer 'two'"]),
    ("replicas: {reporter: -1}\n", ["reporter: replicas: negative replicas -1", "0 or more"]),
    ("nodez: 3\n", ["nodez: unknown parameter 'nodez'", "known parameters:"]),
    ("- nodes\n", ["expected a mapping of parameter names to values"]),
])
def test_type_errors_in_a_params_file_name_the_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    msg = refused(params_file(tmp_path, text))
    for f in fragments:
        assert f in msg, (f, msg)


@pytest.mark.parametrize("name", ["headroom_pct", "cpu_limit_ratio", "memory_limit_ratio", "storage_gib"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_in_a_params_file_are_refused(tmp_path: Path, name: str, value: str) -> None:
    msg = refused(params_file(tmp_path, f"{name}: {value}\n"))
    assert f"{name}: not a finite number" in msg
    assert "finite" in msg.split("; ", 1)[1] or "percentage" in msg, msg


@pytest.mark.parametrize(("name", "value", "valid"), [
    ("headroom_pct", 100, "a percentage from 0 up to (not including) 100"),
    ("headroom_pct", -1, "a percentage from 0 up to (not including) 100"),
    ("cpu_limit_ratio", 0, "a finite number above 0"),
    ("memory_limit_ratio", -2.5, "a finite number above 0"),
    ("storage_gib", -5, "0 or more"),
])
def test_out_of_range_numbers_say_the_valid_range(tmp_path: Path, name: str, value: float, valid: str) -> None:
    msg = refused(params_file(tmp_path, f"{name}: {value}\n"))
    assert f"{name}: " in msg and str(value) in msg and valid in msg, msg


# ------------------------------------------------------------------ Kubernetes' limits


@pytest.mark.parametrize(("values", "fragments"), [
    ({"nodes": MAX_NODES + 1}, ["nodes: too many nodes 5001", "at most 5,000", NODES_LIMIT,
                                "cluster-large"]),
    ({"nodes": 10**9}, ["nodes: too many nodes 1000000000", NODES_LIMIT]),
    ({"max_pods": 10**9}, ["max_pods: too many pods per node 1000000000", PODS_LIMIT]),
    ({"replicas": {"reporter": 10**8}}, ["reporter: replicas: too many replicas 100000000", PODS_LIMIT]),
])
def test_counts_above_what_kubernetes_supports_are_refused(values: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(InputError) as e:
        PlanParams.from_mapping(values, source="p.yaml")
    msg = str(e.value)
    assert msg.startswith("p.yaml: ")
    for f in fragments:
        assert f in msg, (f, msg)


def test_the_limits_themselves_are_accepted() -> None:
    p = PlanParams.from_mapping({"nodes": MAX_NODES, "max_pods": MAX_PODS, "replicas": {"reporter": MAX_PODS}})
    assert (p.nodes, p.max_pods, p.replicas["reporter"]) == (MAX_NODES, MAX_PODS, MAX_PODS)


# ------------------------------------------------------------------ the default, said for where it came from


@pytest.mark.parametrize(("origin", "hint"), [
    ("file", "or null or leave it out for the default"),
    ("cli", "or leave the flag out for the default"),
    ("notebook", "or 0 for the default"),
    ("python", "or None for the default"),
])
def test_the_default_hint_matches_where_the_value_came_from(origin: str, hint: str) -> None:
    with pytest.raises(InputError) as e:
        check_params({"nodes": -1}, source="s", origin=origin)  # type: ignore[arg-type]
    assert str(e.value).endswith(hint), str(e.value)


def test_notebook_parameters_say_0_for_the_default() -> None:
    with pytest.raises(InputError) as e:
        PlanParams.from_notebook(nodes=-1)
    msg = str(e.value)
    assert msg.startswith("notebook parameters: nodes: ")
    assert msg.endswith("or 0 for the default")
    assert "null" not in msg
    with pytest.raises(InputError, match=r"^notebook parameters: storage_gib: not a finite number nan; .*"
                                         r"or 0 for the default$"):
        PlanParams.from_notebook(storage_gib=math.nan)
    # and 0 is the default there
    assert PlanParams.from_notebook(nodes=0, storage_gib=0.0, max_pods=0) == PlanParams()


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(InputError, match="nodes: too many nodes"):
        PlanParams(nodes=10**9)
    with pytest.raises(InputError, match="storage_gib: not a finite number inf"):
        PlanParams(storage_gib=math.inf)


# ------------------------------------------------------------------ replica text and counts


@pytest.mark.parametrize("text", ["reporter:²", "reporter:" + "9" * 5000, "reporter:1e3", "reporter:",
                                  ":2", "reporter=2", "reporter:٣"])
def test_replica_text_that_is_no_count_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="invalid replica override"):
        parse_replicas_text(text, source="notebook parameters")


def test_replica_text_and_counts() -> None:
    assert parse_replicas_text(" reporter : 2 , gui-gateway:3,") == {"reporter": 2, "gui-gateway": 3}
    assert parse_count("-4") == -4
    assert parse_count("9" * 19) is None
    with pytest.raises(InputError, match="not a string"):
        parse_replicas_text(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ paths


def test_a_params_files_relative_paths_are_relative_to_the_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "services.yaml").write_text(data_file("services.yaml").read_text(encoding="utf-8"),
                                        encoding="utf-8")
    path = conf / "params.yaml"
    path.write_text(yaml.safe_dump({"catalog": "services.yaml"}), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    p = PlanParams.from_yaml(Path(os.path.relpath(path, elsewhere)))
    assert p.catalog == str(conf / "services.yaml")
    assert p.notebook_parameters()["catalog"] == str(conf / "services.yaml")


def test_command_line_and_notebook_paths_are_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = PlanParams.from_mapping({"catalog": "sub/services.yaml"}, source="command line", origin="cli")
    assert p.catalog == str(tmp_path / "sub" / "services.yaml")
    q = PlanParams.from_notebook(manifests="m", catalog="")
    assert q.manifests == str(tmp_path / "m") and q.catalog is None
    r = PlanParams.from_mapping({"catalog": str(tmp_path / "a" / ".." / "s.yaml")})
    assert r.catalog == str(tmp_path / "s.yaml")
