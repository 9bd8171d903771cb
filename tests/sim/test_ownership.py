"""Who owns what: controllers' field managers, and the HPA's clamp to its range before metrics."""
from __future__ import annotations

import json

import pytest

from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import kubectl_on

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]


@pytest.fixture(scope="module")
def sim(frozen_sim_module: SimCluster) -> SimCluster:
    return frozen_sim_module


kubectl = kubectl_on


def deployment(ns: str, replicas: int | None) -> str:
    line = f"  replicas: {replicas}\n" if replicas is not None else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
{line}  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers: [{{name: api, image: "nginx:1.27", resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}]
"""


def hpa(ns: str, *, min_replicas: int, max_replicas: int) -> str:
    return f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: api, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: api}}
  minReplicas: {min_replicas}
  maxReplicas: {max_replicas}
  metrics: [{{type: Resource, resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 70}}}}}}]
"""


def replicas(sim: SimCluster, ns: str) -> int:
    return int(json.loads(kubectl(sim, "get", "deploy", "api", "-n", ns, "-o", "json").stdout)["spec"]["replicas"])


def test_the_hpa_raises_a_defaulted_deployment_to_min_replicas_before_it_has_metrics(sim: SimCluster) -> None:
    kubectl(sim, "create", "namespace", "clamp")
    kubectl(sim, "apply", "-f", "-", stdin=deployment("clamp", None) + "---" + hpa("clamp", min_replicas=2,
                                                                                     max_replicas=5))
    sim.settle()
    assert replicas(sim, "clamp") == 2
    events = json.loads(kubectl(sim, "get", "events", "-n", "clamp", "-o", "json",
                                "--field-selector", "involvedObject.kind=HorizontalPodAutoscaler").stdout)["items"]
    assert "New size: 2; reason: Current number of replicas below Spec.MinReplicas" in [e["message"] for e in events]
    status = json.loads(kubectl(sim, "get", "hpa", "api", "-n", "clamp", "-o", "json").stdout)["status"]
    assert status["desiredReplicas"] == 2
    pods = json.loads(kubectl(sim, "get", "pods", "-n", "clamp", "-o", "json").stdout)["items"]
    assert len(pods) == 2


def test_the_hpa_lowers_a_deployment_above_max_replicas(sim: SimCluster) -> None:
    kubectl(sim, "create", "namespace", "ceiling")
    kubectl(sim, "apply", "-f", "-", stdin=deployment("ceiling", 6) + "---" + hpa("ceiling", min_replicas=1,
                                                                                    max_replicas=3))
    sim.settle()
    assert replicas(sim, "ceiling") == 3


def test_a_server_side_reapply_of_replicas_conflicts_with_the_hpa(sim: SimCluster) -> None:
    kubectl(sim, "create", "namespace", "owners")
    manifest = deployment("owners", 1)
    kubectl(sim, "apply", "--server-side", "-f", "-", stdin=manifest)
    kubectl(sim, "apply", "-f", "-", stdin=hpa("owners", min_replicas=3, max_replicas=5))
    sim.settle()
    assert replicas(sim, "owners") == 3
    live = json.loads(kubectl(sim, "get", "deploy", "api", "-n", "owners", "-o", "json",
                              "--show-managed-fields").stdout)
    scale_owner = [m for m in live["metadata"]["managedFields"] if m.get("subresource") == "scale"]
    assert [(m["manager"], m["operation"]) for m in scale_owner] == [("kube-controller-manager", "Update")]
    assert scale_owner[0]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    out = kubectl(sim, "apply", "--server-side", "-f", "-", stdin=manifest, ok=False)
    assert out.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kube-controller-manager" with subresource "scale" ' \
           "using apps/v1: .spec.replicas" in out.stderr
    kubectl(sim, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest)
    assert replicas(sim, "owners") == 1
    # The same manifest without replicas leaves the field to the autoscaler: no conflict.
    kubectl(sim, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=deployment("owners", None))
    assert kubectl(sim, "apply", "--server-side", "-f", "-", stdin=deployment("owners", None)).returncode == 0


def test_scheduler_events_have_the_events_k8s_io_shape_and_kubectl_shows_them(sim: SimCluster) -> None:
    kubectl(sim, "create", "namespace", "reporters")
    kubectl(sim, "apply", "-f", "-", stdin=deployment("reporters", 1))
    sim.settle()
    pod = json.loads(kubectl(sim, "get", "pods", "-n", "reporters", "-o", "json").stdout)["items"][0]
    name = pod["metadata"]["name"]
    events = json.loads(kubectl(sim, "get", "events", "-n", "reporters", "-o", "json").stdout)["items"]
    scheduled = next(e for e in events if e["reason"] == "Scheduled")
    assert scheduled["eventTime"].endswith("Z") and len(scheduled["eventTime"]) == len("2026-01-14T06:00:00.000000Z")
    assert (scheduled["action"], scheduled["reportingComponent"]) == ("Binding", "default-scheduler")
    assert scheduled["reportingInstance"].startswith("default-scheduler-")
    assert scheduled["firstTimestamp"] is None and scheduled["lastTimestamp"] is None and "count" not in scheduled
    created = next(e for e in events if e["reason"] == "SuccessfulCreate")  # the replicaset controller: core/v1
    assert created["firstTimestamp"] and created["count"] == 1 and created["eventTime"] is None
    listed = kubectl(sim, "events", "-n", "reporters").stdout
    assert f"Successfully assigned reporters/{name} to {pod['spec']['nodeName']}" in listed
    described = kubectl(sim, "describe", "pod", name, "-n", "reporters").stdout
    assert "default-scheduler" in described and "Successfully assigned" in described
