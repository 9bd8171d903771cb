"""The official kubernetes Python client against the sim: CRUD, patch, replace conflicts, watch."""
from __future__ import annotations

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from eafix_capacity.sim.cluster import SimCluster

pytestmark = pytest.mark.sim


def apis(sim: SimCluster) -> tuple[client.CoreV1Api, client.AppsV1Api]:
    api_client = config.new_client_from_config(config_file=str(sim.kubeconfig))
    return client.CoreV1Api(api_client), client.AppsV1Api(api_client)


def deployment(name: str) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="nginx:1.25")]))))


def test_core_crud_and_conflict(sim_cluster: SimCluster) -> None:
    core, _ = apis(sim_cluster)
    assert len(core.list_node().items) == 3
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    created = core.create_namespaced_config_map(
        "py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"a": "1"}))
    created.data["a"] = "2"
    replaced = core.replace_namespaced_config_map("c", "py", created)
    assert replaced.data == {"a": "2"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("c", "py", created)
    assert stale.value.status == 409 and "Conflict" in stale.value.body
    patched = core.patch_namespaced_config_map("c", "py", {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "py")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as dup:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    assert dup.value.status == 409


def test_apps_create_scale_list_and_watch(sim_cluster: SimCluster) -> None:
    core, apps = apis(sim_cluster)
    apps.create_namespaced_deployment("default", deployment("api"))
    scale = apps.patch_namespaced_deployment_scale("api", "default", {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert [d.metadata.name for d in apps.list_namespaced_deployment("default", label_selector="x!=y").items] == ["api"]
    sim_cluster.settle(5)
    pods = core.list_namespaced_pod("default", label_selector="app=api").items
    assert len(pods) == 3 and all(p.metadata.name.startswith("api-") for p in pods)
    seen = {ev["object"].metadata.name for ev in
            watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="app=api", timeout_seconds=1)}
    assert seen == {p.metadata.name for p in pods}


def test_invalid_object_is_422_with_causes(sim_cluster: SimCluster) -> None:
    _, apps = apis(sim_cluster)
    bad = deployment("bad")
    bad.spec.template.metadata.labels = {"app": "other"}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", bad)
    assert err.value.status == 422 and "spec.template.metadata.labels" in err.value.body
