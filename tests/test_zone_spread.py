"""The rendering's zone spread (``zone_spread`` / ``manifests generate --zone-spread``): which
services carry it, that nothing changes without it, that the checks, the schema and import
accept it, and what kube-scheduler's rules (the sim's) make of it on nodes in several zones."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.checks import run_checks
from eafix_capacity.manifests.diff import diff_catalogs
from eafix_capacity.manifests.importer import import_manifests, import_summary
from eafix_capacity.manifests.layout import write_tree
from eafix_capacity.manifests.notebook import NotebookParams
from eafix_capacity.manifests.render import (ZONE_KEY, RenderOptions, check_options, is_multi_replica, render,
                                             selector_labels, spread_constraint, zone_spread_constraint)
from eafix_capacity.manifests.validate import validate_objects
from eafix_capacity.manifests.workflow import build, import_generated
from eafix_capacity.profiles import load_profiles
from eafix_capacity.quantity import parse
from eafix_capacity.sim.testing import frozen_sim_module, kubectl_on, sim_cluster_module

__all__ = ["frozen_sim_module", "sim_cluster_module"]   # the module's sim, as tests/sim/conftest.py

CATALOG = load_catalog()
PROFILES = load_profiles()
NS = "eafix-trading"
HOSTNAME = "kubernetes.io/hostname"
SPREAD_REFUSED = "node(s) didn't match pod topology spread constraints"


def _workloads(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


def _spread(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["topologySpreadConstraints"]


# --- the rendering (pure) ------------------------------------------------------------------------

@pytest.mark.parametrize("profile, mesh", [("recommended", "none"), ("minimum", "istio")])
def test_exactly_the_multi_replica_services_get_the_zone_spread_second(profile, mesh):
    work = _workloads(render(CATALOG, PROFILES[profile], RenderOptions(mesh=mesh, zone_spread=True)))
    multi = {s.name for s in CATALOG.services if is_multi_replica(s)}
    assert multi and multi != set(CATALOG.names())   # both kinds are in the catalogue
    for name, w in work.items():
        spread = _spread(w)
        assert spread[0] == spread_constraint(name)
        if name in multi:
            assert spread[1:] == [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
                                   "labelSelector": {"matchLabels": selector_labels(name)}}]
            assert spread[1] == zone_spread_constraint(name)
            # the selector selects the workload's own pods
            labels = w["spec"]["template"]["metadata"]["labels"]
            assert all(labels[k] == v for k, v in spread[1]["labelSelector"]["matchLabels"].items())
        else:
            assert spread == [spread_constraint(name)], name


def test_without_the_option_nothing_changes_and_with_it_only_the_zone_constraints():
    default = render(CATALOG, PROFILES["recommended"])
    assert render(CATALOG, PROFILES["recommended"], RenderOptions(zone_spread=False)) == default
    zoned = render(CATALOG, PROFILES["recommended"], RenderOptions(zone_spread=True))
    assert zoned != default
    stripped = copy.deepcopy(zoned)
    for w in _workloads(stripped).values():
        spec = w["spec"]["template"]["spec"]
        spec["topologySpreadConstraints"] = [c for c in spec["topologySpreadConstraints"]
                                             if c["topologyKey"] != ZONE_KEY]
    assert stripped == default
    # the files: the generated-by header says so, and only the multi-replica workloads' files differ
    plain = build(CATALOG, PROFILES["recommended"]).files
    zfiles = build(CATALOG, PROFILES["recommended"], RenderOptions(zone_spread=True)).files
    assert set(plain) == set(zfiles)
    assert b"Kubernetes 1.32, zone spread)" in zfiles["deployments/infrastructure.yml"]
    changed = {f for f in plain if zfiles[f].replace(b", zone spread", b"") != plain[f]}
    assert changed == {"deployments/trading-services.yml", "deployments/supporting-services.yml"}


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_zone_spread_that_is_not_a_boolean_is_refused(value):
    with pytest.raises(InputError, match="not a boolean") as e:
        check_options(RenderOptions(zone_spread=value))
    assert "\n" not in str(e.value) and "zone_spread" in str(e.value)
    with pytest.raises(InputError, match="not a boolean"):
        render(CATALOG, PROFILES["minimum"], RenderOptions(zone_spread=value))


def test_checks_schema_and_import_accept_the_zone_spread(tmp_path):
    gen = build(CATALOG, PROFILES["recommended"], RenderOptions(zone_spread=True))   # schema-validated
    assert [v for v in validate_objects(gen.objects) if v.severity == "error"] == []
    report = run_checks(gen.objects, validate=False)
    assert report.passed, report.failures
    assert diff_catalogs(import_generated(gen), CATALOG).empty
    write_tree(gen.files, out_dir=tmp_path / "zoned")
    assert import_summary(import_manifests(tmp_path / "zoned")) == import_summary(CATALOG)


@pytest.mark.parametrize("change, needle", [
    ({"labelSelector": {"matchLabels": {"app.kubernetes.io/name": "someone-else"}}}, "selects none of its pods"),
    ({"nodeTaintsPolicy": "Ignore"}, "lacks nodeTaintsPolicy Honor"),
])
def test_the_availability_check_fails_a_zone_spread_that_cannot_do_its_work(change, needle):
    objects = render(CATALOG, PROFILES["minimum"], RenderOptions(zone_spread=True))
    rm = _workloads(objects)["risk-manager"]
    _spread(rm)[1].update(change)
    t = run_checks(objects, validate=False).table
    row = t[(t["object"].str.contains("risk-manager")) & (t["check"] == "availability")
            & (t["object"].str.startswith("Deployment"))]
    assert list(row["status"]) == ["fail"] and needle in row["detail"].iloc[0]
    assert (t[t["check"] == "availability"]["status"] == "fail").sum() == 1


def test_manifests_generate_zone_spread_writes_it(tmp_path, capsys):
    out = tmp_path / "zoned"
    assert main(["manifests", "generate", "--profile", "minimum", "--zone-spread", "--out", str(out)]) == 0
    assert "zone spread" in capsys.readouterr().out
    docs = [d for f in ("trading-services.yml", "supporting-services.yml")
            for d in yaml.safe_load_all((out / "deployments" / f).read_text()) if d]
    spreads = {d["metadata"]["name"]: _spread(d) for d in docs if d["kind"] == "Deployment"}
    assert spreads["risk-manager"] == [spread_constraint("risk-manager"), zone_spread_constraint("risk-manager")]
    assert spreads["calendar-ingestor"] == [spread_constraint("calendar-ingestor")]


def test_notebook_params_take_zone_spread_as_a_boolean():
    assert NotebookParams.from_notebook(zone_spread=True).options().zone_spread is True
    assert NotebookParams.from_notebook().options() == RenderOptions()
    with pytest.raises(InputError, match="not a boolean"):
        NotebookParams.from_notebook(zone_spread="true")
    with pytest.raises(InputError, match="not a string"):
        NotebookParams.from_notebook(namespace=True)


def test_notebook_02_run_renders_the_zone_spread_and_says_so(tmp_path):
    from eafix_capacity.manifests import notebook

    result = notebook.run(NotebookParams.from_notebook(output_dir=str(tmp_path), zone_spread=True))
    summary = result.summary()
    assert summary["zone_spread"] is True and summary["passed"] is True
    assert summary["catalogue_matches"] is True and summary["matches_committed"] is False
    assert set(result.drift["file"]) >= {"deployments/trading-services.yml", "deployments/supporting-services.yml"}
    text = (tmp_path / "rendered-manifests" / "recommended" / "deployments" / "trading-services.yml").read_text()
    assert "topologyKey: topology.kubernetes.io/zone" in text


# --- on the sim: 3 nodes in zones a, b, c ---------------------------------------------------------

@pytest.fixture(scope="module")
def live(frozen_sim_module: Any) -> Iterator[tuple[Any, Any, Any, Any]]:
    from kubernetes import client

    from eafix_capacity.cluster.context import load_target

    target, api = load_target(kubeconfig=frozen_sim_module.kubeconfig, context="eafix-sim")
    yield frozen_sim_module, target, api, client.CoreV1Api(api)
    api.close()


def _send(live: tuple, objects: list[dict]) -> None:
    from eafix_capacity.cluster.apply import apply
    from eafix_capacity.cluster.notebook import select_objects

    sim, target, api, _ = live
    apply(select_objects(objects, external_secrets=False), api_client=api, target=target, dry_run=False,
          context_given=True)
    sim.settle()


def _zones(core: Any) -> dict[str, str]:
    return {n.metadata.name: n.metadata.labels[ZONE_KEY] for n in core.list_node().items}


@pytest.mark.sim
def test_the_zone_spread_rendering_places_replicas_in_distinct_zones(live):
    _send(live, render(CATALOG, PROFILES["minimum"], RenderOptions(zone_spread=True)))
    core = live[3]
    zones = _zones(core)
    assert len(set(zones.values())) == 3
    pods = core.list_namespaced_pod(NS).items
    assert pods and all(p.spec.node_name for p in pods), [p.metadata.name for p in pods if not p.spec.node_name]
    by_service: dict[str, Counter] = {}
    for p in pods:
        by_service.setdefault(p.metadata.labels["app.kubernetes.io/name"], Counter())[zones[p.spec.node_name]] += 1
    for svc in CATALOG.services:
        placed = by_service[svc.name]
        if is_multi_replica(svc):
            counts = [placed.get(z, 0) for z in set(zones.values())]
            assert sum(counts) >= 2 and max(counts) - min(counts) <= 1, (svc.name, placed)
            if sum(counts) == 2:
                assert len(placed) == 2, (svc.name, placed)   # two replicas, two zones


def _free_cpu_m(core: Any, node: Any) -> int:
    used = sum(parse(c.resources.requests["cpu"]).milli_value()
               for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node.metadata.name}").items
               if p.status.phase not in ("Succeeded", "Failed")
               for c in p.spec.containers if c.resources and c.resources.requests and "cpu" in c.resources.requests)
    return parse(node.status.allocatable["cpu"]).milli_value() - used


def _copy_into(objects: list[dict], namespace: str, name: str, *, replicas: int) -> list[dict]:
    """The rendered ServiceAccount and Deployment of ``name`` in another namespace."""
    picked = [copy.deepcopy(o) for o in objects
              if o["kind"] in ("ServiceAccount", "Deployment") and o["metadata"]["name"] == name]
    for o in picked:
        o["metadata"]["namespace"] = namespace
        if o["kind"] == "Deployment":
            o["spec"]["replicas"] = replicas
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, *picked]


def _pods(core: Any, namespace: str) -> list[Any]:
    return core.list_namespaced_pod(namespace).items


@pytest.mark.sim
def test_the_zone_spread_refuses_a_replica_its_zone_cannot_take(live):
    """Nodes 0 and 2 in zone a, node 1 (zone b) full: the hostname spread alone puts the second
    replica on node 2; the zone spread leaves it Pending with kube-scheduler's message. Then zone b
    lost (its node unreachable, tainted): with Honor it is no domain, so 3 replicas run in zone a."""
    sim, _, _, core = live
    nodes = sorted(core.list_node().items, key=lambda n: n.metadata.name)
    zone_a, zone_c = nodes[0].metadata.labels[ZONE_KEY], nodes[2].metadata.labels[ZONE_KEY]
    n1 = nodes[1].metadata.name
    kubectl_on(sim, "label", "node", nodes[2].metadata.name, f"{ZONE_KEY}={zone_a}", "--overwrite")
    try:
        filler = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "filler", "namespace": "default"},
                  "spec": {"nodeSelector": {HOSTNAME: n1}, "containers": [{
                      "name": "pause", "image": "registry.k8s.io/pause:3.10",
                      "resources": {"requests": {"cpu": f"{_free_cpu_m(core, nodes[1]) - 100}m"}}}]}}
        core.create_namespaced_pod("default", filler)
        sim.settle()
        assert core.read_namespaced_pod("filler", "default").spec.node_name == n1

        zoned = render(CATALOG, PROFILES["minimum"], RenderOptions(zone_spread=True))
        plain = render(CATALOG, PROFILES["minimum"])
        _send(live, _copy_into(plain, "zs-off", "risk-manager", replicas=2))
        _send(live, _copy_into(zoned, "zs-on", "risk-manager", replicas=2))

        off = _pods(core, "zs-off")
        assert len(off) == 2 and all(p.spec.node_name for p in off)
        assert {_zones(core)[p.spec.node_name] for p in off} == {zone_a}   # both in one zone

        on = _pods(core, "zs-on")
        placed = [p for p in on if p.spec.node_name]
        pending = [p for p in on if not p.spec.node_name]
        assert len(placed) == 1 and len(pending) == 1
        cond = next(c for c in pending[0].status.conditions if c.type == "PodScheduled")
        assert (cond.status, cond.reason) == ("False", "Unschedulable")
        assert cond.message.startswith(f"0/3 nodes are available: 1 Insufficient cpu, 2 {SPREAD_REFUSED}.")
        events = core.list_namespaced_event("zs-on", field_selector=f"involvedObject.name={pending[0].metadata.name}")
        assert [e.message for e in events.items if e.reason == "FailedScheduling"][-1] == cond.message

        # zone b lost: its node unreachable, so the node lifecycle controller taints it NoSchedule
        sim.set_node_condition(n1, ready=None)
        sim.settle()
        taints = {(t.key, t.effect) for t in core.read_node(n1).spec.taints or []}
        assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints
        _send(live, _copy_into(zoned, "zs-lost", "risk-manager", replicas=3))
        lost = _pods(core, "zs-lost")
        assert len(lost) == 3 and all(p.spec.node_name for p in lost), \
            [c.message for p in lost for c in (p.status.conditions or []) if c.type == "PodScheduled"]
        assert Counter(p.spec.node_name for p in lost).keys() == {nodes[0].metadata.name, nodes[2].metadata.name}
    finally:
        sim.set_node_condition(n1, ready=True)
        kubectl_on(sim, "label", "node", nodes[2].metadata.name, f"{ZONE_KEY}={zone_c}", "--overwrite")
