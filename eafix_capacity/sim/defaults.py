"""Defaulting: the fields a real API server fills in on create and update.

Only the defaults clients and controllers observe are set (workload strategies and
history limits, pod and container policies, Service type, ports and cluster IP), so that
``kubectl get -o yaml``, ``kubectl diff`` and the controllers see what a real cluster
would return. Functions change the object in place; ``allocate_ip`` is the only state.
``initial_status`` and ``tracks_generation`` are what the registry strategies' PrepareForCreate do:
the status a new object is returned with, and which kinds carry ``metadata.generation``.
"""
from __future__ import annotations

import base64
from fractions import Fraction
from typing import Callable, Collection, Mapping

from eafix_capacity import quantity
from eafix_capacity.sim import batch
from eafix_capacity.sim.admission import limit_range_item_defaults

_SERVICE_CIDR = "10.96."


def _pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            if "@" not in image:
                c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            else:
                c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
            limits = (c.get("resources") or {}).get("limits")
            if isinstance(limits, dict) and isinstance(c["resources"], dict):
                requests = c["resources"].setdefault("requests", {})
                if isinstance(requests, dict):
                    for name, value in limits.items():
                        requests.setdefault(name, value)


def _template(obj: dict) -> None:
    tmpl = (obj.get("spec") or {}).get("template")
    if isinstance(tmpl, dict):
        tmpl.setdefault("metadata", {})
        if isinstance(tmpl.get("spec"), dict):
            _pod_spec(tmpl["spec"])


def _deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(obj)


def _replicaset(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _template(obj)


def _update_strategy(spec: dict, **rolling_update: object) -> None:
    """``spec.updateStrategy`` of a StatefulSet or DaemonSet: RollingUpdate by default, with
    the given ``rollingUpdate`` defaults."""
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                for key, value in rolling_update.items():
                    ru.setdefault(key, value)


def _statefulset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    _update_strategy(spec, partition=0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _template(obj)


def _daemonset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    _update_strategy(spec, maxUnavailable=1, maxSurge=0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(obj)


def _pod(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        _pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)


def _service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "port" in p:
                p.setdefault("targetPort", p["port"])


def _secret(obj: dict) -> None:
    """``stringData`` is write-only: merged into ``data`` (base64) and dropped, as the server does."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        existing = obj.get("data")
        data: dict = existing if isinstance(existing, dict) else {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def _hpa(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)


def _job(obj: dict) -> None:
    batch.default_job(obj)
    _template(obj)


def _cronjob(obj: dict) -> None:
    batch.default_cronjob(obj)
    job_template = (obj.get("spec") or {}).get("jobTemplate")
    if isinstance(job_template, dict):
        _template(job_template)


def _limit_range(obj: dict) -> None:
    """SetDefaults_LimitRangeItem: a Container item's ``default`` falls back to ``max``, its
    ``defaultRequest`` to ``default`` and then ``min`` (stored so, as ``kubectl get -o yaml`` shows)."""
    items = (obj.get("spec") or {}).get("limits")   # no spec: the Go zero value, nothing to default
    if isinstance(items, list):
        obj["spec"]["limits"] = [limit_range_item_defaults(i) if isinstance(i, dict) else i for i in items]


_DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("", "LimitRange"): _limit_range,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replicaset,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Secret"): _secret,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
}


def apply_defaults(obj: dict, group: str, kind: str) -> None:
    fn = _DEFAULTERS.get((group, kind))
    if fn is not None and isinstance(obj.get("spec", {}), dict):
        fn(obj)


def allocate_ip(obj: dict, used: set[str], *, seed: int, used_ports: Collection[object] = ()) -> None:
    """Give a Service a cluster IP (and node ports) like the real allocator would.

    ``used``: cluster IPs and ``used_ports``: node ports other Services hold."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    if not spec.get("clusterIP"):
        n = seed
        while True:
            ip = f"{_SERVICE_CIDR}{(n // 250) % 250}.{n % 250 + 2}"
            if ip not in used:
                break
            n += 1
        spec["clusterIP"] = ip
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    else:
        spec.setdefault("clusterIPs", ["None"])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        taken = set(used_ports) | {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
        next_port = 30000 + seed % 2000
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                while next_port in taken:
                    next_port += 1
                p["nodePort"] = next_port
                taken.add(next_port)


# --- what PrepareForCreate does (pkg/registry/*/strategy.go) ---------------------------------------

# Built-in kinds whose strategy sets ``metadata.generation = 1`` on create (and bumps it when the spec
# changes), as of Kubernetes v1.32: workloads, PDBs, Ingresses, NetworkPolicies, CRDs. Pods (before
# v1.33), HPAs (before the HPAGeneration gate), Services, ConfigMaps, Secrets, Namespaces do not.
GENERATION_KINDS = frozenset({
    ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
    ("", "ReplicationController"), ("batch", "Job"), ("batch", "CronJob"), ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"), ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "NetworkPolicy"), ("apiextensions.k8s.io", "CustomResourceDefinition"),
})


def tracks_generation(group: str, kind: str, *, builtin: bool) -> bool:
    """Whether new objects of the kind get ``metadata.generation`` (custom resources always do)."""
    return not builtin or (group, kind) in GENERATION_KINDS


# The status a create returns: PrepareForCreate resets it, and the empty Go struct serialises with its
# fields that lack ``omitempty`` (a Deployment's ``status: {}``, a ReplicaSet's ``replicas: 0``).
_EMPTY_STATUS: Mapping[tuple[str, str], Mapping] = {
    ("", "Service"): {"loadBalancer": {}},
    ("", "PersistentVolumeClaim"): {"phase": "Pending"},
    ("", "PersistentVolume"): {"phase": "Pending"},
    ("", "ReplicationController"): {"replicas": 0},
    ("", "ResourceQuota"): {},
    ("apps", "Deployment"): {},
    ("apps", "ReplicaSet"): {"replicas": 0},
    ("apps", "StatefulSet"): {"replicas": 0, "availableReplicas": 0},
    ("apps", "DaemonSet"): {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                            "numberReady": 0},
    ("autoscaling", "HorizontalPodAutoscaler"): {"desiredReplicas": 0},
    ("batch", "Job"): {},
    ("batch", "CronJob"): {},
    ("policy", "PodDisruptionBudget"): {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                        "expectedPods": 0},
    ("networking.k8s.io", "Ingress"): {"loadBalancer": {}},
}


def initial_status(obj: dict, group: str, kind: str) -> None:
    """Set the status a real server gives a new object of this kind (a Pod: ``Pending`` and its QoS class)."""
    if kind == "Pod" and group == "":
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj)}
    elif (group, kind) in _EMPTY_STATUS:
        obj["status"] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _EMPTY_STATUS[group, kind].items()}


def _positive(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        amount = quantity.parse(value).value
    except (quantity.QuantityError, ValueError):
        return None
    return amount if amount > 0 else None


def pod_qos_class(pod: Mapping) -> str:
    """The QoS class, as pkg/apis/core/helper/qos GetPodQOS computes it from cpu and memory."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            res = c.get("resources") if isinstance(c, dict) else None
            res = res if isinstance(res, dict) else {}
            found = set()
            for bucket, into in (("requests", requests), ("limits", limits)):
                values = res.get(bucket)
                values = values if isinstance(values, dict) else {}
                for name in ("cpu", "memory"):
                    amount = _positive(values.get(name))
                    if amount is not None:
                        into[name] = into.get(name, Fraction(0)) + amount
                        if bucket == "limits":
                            found.add(name)
            if found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == amount for name, amount in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"
