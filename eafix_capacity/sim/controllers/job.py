"""The Job controller: pods run to completion, counted, with back-off and deadline limits.

As pkg/controller/job for NonIndexed Jobs: up to ``parallelism`` active pods until
``completions`` have succeeded, then the ``SuccessCriteriaMet`` and ``Complete``
conditions (reason ``CompletionsReached``) and ``completionTime``; more than
``backoffLimit`` failures, or ``activeDeadlineSeconds`` passed on the sim clock, and the
Job fails (``FailureTarget`` then ``Failed``, reasons ``BackoffLimitExceeded`` /
``DeadlineExceeded``) with its active pods deleted. ``suspend`` deletes the active pods.
How long a pod runs and how it exits is :mod:`.containerexit`'s.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.controllers.common import (controller_of, deep_copy, drop_zero, is_active, is_ready,
                                                   now_text, set_condition)
from eafix_capacity.sim.batch import CONTROLLER_UID, JOB_NAME, LEGACY_LABELS
from eafix_capacity.sim.controllers.context import Context, Snapshot

COMPLETE_MESSAGE = "Reached expected number of succeeded pods"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"


def finished(job: Mapping) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition True, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def wanted_active(spec: Mapping, succeeded: int) -> int:
    """Pods that should be running now: ``parallelism``, no more than the completions left."""
    if spec.get("suspend"):
        return 0
    parallelism = int(spec.get("parallelism", 1))
    completions = spec.get("completions")
    if completions is None:
        return 0 if succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


def failures(pods: Sequence[Mapping], restart_policy: str) -> int:
    """Failed pods, or for ``OnFailure`` the container restarts (what ``backoffLimit`` counts)."""
    if restart_policy == "OnFailure":
        return sum(int(cs.get("restartCount") or 0) for p in pods
                   for cs in (p.get("status") or {}).get("containerStatuses") or [])
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")


class JobController:
    """Syncs every Job of the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._started: dict[str, float] = {}

    def sync_all(self, snap: Snapshot) -> None:
        jobs = self.ctx.list(R.JOB)
        if not jobs:
            self._started.clear()
            return
        by_job: dict[str, list[dict]] = defaultdict(list)
        for p in snap.pods:
            ref = controller_of(p)
            if ref is not None and ref.get("kind") == "Job":
                by_job[ref.get("uid", "")].append(p)
        for job in jobs:
            self.sync(job, by_job.get(job["metadata"]["uid"], []))
        live = {j["metadata"]["uid"] for j in jobs}
        for uid in set(self._started) - live:
            del self._started[uid]

    def sync(self, job: dict, pods: list[dict]) -> None:
        spec = job.get("spec") or {}
        uid = job["metadata"]["uid"]
        old = job.get("status") or {}
        template = spec.get("template") or {}
        policy = (template.get("spec") or {}).get("restartPolicy", "Never")
        active = [p for p in pods if is_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = failures(pods, policy)
        now = now_text(self.ctx.clock)
        status = {k: v for k, v in old.items() if k in ("startTime", "completionTime", "conditions")}
        conditions = list(status.get("conditions") or [])
        done = finished(job)
        if done is None and not spec.get("suspend"):
            status.setdefault("startTime", now)
            started = self._started.setdefault(uid, self.ctx.clock.elapsed())
        else:
            started = self._started.get(uid, self.ctx.clock.elapsed())
        if done is None:
            deadline = spec.get("activeDeadlineSeconds")
            completions = spec.get("completions")
            failure = None
            if failed > int(spec.get("backoffLimit", 6)):
                failure = ("BackoffLimitExceeded", BACKOFF_MESSAGE)
            elif deadline is not None and not spec.get("suspend"):
                due = started + float(deadline)
                if self.ctx.clock.elapsed() >= due:
                    failure = ("DeadlineExceeded", DEADLINE_MESSAGE)
                else:
                    self.ctx.wake_at(due)
            if failure is not None:
                for p in active:
                    self.ctx.delete(R.POD, p)
                active = []
                for ctype in ("FailureTarget", "Failed"):
                    conditions = _condition(conditions, ctype, *failure, now=now)
                self.ctx.event(job, reason=failure[0], message=failure[1], etype="Warning",
                               component="job-controller")
            elif (completions is not None and succeeded >= int(completions)) or \
                    (completions is None and succeeded > 0 and not active):
                for p in active:
                    self.ctx.delete(R.POD, p)
                active = []
                for ctype in ("SuccessCriteriaMet", "Complete"):
                    conditions = _condition(conditions, ctype, "CompletionsReached", COMPLETE_MESSAGE, now=now)
                status["completionTime"] = now
                self.ctx.event(job, reason="Completed", message="Job completed", component="job-controller")
            else:
                self._scale(job, active, wanted_active(spec, succeeded), template)
        if spec.get("suspend") and done is None:
            conditions = _condition(conditions, "Suspended", "JobSuspended", "Job suspended", now=now)
        elif any(c.get("type") == "Suspended" for c in conditions):
            conditions = _condition(conditions, "Suspended", "JobResumed", "Job resumed", status="False", now=now)
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                       "ready": sum(1 for p in active if is_ready(p)), "terminating": 0,
                       "uncountedTerminatedPods": {}})
        if conditions:
            status["conditions"] = conditions
        drop_zero(status, ("active", "succeeded", "failed"))
        self.ctx.update_status(R.JOB, job, status)

    def _scale(self, job: Mapping, active: list[dict], want: int, template: Mapping) -> None:
        name = job["metadata"]["name"]
        if len(active) > want:
            for p in sorted(active, key=lambda p: p["metadata"]["name"])[want:]:
                if self.ctx.delete(R.POD, p):
                    self.ctx.event(job, reason="SuccessfulDelete", component="job-controller",
                                   message=f"Deleted pod: {p['metadata']['name']}")
            return
        for _ in range(want - len(active)):
            pod = self.ctx.pod_from_template(job, "Job", template)
            pod["metadata"]["ownerReferences"][0]["apiVersion"] = "batch/v1"
            labels = pod["metadata"]["labels"]
            labels.update({CONTROLLER_UID: job["metadata"]["uid"], JOB_NAME: name,
                           LEGACY_LABELS[0]: job["metadata"]["uid"], LEGACY_LABELS[1]: name})
            pod["spec"]["restartPolicy"] = ((template.get("spec") or {}).get("restartPolicy") or "Never")
            created, _ = self.ctx.create_owned_pod(job, pod, prefix=f"{name}-", component="job-controller")
            if created is None:
                return


def _condition(conditions: list[dict], ctype: str, reason: str, message: str, *, now: str,
               status: str = "True") -> list[dict]:
    """A Job condition: with ``lastProbeTime``, as the Job controller writes them."""
    out = set_condition(conditions, ctype, status, reason, message, now=now)
    cond = deep_copy(out[-1])
    out[-1] = {"type": cond["type"], "status": cond["status"], "lastProbeTime": now,
               "lastTransitionTime": cond["lastTransitionTime"], "reason": reason, "message": message}
    return out

