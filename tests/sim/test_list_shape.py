"""The shape of list, get and watch answers: where ``kind`` and ``apiVersion`` appear.

A real kube-apiserver leaves them out of the items of a built-in type's list (only the list
has them: kubernetes/kubernetes#3030, #63676), keeps them in a custom resource list's items
(the apiextensions server stores unstructured objects whole), and sends them on a single
object and on every watch event's object (the watch encoder encodes each one as an object of
its own). Code that reads ``item["kind"]`` from a list must fail on the sim as on a cluster.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.api import Api, _builtin_list_body
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.store import Store, type_meta_prefix
from eafix_capacity.sim.testing import kubectl_on

pytestmark = pytest.mark.sim

CRD_DIR = Path(__file__).parent / "data" / "api" / "crd"
NS = "shape"


@pytest.fixture(scope="module")
def sim(sim_cluster_module: SimCluster) -> SimCluster:
    api_client = config.new_client_from_config(config_file=str(sim_cluster_module.kubeconfig))
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": NS}})
    # apiVersion before kind, as YAML manifests have it: the server's own order is what is served
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": name}, "data": {"k": name}})
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}})
    client.AppsV1Api(api_client).create_namespaced_deployment(NS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}}}})
    crd = yaml.safe_load((CRD_DIR / "virtualservice-crd.yaml").read_text())
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    cr = yaml.safe_load((CRD_DIR / "virtualservice.yaml").read_text())
    client.CustomObjectsApi(api_client).create_namespaced_custom_object("networking.istio.io", "v1", NS,
                                                                        "virtualservices", cr)
    return sim_cluster_module


def _api(sim: SimCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sim.kubeconfig))


def _body(response: Any) -> bytes:
    """The bytes the server sent (a ``_preload_content=False`` call's response)."""
    return bytes(response.data)


def _json(response: Any) -> dict:
    return json.loads(_body(response))


def _first_event(response: Any) -> dict:
    """The first event of a watch stream, then the stream closed (not waited out)."""
    try:
        return json.loads(response.readline())
    finally:
        response.close()


def test_builtin_list_items_have_no_kind_or_api_version(sim: SimCluster) -> None:
    api_client = _api(sim)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    cms = _json(core.list_namespaced_config_map(NS, _preload_content=False))
    deps = _json(apps.list_deployment_for_all_namespaces(_preload_content=False))
    pods = _json(core.list_namespaced_pod(NS, _preload_content=False))
    assert (cms["kind"], cms["apiVersion"]) == ("ConfigMapList", "v1")
    assert (deps["kind"], deps["apiVersion"]) == ("DeploymentList", "apps/v1")
    assert pods["kind"] == "PodList" and len(pods["items"]) == 1
    assert sorted(i["metadata"]["name"] for i in cms["items"]) == ["a", "b", "c", "kube-root-ca.crt"]
    for item in cms["items"] + deps["items"] + pods["items"]:
        assert "kind" not in item and "apiVersion" not in item, item["metadata"]["name"]
        assert next(iter(item)) == "metadata"
    assert {i["metadata"]["name"]: i["data"]["k"] for i in cms["items"] if "k" in i.get("data", {})} == {
        "a": "a", "b": "b", "c": "c"}
    # the typed client reads the list's items with kind None, as it does on a real cluster
    assert {d.kind for d in apps.list_namespaced_deployment(NS).items} == {None}


def test_paged_and_deleted_collection_items_have_no_kind(sim: SimCluster) -> None:
    core = client.CoreV1Api(_api(sim))
    first = _json(core.list_namespaced_config_map(NS, limit=2, _preload_content=False))
    rest = _json(core.list_namespaced_config_map(NS, limit=2, _continue=first["metadata"]["continue"],
                                                 _preload_content=False))
    assert [i["metadata"]["name"] for i in first["items"] + rest["items"]] == ["a", "b", "c", "kube-root-ca.crt"]
    assert all("kind" not in i and "apiVersion" not in i for i in first["items"] + rest["items"])
    core.create_namespaced_config_map(NS, {"metadata": {"name": "gone", "labels": {"drop": "yes"}}})
    deleted = _json(core.delete_collection_namespaced_config_map(NS, label_selector="drop=yes",
                                                                 _preload_content=False))
    assert deleted["kind"] == "ConfigMapList"
    assert [sorted(i) for i in deleted["items"]] == [["metadata"]]


def test_single_get_and_writes_carry_kind_first(sim: SimCluster) -> None:
    core = client.CoreV1Api(_api(sim))
    got = _body(core.read_namespaced_config_map("a", NS, _preload_content=False))
    assert got.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"')
    patched = _body(core.patch_namespaced_config_map("a", NS, {"data": {"p": "1"}}, _preload_content=False))
    assert patched.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":')
    assert json.loads(patched)["data"] == {"k": "a", "p": "1"}
    status = _body(client.AppsV1Api(_api(sim)).read_namespaced_deployment_status("web", NS, _preload_content=False))
    assert status.startswith(b'{"kind":"Deployment","apiVersion":"apps/v1","metadata":')


def test_custom_resource_list_items_keep_kind_and_api_version(sim: SimCluster) -> None:
    custom = client.CustomObjectsApi(_api(sim))
    listed = _json(custom.list_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices",
                                                        _preload_content=False))
    assert (listed["kind"], listed["apiVersion"]) == ("VirtualServiceList", "networking.istio.io/v1")
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("VirtualService", "networking.istio.io/v1", "vs1")]
    # an unstructured object is a map: encoding/json writes its keys sorted
    got = _body(custom.get_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "vs1",
                                                    _preload_content=False))
    assert list(json.loads(got)) == sorted(json.loads(got))


def test_watch_events_carry_kind_and_api_version(sim: SimCluster) -> None:
    core = client.CoreV1Api(_api(sim))
    rv = _json(core.list_namespaced_config_map(NS, _preload_content=False))["metadata"]["resourceVersion"]
    core.patch_namespaced_config_map("b", NS, {"data": {"w": "1"}})
    # from a resourceVersion: the change from the event log; without one: the initial ADDED events
    events = [_first_event(core.list_namespaced_config_map(NS, watch=True, resource_version=rv, timeout_seconds=30,
                                                           _preload_content=False)),
              _first_event(core.list_namespaced_config_map(NS, watch=True, field_selector="metadata.name=c",
                                                           timeout_seconds=30, _preload_content=False))]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "b"), ("ADDED", "c")]
    assert all((e["object"]["kind"], e["object"]["apiVersion"]) == ("ConfigMap", "v1") for e in events)


def test_kubectl_sets_kind_on_items_itself(sim: SimCluster) -> None:
    # kubectl decodes the list as unstructured, which fills each item's kind and apiVersion from
    # the list's, and prints a v1 List: its output has them on a real cluster too
    out = json.loads(kubectl_on(sim, "get", "configmaps", "-n", NS, "-o", "json").stdout)
    assert (out["kind"], out["apiVersion"]) == ("List", "v1")
    assert [(i["kind"], i["apiVersion"]) for i in out["items"]] == [("ConfigMap", "v1")] * 4


def test_restored_state_in_client_order_is_listed_without_kind() -> None:
    """A state file saved before the store kept TypeMeta first (apiVersion first, as manifests)."""
    store = Store()
    doc = {"resourceVersion": 7, "objects": {R.CONFIGMAP.key: [
        {"apiVersion": "v1", "data": {"x": "1"}, "kind": "ConfigMap",
         "metadata": {"name": "old", "namespace": "default", "resourceVersion": "7", "uid": "u"}}]}}
    store.restore(doc)
    assert store.get_raw(R.CONFIGMAP, "default", "old").startswith(type_meta_prefix("ConfigMap", "v1") + b'"metadata"')
    resp = Api(store).handle("GET", "/api/v1/namespaces/default/configmaps", "", {}, b"")
    assert resp.status == 200
    assert json.loads(resp.body)["items"] == [{"metadata": doc["objects"][R.CONFIGMAP.key][0]["metadata"],
                                               "data": {"x": "1"}}]


def test_list_body_reencodes_an_item_not_in_server_order() -> None:
    prefix = type_meta_prefix("Pod", "v1")
    raws = [prefix + b'"metadata":{"name":"p1"}}', b'{"metadata":{"name":"p2"},"apiVersion":"v1","kind":"Pod"}',
            b'{"kind":"Pod","apiVersion":"v1"}']
    body = _builtin_list_body(b'{"kind":"PodList","items":[', raws, prefix)
    assert json.loads(body) == {"kind": "PodList", "items": [{"metadata": {"name": "p1"}},
                                                             {"metadata": {"name": "p2"}}, {}]}
    assert json.loads(_builtin_list_body(b'{"items":[', [], prefix)) == {"items": []}
    assert json.loads(_builtin_list_body(b'{"items":[', raws[:1], prefix)) == {"items": [{"metadata": {"name": "p1"}}]}


def test_metrics_lists_as_metrics_server(sim: SimCluster) -> None:
    assert sim.clock is not None
    sim.clock.advance(120)  # metrics-server has no metrics for a node until it has scraped it twice
    custom = client.CustomObjectsApi(_api(sim))
    nodes = _json(custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", _preload_content=False))
    assert nodes["kind"] == "NodeMetricsList" and len(nodes["items"]) == 3
    assert all("kind" not in i and "apiVersion" not in i for i in nodes["items"])
    name = nodes["items"][0]["metadata"]["name"]
    one = _json(custom.get_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", name, _preload_content=False))
    assert (one["kind"], one["apiVersion"], one["metadata"]["name"]) == ("NodeMetrics", "metrics.k8s.io/v1beta1", name)
