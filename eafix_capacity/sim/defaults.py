"""Defaulting: the fields a real API server fills in on create and update.

Only the defaults clients and controllers observe are set (workload strategies and
history limits, pod and container policies, Service type, ports and cluster IP), so that
``kubectl get -o yaml``, ``kubectl diff`` and the controllers see what a real cluster
would return. Functions change the object in place; ``allocate_ip`` is the only state.
"""
from __future__ import annotations

import base64
from typing import Callable, Collection

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


_DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replicaset,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Secret"): _secret,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
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
