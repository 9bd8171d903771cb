"""The real kubectl (1.32) against the sim: discovery, apply flavours, diff, CRUD verbs, errors."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

DATA = Path(__file__).parent / "data" / "api"
Kubectl = Callable[..., subprocess.CompletedProcess]


def test_get_and_describe_nodes(kubectl: Kubectl) -> None:
    out = kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert len(out) == 4 and all(" Ready " in line and "v1.32.0" in line for line in out[1:])
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    labels = nodes[0]["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "n2-standard-8"
    assert labels["topology.kubernetes.io/zone"] == "us-central1-a"
    assert labels["kubernetes.io/hostname"] == nodes[0]["metadata"]["name"]
    assert nodes[0]["status"]["capacity"]["cpu"] == "8"
    described = kubectl("describe", "node", nodes[0]["metadata"]["name"]).stdout
    assert "Allocatable:" in described and "instance-type=n2-standard-8" in described


def test_api_resources_lists_required_kinds(kubectl: Kubectl) -> None:
    out = kubectl("api-resources").stdout
    for needle in ("deployments ", "horizontalpodautoscalers", "poddisruptionbudgets", "customresourcedefinitions",
                   "networkpolicies", "storageclasses", "metrics.k8s.io/v1beta1"):
        assert needle in out, needle


def test_apply_directory_with_default_flags_then_diff(kubectl: Kubectl, tmp_path: Path) -> None:
    out = kubectl("apply", "-f", str(DATA / "app")).stdout
    assert "namespace/shop created" in out and "deployment.apps/web created" in out
    assert "service/web created" in out and "configmap/settings created" in out
    again = kubectl("apply", "-f", str(DATA / "app")).stdout
    assert "deployment.apps/web unchanged" in again
    same = kubectl("diff", "-f", str(DATA / "app"), check=False)
    assert same.returncode == 0 and same.stdout == ""
    changed = tmp_path / "app"
    changed.mkdir()
    text = (DATA / "app" / "10-deployment.yaml").read_text().replace("replicas: 2", "replicas: 3")
    (changed / "deployment.yaml").write_text(text)
    diff = kubectl("diff", "-f", str(changed), check=False)
    assert diff.returncode == 1 and "-  replicas: 2" in diff.stdout and "+  replicas: 3" in diff.stdout
    svc = json.loads(kubectl("get", "svc", "web", "-n", "shop", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"].startswith("10.96.")


def test_apply_server_side_and_conflict(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(DATA / "app"))
    migrated = kubectl("apply", "--server-side", "-f", str(DATA / "app"))
    assert "deployment.apps/web serverside-applied" in migrated.stdout and "Warning" not in migrated.stderr
    managers = kubectl("get", "deploy", "web", "-n", "shop", "--show-managed-fields", "-o",
                       "jsonpath={.metadata.managedFields[*].manager}").stdout.split()
    assert "kubectl" in managers and "kubectl-client-side-apply" not in managers
    same = kubectl("diff", "--server-side", "-f", str(DATA / "app"), check=False)
    assert same.returncode == 0, same.stdout
    kubectl("scale", "deployment/web", "-n", "shop", "--replicas=4")
    conflict = kubectl("apply", "--server-side", "-f", str(DATA / "app"), check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(DATA / "app"))
    replicas = kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "2"


def test_apply_kustomize_directory(kubectl: Kubectl) -> None:
    kubectl("apply", "-k", str(DATA / "kustomize"))
    labels = kubectl("get", "cm", "kustomized", "-o", "jsonpath={.metadata.labels.team}").stdout
    assert labels == "trading"


def test_crd_then_custom_resource(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DATA / "crd" / "virtualservice-crd.yaml"))
    kubectl("wait", "--for=condition=established", "crd/virtualservices.networking.istio.io", "--timeout=10s")
    kubectl("apply", "-f", str(DATA / "crd" / "virtualservice.yaml"))
    out = kubectl("get", "vs").stdout.splitlines()
    assert out[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"] and out[1].startswith("vs1")
    bad = (DATA / "crd" / "virtualservice.yaml").read_text().replace("hosts:", "hostz:")
    result = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0 and 'unknown field "spec.hostz"' in result.stderr


def test_create_label_annotate_patch_delete(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "ops")
    kubectl("create", "configmap", "cfg", "-n", "ops", "--from-literal=a=1")
    kubectl("label", "configmap", "cfg", "-n", "ops", "tier=backend")
    kubectl("annotate", "configmap", "cfg", "-n", "ops", "owner=team-a")
    kubectl("patch", "configmap", "cfg", "-n", "ops", "--type=merge", "-p", '{"data":{"b":"2"}}')
    obj = json.loads(kubectl("get", "cm", "cfg", "-n", "ops", "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"tier": "backend"}
    assert obj["metadata"]["annotations"]["owner"] == "team-a"
    assert obj["data"] == {"a": "1", "b": "2"}
    assert kubectl("get", "cm", "-n", "ops", "-l", "tier=backend", "-o", "name").stdout.strip() == "configmap/cfg"
    kubectl("delete", "configmap", "cfg", "-n", "ops")
    missing = kubectl("get", "cm", "cfg", "-n", "ops", check=False)
    assert missing.returncode != 0 and 'configmaps "cfg" not found' in missing.stderr
    kubectl("delete", "namespace", "ops")
    assert "ops" not in kubectl("get", "ns", "-o", "name").stdout


def test_deleting_a_deployment_deletes_its_pods(kubectl: Kubectl, sim_cluster) -> None:
    kubectl("apply", "-f", str(DATA / "app"))
    kubectl("rollout", "status", "deployment/web", "-n", "shop", "--timeout=20s")
    assert len(kubectl("get", "pods", "-n", "shop", "-o", "name").stdout.split()) == 2
    kubectl("delete", "deployment", "web", "-n", "shop")
    assert kubectl("get", "rs,pods", "-n", "shop", "-o", "name").stdout.strip() == ""


def test_get_pods_columns(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DATA / "app"))
    kubectl("rollout", "status", "deployment/web", "-n", "shop", "--timeout=20s")
    lines = kubectl("get", "pods", "-A").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    # kube-system's pods too (node-exporter and fluentbit-gke run two containers: 2/2)
    rows = [line.split() for line in lines[1:]]
    assert {r[0] for r in rows} == {"kube-system", "shop"}
    assert all(r[3] == "Running" and r[2].split("/")[0] == r[2].split("/")[1] for r in rows)
    assert [r[2] for r in rows if r[0] == "shop"] == ["1/1", "1/1"]
    wide = kubectl("get", "pods", "-n", "shop", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:7] == ["IP", "NODE"]


def test_errors_reach_kubectl_as_status_messages(kubectl: Kubectl) -> None:
    unknown = kubectl("get", "widgets", check=False)
    assert unknown.returncode != 0 and "doesn't have a resource type" in unknown.stderr
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"
    invalid = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert invalid.returncode != 0 and "is invalid" in invalid.stderr and "metadata.name" in invalid.stderr
    kubectl("create", "configmap", "twice")
    dup = kubectl("create", "configmap", "twice", check=False)
    assert dup.returncode != 0 and 'configmaps "twice" already exists' in dup.stderr
    typo = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: t}\nspec:\n  replicas: 1\n  replica: 2\n"
            "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
            "    spec: {containers: [{name: c, image: x}]}\n")
    strict = kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert strict.returncode != 0 and 'unknown field "spec.replica"' in strict.stderr


def test_create_generators_sent_as_protobuf(kubectl: Kubectl, sim_cluster) -> None:
    kubectl("create", "deployment", "gen", "--image=nginx:1.25", "--port=8080", "--replicas=2")
    kubectl("create", "service", "nodeport", "gen", "--tcp=80:8080")
    kubectl("rollout", "status", "deployment/gen", "--timeout=20s")
    dep = json.loads(kubectl("get", "deploy", "gen", "-o", "json").stdout)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert (dep["spec"]["replicas"], container["image"], container["ports"][0]["containerPort"]) == (2, "nginx:1.25",
                                                                                                    8080)
    svc = json.loads(kubectl("get", "svc", "gen", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080 and svc["spec"]["ports"][0]["nodePort"] >= 30000
    unsupported = kubectl("create", "priorityclass", "high", "--value=1000", check=False)
    assert unsupported.returncode != 0 and "cannot decode a protobuf PriorityClass" in unsupported.stderr


def test_explain_and_auth(kubectl: Kubectl) -> None:
    explained = kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in explained and "rollingUpdate" in explained
    assert kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert "eafix-sim-user" in kubectl("auth", "whoami").stdout


def test_delete_directory_with_its_namespace(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DATA / "app"))
    deleted = kubectl("delete", "-f", str(DATA / "app"))
    assert 'namespace "shop" deleted' in deleted.stdout and 'deployment.apps "web" deleted' in deleted.stdout
    assert "shop" not in kubectl("get", "ns", "-o", "name").stdout
    recreated = kubectl("apply", "-f", str(DATA / "app"))
    assert "namespace/shop created" in recreated.stdout


def test_logs_are_a_placeholder_and_exec_is_refused_clearly(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(DATA / "app"))
    kubectl("wait", "--for=condition=ready", "pod", "-l", "app=web", "-n", "shop", "--timeout=20s")
    pod = kubectl("get", "pods", "-n", "shop", "-o", "name").stdout.split()[0]
    assert "simulated, no process" in kubectl("logs", pod, "-n", "shop").stdout
    refused = kubectl("exec", pod, "-n", "shop", "--", "ls", check=False)
    assert refused.returncode != 0 and "not supported by the eafix sim cluster" in refused.stderr


def test_apply_many_kinds_validates_and_is_idempotent(kubectl: Kubectl) -> None:
    wide = str(DATA / "wide")
    created = kubectl("apply", "-f", wide).stdout
    for line in ("statefulset.apps/db created", "horizontalpodautoscaler.autoscaling/api created",
                 "poddisruptionbudget.policy/api created", "ingress.networking.k8s.io/ing created",
                 "storageclass.storage.k8s.io/fast created", "cronjob.batch/backup created",
                 "priorityclass.scheduling.k8s.io/trading-critical created",
                 "rolebinding.rbac.authorization.k8s.io/rb created"):
        assert line in created
    again = kubectl("apply", "-f", wide).stdout.splitlines()
    # kubectl always re-sends a PDB selector (patchStrategy replace) and Secret stringData, as with a real server,
    # and the StatefulSet's `cpu: 1`: a YAML number, which the server stores as the quantity string "1"
    assert [x for x in again if not x.endswith("unchanged")] == ["secret/s configured",
                                                                  "statefulset.apps/db configured",
                                                                  "poddisruptionbudget.policy/api configured"]
    assert kubectl("diff", "-f", wide, check=False).returncode == 0
    assert "Warning" not in kubectl("apply", "--server-side", "-f", wide).stderr
    data = json.loads(kubectl("get", "secret", "s", "-n", "wide", "-o", "json").stdout)["data"]
    assert sorted(data) == ["PASSWORD", "USER"]
