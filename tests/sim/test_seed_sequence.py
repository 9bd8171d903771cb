"""The seed README's "Basic Deployment (Without Istio)" sequence, run with the real
kubectl against the sim cluster on the committed ``manifests/recommended/`` rendering.
Only the working directory is adapted (the seed runs from ``deploy/kubernetes/``)."""
from __future__ import annotations

import json
import subprocess

import pytest

from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

# the part both of the seed's sequences share, between their first and last steps
# The manifests' probe delays and grace periods pass on the sim clock: ten times faster than real
# time, from a fixed morning, so the sequence waits seconds, not minutes, and sees the same load every run.
FAST_CLOCK = {"speed": 10, "clock_start": TRADING_DAY_START}

SEED_CORE = [
    "apply -f storage/",
    "apply -f secrets/",
    "apply -f configmaps/",
    "apply -f deployments/infrastructure.yml",
    "apply -f services/infrastructure-services.yml",
    "wait --for=condition=ready pod -l app.kubernetes.io/name=redis -n eafix-trading --timeout=300s",
    "wait --for=condition=ready pod -l app.kubernetes.io/name=postgres -n eafix-trading --timeout=300s",
    "apply -f deployments/trading-services.yml",
    "apply -f deployments/supporting-services.yml",
    "apply -f services/trading-services.yml",
]
SEED_BASIC = ["apply -f namespaces/", *SEED_CORE, "apply -f ingress/",
              "get pods -n eafix-trading", "get services -n eafix-trading"]


def _kubectl_in(sim: SimCluster, directory, cache, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={sim.kubeconfig}", f"--cache-dir={cache}", *command.split()],
        cwd=directory, capture_output=True, text=True, timeout=120,
    )


def test_seed_basic_deployment_sequence_runs_and_every_pod_is_running(tmp_path):
    rendering = MANIFESTS_DIR / "recommended"
    with SimCluster(kubeconfig=tmp_path / "kubeconfig", **FAST_CLOCK, nodes=3, node_type="n2-standard-8") as sim:
        for command in SEED_BASIC:
            done = _kubectl_in(sim, rendering, tmp_path / "cache", command)
            assert done.returncode == 0, f"kubectl {command}\n{done.stdout}\n{done.stderr}"
        sim.settle()
        pods = json.loads(run_kubectl(sim, "get", "pods", "-n", "eafix-trading", "-o", "json",
                                      cache_dir=tmp_path / "cache").stdout)["items"]
        phases = {p["metadata"]["name"]: p["status"].get("phase") for p in pods}
        assert phases and set(phases.values()) == {"Running"}, phases
        assert "redis-0" in phases and "postgres-0" in phases
        # quota in force: the rendering's ResourceQuota counts every pod and refused none of them
        rq = json.loads(run_kubectl(sim, "get", "resourcequota", "eafix-trading-quota", "-n", "eafix-trading",
                                    "-o", "json", cache_dir=tmp_path / "cache").stdout)
        assert rq["status"]["hard"] == rq["spec"]["hard"] and rq["status"]["used"]["pods"] == str(len(pods))
        events = json.loads(run_kubectl(sim, "get", "events", "-n", "eafix-trading", "-o", "json",
                                        cache_dir=tmp_path / "cache").stdout)["items"]
        assert [e["message"] for e in events if e["reason"] == "FailedCreate"] == []
        # storage binding in force: the StatefulSets' claims bound through the rendering's eafix-ssd
        # class by the sim's GKE driver; the monitoring claims, whose pods the seed does not start,
        # wait for their first consumer (WaitForFirstConsumer)
        claims = json.loads(run_kubectl(sim, "get", "pvc", "-n", "eafix-trading", "-o", "json",
                                        cache_dir=tmp_path / "cache").stdout)["items"]
        bound = {c["metadata"]["name"]: (c["spec"].get("storageClassName"), c["status"].get("phase")) for c in claims}
        assert bound == {"data-redis-0": ("eafix-ssd", "Bound"), "data-postgres-0": ("eafix-ssd", "Bound"),
                         "prometheus-data": ("eafix-ssd", "Pending"), "grafana-data": ("eafix-ssd", "Pending")}
        volumes = json.loads(run_kubectl(sim, "get", "pv", "-o", "json", cache_dir=tmp_path / "cache").stdout)["items"]
        assert {v["spec"]["csi"]["driver"] for v in volumes} == {"pd.csi.storage.gke.io"}
        everything = json.loads(run_kubectl(sim, "get", "pods", "-A", "-o", "json",
                                            cache_dir=tmp_path / "cache").stdout)["items"]
        system = [p for p in everything if p["metadata"]["namespace"] == "kube-system"]
        assert system and {p["status"].get("phase") for p in everything} == {"Running"}  # the system pods too
        table = run_kubectl(sim, "get", "pods", "-n", "eafix-trading", cache_dir=tmp_path / "cache").stdout
        assert table.splitlines()[0].split()[:3] == ["NAME", "READY", "STATUS"]


def test_too_few_nodes_leaves_pending_pods_that_describe_explains(tmp_path):
    rendering = MANIFESTS_DIR / "recommended"
    with SimCluster(kubeconfig=tmp_path / "kubeconfig", **FAST_CLOCK, nodes=1, node_type="e2-standard-2") as sim:
        cache = tmp_path / "cache"
        for command in ("apply -f namespaces/", "apply -f storage/", "apply -f configmaps/",
                        "apply -f deployments/infrastructure.yml", "apply -f deployments/trading-services.yml"):
            done = _kubectl_in(sim, rendering, cache, command)
            assert done.returncode == 0, f"kubectl {command}\n{done.stderr}"
        sim.settle()
        pods = json.loads(run_kubectl(sim, "get", "pods", "-n", "eafix-trading", "-o", "json",
                                      cache_dir=cache).stdout)["items"]
        pending = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Pending"]
        assert pending
        described = run_kubectl(sim, "describe", "pod", pending[0], "-n", "eafix-trading", cache_dir=cache).stdout
        assert "FailedScheduling" in described
        assert "0/1 nodes are available" in described


SEED_ISTIO = [
    "label namespace eafix-trading istio-injection=enabled --overwrite",
    *SEED_CORE,
    "apply -f istio/gateways/",
    "apply -f istio/virtual-services/",
    "apply -f istio/destination-rules/",
    "apply -f istio/peer-authentication/",
    "apply -f istio/authorization-policies/",
]


def test_seed_istio_sequence_applies_after_the_crds(tmp_path):
    """The seed's "Advanced Deployment (With Istio)" on manifests/recommended-istio/: the
    istio/ objects are refused until their CRDs exist, then apply (istioctl steps left out)."""
    import yaml

    from eafix_capacity.manifests.crds import stand_in_crds

    rendering = MANIFESTS_DIR / "recommended-istio"
    cache = tmp_path / "cache"
    with SimCluster(kubeconfig=tmp_path / "kubeconfig", **FAST_CLOCK, nodes=3, node_type="n2-standard-8", mesh="istio") as sim:
        done = _kubectl_in(sim, rendering, cache, "apply -f namespaces/")
        assert done.returncode == 0, done.stderr
        refused = _kubectl_in(sim, rendering, cache, "apply -f istio/gateways/")
        assert refused.returncode != 0
        assert 'no matches for kind "Gateway"' in refused.stderr
        assert "ensure CRDs are installed first" in refused.stderr
        crds = tmp_path / "crds.yaml"
        crds.write_text(yaml.safe_dump_all(stand_in_crds(groups=("networking.istio.io", "security.istio.io"))))
        run_kubectl(sim, "apply", "-f", str(crds), cache_dir=cache)
        run_kubectl(sim, "wait", "--for=condition=established", "crd", "--all", "--timeout=30s", cache_dir=cache)
        for command in SEED_ISTIO:
            done = _kubectl_in(sim, rendering, cache, command)
            assert done.returncode == 0, f"kubectl {command}\n{done.stdout}\n{done.stderr}"
        sim.settle()
        listed = run_kubectl(sim, "get", "gateways,virtualservices,destinationrules,peerauthentications,"
                             "authorizationpolicies", "-n", "eafix-trading", "-o", "name", cache_dir=cache).stdout
        on_disk = [d for f in sorted((rendering / "istio").rglob("*.yml"))
                   for d in yaml.safe_load_all(f.read_text()) if d]
        assert len(listed.split()) == len(on_disk) > 0
        pods = json.loads(run_kubectl(sim, "get", "pods", "-A", "-o", "json", cache_dir=cache).stdout)["items"]
        assert {p["metadata"]["namespace"] for p in pods} >= {"eafix-trading", "kube-system"}
        assert sum(p["metadata"]["name"].startswith("istio-cni-node-") for p in pods) == 3  # one per node
        assert {p["status"].get("phase") for p in pods} == {"Running"}
