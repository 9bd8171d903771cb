"""The CronJob controller: Jobs created on schedule on the sim clock, history kept in bounds.

As pkg/controller/cronjob (v2): at each scheduled time (only the most recent missed one,
with ``TooManyMissedTimes`` past 100, and none older than ``startingDeadlineSeconds``) a
Job named ``<cronjob>-<scheduled minutes since the epoch>`` from ``jobTemplate``, unless
``suspend``, or ``concurrencyPolicy: Forbid`` with a Job still active (``Replace`` deletes
it first); finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``
are deleted; ``status.active``, ``lastScheduleTime`` and ``lastSuccessfulTime`` follow.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping

from eafix_capacity.sim import cron
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ConflictError, StaleError
from eafix_capacity.sim.clock import rfc3339
from eafix_capacity.sim.controllers.common import controller_of, deep_copy, ns_name, owner_ref
from eafix_capacity.sim.controllers.context import Context
from eafix_capacity.sim.controllers.job import finished

SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_name(cronjob: str, scheduled: datetime) -> str:
    """``getJobName``: the scheduled time in minutes since the epoch, so a time runs once."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


class CronJobController:
    """Syncs every CronJob once per pass; asks for a pass at the next scheduled time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._created: dict[str, datetime] = {}

    def sync_all(self) -> None:
        cronjobs = self.ctx.list(R.CRONJOB)
        live = {cj["metadata"]["uid"] for cj in cronjobs}
        for gone in set(self._created) - live:
            del self._created[gone]
        if not cronjobs:
            return
        jobs = self.ctx.list(R.JOB)
        by_owner: dict[str, list[dict]] = {}
        for j in jobs:
            ref = controller_of(j)
            if ref is not None and ref.get("kind") == "CronJob":
                by_owner.setdefault(ref.get("uid", ""), []).append(j)
        for cj in cronjobs:
            try:
                self.sync(cj, by_owner.get(cj["metadata"]["uid"], []))
            except StaleError:
                pass

    def sync(self, cj: dict, jobs: list[dict]) -> None:
        ns, name = ns_name(cj)
        spec = cj.get("spec") or {}
        old = cj.get("status") or {}
        try:
            schedule = cron.parse(str(spec.get("schedule", "")))
        except cron.CronError as e:
            self.ctx.event(cj, reason="UnparseableSchedule", etype="Warning", component="cronjob-controller",
                           message=f"unparseable schedule: {spec.get('schedule')!r} : {e}")
            return
        now = self.ctx.clock.now()
        active = [j for j in jobs if finished(j) is None]
        status: dict = {}
        if old.get("lastScheduleTime"):
            status["lastScheduleTime"] = old["lastScheduleTime"]
        succeeded = [j for j in jobs if finished(j) == "Complete"]
        last_success = max((str((j.get("status") or {}).get("completionTime") or "") for j in succeeded),
                           default=old.get("lastSuccessfulTime") or "")
        if last_success:
            status["lastSuccessfulTime"] = last_success
        since = _parse_time(old.get("lastScheduleTime")) or self._created.setdefault(cj["metadata"]["uid"], now)
        scheduled, missed = cron.most_recent(schedule, since=since, now=now)
        if scheduled is not None and not spec.get("suspend"):
            deadline = spec.get("startingDeadlineSeconds")
            if missed > cron.MAX_MISSED:
                self.ctx.event(cj, reason="TooManyMissedTimes", etype="Warning", component="cronjob-controller",
                               message="too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                                       "or check clock skew")
            if deadline is not None and scheduled < now - timedelta(seconds=float(deadline)):
                self.ctx.event(cj, reason="MissSchedule", etype="Warning", component="cronjob-controller",
                               message=f"Missed scheduled time to start a job: {rfc3339(scheduled)}")
            elif self._start(cj, scheduled, active, spec.get("concurrencyPolicy", "Allow")):
                status["lastScheduleTime"] = rfc3339(scheduled)
                active = [j for j in self.ctx.list(R.JOB, ns) if (controller_of(j) or {}).get("uid") ==
                          cj["metadata"]["uid"] and finished(j) is None]
        following = schedule.next_after(now)
        if following is not None:
            self.ctx.wake_at(self.ctx.clock.elapsed() + (following - now).total_seconds())
        self._prune(cj, jobs, spec)
        if active:
            status["active"] = [{"kind": "Job", "namespace": ns, "name": j["metadata"]["name"],
                                 "uid": j["metadata"]["uid"], "apiVersion": "batch/v1",
                                 "resourceVersion": j["metadata"].get("resourceVersion")} for j in active]
        self.ctx.update_status(R.CRONJOB, cj, status)

    def _start(self, cj: Mapping, scheduled: datetime, active: list[dict], policy: str) -> bool:
        """Create the Job for ``scheduled``; False when the concurrency policy says not now."""
        ns, name = ns_name(cj)
        if active and policy == "Forbid":
            self.ctx.event(cj, reason="JobAlreadyActive", component="cronjob-controller",
                           message="Not starting job because prior execution is running and concurrency policy "
                                   "is Forbid")
            return False
        if active and policy == "Replace":
            for j in active:
                if self.ctx.delete(R.JOB, j):
                    self.ctx.event(cj, reason="SuccessfulDelete", component="cronjob-controller",
                                   message=f"Deleted job {j['metadata']['name']}")
        template = deep_copy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        job_meta = {"name": job_name(name, scheduled), "namespace": ns, "labels": dict(tmeta.get("labels") or {}),
                    "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_AT: rfc3339(scheduled)},
                    "ownerReferences": [owner_ref(cj, "CronJob", "batch/v1")]}
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": template.get("spec") or {}}
        try:
            created = self.ctx.create(R.JOB, job)
        except ConflictError:  # this scheduled time already has its Job
            return True
        self.ctx.event(cj, reason="SuccessfulCreate", component="cronjob-controller",
                       message=f"Created job {created['metadata']['name']}")
        return True

    def _prune(self, cj: Mapping, jobs: list[dict], spec: Mapping) -> None:
        for outcome, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                               ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            done = sorted((j for j in jobs if finished(j) == outcome),
                          key=lambda j: (j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]))
            for j in done[:max(0, len(done) - int(limit))]:
                if self.ctx.delete(R.JOB, j):
                    self.ctx.event(cj, reason="SuccessfulDelete", component="cronjob-controller",
                                   message=f"Deleted job {j['metadata']['name']}")
