"""A service's node pool in the catalogue and the rendering: ``node_selector`` and
``tolerations`` in services.yaml (each bad input refused in one line naming file, service,
field and value), written into the pod template as ``nodeSelector``/``tolerations``, accepted
by the checks and the schema, and read back by the importer. Without them nothing changes."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from eafix_capacity.catalog import Catalog, catalog_from_dict, load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.checks import run_checks
from eafix_capacity.manifests.importer import import_manifests
from eafix_capacity.manifests.render import render
from eafix_capacity.manifests.validate import validate_objects
from eafix_capacity.manifests.workflow import generate
from eafix_capacity.paths import data_file
from eafix_capacity.profiles import load_profiles
from eafix_capacity.scheduling import Toleration
from eafix_capacity.usage.recommend import catalog_document, catalog_text

CATALOG = load_catalog()
PROFILES = load_profiles()
MEMORY = ("redis", "postgres", "prometheus")
SELECTOR = {"eafix.io/pool": "memory"}
TOLERATION = Toleration(key="eafix.io/pool", operator="Equal", value="memory", effect="NoSchedule")


def pooled(catalog: Catalog = CATALOG) -> Catalog:
    """The catalogue with the memory services on the memory pool."""
    return dataclasses.replace(catalog, services=tuple(
        dataclasses.replace(s, node_selector=dict(SELECTOR), tolerations=(TOLERATION,)) if s.name in MEMORY else s
        for s in catalog.services))


def _doc() -> dict[str, Any]:
    return yaml.safe_load(data_file("services.yaml").read_text())


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _workloads(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


# --- the catalogue ---------------------------------------------------------------------------

def test_the_fields_are_read_from_services_yaml(tmp_path: Path) -> None:
    doc = _doc()
    redis = next(s for s in doc["services"] if s["name"] == "redis")
    redis["node_selector"] = {"eafix.io/pool": "memory", "kubernetes.io/arch": "amd64"}
    redis["tolerations"] = [{"key": "eafix.io/pool", "value": "memory", "effect": "NoSchedule"},
                            {"key": "dedicated", "operator": "Exists"},
                            {"operator": "Exists", "effect": "NoExecute"}]
    svc = load_catalog(_write(tmp_path, doc)).get("redis")
    assert svc.node_selector == {"eafix.io/pool": "memory", "kubernetes.io/arch": "amd64"}
    assert svc.tolerations == (TOLERATION, Toleration("dedicated", "Exists", "", ""),
                               Toleration("", "Exists", "", "NoExecute"))
    assert all(s.node_selector == {} and s.tolerations == () for s in CATALOG.services)


def test_a_catalogue_round_trips_with_and_without_them() -> None:
    assert catalog_from_dict(catalog_document(CATALOG)).services == CATALOG.services
    plain = catalog_document(CATALOG)["services"]
    assert not any("node_selector" in s or "tolerations" in s for s in plain)
    cat = pooled()
    doc = catalog_document(cat)
    redis = next(s for s in doc["services"] if s["name"] == "redis")
    # as written by hand: the default operator Equal left out
    assert redis["node_selector"] == SELECTOR
    assert redis["tolerations"] == [{"key": "eafix.io/pool", "value": "memory", "effect": "NoSchedule"}]
    assert catalog_from_dict(yaml.safe_load(catalog_text(cat))).services == cat.services
    exists = dataclasses.replace(cat, services=tuple(
        dataclasses.replace(s, tolerations=(Toleration("", "Exists", "", ""),)) if s.name == "grafana" else s
        for s in cat.services))
    assert catalog_from_dict(catalog_document(exists)).services == exists.services


def test_with_replicas_keeps_the_pool_fields() -> None:
    changed = pooled().with_replicas({"redis": 3})
    assert changed.get("redis").replicas == 3
    assert changed.get("redis").node_selector == SELECTOR and changed.get("redis").tolerations == (TOLERATION,)


@pytest.mark.parametrize("field, value, message", [
    ("node_selector", ["eafix.io/pool"],
     "node_selector: not a mapping ['eafix.io/pool']"),
    ("node_selector", {"eafix io/pool": "memory"},
     "node_selector: invalid label key 'eafix io/pool'"),
    ("node_selector", {"eafix.io/pool": "memory pool"},
     "node_selector.eafix.io/pool: invalid label value 'memory pool'"),
    ("node_selector", {"eafix.io/pool": 3},
     "node_selector.eafix.io/pool: invalid label value 3"),
    ("tolerations", {"key": "eafix.io/pool"},
     "tolerations: not a list {'key': 'eafix.io/pool'}"),
    ("tolerations", ["eafix.io/pool"],
     "tolerations[0]: not a mapping 'eafix.io/pool'"),
    ("tolerations", [{"key": "eafix.io/pool", "seconds": 30}],
     "tolerations[0].seconds: unknown field 'seconds'"),
    ("tolerations", [{"key": "-bad", "effect": "NoSchedule"}],
     "tolerations[0].key: invalid toleration key '-bad'"),
    ("tolerations", [{"key": "eafix.io/pool", "operator": "In"}],
     "tolerations[0].operator: invalid toleration operator 'In'"),
    # validateTolerations: an empty key needs Exists (it matches every taint) ...
    ("tolerations", [{"value": "memory", "effect": "NoSchedule"}],
     "tolerations[0].operator: operator must be Exists when key is empty 'Equal'"),
    # ... and Exists an empty value
    ("tolerations", [{"key": "eafix.io/pool", "operator": "Exists", "value": "memory"}],
     "tolerations[0].value: value must be empty when operator is Exists 'memory'"),
    ("tolerations", [{"key": "eafix.io/pool", "value": "memory!"}],
     "tolerations[0].value: invalid toleration value 'memory!'"),
    ("tolerations", [{"key": "eafix.io/pool", "value": "memory", "effect": "NoScheduling"}],
     "tolerations[0].effect: invalid toleration effect 'NoScheduling'"),
])
def test_each_bad_pool_field_is_refused_in_one_line(tmp_path: Path, field: str, value: Any, message: str) -> None:
    doc = _doc()
    next(s for s in doc["services"] if s["name"] == "redis")[field] = copy.deepcopy(value)
    path = _write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_catalog(path)
    text = str(e.value)
    assert text.startswith(f"{path}: redis: {message}; "), text
    assert "\n" not in text


def test_the_services_yaml_header_lists_the_new_fields() -> None:
    header = [line for line in data_file("services.yaml").read_text().splitlines() if line.startswith("#")]
    assert any("node_selector" in line for line in header) and any("tolerations" in line for line in header)


# --- the rendering -----------------------------------------------------------------------------

def test_the_rendering_writes_selector_and_tolerations_only_where_given() -> None:
    plain = render(CATALOG, PROFILES["recommended"])
    objects = render(pooled(), PROFILES["recommended"])
    work, before = _workloads(objects), _workloads(plain)
    for name, w in work.items():
        spec = w["spec"]["template"]["spec"]
        if name in MEMORY:
            assert spec["nodeSelector"] == SELECTOR
            assert spec["tolerations"] == [{"key": "eafix.io/pool", "operator": "Equal", "value": "memory",
                                            "effect": "NoSchedule"}]
            rest = {k: v for k, v in spec.items() if k not in ("nodeSelector", "tolerations")}
            assert rest == before[name]["spec"]["template"]["spec"]
        else:
            assert "nodeSelector" not in spec and "tolerations" not in spec
            assert w == before[name]
    # everything but the pod templates of the three services is as before
    assert [o for o in objects if o["metadata"]["name"] not in MEMORY] == \
        [o for o in plain if o["metadata"]["name"] not in MEMORY]


def test_empty_toleration_fields_are_left_out_as_the_api_server_shows_them() -> None:
    cat = dataclasses.replace(CATALOG, services=tuple(
        dataclasses.replace(s, tolerations=(Toleration("", "Exists", "", ""),
                                            Toleration("dedicated", "Exists", "", "NoSchedule")))
        if s.name == "redis" else s for s in CATALOG.services))
    spec = _workloads(render(cat, PROFILES["minimum"]))["redis"]["spec"]["template"]["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"},
                                   {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]


def test_checks_and_the_schema_accept_them_and_import_reads_them_back(tmp_path: Path) -> None:
    cat = pooled()
    objects = render(cat, PROFILES["recommended"])
    assert validate_objects(objects) == []
    report = run_checks(objects)
    assert report.passed, report.failures
    _, out = generate(profile="recommended", catalog=cat, out_dir=tmp_path / "out")
    back = import_manifests(out)
    for svc in cat.services:
        got = back.get(svc.name)
        assert got.node_selector == svc.node_selector and got.tolerations == svc.tolerations, svc.name
    # a rendering without them imports without them (manifests/ itself: test_manifests_layout's drift test)
    _, plain = generate(profile="recommended", out_dir=tmp_path / "plain")
    assert all(s.node_selector == {} and s.tolerations == () for s in import_manifests(plain).services)


def test_import_refuses_a_bad_node_selector_in_a_manifest(tmp_path: Path) -> None:
    _, out = generate(profile="minimum", catalog=pooled(), out_dir=tmp_path / "out")
    path = out / "deployments" / "infrastructure.yml"
    text = path.read_text()
    good = "nodeSelector:\n        eafix.io/pool: memory\n"
    assert good in text   # redis's, the first workload of the file
    path.write_text(text.replace(good, good.replace("memory", "mem ory"), 1))
    with pytest.raises(InputError, match=r"redis: node_selector.eafix.io/pool: invalid label value 'mem ory'"):
        import_manifests(out)


def test_import_reads_a_hand_written_toleration_as_the_api_server_does(tmp_path: Path) -> None:
    _, out = generate(profile="minimum", catalog=pooled(), out_dir=tmp_path / "out")
    path = out / "deployments" / "infrastructure.yml"
    docs = list(yaml.safe_load_all(path.read_text()))
    redis = next(d for d in docs if d and d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    # tolerationSeconds does not change where the pods go; an empty operator is Equal
    redis["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "eafix.io/pool", "operator": "", "value": "memory", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30}]
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    assert import_manifests(out).get("redis").tolerations == (
        TOLERATION, Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"))
