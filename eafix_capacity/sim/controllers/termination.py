"""The kubelet's end of a graceful pod deletion: containers stop, then the pod is removed.

A DELETE of a pod bound to a node only sets ``deletionTimestamp`` (see
``Store._graceful_delete``); the pod shows Terminating until its node's kubelet has
stopped the containers and deletes it again with a grace period of 0. A real kubelet sends
SIGTERM (after any preStop hook) and kills what is still running when the grace period
ends; how soon a container exits on SIGTERM depends on the program, so the sim takes the
worst case a real cluster allows: containers stop when the grace period ends on the sim
clock (``deletionTimestamp``). Then the pod's Ready condition turns False (so ``kubectl
wait --for=condition=Ready=False`` sees it) and the pod is deleted (``kubectl wait
--for=delete``). A node whose kubelet stopped posting status (Ready Unknown) finishes
nothing: its pods stay Terminating, as on a real cluster, until it is back; a pod whose
node is gone is removed at once, as the pod garbage collector does with orphaned pods.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.controllers.common import deep_copy, now_text
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.controllers.nodelifecycle import ready_status


def stopped_status(status: Mapping, *, now: str) -> dict:
    """A terminating pod's status once its containers have stopped (pure): Ready and
    ContainersReady False, each container terminated with exit code 0."""
    new = deep_copy(dict(status))
    new["conditions"] = [dict(c, status="False", lastTransitionTime=now)
                         if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != "False" else c
                         for c in new.get("conditions") or []]
    for cs in new.get("containerStatuses") or []:
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)
        cs["ready"], cs["started"] = False, False
        cs["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now,
                                      "containerID": cs.get("containerID", "")}}
    return new


class PodTermination:
    """Finishes the graceful deletions that are due (one step of every pass)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, snap: Snapshot) -> None:
        nodes = {n["metadata"]["name"]: n for n in snap.nodes}
        now = self.ctx.clock.now()
        for pod in snap.pods:
            meta = pod["metadata"]
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not meta.get("deletionTimestamp") or not node_name:
                continue
            node = nodes.get(node_name)
            if node is not None:
                if ready_status(node) == "Unknown":
                    continue
                try:
                    due = datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                except ValueError:
                    due = now
                if due > now:  # a pass runs when the grace period ends on the sim clock
                    self.ctx.wake_at(self.ctx.clock.elapsed() + (due - now).total_seconds())
                    continue
            self._finish(pod)

    def _finish(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            self.ctx.update_status(R.POD, pod, stopped_status(pod.get("status") or {},
                                                              now=now_text(self.ctx.clock)))
            self.ctx.store.delete(R.POD, meta.get("namespace"), meta["name"], grace_period_seconds=0,
                                  preconditions={"uid": meta["uid"]})
        except StaleError:
            pass
