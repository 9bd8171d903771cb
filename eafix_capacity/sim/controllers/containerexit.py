"""The kubelet's part for pods that run to completion: their containers exit and the pod ends.

A Job's pod (``restartPolicy: Never`` or ``OnFailure``) runs its command and exits; the
kubelet then reports the container ``terminated`` and the pod ``Succeeded`` or
``Failed`` (Never), or restarts the container (OnFailure). The sim has no command to run,
so how long a container runs and how it exits come from the pod's annotations:
``sim.eafix.io/run-seconds`` (sim-clock seconds, default :data:`DEFAULT_RUN_SECONDS`) and
``sim.eafix.io/exit-code`` (default 0). Pods with ``restartPolicy: Always`` never exit here.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.controllers.common import deep_copy, now_text
from eafix_capacity.sim.controllers.context import Context, Snapshot

RUN_SECONDS = "sim.eafix.io/run-seconds"
EXIT_CODE = "sim.eafix.io/exit-code"
DEFAULT_RUN_SECONDS = 5.0


def run_seconds(pod: Mapping) -> float:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(RUN_SECONDS)
    try:
        value = float(text) if text is not None else DEFAULT_RUN_SECONDS
    except ValueError:
        return DEFAULT_RUN_SECONDS
    return value if value >= 0 else DEFAULT_RUN_SECONDS


def exit_code(pod: Mapping) -> int:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXIT_CODE, "0")
    try:
        return int(text)
    except ValueError:
        return 1


def exited_status(pod: Mapping, *, code: int, now: str) -> dict:
    """The status a kubelet reports once every container of a Never pod has exited ``code``."""
    status = deep_copy(pod.get("status") or {})
    reason = "Completed" if code == 0 else "Error"
    for cs in status.get("containerStatuses") or []:
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)
        cs["state"] = {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now,
                                      "containerID": cs.get("containerID", "")}}
        cs["ready"] = False
        cs["started"] = False
    conditions = []
    for c in status.get("conditions") or []:
        c = dict(c)
        if c.get("type") in ("Ready", "ContainersReady"):
            c.update({"status": "False", "reason": "PodCompleted", "lastTransitionTime": now})
        elif c.get("type") == "PodReadyToStartContainers":
            c.update({"status": "False", "lastTransitionTime": now})
        elif c.get("type") == "Initialized":
            c["reason"] = "PodCompleted"
        conditions.append(c)
    status["conditions"] = conditions
    status["phase"] = "Succeeded" if code == 0 else "Failed"
    return status


def restarted_status(pod: Mapping, *, code: int, now: str) -> dict:
    """An OnFailure pod's container exited ``code`` and the kubelet started it again."""
    status = deep_copy(pod.get("status") or {})
    for cs in status.get("containerStatuses") or []:
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)
        cs["lastState"] = {"terminated": {"exitCode": code, "reason": "Error", "startedAt": started,
                                          "finishedAt": now, "containerID": cs.get("containerID", "")}}
        cs["state"] = {"running": {"startedAt": now}}
        cs["restartCount"] = int(cs.get("restartCount") or 0) + 1
    return status


class ContainerExits:
    """Ends the run of every Running pod that runs to completion, on the sim clock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._running_since: dict[str, float] = {}

    def sync(self, snap: Snapshot) -> None:
        elapsed = self.ctx.clock.elapsed()
        seen: set[str] = set()
        for pod in snap.pods:
            spec = pod.get("spec") or {}
            policy = spec.get("restartPolicy", "Always")
            if policy == "Always" or (pod.get("status") or {}).get("phase") != "Running" \
                    or pod["metadata"].get("deletionTimestamp"):
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            since = self._running_since.setdefault(uid, elapsed)
            due = since + run_seconds(pod)
            if elapsed < due:
                self.ctx.wake_at(due)
                continue
            code = exit_code(pod)
            now = now_text(self.ctx.clock)
            if code != 0 and policy == "OnFailure":
                status = restarted_status(pod, code=code, now=now)
                self._running_since[uid] = elapsed
                self.ctx.wake_at(elapsed + run_seconds(pod))
            else:
                status = exited_status(pod, code=code, now=now)
            try:
                self.ctx.update_status(R.POD, pod, status)
            except StaleError:
                pass
        for uid in set(self._running_since) - seen:
            del self._running_since[uid]
