"""The sim API server over HTTP: discovery, CRUD, patches, errors, watches, in real formats."""
from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from eafix_capacity.sim.api import MAX_BODY_BYTES
from eafix_capacity.sim.cluster import SimCluster

pytestmark = pytest.mark.sim


def call(sim: SimCluster, method: str, path: str, body: object = None, *, ctype: str = "application/json",
         accept: str = "application/json", raw: bytes | None = None) -> tuple[int, object, dict]:
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Accept": accept, "User-Agent": "sim-test/1.0 (linux)"}
    if data is not None:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    try:
        parsed: object = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode()
    return resp.status, parsed, dict(resp.getheaders())


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name: str, *, replicas: int = 1, image: str = "nginx:1.25") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image,
                                                           "env": [{"name": "A", "value": "1"}],
                                                           "ports": [{"containerPort": 80}]}]}}}}


CM_PATH = "/api/v1/namespaces/default/configmaps"
DEPLOY_PATH = "/apis/apps/v1/namespaces/default/deployments"


def assert_status(body: object, code: int, reason: str) -> dict:
    assert isinstance(body, dict)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason, body
    return body


# --- discovery ---------------------------------------------------------------------------------

def test_version_and_health(sim_cluster_module: SimCluster) -> None:
    status, body, _ = call(sim_cluster_module, "GET", "/version")
    assert status == 200 and body["major"] == "1" and body["minor"] == "32"
    for path in ("/healthz", "/readyz", "/livez"):
        status, body, _ = call(sim_cluster_module, "GET", path)
        assert (status, body) == (200, "ok")


def test_discovery_lists_required_groups(sim_cluster_module: SimCluster) -> None:
    _, api, _ = call(sim_cluster_module, "GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, apis, _ = call(sim_cluster_module, "GET", "/apis")
    served = {v["groupVersion"] for g in apis["groups"] for v in g["versions"]}
    assert {"apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1", "storage.k8s.io/v1",
            "apiextensions.k8s.io/v1", "metrics.k8s.io/v1beta1"} <= served
    _, core, _ = call(sim_cluster_module, "GET", "/api/v1")
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["kind"] == "Pod" and pods["namespaced"] and "watch" in pods["verbs"]
    names = {r["name"] for r in core["resources"]}
    assert {"pods/status", "pods/eviction", "nodes", "namespaces", "services"} <= names
    _, apps, _ = call(sim_cluster_module, "GET", "/apis/apps/v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_unknown_resource_and_group_are_404(sim_cluster_module: SimCluster) -> None:
    for path in ("/api/v1/widgets", "/apis/nope.io/v1", "/apis/apps/v9/deployments", "/nothing/here"):
        status, body, _ = call(sim_cluster_module, "GET", path)
        assert status == 404
        assert_status(body, 404, "NotFound")


# --- CRUD --------------------------------------------------------------------------------------

def test_create_get_list_delete_configmap(sim_cluster: SimCluster) -> None:
    status, created, _ = call(sim_cluster, "POST", CM_PATH, cm("one", a="1"))
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] and meta["resourceVersion"].isdigit()
    assert meta["creationTimestamp"].endswith("Z") and "generation" not in meta  # ConfigMaps have none
    assert meta["managedFields"][0]["manager"] == "sim-test"
    status, got, _ = call(sim_cluster, "GET", f"{CM_PATH}/one")
    assert status == 200 and got["data"] == {"a": "1"}
    status, listed, _ = call(sim_cluster, "GET", CM_PATH)
    # every namespace holds the root-ca-cert-publisher's kube-root-ca.crt, as on a real cluster
    assert listed["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in listed["items"]] == \
        ["kube-root-ca.crt", "one"]
    status, deleted, _ = call(sim_cluster, "DELETE", f"{CM_PATH}/one")
    assert status == 200 and deleted["metadata"]["name"] == "one"
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}/one")
    assert status == 404 and body["message"] == 'configmaps "one" not found'
    assert body["details"] == {"name": "one", "kind": "configmaps"}  # omitempty drops the core group, as a real server


def test_duplicate_create_is_409_already_exists(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", CM_PATH, cm("dup"))
    status, body, _ = call(sim_cluster, "POST", CM_PATH, cm("dup"))
    assert status == 409
    assert assert_status(body, 409, "AlreadyExists")["message"] == 'configmaps "dup" already exists'


def test_stale_update_is_409_conflict(sim_cluster: SimCluster) -> None:
    _, created, _ = call(sim_cluster, "POST", CM_PATH, cm("cfg", a="1"))
    first = dict(created, data={"a": "2"})
    status, updated, _ = call(sim_cluster, "PUT", f"{CM_PATH}/cfg", first)
    assert status == 200 and int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    stale = dict(created, data={"a": "3"})
    status, body, _ = call(sim_cluster, "PUT", f"{CM_PATH}/cfg", stale)
    assert status == 409
    assert "the object has been modified" in assert_status(body, 409, "Conflict")["message"]


def test_namespace_must_exist(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", "/api/v1/namespaces/ghost/configmaps", cm("x"))
    assert status == 404 and body["message"] == 'namespaces "ghost" not found'


def test_initial_namespaces(sim_cluster_module: SimCluster) -> None:
    _, body, _ = call(sim_cluster_module, "GET", "/api/v1/namespaces")
    names = {i["metadata"]["name"] for i in body["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_generation_bumps_on_spec_change_only(sim_cluster: SimCluster) -> None:
    _, d, _ = call(sim_cluster, "POST", DEPLOY_PATH, deployment("gen"))
    assert d["metadata"]["generation"] == 1
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    _, d2, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/gen", {"metadata": {"labels": {"x": "y"}}},
                    ctype="application/merge-patch+json")
    assert d2["metadata"]["generation"] == 1
    _, d3, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/gen", {"spec": {"replicas": 4}},
                    ctype="application/merge-patch+json")
    assert d3["metadata"]["generation"] == 2


def test_status_subresource_only_changes_status(sim_cluster: SimCluster) -> None:
    _, d, _ = call(sim_cluster, "POST", DEPLOY_PATH, deployment("st", replicas=0))
    d["spec"]["replicas"] = 7
    d["status"] = {"observedGeneration": 1, "replicas": 0, "conditions": []}
    d["metadata"].pop("resourceVersion")
    status, out, _ = call(sim_cluster, "PUT", f"{DEPLOY_PATH}/st/status", d)
    assert status == 200 and out["spec"]["replicas"] == 0 and out["status"]["observedGeneration"] == 1


def test_scale_subresource(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", DEPLOY_PATH, deployment("sc", replicas=1))
    status, scale, _ = call(sim_cluster, "GET", f"{DEPLOY_PATH}/sc/scale")
    assert status == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 1 and scale["status"]["selector"] == "app=sc"
    status, scale, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/sc/scale", {"spec": {"replicas": 3}},
                            ctype="application/merge-patch+json")
    assert status == 200 and scale["spec"]["replicas"] == 3
    _, d, _ = call(sim_cluster, "GET", f"{DEPLOY_PATH}/sc")
    assert d["spec"]["replicas"] == 3
    status, body, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/sc/scale", {"spec": {"replicas": -1}},
                           ctype="application/merge-patch+json")
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.replicas"


def test_dry_run_does_not_persist(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", f"{CM_PATH}?dryRun=All", cm("dry"))
    assert status == 201 and body["metadata"]["name"] == "dry"
    assert call(sim_cluster, "GET", f"{CM_PATH}/dry")[0] == 404
    call(sim_cluster, "POST", CM_PATH, cm("wet", a="1"))
    call(sim_cluster, "PATCH", f"{CM_PATH}/wet?dryRun=All", {"data": {"a": "2"}}, ctype="application/merge-patch+json")
    call(sim_cluster, "DELETE", f"{CM_PATH}/wet?dryRun=All")
    assert call(sim_cluster, "GET", f"{CM_PATH}/wet")[1]["data"] == {"a": "1"}
    status, body, _ = call(sim_cluster, "POST", f"{CM_PATH}?dryRun=Some", cm("x"))
    assert status == 400 and "dryRun" in body["message"]


def test_selectors(sim_cluster: SimCluster) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        obj = cm(name)
        obj["metadata"]["labels"] = {"tier": tier}
        call(sim_cluster, "POST", CM_PATH, obj)
    names = lambda q: [i["metadata"]["name"] for i in call(sim_cluster, "GET", f"{CM_PATH}?{q}")[1]["items"]]
    assert names("labelSelector=tier%3Dweb") == ["a", "c"]
    assert names("labelSelector=tier+in+(db)") == ["b"]
    assert names("labelSelector=tier!%3Dweb") == ["b", "kube-root-ca.crt"]  # unlabelled objects match != too
    assert names("labelSelector=!tier") == ["kube-root-ca.crt"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?fieldSelector=spec.foo%3D1")
    assert status == 400 and "not a known field selector" in body["message"]
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?labelSelector=%3D%3D%3D")
    assert status == 400


def test_field_selector_on_pods_by_node(sim_cluster: SimCluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
           "spec": {"nodeName": "sim-n2-standard-8-1", "containers": [{"name": "c", "image": "busybox:1"}]}}
    assert call(sim_cluster, "POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    _, body, _ = call(sim_cluster, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-n2-standard-8-1")
    # every node also runs the provider's system DaemonSet pods, in kube-system
    assert [i["metadata"]["name"] for i in body["items"] if i["metadata"]["namespace"] != "kube-system"] == ["bound"]
    assert {i["spec"]["nodeName"] for i in body["items"]} == {"sim-n2-standard-8-1"}
    _, body, _ = call(sim_cluster, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-n2-standard-8-0")
    assert body["items"] and {i["metadata"]["namespace"] for i in body["items"]} == {"kube-system"}


def test_pagination_with_limit_and_continue(sim_cluster: SimCluster) -> None:
    for i in range(5):
        call(sim_cluster, "POST", CM_PATH, cm(f"p{i}"))
    _, page1, _ = call(sim_cluster, "GET", f"{CM_PATH}?limit=2")
    assert len(page1["items"]) == 2 and page1["metadata"]["remainingItemCount"] == 4  # with kube-root-ca.crt
    token = page1["metadata"]["continue"]
    seen = [i["metadata"]["name"] for i in page1["items"]]
    while token:
        _, page, _ = call(sim_cluster, "GET", f"{CM_PATH}?limit=2&continue={token}")
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
    assert seen == ["kube-root-ca.crt"] + [f"p{i}" for i in range(5)]
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?limit=2&continue=garbage")
    assert status == 400


def test_table_output_for_pods(sim_cluster: SimCluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tp"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
    call(sim_cluster, "POST", "/api/v1/namespaces/default/pods", pod)
    _, table, _ = call(sim_cluster, "GET", "/api/v1/namespaces/default/pods",
                       accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "tp")
    assert row["cells"][1] == "0/1" or row["cells"][1] == "1/1"
    assert row["object"]["kind"] == "PartialObjectMetadata"


# --- patches -----------------------------------------------------------------------------------

def test_strategic_merge_patch_merges_containers_by_name(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", DEPLOY_PATH, deployment("smp"))
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.26", "env": [{"name": "B", "value": "2"}]},
        {"name": "side", "image": "envoy:1"}]}}}}
    status, out, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/smp", patch,
                          ctype="application/strategic-merge-patch+json")
    assert status == 200
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert containers[0]["image"] == "nginx:1.26"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    _, out, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/smp", delete,
                     ctype="application/strategic-merge-patch+json")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["main"]


def test_json_merge_patch_replaces_lists(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", DEPLOY_PATH, deployment("jmp"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "other", "image": "busybox:1"}]}}}}
    _, out, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/jmp", patch, ctype="application/merge-patch+json")
    assert out["spec"]["template"]["spec"]["containers"][0]["name"] == "other"
    assert len(out["spec"]["template"]["spec"]["containers"]) == 1


def test_json_patch(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", CM_PATH, cm("jp", a="1"))
    ops = [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"},
           {"op": "test", "path": "/data/b", "value": "2"}]
    status, out, _ = call(sim_cluster, "PATCH", f"{CM_PATH}/jp", ops, ctype="application/json-patch+json")
    assert status == 200 and out["data"] == {"b": "2"}
    status, body, _ = call(sim_cluster, "PATCH", f"{CM_PATH}/jp", [{"op": "test", "path": "/data/b", "value": "9"}],
                           ctype="application/json-patch+json")
    assert status == 422
    status, body, _ = call(sim_cluster, "PATCH", f"{CM_PATH}/jp", [{"op": "remove", "path": "/nope/x"}],
                           ctype="application/json-patch+json")
    assert status == 422


def test_server_side_apply_conflict_and_force(sim_cluster: SimCluster) -> None:
    path = f"{DEPLOY_PATH}/ssa?fieldManager=alice"
    body = json.dumps(deployment("ssa", replicas=2)).encode()
    status, out, _ = call(sim_cluster, "PATCH", path, raw=body, ctype="application/apply-patch+yaml")
    assert status == 201
    managers = {(m["manager"], m["operation"]) for m in out["metadata"]["managedFields"]}
    assert managers == {("alice", "Apply")}
    assert "f:replicas" in out["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
    other = json.dumps(deployment("ssa", replicas=5)).encode()
    status, err, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/ssa?fieldManager=bob", raw=other,
                          ctype="application/apply-patch+yaml")
    assert status == 409 and 'conflict with "alice"' in err["message"] and ".spec.replicas" in err["message"]
    status, out, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/ssa?fieldManager=bob&force=true", raw=other,
                          ctype="application/apply-patch+yaml")
    assert status == 200 and out["spec"]["replicas"] == 5
    status, err, _ = call(sim_cluster, "PATCH", f"{DEPLOY_PATH}/ssa", raw=other, ctype="application/apply-patch+yaml")
    assert status == 400 and "fieldManager" in err["message"]


def test_server_side_apply_removes_fields_the_manager_dropped(sim_cluster: SimCluster) -> None:
    first = cm("ssa-cm", a="1", b="2")
    call(sim_cluster, "PATCH", f"{CM_PATH}/ssa-cm?fieldManager=me", raw=json.dumps(first).encode(),
         ctype="application/apply-patch+yaml")
    second = cm("ssa-cm", a="1")
    _, out, _ = call(sim_cluster, "PATCH", f"{CM_PATH}/ssa-cm?fieldManager=me", raw=json.dumps(second).encode(),
                     ctype="application/apply-patch+yaml")
    assert out["data"] == {"a": "1"}


# --- bad input ---------------------------------------------------------------------------------

def test_malformed_json_and_yaml_are_400(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b'{"kind": "ConfigMap", ')
    assert status == 400 and "error decoding json" in assert_status(body, 400, "BadRequest")["message"]
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b"kind: [unclosed", ctype="application/yaml")
    assert status == 400 and "yaml" in body["message"]
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b"[1, 2]")
    assert status == 400
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b"")
    assert status == 400
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b"\xff\xfe")
    assert status == 400


def test_a_yaml_body_with_excessive_aliasing_is_400(sim_cluster: SimCluster) -> None:
    # the API server refuses a billion-laughs body (go-yaml's aliasing check, CVE-2019-11253)
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "data:",
             '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw="\n".join(lines).encode(), ctype="application/yaml")
    assert status == 400 and "alias" in assert_status(body, 400, "BadRequest")["message"]


def test_wrong_kind_for_path_is_400(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", CM_PATH, deployment("x"))
    assert status == 400 and "does not match the expected" in body["message"]


def test_unknown_field_strict_warn_ignore(sim_cluster: SimCluster) -> None:
    obj = deployment("uf")
    obj["spec"]["foo"] = 1
    status, body, _ = call(sim_cluster, "POST", f"{DEPLOY_PATH}?fieldValidation=Strict", obj)
    assert status == 400 and body["message"] == ('Deployment in version "v1" cannot be handled as a Deployment: '
                                                 'strict decoding error: unknown field "spec.foo"')
    status, body, headers = call(sim_cluster, "POST", f"{DEPLOY_PATH}?fieldValidation=Warn", obj)
    # the warn-text is a quoted string, its quotes escaped (apimachinery's NewWarningHeader)
    assert status == 201 and "foo" not in body["spec"] and headers.get(
        "Warning", "") == '299 - "unknown field \\"spec.foo\\""'
    obj["metadata"]["name"] = "uf2"
    status, body, _ = call(sim_cluster, "POST", f"{DEPLOY_PATH}?fieldValidation=Ignore", obj)
    assert status == 201 and "foo" not in body["spec"]
    status, body, _ = call(sim_cluster, "POST", f"{DEPLOY_PATH}?fieldValidation=Loose", obj)
    assert status == 400


def test_type_error_is_400_and_invalid_object_is_422(sim_cluster: SimCluster) -> None:
    obj = deployment("te")
    obj["spec"]["replicas"] = "three"
    status, body, _ = call(sim_cluster, "POST", DEPLOY_PATH, obj)
    assert status == 400 and "cannot unmarshal string" in body["message"] and "spec.replicas" in body["message"]
    bad = deployment("Bad_Name")
    status, body, _ = call(sim_cluster, "POST", DEPLOY_PATH, bad)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    mismatch = deployment("mm")
    mismatch["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status, body, _ = call(sim_cluster, "POST", DEPLOY_PATH, mismatch)
    assert status == 422
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.template.metadata.labels"}
    no_image = deployment("ni")
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    status, body, _ = call(sim_cluster, "POST", DEPLOY_PATH, no_image)
    assert status == 422
    assert "spec.template.spec.containers[0].image" in {c["field"] for c in body["details"]["causes"]}


def test_missing_name_is_422(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", CM_PATH, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    gen = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    status, body, _ = call(sim_cluster, "POST", CM_PATH, gen)
    assert status == 201 and body["metadata"]["name"].startswith("gen-") and len(body["metadata"]["name"]) == 9


def test_oversized_body_is_413(sim_cluster: SimCluster) -> None:
    big = cm("big", blob="x" * (MAX_BODY_BYTES + 10))
    status, body, _ = call(sim_cluster, "POST", CM_PATH, big)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge"
    assert call(sim_cluster, "GET", "/healthz")[0] == 200


def test_unsupported_media_type_is_415(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", CM_PATH, raw=b"a=b", ctype="application/x-www-form-urlencoded")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    status, body, _ = call(sim_cluster, "PATCH", f"{CM_PATH}/x", raw=b"{}", ctype="application/json")
    assert status == 415


def test_method_not_allowed_is_405(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "POST", f"{CM_PATH}/named", cm("named"))
    assert status == 405 and body["reason"] == "MethodNotAllowed"
    status, body, _ = call(sim_cluster, "DELETE", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert status == 405


def test_unknown_query_parameters_are_ignored_but_bad_values_rejected(sim_cluster: SimCluster) -> None:
    status, _, _ = call(sim_cluster, "GET", f"{CM_PATH}?frobnicate=yes&pretty=true")
    assert status == 200
    for query in ("limit=abc", "timeoutSeconds=-1", "watch=maybe", "propagationPolicy=Eventually"):
        status, body, _ = call(sim_cluster, "GET" if "propagation" not in query else "DELETE", f"{CM_PATH}?{query}")
        assert status == 400, query
        assert_status(body, 400, "BadRequest")


def test_garbage_collection_follows_owner_references(sim_cluster: SimCluster) -> None:
    _, owner, _ = call(sim_cluster, "POST", CM_PATH, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    child = cm("child")
    child["metadata"]["ownerReferences"] = [ref]
    call(sim_cluster, "POST", CM_PATH, child)
    orphan_owner = cm("owner2")
    _, o2, _ = call(sim_cluster, "POST", CM_PATH, orphan_owner)
    kept = cm("kept")
    kept["metadata"]["ownerReferences"] = [dict(ref, name="owner2", uid=o2["metadata"]["uid"])]
    call(sim_cluster, "POST", CM_PATH, kept)
    call(sim_cluster, "DELETE", f"{CM_PATH}/owner")
    assert call(sim_cluster, "GET", f"{CM_PATH}/child")[0] == 404
    call(sim_cluster, "DELETE", f"{CM_PATH}/owner2?propagationPolicy=Orphan")
    status, survivor, _ = call(sim_cluster, "GET", f"{CM_PATH}/kept")
    assert status == 200 and "ownerReferences" not in survivor["metadata"]


def test_crd_registers_kind_and_validates(sim_cluster: SimCluster) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}
    status, body, _ = call(sim_cluster, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 201
    conditions = {c["type"]: c["status"] for c in body["status"]["conditions"]}
    assert conditions["Established"] == "True"
    _, disc, _ = call(sim_cluster, "GET", "/apis/example.com/v1")
    assert disc["resources"][0]["name"] == "widgets" and disc["resources"][0]["shortNames"] == ["wd"]
    path = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    assert call(sim_cluster, "POST", path, widget)[0] == 201
    widget["metadata"]["name"] = "w2"
    widget["spec"] = {"size": "big"}
    status, body, _ = call(sim_cluster, "POST", path, widget)
    assert status in (400, 422)
    widget["spec"] = {"size": 1, "colour": "red"}
    status, body, _ = call(sim_cluster, "POST", f"{path}?fieldValidation=Strict", widget)
    assert status == 400 and 'unknown field "spec.colour"' in body["message"]
    status, body, _ = call(sim_cluster, "PATCH", f"{path}/w", {"spec": {"size": 4}},
                           ctype="application/strategic-merge-patch+json")
    assert status == 415
    call(sim_cluster, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert call(sim_cluster, "GET", f"{path}/w")[0] == 404


def test_crd_name_must_match_names(sim_cluster: SimCluster) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "wrong.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    status, body, _ = call(sim_cluster, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"


# --- watch -------------------------------------------------------------------------------------

def test_watch_streams_events_in_order(sim_cluster: SimCluster) -> None:
    _, listed, _ = call(sim_cluster, "GET", CM_PATH)
    rv = listed["metadata"]["resourceVersion"]
    call(sim_cluster, "POST", CM_PATH, cm("w1"))
    call(sim_cluster, "PATCH", f"{CM_PATH}/w1", {"data": {"k": "v"}}, ctype="application/merge-patch+json")
    call(sim_cluster, "DELETE", f"{CM_PATH}/w1")
    status, body, headers = call(sim_cluster, "GET", f"{CM_PATH}?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
    events = [json.loads(line) for line in body.strip().splitlines()] if isinstance(body, str) else [body]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"]["metadata"]["name"] == "w1" for e in events)


def test_watch_without_resource_version_sends_current_state(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", CM_PATH, cm("now"))
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dnow")
    lines = body.strip().splitlines() if isinstance(body, str) else [json.dumps(body)]
    assert [json.loads(x)["type"] for x in lines] == ["ADDED"]


def test_watch_too_old_resource_version_is_410(sim_cluster: SimCluster) -> None:
    store = sim_cluster.store
    assert store is not None
    store._log.clear()  # simulate compaction of the event log
    call(sim_cluster, "POST", CM_PATH, cm("after"))
    status, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?watch=true&resourceVersion=1&timeoutSeconds=1")
    assert status == 410 and body["reason"] == "Expired"


def test_half_sent_request_does_not_hang_server(sim_cluster: SimCluster) -> None:
    url = urlsplit(sim_cluster.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    sock.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert call(sim_cluster, "GET", "/healthz")[0] == 200
    sock.close()
    raw = socket.create_connection((url.hostname, url.port), timeout=5)
    raw.sendall(b"NONSENSE / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = raw.recv(1000)
    raw.close()
    assert reply.startswith(b"HTTP/")
    assert call(sim_cluster, "GET", "/healthz")[0] == 200


def test_selector_watch_reports_objects_leaving_and_entering(sim_cluster: SimCluster) -> None:
    obj = cm("moving")
    obj["metadata"]["labels"] = {"tier": "web"}
    _, created, _ = call(sim_cluster, "POST", CM_PATH, obj)
    rv = created["metadata"]["resourceVersion"]
    merge = "application/merge-patch+json"
    call(sim_cluster, "PATCH", f"{CM_PATH}/moving", {"metadata": {"labels": {"tier": "db"}}}, ctype=merge)
    call(sim_cluster, "PATCH", f"{CM_PATH}/moving", {"data": {"x": "1"}}, ctype=merge)
    call(sim_cluster, "PATCH", f"{CM_PATH}/moving", {"metadata": {"labels": {"tier": "web"}}}, ctype=merge)
    _, body, _ = call(sim_cluster, "GET", f"{CM_PATH}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
                                          "&labelSelector=tier%3Dweb")
    events = [json.loads(line) for line in body.strip().splitlines()]
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[1]["object"]["data"] == {"x": "1"}


def test_watch_bookmark_and_table_frames(sim_cluster: SimCluster) -> None:
    status, body, _ = call(sim_cluster, "GET", "/api/v1/nodes?watch=true&timeoutSeconds=1&allowWatchBookmarks=true"
                                               "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
                           accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    events = [json.loads(line) for line in body.strip().splitlines()]
    assert [e["type"] for e in events] == ["ADDED"] * 3 + ["BOOKMARK"]
    assert events[0]["object"]["kind"] == "Table" and len(events[0]["object"]["rows"]) == 1
    assert events[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_terminating_namespace_refuses_new_content(sim_cluster: SimCluster) -> None:
    call(sim_cluster, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": "going"}})
    call(sim_cluster, "POST", "/api/v1/namespaces/going/configmaps", cm("inside"))
    status, ns, _ = call(sim_cluster, "DELETE", "/api/v1/namespaces/going")
    assert status == 200 and ns["status"]["phase"] == "Terminating"
    status, body, _ = call(sim_cluster, "POST", "/api/v1/namespaces/going/configmaps", cm("late"))
    assert status == 403 and body["reason"] == "Forbidden" and "being terminated" in body["message"]
    deadline = time.monotonic() + 5
    while call(sim_cluster, "GET", "/api/v1/namespaces/going")[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert call(sim_cluster, "GET", "/api/v1/namespaces/going/configmaps/inside")[0] == 404


def test_secret_string_data_is_folded_into_data(sim_cluster: SimCluster) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"b": "two"}, "data": {"a": "b25l"}}
    status, body, _ = call(sim_cluster, "POST", "/api/v1/namespaces/default/secrets", secret)
    assert status == 201 and body["data"] == {"a": "b25l", "b": "dHdv"} and "stringData" not in body
    assert body["type"] == "Opaque"
    secret["metadata"]["name"] = "bad"
    secret["data"] = {"a": "not base64!"}
    status, body, _ = call(sim_cluster, "POST", "/api/v1/namespaces/default/secrets", secret)
    assert status == 400 and "illegal base64" in body["message"]


def test_object_owning_itself_or_its_owner_can_be_deleted(sim_cluster: SimCluster) -> None:
    def owner_ref(obj: dict) -> list[dict]:
        return [{"apiVersion": "v1", "kind": "ConfigMap", "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"]}]

    _, me, _ = call(sim_cluster, "POST", CM_PATH, cm("me"))
    me["metadata"]["ownerReferences"] = owner_ref(me)
    assert call(sim_cluster, "PUT", f"{CM_PATH}/me", me)[0] == 200
    status, body, _ = call(sim_cluster, "DELETE", f"{CM_PATH}/me")
    assert status == 200 and body["metadata"]["name"] == "me", body
    assert call(sim_cluster, "GET", f"{CM_PATH}/me")[0] == 404
    _, x, _ = call(sim_cluster, "POST", CM_PATH, cm("x"))
    y = cm("y")
    y["metadata"]["ownerReferences"] = owner_ref(x)
    _, y, _ = call(sim_cluster, "POST", CM_PATH, y)
    x["metadata"]["ownerReferences"] = owner_ref(y)
    assert call(sim_cluster, "PUT", f"{CM_PATH}/x", x)[0] == 200
    status, body, _ = call(sim_cluster, "DELETE", f"{CM_PATH}/x")
    assert status == 200, body
    assert call(sim_cluster, "GET", f"{CM_PATH}/x")[0] == 404 and call(sim_cluster, "GET", f"{CM_PATH}/y")[0] == 404


def _handler_threads() -> int:
    import threading

    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def test_watch_ends_when_its_client_goes_away(sim_cluster: SimCluster) -> None:
    url = urlsplit(sim_cluster.url)
    before = _handler_threads()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"GET {CM_PATH}?watch=1&resourceVersion=1&fieldSelector=metadata.name%3Dnone HTTP/1.1\r\n"
                 f"Host: {url.netloc}\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert _handler_threads() == before + 1
    sock.close()
    # No event ever matches this watch; the server still notices the closed connection.
    deadline = time.monotonic() + 10
    while _handler_threads() > before:
        assert time.monotonic() < deadline, "the watch kept its thread after the client left"
        time.sleep(0.05)


def test_nan_and_infinity_are_refused_so_lists_stay_valid_json(sim_cluster: SimCluster) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.io"},
           "spec": {"group": "example.io", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    assert call(sim_cluster, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    path = "/apis/example.io/v1/namespaces/default/widgets"
    head = '{"apiVersion":"example.io/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"x":'
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        status, body, _ = call(sim_cluster, "POST", path, raw=f"{head}{literal}}}}}".encode())
        assert_status(body, 400, "BadRequest")
    for value in (".nan", ".inf", "-.inf"):
        text = f"apiVersion: example.io/v1\nkind: Widget\nmetadata: {{name: y}}\nspec: {{x: {value}}}\n"
        status, body, _ = call(sim_cluster, "POST", path, raw=text.encode(), ctype="application/yaml")
        assert_status(body, 400, "BadRequest")
    assert call(sim_cluster, "POST", path, raw=f"{head}1.5}}}}".encode())[0] == 201
    status, body, _ = call(sim_cluster, "PATCH", f"{path}/w", raw=b'{"spec":{"x":NaN}}',
                           ctype="application/merge-patch+json")
    assert_status(body, 400, "BadRequest")
    url = urlsplit(sim_cluster.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", path)
    text = conn.getresponse().read().decode()
    conn.close()

    def strict(name: str) -> None:
        raise AssertionError(f"the list is not valid JSON: it holds {name}")

    assert [i["spec"]["x"] for i in json.loads(text, parse_constant=strict)["items"]] == [1.5]


@pytest.mark.parametrize("method, ctype, body", [
    ("PUT", "application/json", {"spec": "three"}),
    ("PUT", "application/json", {"metadata": 7, "spec": {"replicas": 2}}),
    ("PATCH", "application/merge-patch+json", {"spec": 3}),
    ("PATCH", "application/strategic-merge-patch+json", {"metadata": ["x"]}),
])
def test_scale_with_a_malformed_body_is_400_not_500(sim_cluster: SimCluster, method: str, ctype: str,
                                                    body: dict) -> None:
    assert call(sim_cluster, "POST", DEPLOY_PATH, deployment("sc"))[0] == 201
    status, answer, _ = call(sim_cluster, method, f"{DEPLOY_PATH}/sc/scale", body, ctype=ctype)
    assert_status(answer, 400, "BadRequest")
    assert "cannot unmarshal" in answer["message"]
    _, current, _ = call(sim_cluster, "GET", f"{DEPLOY_PATH}/sc/scale")
    assert current["spec"]["replicas"] == 1


def _service(name: str, kind: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def test_node_ports_stay_unique_after_a_service_is_deleted(sim_cluster: SimCluster) -> None:
    path = "/api/v1/namespaces/default/services"
    for name in ("a", "b"):
        assert call(sim_cluster, "POST", path, _service(name))[0] == 201
    _, np1, _ = call(sim_cluster, "POST", path, _service("np1", "NodePort"))
    assert call(sim_cluster, "DELETE", f"{path}/a")[0] == 200
    ports = [np1["spec"]["ports"][0]["nodePort"]]
    for name in ("np2", "np3", "np4"):
        status, body, _ = call(sim_cluster, "POST", path, _service(name, "NodePort"))
        assert status == 201, body
        ports.append(body["spec"]["ports"][0]["nodePort"])
    assert len(set(ports)) == len(ports), ports
    assert all(30000 <= p <= 32767 for p in ports)


def test_concurrent_service_creates_get_distinct_cluster_ips(sim_cluster: SimCluster) -> None:
    import threading

    path = "/api/v1/namespaces/default/services"
    answers: list[tuple[int, object]] = []

    def create(i: int) -> None:
        status, body, _ = call(sim_cluster, "POST", path, _service(f"par{i}", "NodePort"))
        answers.append((status, body))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [s for s, _ in answers] == [201] * 16
    _, listed, _ = call(sim_cluster, "GET", path)
    ips = [s["spec"]["clusterIP"] for s in listed["items"]]
    node_ports = [p["nodePort"] for s in listed["items"] for p in s["spec"]["ports"] if "nodePort" in p]
    assert len(set(ips)) == len(ips) and len(set(node_ports)) == len(node_ports) == 16


def test_numbers_beyond_int32_are_refused_like_a_go_decoder_does(sim_cluster: SimCluster) -> None:
    huge = 2**40
    big = deployment("big", replicas=huge)
    status, body, _ = call(sim_cluster, "POST", DEPLOY_PATH, big)
    assert_status(body, 400, "BadRequest")
    assert f"cannot unmarshal number {huge} into Go struct field spec.replicas of type int32" in body["message"]
    assert call(sim_cluster, "POST", f"{DEPLOY_PATH}?dryRun=All", deployment("big", replicas=2**31 - 1))[0] == 201
    assert call(sim_cluster, "POST", DEPLOY_PATH, deployment("small"))[0] == 201
    for method, path, patch, ctype in (
            ("PUT", f"{DEPLOY_PATH}/small/scale", {"spec": {"replicas": huge}}, "application/json"),
            ("PATCH", f"{DEPLOY_PATH}/small/scale", {"spec": {"replicas": huge}}, "application/merge-patch+json"),
            ("PATCH", f"{DEPLOY_PATH}/small", {"spec": {"replicas": huge}}, "application/merge-patch+json")):
        status, body, _ = call(sim_cluster, method, path, patch, ctype=ctype)
        assert_status(body, 400, "BadRequest")
        assert f"cannot unmarshal number {huge}" in body["message"]
    sim_cluster.settle()
    _, listed, _ = call(sim_cluster, "GET", f"{DEPLOY_PATH}/small")
    assert listed["spec"]["replicas"] == 1
