"""The kubelet's part: a bound pod's containers start and it turns Running and Ready.

Writes the pod status a kubelet reports (conditions, IPs, container statuses with image
IDs and container IDs) and the Pulled/Created/Started events. A pod with readiness or
startup probes, an injected fault (:mod:`eafix_capacity.sim.faults`) or a container the
usage model can drive above its memory limit goes through the container state machine
(:mod:`.containers`) on the sim clock instead: Ready after its probes' delays,
ErrImagePull/ImagePullBackOff, CrashLoopBackOff with the restart back-off, OOMKilled; the
kubelet asks for a pass (``ctx.wake_at``) when the next of those transitions is due.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.controllers.common import is_active, now_text, ns_name, qos_class
from eafix_capacity.sim.controllers import podrefs
from eafix_capacity.sim.clock import SimClock, rfc3339
from eafix_capacity.sim.controllers.common import same_status
from eafix_capacity.sim.controllers.containers import (ContainerState, Fault, OomEpisode, Terminated,
                                                       container_state, normalized_image, pod_view)
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.controllers.nodelifecycle import ready_status
from eafix_capacity.sim.faults import FAULT_ANNOTATION, FaultRule, fault_of, faults_for
from eafix_capacity.sim.usage_model import memory_bytes
from eafix_capacity.sim.resources import ResourceType


KUBELET_EVENTS_MAX_PODS = 1000


class Kubelet:
    """Every node's kubelet at once.

    ``kubelet_events``: the kubelet's per-container Pulled/Created/Started events. ``None``
    (the default) records them while the cluster has fewer than
    :data:`KUBELET_EVENTS_MAX_PODS` pods: they are most of the sim's writes and memory at
    scale, where a real cluster's one-hour event TTL would drop them anyway.
    """

    def __init__(self, ctx: Context, *, kubelet_events: bool | None = None,
                 faults: tuple[FaultRule, ...] = ()) -> None:
        self.ctx = ctx
        self.kubelet_events = kubelet_events
        self.faults = faults
        """The sim faults file's rules (:mod:`eafix_capacity.sim.faults`)."""
        self._pod_count = 0
        self._machine = _StateMachine(self)

    def sync(self, snap: Snapshot, bound_now: Mapping[tuple[str, str], dict]) -> None:
        """Start every bound pod that is not Running yet (``bound_now``: bound this pass)."""
        pods = snap.pods
        node_by_name = {n["metadata"]["name"]: n for n in snap.nodes}
        self._pod_count = len(pods)
        ips = self._ips_in_use(pods)
        refs: tuple[podrefs.Refs, podrefs.Refs] | None = None
        for p in pods:
            current = bound_now.get(ns_name(p), p)
            node_name = (current.get("spec") or {}).get("nodeName")
            if not node_name or not is_active(current) or node_name not in node_by_name:
                continue
            if ready_status(node_by_name[node_name]) == "Unknown":
                # that node's kubelet stopped posting status: it writes no pod status either (the
                # node lifecycle controller's MarkPodsNotReady is the last word, as on a real cluster)
                continue
            # A pod without probes, faults or an OOM risk starts Running and Ready at once, and
            # is done; the others go through the container state machine on every pass.
            plan = self._machine.plan(current, self.faults)
            running = (current.get("status") or {}).get("phase") == "Running"
            if plan is None and running:
                self._repost_ready(current)
                continue
            if not running and podrefs.references(current):
                if refs is None:
                    refs = (self._refs(R.SECRET), self._refs(R.CONFIGMAP))
                if self._blocked(current, node_by_name[node_name], ips, *refs):
                    continue
            if plan is None:
                self._start_pod(current, node_by_name[node_name], ips)
            elif running or (current.get("spec") or {}).get("restartPolicy", "Always") == "Always" \
                    or plan.faults:
                self._machine.sync(current, node_by_name[node_name], ips, plan)
            else:
                self._start_pod(current, node_by_name[node_name], ips)
        self._machine.prune(pods)

    def _refs(self, rt: ResourceType) -> dict[tuple[str, str], frozenset[str]]:
        objs, _, _ = self.ctx.store.list_objects(rt)
        return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]):
                frozenset(o.get("data") or {}) | frozenset(o.get("binaryData") or {}) for o in objs}

    def _blocked(self, pod: Mapping, node: Mapping, ips: dict[str, set[str]], secrets: podrefs.Refs,
                 configmaps: podrefs.Refs) -> bool:
        """Hold a pod whose Secret/ConfigMap volume or env reference is missing, with the kubelet's
        status and event (see :mod:`.podrefs`); True when it must not start."""
        mount = podrefs.mount_problem(pod, secrets, configmaps)
        problems = [] if mount else podrefs.container_config_problems(pod, secrets, configmaps)
        if not mount and not problems:
            return False
        node_name = node["metadata"]["name"]
        spec = pod.get("spec") or {}
        names = [str(c.get("name", "")) for c in spec.get("containers") or []]
        by_name = {p.container: p.message for p in problems}
        old = pod.get("status") or {}
        now = now_text(self.ctx.clock)

        def waiting(c: Mapping) -> dict:
            name = str(c.get("name", ""))
            state = ({"reason": "ContainerCreating"} if mount else
                     {"reason": "CreateContainerConfigError", "message": by_name[name]} if name in by_name
                     else {"reason": "ContainerCreating"})
            return {"name": name, "image": str(c.get("image", "")), "imageID": "", "ready": False,
                    "restartCount": 0, "started": False, "state": {"waiting": state}, "lastState": {}}

        def cond(ctype: str, status: str, reason: str | None = None, message: str | None = None) -> dict:
            before = next((c for c in old.get("conditions") or [] if c.get("type") == ctype), None)
            out: dict = {"type": ctype, "status": status, "lastProbeTime": None,
                         "lastTransitionTime": before["lastTransitionTime"] if before and
                         before.get("status") == status else now}
            if reason:
                out["reason"], out["message"] = reason, message
            return out

        unready = f"containers with unready status: [{' '.join(names)}]"
        addresses = (node.get("status") or {}).get("addresses") or []
        host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1")
        status: dict = {
            "phase": "Pending",
            "conditions": [cond("PodReadyToStartContainers", "False" if mount else "True"),
                           cond("Initialized", "True"),
                           cond("Ready", "False", "ContainersNotReady", unready),
                           cond("ContainersReady", "False", "ContainersNotReady", unready),
                           cond("PodScheduled", "True")],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": old.get("startTime") or now,
            "containerStatuses": [waiting(c) for c in spec.get("containers") or []],
            "qosClass": qos_class(pod),
        }
        if not mount:  # the sandbox runs (it has an IP); only the container cannot be created
            pod_ip = old.get("podIP") or (host_ip if spec.get("hostNetwork") else self._pod_ip(node, ips[node_name]))
            status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [waiting(c) for c in spec["initContainers"]]
        if status == old:
            return True
        try:
            self.ctx.update_status(R.POD, pod, status)
        except StaleError:
            return True
        if mount:
            self.ctx.event(pod, reason="FailedMount", etype="Warning", component="kubelet", host=node_name,
                           message=mount)
        for p in problems:
            self.ctx.event(pod, reason="Failed", etype="Warning", component="kubelet", host=node_name,
                           field_path=f"spec.containers{{{p.container}}}", message=f"Error: {p.message}")
        return True

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

    def _repost_ready(self, pod: Mapping) -> None:
        """A kubelet back after its node was unreachable posts its running pods' Ready again
        (status_manager's GeneratePodReadyCondition), undoing the node lifecycle controller's
        MarkPodsNotReady; a pod that is Ready is left alone."""
        conds = list((pod.get("status") or {}).get("conditions") or [])
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") == "True":
            return
        now = now_text(self.ctx.clock)
        status = dict(pod.get("status") or {})
        status["conditions"] = [{"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                                if c.get("type") == "Ready" else c for c in conds]
        try:
            self.ctx.update_status(R.POD, pod, status)
        except StaleError:
            return

    def _start_pod(self, pod: Mapping, node: Mapping, ips: dict[str, set[str]]) -> None:
        """The kubelet's part: containers start, the pod turns Running and Ready."""
        node_name = node["metadata"]["name"]
        now = now_text(self.ctx.clock)
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
        except StaleError:
            return
        if self.kubelet_events or (self.kubelet_events is None and self._pod_count < KUBELET_EVENTS_MAX_PODS):
            for c in spec.get("containers") or []:
                path = f"spec.containers{{{c.get('name')}}}"
                self.ctx.event(pod, reason="Pulled", component="kubelet", host=node_name, field_path=path,
                               message=f'Container image "{c.get("image", "")}" already present on machine')
                self.ctx.event(pod, reason="Created", component="kubelet", host=node_name, field_path=path,
                               message=f"Created container: {c.get('name')}")
                self.ctx.event(pod, reason="Started", component="kubelet", host=node_name, field_path=path,
                               message=f"Started container {c.get('name')}")


# --- probes, faults and OOM kills (containers that are not simply Running and Ready) --------------

OOM_CHECK_SECONDS = 30.0
"""How often (sim seconds) the kubelet compares a candidate container's memory with its limit:
the usage model's noise period, the finest step at which its memory changes."""


@dataclass(frozen=True)
class _Plan:
    """Why a pod needs the container state machine, worked out once per pod."""
    faults: Mapping[str | None, Fault]
    oom: tuple[str, ...]
    problem: str | None


def _epoch(clock: SimClock) -> datetime:
    """The sim clock's time at elapsed 0, to whole seconds (stable across calls)."""
    t = clock.now() - timedelta(seconds=clock.elapsed())
    return (t + timedelta(microseconds=500_000)).replace(microsecond=0)


def _probe_failure(probe: Mapping, pod_ip: str) -> str:
    """The output a failing readiness probe reports (pkg/probe/http, tcp, exec, grpc)."""
    if probe.get("httpGet") is not None:
        return "HTTP probe failed with statuscode: 503"
    if probe.get("tcpSocket") is not None:
        port = (probe.get("tcpSocket") or {}).get("port", "")
        return f"dial tcp {pod_ip}:{port}: connect: connection refused"
    if probe.get("grpc") is not None:
        port = (probe.get("grpc") or {}).get("port", "")
        return f'timeout: failed to connect service ":{port}" within 1s'
    return ""


class _StateMachine:
    """The kubelet's status for pods with probes, faults or OOM kills, on the sim clock."""

    def __init__(self, kubelet: "Kubelet") -> None:
        self.k = kubelet
        self.ctx = kubelet.ctx
        self._plans: dict[str, _Plan | None] = {}
        self._plans_model: object = None
        self._stale: set[str] = set()
        self._started: dict[str, float] = {}
        self._oom: dict[tuple[str, str], list[OomEpisode]] = {}
        self._epoch = _epoch(self.ctx.clock)

    def plan(self, pod: Mapping, faults: tuple[FaultRule, ...]) -> _Plan | None:
        uid = pod["metadata"].get("uid", "")
        if self._plans_model is not self.ctx.model:  # a new usage model: other containers may OOM now
            self._plans_model = self.ctx.model
            self._stale = set(self._plans)
        if uid in self._stale:
            self._stale.discard(uid)
            old = self._plans.pop(uid, None)
            new = self._make_plan(pod, faults)
            if old is not None:  # once in the state machine, always: its restarts and episodes stay
                oom = tuple(dict.fromkeys(old.oom + (new.oom if new else ())))
                new = _Plan(faults=old.faults, oom=oom, problem=old.problem)
            self._plans[uid] = new
        try:
            return self._plans[uid]
        except KeyError:
            pass
        plan = self._plans[uid] = self._make_plan(pod, faults)
        return plan

    def prune(self, pods: Sequence[Mapping]) -> None:
        if len(self._plans) <= 2 * len(pods) + 256:
            return
        live = {p["metadata"].get("uid", "") for p in pods}
        for table in (self._plans, self._started):
            for uid in [u for u in table if u not in live]:
                del table[uid]
        for key in [k for k in self._oom if k[0] not in live]:
            del self._oom[key]

    def _make_plan(self, pod: Mapping, rules: tuple[FaultRule, ...]) -> _Plan | None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        always = spec.get("restartPolicy", "Always") == "Always"
        if rules or FAULT_ANNOTATION in (meta.get("annotations") or {}):
            faults, problem = faults_for(pod, rules)
        else:
            faults, problem = {}, None
        if not always:  # a pod that runs to completion exits as ContainerExits says; only pulls fail here
            faults = {k: f for k, f in faults.items() if f.kind == "ErrImagePull"}
        probes = always and any(c.get("readinessProbe") or c.get("startupProbe") for c in containers)
        oom: list[str] = []
        if always:
            labels = meta.get("labels") or {}
            for c in containers:
                res = c.get("resources") or {}
                limit = (res.get("limits") or {}).get("memory")
                if limit is None:
                    continue
                try:
                    if self.ctx.model.memory_ceiling(labels, res.get("requests"), res.get("limits")) > \
                            memory_bytes(limit):
                        oom.append(str(c.get("name", "")))
                except (ValueError, TypeError):
                    continue
        if not faults and not probes and not oom and problem is None:
            return None
        return _Plan(faults=faults, oom=tuple(oom), problem=problem)

    def _ts(self, t: float) -> str:
        return rfc3339(self._epoch + timedelta(seconds=t))

    def _start_of(self, pod: Mapping, elapsed: float) -> float:
        uid = pod["metadata"].get("uid", "")
        start = self._started.get(uid)
        if start is None:
            start = elapsed
            text = (pod.get("status") or {}).get("startTime")
            if text:  # a pod this kubelet started before a restart of the sim: its containers kept running
                try:
                    t = datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                    start = min(elapsed, max(0.0, (t - self._epoch).total_seconds()))
                except ValueError:
                    pass
            self._started[uid] = start
        return start

    def _episodes(self, pod: Mapping, plan: _Plan, start: float, elapsed: float) -> dict[str, tuple[OomEpisode, ...]]:
        """Sample each candidate container's wanted memory now against its limit (the kernel's OOM
        killer, seen by the kubelet as exit 137 / OOMKilled)."""
        out: dict[str, tuple[OomEpisode, ...]] = {}
        if not plan.oom:
            return out
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        now = self.ctx.clock.now()
        t = elapsed - start
        for c in (pod.get("spec") or {}).get("containers") or []:
            name = str(c.get("name", ""))
            if name not in plan.oom:
                continue
            res = c.get("resources") or {}
            _, want = self.ctx.model.usage(labels, name, res.get("requests"), res.get("limits"), now,
                                           key=f"{meta.get('namespace', '')}/{meta.get('name', '')}", clamp=False)
            over = want > memory_bytes((res.get("limits") or {})["memory"])
            eps = self._oom.setdefault((meta.get("uid", ""), name), [])
            if over and (not eps or eps[-1].until is not None):
                eps.append(OomEpisode(t))
            elif not over and eps and eps[-1].until is None:
                eps[-1] = OomEpisode(eps[-1].since, t)
            out[name] = tuple(eps)
        self.ctx.wake_at(elapsed + OOM_CHECK_SECONDS)
        return out

    def sync(self, pod: Mapping, node: Mapping, ips: dict[str, set[str]], plan: _Plan) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        node_name = node["metadata"]["name"]
        elapsed = self.ctx.clock.elapsed()
        start = self._start_of(pod, elapsed)
        t = elapsed - start
        policy = spec.get("restartPolicy", "Always")
        pod_text = f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"
        episodes = self._episodes(pod, plan, start, elapsed)
        containers = spec.get("containers") or []
        states: list[tuple[str, ContainerState]] = []
        for c in containers:
            name = str(c.get("name", ""))
            states.append((name, container_state(c, fault=fault_of(plan.faults, name), elapsed=t,
                                                 oom=episodes.get(name, ()), restart_policy=policy,
                                                 pod_text=pod_text)))
        view = pod_view(states, restart_policy=policy)
        if view.next_change is not None:
            self.ctx.wake_at(start + view.next_change + 1e-6)
        addresses = (node.get("status") or {}).get("addresses") or []
        host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1")
        pod_ip = old.get("podIP") or (host_ip if spec.get("hostNetwork") else self.k._pod_ip(node, ips[node_name]))
        now = now_text(self.ctx.clock)
        uid = meta.get("uid", "")

        def cond(ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict:
            status = "True" if ok else "False"
            before = next((c for c in old.get("conditions") or [] if c.get("type") == ctype), None)
            out: dict = {"type": ctype, "status": status, "lastProbeTime": None,
                         "lastTransitionTime": before["lastTransitionTime"] if before and
                         before.get("status") == status and before.get("lastTransitionTime") else now}
            if reason:
                out["reason"], out["message"] = reason, message
            return out

        by_name = {c.get("name"): c for c in containers}
        status_list = [self._container_status(by_name[name], st, uid, start) for name, st in states]
        unready = f"containers with unready status: [{' '.join(view.unready)}]"
        ready_args = () if view.ready else ("ContainersNotReady", unready)
        status: dict = {
            "phase": view.phase,
            "conditions": [cond("PodReadyToStartContainers", True), cond("Initialized", True),
                           cond("Ready", view.ready, *ready_args), cond("ContainersReady", view.ready, *ready_args),
                           cond("PodScheduled", True)],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": self._ts(start),
            "containerStatuses": status_list,
            "qosClass": qos_class(pod),
        }
        if spec.get("initContainers"):  # done before the containers start (sidecars keep running)
            status["initContainerStatuses"] = [
                self._container_status(c, ContainerState("running", ready=True, started=True)
                                       if c.get("restartPolicy") == "Always" else
                                       ContainerState("terminated", "Completed",
                                                      terminated=Terminated(0, "Completed", 0.0, 0.0)),
                                       uid, start, init=c.get("restartPolicy") != "Always")
                for c in spec["initContainers"]]
        if same_status(old, status):
            return
        try:
            self.ctx.update_status(R.POD, pod, status)
        except StaleError:
            return
        self._events(pod, node_name, old, states, by_name, pod_ip, plan)

    def _container_status(self, c: Mapping, st: ContainerState, uid: str, start: float, *,
                          init: bool = False) -> dict:
        """A containerStatuses entry; the state's times are sim seconds after ``start``."""
        name = str(c.get("name", ""))
        image = str(c.get("image", ""))
        cid = "containerd://" + hashlib.sha256(f"{uid}/{name}/{st.restart_count}".encode()).hexdigest()
        out: dict = {"name": name, "image": normalized_image(image) if st.state == "waiting" and st.last is None
                     else (image if "/" in image else f"docker.io/library/{image}"),
                     "imageID": "", "ready": st.ready, "restartCount": st.restart_count, "started": st.started}
        if st.state != "waiting" or st.last is not None:
            digest = hashlib.sha256(image.encode()).hexdigest()
            out["imageID"] = f"{normalized_image(image).rsplit(':', 1)[0]}@sha256:{digest}"
            out["containerID"] = cid
        if st.state == "running":
            out["state"] = {"running": {"startedAt": self._ts(start + st.since)}}
        elif st.state == "terminated" and st.terminated is not None:
            out["state"] = {"terminated": self._terminated(st.terminated, cid, start)}
        else:
            waiting: dict = {"reason": st.reason}
            if st.message:
                waiting["message"] = st.message
            out["state"] = {"waiting": waiting}
        prev = "containerd://" + hashlib.sha256(f"{uid}/{name}/{max(0, st.restart_count - 1)}".encode()).hexdigest()
        out["lastState"] = {"terminated": self._terminated(st.last, prev, start)} if st.last is not None else {}
        if init:
            out["started"] = False
        return out

    def _terminated(self, term: Terminated, cid: str, start: float) -> dict:
        return {"exitCode": term.exit_code, "reason": term.reason, "startedAt": self._ts(start + term.started),
                "finishedAt": self._ts(start + term.finished), "containerID": cid}

    def _events(self, pod: Mapping, node_name: str, old: Mapping, states: list[tuple[str, ContainerState]],
                by_name: Mapping, pod_ip: str, plan: _Plan) -> None:
        """The kubelet's events for what changed since the status it last wrote."""
        before = {cs.get("name"): cs for cs in old.get("containerStatuses") or []}
        meta = pod["metadata"]
        pod_text = f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"
        ev = self.ctx.event
        if plan.problem and not old.get("containerStatuses"):
            ev(pod, reason="SimFaultIgnored", etype="Warning", component="kubelet", host=node_name,
               message=plan.problem)
        for name, st in states:
            c = by_name[name]
            image = str(c.get("image", ""))
            prev = before.get(name) or {}
            prev_waiting = ((prev.get("state") or {}).get("waiting") or {}).get("reason")
            prev_running = "running" in (prev.get("state") or {})
            prev_restarts = int(prev.get("restartCount") or 0)
            path = f"spec.containers{{{name}}}"

            def warn(reason: str, message: str, etype: str = "Warning") -> None:
                ev(pod, reason=reason, etype=etype, component="kubelet", host=node_name, field_path=path,
                   message=message)

            if st.reason == "ErrImagePull":
                warn("Pulling", f'Pulling image "{image}"', "Normal")
                warn("Failed", f'Failed to pull image "{image}": {st.message}')
                warn("Failed", "Error: ErrImagePull")
            elif st.reason == "ImagePullBackOff" and prev_waiting != "ImagePullBackOff":
                warn("BackOff", f'Back-off pulling image "{image}"', "Normal")
                warn("Failed", "Error: ImagePullBackOff")
            started_again = st.restart_count > prev_restarts or (st.state == "running" and not prev_running) \
                or (not prev and (st.restart_count or st.state == "running"))
            if started_again and st.reason not in ("ErrImagePull", "ImagePullBackOff"):
                warn("Pulled", f'Container image "{image}" already present on machine', "Normal")
                warn("Created", f"Created container: {name}", "Normal")
                warn("Started", f"Started container {name}", "Normal")
            if st.reason == "CrashLoopBackOff" and (prev_waiting != "CrashLoopBackOff"
                                                    or st.restart_count != prev_restarts):
                warn("BackOff", f"Back-off restarting failed container {name} in pod {pod_text}")
            if st.probe_failing:
                warn("Unhealthy", f"Readiness probe failed: {_probe_failure(c.get('readinessProbe') or {}, pod_ip)}")
