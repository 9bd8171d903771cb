"""Values and validation as the real API server stores and checks them, through kubectl and the client.

Each refusal is checked for its status code and its exact message (the real server's text, from
pkg/apis/*/validation and apimachinery); each accepted object for what is stored and returned.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client, config

from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

Kubectl = Callable[..., subprocess.CompletedProcess]
QUANTITY_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.fixture(scope="module")
def api(sim_cluster_module: SimCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(sim_cluster_module.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def kubectl(sim_cluster_module: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    cache = tmp_path_factory.mktemp("kube-cache")
    return lambda *args, **kw: run_kubectl(sim_cluster_module, *args, cache_dir=cache, **kw)


def deployment(name: str, *, container: dict | None = None, **spec: Any) -> dict:
    labels = {"app": name}
    pod_spec = {"containers": [container or {"name": "main", "image": "nginx:1.25"}]}
    pod_spec.update(spec.pop("pod_spec", {}))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}, **spec}}


def pod(name: str, **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}], **spec}}


def send(api: client.ApiClient, method: str, path: str, body: Any = None, *,
         query: list[tuple[str, str]] | None = None, ctype: str = "application/json") -> tuple[int, dict, dict]:
    """One request through the official client's ApiClient, the body sent as is (its typed methods
    validate bodies themselves and would refuse an unknown field before the server sees it)."""
    verb, url, headers, data, _ = api.param_serialize(
        method=method, resource_path=path, query_params=query or [], body=body, auth_settings=["BearerToken"],
        header_params={"Content-Type": ctype, "Accept": "application/json"})
    response = api.call_api(verb, url, header_params=headers, body=data)
    response.read()
    return response.status, json.loads(response.data), dict(response.getheaders())


DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
PODS = "/api/v1/namespaces/default/pods"


def invalid_status(body: dict, kind: str, name: str, field: str, message: str, group: str = "") -> None:
    """The 422 Status a real server sends for one field error."""
    qualified = f"{kind}.{group}" if group else kind
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == f'{qualified} "{name}" is invalid: {field}: {message}'
    assert body["details"]["name"] == name and body["details"]["kind"] == kind
    assert [(c["field"], c["message"]) for c in body["details"]["causes"]] == [(field, message)]


# --- 1. quantities ----------------------------------------------------------------------------------

def test_quantities_are_stored_in_canonical_form(api: client.ApiClient) -> None:
    ns = "/api/v1/namespaces/quantities"
    assert send(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "quantities"}})[0] == 201
    resources = {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": "1000m", "memory": "1.5Gi"}}
    body = deployment("canon", container={"name": "main", "image": "nginx:1.25", "resources": resources},
                      pod_spec={"initContainers": [{"name": "init", "image": "busybox:1.36",
                                                    "resources": {"requests": {"cpu": 0.25, "memory": "128974848"}}}]})
    code, created, _ = send(api, "POST", "/apis/apps/v1/namespaces/quantities/deployments", body)
    assert code == 201
    assert created["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m", "memory": "1Gi"}
    stored = send(api, "GET", "/apis/apps/v1/namespaces/quantities/deployments/canon")[1]["spec"]["template"]["spec"]
    assert stored["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1536Mi"}
    assert stored["initContainers"][0]["resources"]["requests"] == {"cpu": "250m", "memory": "128974848"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16",
                                                          "resources": {"requests": {"memory": "0.5Gi"}}}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10240Mi"}}}}]}}
    code, stored_sts, _ = send(api, "POST", "/apis/apps/v1/namespaces/quantities/statefulsets", sts)
    assert stored_sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"memory": "512Mi"}
    assert stored_sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {"storage": "10Gi"}
    _, pvc, _ = send(api, "POST", f"{ns}/persistentvolumeclaims", {
        "metadata": {"name": "claim"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "2048Mi"}}}})
    assert pvc["spec"]["resources"]["requests"] == {"storage": "2Gi"}
    _, quota, _ = send(api, "POST", f"{ns}/resourcequotas", {
        "metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "4000m", "requests.memory": "8192Mi",
                                                     "pods": "20"}}})
    assert quota["spec"]["hard"] == {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"}
    _, limits, _ = send(api, "POST", f"{ns}/limitranges", {
        "metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "0.1"},
                                                         "max": {"memory": "2048Mi"}}]}})
    assert limits["spec"]["limits"][0]["default"]["cpu"] == "100m"  # (memory defaults to the max)
    assert limits["spec"]["limits"][0]["max"] == {"memory": "2Gi"}
    # a patch is decoded the same way
    code, patched, _ = send(api, "PATCH", f"{ns}/limitranges/lr", {"spec": {"limits": [
        {"type": "Container", "default": {"cpu": "2000m"}}]}}, ctype="application/merge-patch+json")
    assert code == 200 and patched["spec"]["limits"][0]["default"]["cpu"] == "2"
    send(api, "DELETE", ns)


def test_a_malformed_quantity_is_refused_as_the_decoder_refuses_it(api: client.ApiClient, kubectl: Kubectl) -> None:
    body = deployment("cores", container={"name": "main", "image": "nginx:1.25",
                                          "resources": {"requests": {"cpu": "2 cores"}}})
    status, answer, _ = send(api, "POST", DEPLOYMENTS, body)
    expected = f'Deployment in version "v1" cannot be handled as a Deployment: {QUANTITY_ERROR}'
    assert (status, answer["reason"], answer["message"]) == (400, "BadRequest", expected)
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f'Error from server (BadRequest): error when creating "STDIN": {expected}'


def test_a_negative_request_is_422(api: client.ApiClient) -> None:
    body = deployment("neg", container={"name": "main", "image": "nginx:1.25",
                                        "resources": {"requests": {"cpu": "-500m"}}})
    status, answer, _ = send(api, "POST", DEPLOYMENTS, body)
    assert status == 422
    invalid_status(answer, "Deployment", "neg", "spec.template.spec.containers[0].resources.requests[cpu]",
                   'Invalid value: "-500m": must be greater than or equal to 0', group="apps")


# --- 2. semantic rules ------------------------------------------------------------------------------

def test_requests_above_limits_are_refused(api: client.ApiClient, kubectl: Kubectl) -> None:
    body = deployment("over", container={"name": "main", "image": "nginx:1.25",
                                         "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}})
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ('The Deployment "over" is invalid: spec.template.spec.containers[0].resources.'
                                     'requests: Invalid value: "2": must be less than or equal to cpu limit of 1')
    memory = pod("mem", containers=[{"name": "main", "image": "nginx:1.25", "resources": {
        "requests": {"memory": "2Gi"}, "limits": {"memory": "1024Mi"}}}])
    status, answer, _ = send(api, "POST", PODS, memory)
    assert status == 422
    invalid_status(answer, "Pod", "mem", "spec.containers[0].resources.requests",
                   'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi')


def test_hpa_min_replicas_above_max_is_refused(api: client.ApiClient) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 5, "maxReplicas": 2}}
    status, answer, _ = send(api, "POST", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", hpa)
    assert status == 422
    invalid_status(answer, "HorizontalPodAutoscaler", "h", "spec.maxReplicas",
                   "Invalid value: 2: must be greater than or equal to `minReplicas`", group="autoscaling")


def test_pdb_with_min_available_and_max_unavailable_is_refused(api: client.ApiClient) -> None:
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "both"},
           "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    status, answer, _ = send(api, "POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb)
    assert status == 422 and answer["reason"] == "Invalid"
    (cause,) = answer["details"]["causes"]
    # Go prints the spec with %#v, pointer addresses included
    assert cause["field"] == "spec" and cause["message"].startswith(
        "Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(0xc")
    assert cause["message"].endswith(
        "UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and "
        "maxUnavailable cannot be both set")
    assert answer["message"] == f'PodDisruptionBudget.policy "both" is invalid: spec: {cause["message"]}'


def test_a_server_side_apply_is_checked_as_the_object_it_makes(api: client.ApiClient) -> None:
    # Each apply configuration is valid alone; the merged object is checked whole, as the real
    # server's fieldmanager hands the merged object to validation: a missing required field
    apply = "application/apply-patch+yaml"
    pods = "/api/v1/namespaces/default/pods"
    status, answer, _ = send(api, "PATCH", f"{pods}/bare", {"apiVersion": "v1", "kind": "Pod",
                                                            "metadata": {"name": "bare"}, "spec": {}},
                             query=[("fieldManager", "one")], ctype=apply)
    assert status == 422
    invalid_status(answer, "Pod", "bare", "spec.containers", "Required value")
    # and two managers' fields that a semantic rule forbids together
    pdbs = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "two-managers"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    assert send(api, "PATCH", f"{pdbs}/two-managers", pdb, query=[("fieldManager", "one")], ctype=apply)[0] == 201
    other = {**pdb, "spec": {"maxUnavailable": 1}}
    status, answer, _ = send(api, "PATCH", f"{pdbs}/two-managers", other, query=[("fieldManager", "two")],
                             ctype=apply)
    assert status == 422 and answer["details"]["causes"][0]["message"].endswith(
        "minAvailable and maxUnavailable cannot be both set")
    assert "maxUnavailable" not in send(api, "GET", f"{pdbs}/two-managers")[1]["spec"]


def test_ports_outside_1_to_65535_are_refused(api: client.ApiClient) -> None:
    bad_pod = pod("port", containers=[{"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 70000}]}])
    status, answer, _ = send(api, "POST", PODS, bad_pod)
    assert status == 422
    invalid_status(answer, "Pod", "port", "spec.containers[0].ports[0].containerPort",
                   "Invalid value: 70000: must be between 1 and 65535, inclusive")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               "spec": {"selector": {"app": "x"}, "ports": [{"port": 65536}]}}
    status, answer, _ = send(api, "POST", "/api/v1/namespaces/default/services", service)
    # targetPort defaults to the port before validation, so the real server names both
    port = "spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive"
    target = "spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive"
    assert status == 422 and answer["message"] == f'Service "svc" is invalid: [{port}, {target}]'
    assert [c["field"] for c in answer["details"]["causes"]] == ["spec.ports[0].port", "spec.ports[0].targetPort"]


def test_negative_replicas_and_restart_policy_in_a_deployment(api: client.ApiClient, kubectl: Kubectl) -> None:
    negative = deployment("minus")
    negative["spec"]["replicas"] = -1
    status, answer, _ = send(api, "POST", DEPLOYMENTS, negative)
    assert status == 422
    invalid_status(answer, "Deployment", "minus", "spec.replicas",
                   "Invalid value: -1: must be greater than or equal to 0", group="apps")
    on_failure = deployment("rp", pod_spec={"restartPolicy": "OnFailure"})
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(on_failure), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ('The Deployment "rp" is invalid: spec.template.spec.restartPolicy: Unsupported '
                                     'value: "OnFailure": supported values: "Always"')


def test_a_changed_selector_is_immutable(api: client.ApiClient, kubectl: Kubectl) -> None:
    first = deployment("imm")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(first))
    moved = deployment("imm")
    moved["spec"]["selector"]["matchLabels"] = {"app": "imm2"}
    moved["spec"]["template"]["metadata"]["labels"] = {"app": "imm2"}
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(moved), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'The Deployment "imm" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"imm2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable')
    sts_path = "/apis/apps/v1/namespaces/default/statefulsets"
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "st"},
           "spec": {"serviceName": "st", "selector": {"matchLabels": {"app": "st"}},
                    "template": {"metadata": {"labels": {"app": "st"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}
    assert send(api, "POST", sts_path, sts)[0] == 201
    status, answer, _ = send(api, "PATCH", f"{sts_path}/st", {"spec": {"serviceName": "other"}},
                             ctype="application/merge-patch+json")
    assert status == 422
    invalid_status(answer, "StatefulSet", "st", "spec",
                   "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                   "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                   "forbidden", group="apps")
    code, scaled, _ = send(api, "PATCH", f"{sts_path}/st", {"spec": {"replicas": 2}},
                           ctype="application/merge-patch+json")
    assert code == 200 and scaled["spec"]["replicas"] == 2 and scaled["metadata"]["generation"] == 2


def test_a_toleration_with_exists_and_a_value_is_refused(api: client.ApiClient) -> None:
    body = pod("tol", tolerations=[{"key": "dedicated", "operator": "Exists", "value": "batch",
                                    "effect": "NoSchedule"}])
    status, answer, _ = send(api, "POST", PODS, body)
    assert status == 422
    invalid_status(answer, "Pod", "tol", "spec.tolerations[0].operator",
                   "Invalid value: \"batch\": value must be empty when `operator` is 'Exists'")


def test_several_errors_are_one_status_listing_each(api: client.ApiClient, kubectl: Kubectl) -> None:
    body = deployment("two", container={"name": "main", "image": "nginx:1.25", "ports": [{"containerPort": 0}]},
                      pod_spec={"restartPolicy": "Never"})
    status, answer, _ = send(api, "POST", DEPLOYMENTS, body)
    first = 'spec.template.spec.containers[0].ports[0].containerPort: Required value'
    second = 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    assert status == 422 and answer["message"] == f'Deployment.apps "two" is invalid: [{first}, {second}]'
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert result.stderr.strip() == f'The Deployment "two" is invalid: \n* {first}\n* {second}'


# --- 3. field validation, base64, field selectors ---------------------------------------------------

def test_unknown_fields_warn_by_default_strict_refuses_ignore_drops(api: client.ApiClient) -> None:
    body = deployment("uf")
    body["spec"]["foo"] = 1
    code, created, headers = send(api, "POST", DEPLOYMENTS, body)
    assert code == 201 and headers["Warning"] == '299 - "unknown field \\"spec.foo\\""'
    assert "foo" not in created["spec"] and "foo" not in send(api, "GET", f"{DEPLOYMENTS}/uf")[1]["spec"]
    body["metadata"]["name"] = "uf-strict"
    code, answer, _ = send(api, "POST", DEPLOYMENTS, body, query=[("fieldValidation", "Strict")])
    assert (code, answer["reason"], answer["message"]) == (
        400, "BadRequest",
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"')
    body["metadata"]["name"] = "uf-ignore"
    code, created, headers = send(api, "POST", DEPLOYMENTS, body, query=[("fieldValidation", "Ignore")])
    assert code == 201 and "Warning" not in headers and "foo" not in created["spec"]


def test_kubectl_prints_the_unknown_field_warning(kubectl: Kubectl) -> None:
    body = deployment("kw")
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    warned = kubectl("apply", "--validate=warn", "-f", "-", stdin=yaml.safe_dump(body))
    assert warned.stderr.strip() == 'Warning: unknown field "spec.template.spec.containers[0].imagePullPolice"'
    body["metadata"]["name"] = "kw2"
    quiet = kubectl("apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(body))
    assert quiet.stderr == "" and quiet.stdout.strip() == "deployment.apps/kw2 created"
    strict = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body | {"metadata": {"name": "kw3"}}), check=False)
    assert strict.returncode == 1 and strict.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be handled '
        'as a Deployment: strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolice"')


def test_secret_data_with_line_breaks_is_accepted_as_go_decodes_base64(api: client.ApiClient) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    secret = {"metadata": {"name": "wrapped"}, "data": {"text": "aGVs\nbG8g\r\nd29y\nbGQ=\n"}}
    code, created, _ = send(api, "POST", secrets, secret)
    assert code == 201 and created["data"] == {"text": "aGVsbG8gd29ybGQ="}
    assert send(api, "GET", f"{secrets}/wrapped")[1]["data"] == {"text": "aGVsbG8gd29ybGQ="}
    broken = {"metadata": {"name": "broken"}, "data": {"text": "aGVs*G8="}}
    status, answer, _ = send(api, "POST", secrets, broken)
    assert (status, answer["message"]) == (
        400, 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4')


def test_a_trailing_comma_in_a_field_selector_is_ignored(api: client.ApiClient) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    assert send(api, "POST", path, {"metadata": {"name": "sel"}, "data": {"a": "1"}})[0] == 201
    code, listed, _ = send(api, "GET", path, query=[("fieldSelector", "metadata.name=sel,")])
    assert code == 200 and [c["metadata"]["name"] for c in listed["items"]] == ["sel"]


# --- 4. what a create returns -----------------------------------------------------------------------

def _raw_create(api: client.ApiClient, path: str, body: dict) -> dict:
    code, created, _ = send(api, "POST", path, body)
    assert code == 201, created
    return created


def test_create_responses_carry_status_and_generation_as_a_real_server_does(api: client.ApiClient) -> None:
    guaranteed = pod("qos", containers=[{"name": "main", "image": "nginx:1.25", "resources": {
        "limits": {"cpu": "500m", "memory": "256Mi"}}}], status={"phase": "Running"})
    created = _raw_create(api, "/api/v1/namespaces/default/pods", guaranteed)
    assert created["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}  # a client cannot set status
    assert "generation" not in created["metadata"]
    burstable = _raw_create(api, "/api/v1/namespaces/default/pods", pod("burst", containers=[{
        "name": "main", "image": "nginx:1.25", "resources": {"requests": {"cpu": "100m"}}}]))
    assert burstable["status"] == {"phase": "Pending", "qosClass": "Burstable"}
    service = _raw_create(api, "/api/v1/namespaces/default/services", {
        "metadata": {"name": "lb"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    assert service["status"] == {"loadBalancer": {}} and "generation" not in service["metadata"]
    made = _raw_create(api, "/apis/apps/v1/namespaces/default/deployments", deployment("st0"))
    assert made["status"] == {} and made["metadata"]["generation"] == 1
    config_map = _raw_create(api, "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "nogen"}})
    assert "generation" not in config_map["metadata"] and "status" not in config_map
    namespace = _raw_create(api, "/api/v1/namespaces", {"metadata": {"name": "gen-ns"}})
    assert "generation" not in namespace["metadata"]

