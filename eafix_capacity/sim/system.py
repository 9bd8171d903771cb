"""The kube-system objects a cloud gives every cluster, built from the capacity model.

A managed cluster is never empty: before any workload, every node runs the provider's
system DaemonSets (kube-proxy, the CNI agent, a log agent, node-exporter; istio-cni with the
mesh) and the cluster runs metrics-server. Their requests are what the capacity model
(:func:`eafix_capacity.nodes.default_daemonsets`) keeps back on each node, so here the pod
templates are built *from* those records: the requests of each DaemonSet's containers add
up to exactly the model's figure, and the room the sim scheduler leaves for workload pods
on a node is the plan's per-node workload room (``Allocatable.workload_*``).

Everything here is pure: ``system_objects`` returns the objects (PriorityClasses,
ServiceAccounts, DaemonSets, the metrics-server Deployment) and ``SimCluster`` stores the
ones that are missing at start, as a cloud's addon manager re-creates its addons.
Container names, images and labels follow each provider's own manifests (versions as of
Kubernetes 1.32); how a DaemonSet's requests are split between its containers is the
published split where there is one, else the whole figure on the first container.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from eafix_capacity import quantity
from eafix_capacity.mesh import Mesh
from eafix_capacity.nodes import MIB, DaemonSet, Provider, default_daemonsets

NAMESPACE = "kube-system"
ADDON_MODE_LABEL = "addonmanager.kubernetes.io/mode"
# The two built-in PriorityClasses the API server creates at start
# (pkg/apis/scheduling: SystemCriticalPriority = 2000000000, node-critical one more thousand).
NODE_CRITICAL = "system-node-critical"
CLUSTER_CRITICAL = "system-cluster-critical"
PRIORITY_CLASSES: Mapping[str, tuple[int, str]] = {
    NODE_CRITICAL: (2000001000, "Used for system critical pods that must not be moved from their current node."),
    CLUSTER_CRITICAL: (2000000000, "Used for system critical pods that must run in the cluster, but can be "
                                   "moved to another node if necessary."),
}
# metrics-server's own manifest (kubernetes-sigs/metrics-server components.yaml) requests 100m/200Mi.
METRICS_SERVER = DaemonSet("metrics-server", 100, 200 * MIB,
                           "kubernetes-sigs/metrics-server components.yaml requests cpu 100m, memory 200Mi")
METRICS_SERVER_IMAGE = "registry.k8s.io/metrics-server/metrics-server:v0.7.2"


@dataclass(frozen=True)
class Container:
    """One container of a system pod: its share of the DaemonSet's requests, when published
    (``None``: whatever the other containers leave of the model's figure)."""

    name: str
    image: str
    cpu_m: int | None = None
    memory_bytes: int | None = None
    limits: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Agent:
    """How a provider ships one of the model's DaemonSets: labels, containers, host network."""

    labels: Mapping[str, str]
    containers: tuple[Container, ...]
    host_network: bool = True
    service_account: str = ""


_NODE_EXPORTER = Agent(
    {"app.kubernetes.io/name": "node-exporter", "app.kubernetes.io/component": "exporter",
     "app.kubernetes.io/part-of": "kube-prometheus", "app.kubernetes.io/version": "1.8.2"},
    # kube-prometheus manifests/nodeExporter-daemonset.yaml: its requests and limits
    (Container("node-exporter", "quay.io/prometheus/node-exporter:v1.8.2", 102, 180 * MIB,
               {"cpu": "250m", "memory": "180Mi"}),
     Container("kube-rbac-proxy", "quay.io/brancz/kube-rbac-proxy:v0.18.1", None, None,
               {"cpu": "20m", "memory": "40Mi"})))
_FLUENT_BIT = Agent({"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": "fluent-bit"},
                    (Container("fluent-bit", "cr.fluentbit.io/fluent/fluent-bit:3.2.2"),), host_network=False)
_ISTIO_CNI = Agent({"k8s-app": "istio-cni-node", "sidecar.istio.io/inject": "false"},
                   (Container("install-cni", "docker.io/istio/install-cni:1.24.2"),),
                   service_account="istio-cni")
_ECR = "602401143452.dkr.ecr.us-east-1.amazonaws.com"
_AGENTS: Mapping[Provider, Mapping[str, Agent]] = {
    "gke": {
        # GKE runs kube-proxy as a static pod per node; here it is a DaemonSet (same pod slot and requests).
        "kube-proxy": Agent({"component": "kube-proxy", "tier": "node", "k8s-app": "kube-proxy"},
                            (Container("kube-proxy", "gke.gcr.io/kube-proxy-amd64:v1.32.0-gke.1358000"),)),
        "netd": Agent({"k8s-app": "netd"}, (Container("netd", "gke.gcr.io/netd-amd64:v0.6.4-gke.1"),)),
        "fluentbit-gke": Agent({"k8s-app": "fluentbit-gke", "component": "fluentbit-gke"},
                               (Container("fluentbit", "gke.gcr.io/fluent-bit:v1.8.12-gke.28", 50, 100 * MIB),
                                Container("fluentbit-gke", "gke.gcr.io/fluent-bit-gke-exporter:v0.28.0-gke.1")),
                               host_network=False),
        "node-exporter": _NODE_EXPORTER,
    },
    "eks": {
        "kube-proxy": Agent({"k8s-app": "kube-proxy", "eks.amazonaws.com/component": "kube-proxy"},
                            (Container("kube-proxy", f"{_ECR}/eks/kube-proxy:v1.32.0-minimal-eksbuild.2"),)),
        # amazon-vpc-cni-k8s: requests on aws-node only, the network policy agent has none
        "aws-node": Agent({"k8s-app": "aws-node", "app.kubernetes.io/name": "aws-node"},
                          (Container("aws-node", f"{_ECR}/amazon-k8s-cni:v1.19.2-eksbuild.1"),
                           Container("aws-eks-nodeagent", f"{_ECR}/amazon/aws-network-policy-agent:v1.1.6-eksbuild.1",
                                     0, 0))),
        "node-exporter": _NODE_EXPORTER,
        "fluent-bit": _FLUENT_BIT,
    },
    "aks": {
        "kube-proxy": Agent({"component": "kube-proxy", "tier": "node", "k8s-app": "kube-proxy"},
                            (Container("kube-proxy", "mcr.microsoft.com/oss/kubernetes/kube-proxy:v1.32.0"),)),
        "azure-cns": Agent({"k8s-app": "azure-cns"},
                           (Container("cns-container", "mcr.microsoft.com/containernetworking/azure-cns:v1.6.18"),)),
        "cloud-node-manager": Agent(
            {"k8s-app": "cloud-node-manager", "component": "cloud-node-manager"},
            (Container("cloud-node-manager", "mcr.microsoft.com/oss/kubernetes/azure-cloud-node-manager:v1.32.0"),)),
        "node-exporter": _NODE_EXPORTER,
        "fluent-bit": _FLUENT_BIT,
    },
    "generic": {
        "kube-proxy": Agent({"k8s-app": "kube-proxy"},
                            (Container("kube-proxy", "registry.k8s.io/kube-proxy:v1.32.0"),)),
        "calico-node": Agent({"k8s-app": "calico-node"}, (Container("calico-node", "docker.io/calico/node:v3.29.1"),),
                             service_account="calico-node"),
        "node-exporter": _NODE_EXPORTER,
        "fluent-bit": _FLUENT_BIT,
    },
}


def agent_for(provider: Provider, daemonset: DaemonSet) -> Agent:
    """How ``provider`` ships ``daemonset``; a DaemonSet the kit does not know gets one
    container named after it (its image ``registry.k8s.io/<name>``)."""
    if daemonset.name == "istio-cni-node":
        return _ISTIO_CNI
    known = _AGENTS[provider].get(daemonset.name)
    if known is not None:
        return known
    return Agent({"k8s-app": daemonset.name}, (Container(daemonset.name, f"registry.k8s.io/{daemonset.name}:latest"),),
                 host_network=False)


def _requests(cpu_m: int, memory_bytes: int) -> dict[str, str]:
    out = {}
    if cpu_m:
        out["cpu"] = str(quantity.from_milli(cpu_m))
    if memory_bytes:
        out["memory"] = str(quantity.from_bytes(memory_bytes))
    return out


def container_requests(agent: Agent, daemonset: DaemonSet) -> list[tuple[int, int]]:
    """(cpu millicores, memory bytes) per container of ``agent``, adding up to the model's
    figures for ``daemonset``: the published shares, and the rest on the first container
    without one (on the first container when every share is given)."""
    given_cpu = sum(c.cpu_m or 0 for c in agent.containers)
    given_mem = sum(c.memory_bytes or 0 for c in agent.containers)
    rest_cpu, rest_mem = max(0, daemonset.cpu_m - given_cpu), max(0, daemonset.memory_bytes - given_mem)
    out = [[c.cpu_m or 0, c.memory_bytes or 0] for c in agent.containers]
    cpu_to = next((i for i, c in enumerate(agent.containers) if c.cpu_m is None), 0)
    mem_to = next((i for i, c in enumerate(agent.containers) if c.memory_bytes is None), 0)
    out[cpu_to][0] += rest_cpu
    out[mem_to][1] += rest_mem
    if given_cpu > daemonset.cpu_m or given_mem > daemonset.memory_bytes:  # a model figure below the split
        out = [[0, 0] for _ in agent.containers]
        out[0] = [daemonset.cpu_m, daemonset.memory_bytes]
    return [(cpu, mem) for cpu, mem in out]


def _within(requests: Mapping[str, str], limits: Mapping[str, str]) -> bool:
    """Whether every request is at most its limit (the published limits fit the model's figures)."""
    return all(quantity.parse(v) <= quantity.parse(limits[k]) for k, v in requests.items() if k in limits)


def _containers(agent: Agent, daemonset: DaemonSet) -> list[dict]:
    out = []
    for c, (cpu, mem) in zip(agent.containers, container_requests(agent, daemonset)):
        resources: dict[str, dict[str, str]] = {}
        if _requests(cpu, mem):
            resources["requests"] = _requests(cpu, mem)
        if c.limits and resources.get("requests") and _within(resources["requests"], c.limits):
            resources["limits"] = dict(c.limits)
        out.append({"name": c.name, "image": c.image, "resources": resources})
    return out


def _meta(name: str, labels: Mapping[str, str], *, namespaced: bool = True) -> dict:
    meta: dict = {"name": name, "labels": {**labels, ADDON_MODE_LABEL: "Reconcile"}}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def daemonset_object(provider: Provider, daemonset: DaemonSet) -> dict:
    """The DaemonSet object for one of the model's per-node DaemonSets on ``provider``.

    Like the providers' own system DaemonSets it tolerates every taint (``operator:
    Exists``), runs at ``system-node-critical`` priority and only on Linux nodes."""
    agent = agent_for(provider, daemonset)
    selector = {"k8s-app": agent.labels["k8s-app"]} if "k8s-app" in agent.labels else \
        {"app.kubernetes.io/name": agent.labels["app.kubernetes.io/name"]}
    spec: dict = {
        "priorityClassName": NODE_CRITICAL,
        "serviceAccountName": agent.service_account or daemonset.name,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"operator": "Exists"}],
        "containers": _containers(agent, daemonset),
    }
    if agent.host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {**_meta(daemonset.name, agent.labels),
                         "annotations": {"sim.eafix.io/requests-basis": daemonset.basis}},
            "spec": {"selector": {"matchLabels": selector},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                     "template": {"metadata": {"labels": dict(agent.labels)}, "spec": spec}}}


def metrics_server_object() -> dict:
    """The metrics-server Deployment of kubernetes-sigs/metrics-server components.yaml."""
    labels = {"k8s-app": "metrics-server"}
    container = {"name": "metrics-server", "image": METRICS_SERVER_IMAGE,
                 "args": ["--cert-dir=/tmp", "--secure-port=10250",
                          "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                          "--kubelet-use-node-status-port", "--metric-resolution=15s"],
                 "resources": {"requests": _requests(METRICS_SERVER.cpu_m, METRICS_SERVER.memory_bytes)}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("metrics-server", labels),
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"priorityClassName": CLUSTER_CRITICAL,
                                           "serviceAccountName": "metrics-server",
                                           "nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [container]}}}}


def _service_account(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, {})}


def _priority_class(name: str) -> dict:
    value, description = PRIORITY_CLASSES[name]
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "globalDefault": False, "description": description,
            "preemptionPolicy": "PreemptLowerPriority"}


def system_daemonsets(provider: Provider, *, mesh: Mesh = "none") -> tuple[DaemonSet, ...]:
    """The model's per-node DaemonSets the sim runs (those of ``default_daemonsets``)."""
    return default_daemonsets(provider, mesh=mesh)


def system_objects(provider: Provider, *, mesh: Mesh = "none") -> list[dict]:
    """What a new cluster of ``provider`` holds before any workload, in creation order:
    the built-in PriorityClasses, the ServiceAccounts, the DaemonSets, metrics-server."""
    daemonsets = [daemonset_object(provider, d) for d in system_daemonsets(provider, mesh=mesh)]
    accounts = sorted({ds["spec"]["template"]["spec"]["serviceAccountName"] for ds in daemonsets} | {"metrics-server"})
    return ([_priority_class(name) for name in PRIORITY_CLASSES] + [_service_account(a) for a in accounts]
            + daemonsets + [metrics_server_object()])
