"""The kubelet's part: a bound pod's containers start and it turns Running and Ready.

Writes the pod status a kubelet reports (conditions, IPs, container statuses with image
IDs and container IDs) and the Pulled/Created/Started events.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Mapping, Sequence

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.controllers.common import is_active, now_text, ns_name, qos_class
from eafix_capacity.sim.controllers.context import Context, Snapshot


KUBELET_EVENTS_MAX_PODS = 1000


class Kubelet:
    """Every node's kubelet at once.

    ``kubelet_events``: the kubelet's per-container Pulled/Created/Started events. ``None``
    (the default) records them while the cluster has fewer than
    :data:`KUBELET_EVENTS_MAX_PODS` pods: they are most of the sim's writes and memory at
    scale, where a real cluster's one-hour event TTL would drop them anyway.
    """

    def __init__(self, ctx: Context, *, kubelet_events: bool | None = None) -> None:
        self.ctx = ctx
        self.kubelet_events = kubelet_events
        self._pod_count = 0

    def sync(self, snap: Snapshot, bound_now: Mapping[tuple[str, str], dict]) -> None:
        """Start every bound pod that is not Running yet (``bound_now``: bound this pass)."""
        pods = snap.pods
        node_by_name = {n["metadata"]["name"]: n for n in snap.nodes}
        self._pod_count = len(pods)
        ips = self._ips_in_use(pods)
        for p in pods:
            current = bound_now.get(ns_name(p), p)
            node_name = (current.get("spec") or {}).get("nodeName")
            if not node_name or not is_active(current) or node_name not in node_by_name:
                continue
            if (current.get("status") or {}).get("phase") == "Running":
                continue
            self._start_pod(current, node_by_name[node_name], ips)

    def _ips_in_use(self, pods: Sequence[Mapping]) -> dict[str, set[str]]:
        used: dict[str, set[str]] = defaultdict(set)
        for p in pods:
            st = p.get("status") or {}
            if st.get("podIP") and (p.get("spec") or {}).get("nodeName"):
                used[p["spec"]["nodeName"]].add(st["podIP"])
        return used

    def _pod_ip(self, node: Mapping, used: set[str]) -> str:
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if cidr.endswith("/24"):
            base = [int(x) for x in cidr.split("/")[0].split(".")]
        else:
            idx = int(hashlib.sha1(node["metadata"]["name"].encode()).hexdigest(), 16) % (1 << 16)
            base = [10, 244 + (idx >> 8) % 12, idx & 0xFF, 0]
        for host in range(2, 255):
            ip = f"{base[0]}.{base[1]}.{base[2]}.{host}"
            if ip not in used:
                used.add(ip)
                return ip
        return f"{base[0]}.{base[1]}.{base[2]}.254"

    def _start_pod(self, pod: Mapping, node: Mapping, ips: dict[str, set[str]]) -> None:
        """The kubelet's part: containers start, the pod turns Running and Ready."""
        node_name = node["metadata"]["name"]
        now = now_text()
        addresses = (node.get("status") or {}).get("addresses") or []
        host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1")
        pod_ip = host_ip if (pod.get("spec") or {}).get("hostNetwork") else self._pod_ip(node, ips[node_name])
        uid = pod["metadata"].get("uid", "")

        def container_status(c: Mapping, init: bool) -> dict:
            cid = hashlib.sha256(f"{uid}/{c.get('name')}".encode()).hexdigest()
            image = str(c.get("image", ""))
            digest = hashlib.sha256(image.encode()).hexdigest()
            repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            full = repo if "/" in repo.split(":")[0] and "." in repo.split("/")[0] else \
                ("docker.io/" + (repo if "/" in repo else f"library/{repo}"))
            st = {"name": c.get("name"), "image": image if "/" in image else f"docker.io/library/{image}",
                  "imageID": f"{full}@sha256:{digest}", "containerID": f"containerd://{cid}",
                  "ready": True, "restartCount": 0, "started": not init,
                  "state": ({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                                            "containerID": f"containerd://{cid}"}} if init and
                            c.get("restartPolicy") != "Always" else {"running": {"startedAt": now}}),
                  "lastState": {}}
            return st

        spec = pod.get("spec") or {}
        status = {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
            ],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": [container_status(c, False) for c in spec.get("containers") or []],
            "qosClass": qos_class(pod),
        }
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [container_status(c, True) for c in spec["initContainers"]]
        try:
            self.ctx.update_status(R.POD, pod, status)
        except ApiError as e:
            if e.code in (404, 409):
                return
            raise
        if self.kubelet_events or (self.kubelet_events is None and self._pod_count < KUBELET_EVENTS_MAX_PODS):
            for c in spec.get("containers") or []:
                path = f"spec.containers{{{c.get('name')}}}"
                self.ctx.event(pod, reason="Pulled", component="kubelet", host=node_name, field_path=path,
                               message=f'Container image "{c.get("image", "")}" already present on machine')
                self.ctx.event(pod, reason="Created", component="kubelet", host=node_name, field_path=path,
                               message=f"Created container: {c.get('name')}")
                self.ctx.event(pod, reason="Started", component="kubelet", host=node_name, field_path=path,
                               message=f"Started container {c.get('name')}")
