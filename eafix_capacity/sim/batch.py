"""Job and CronJob defaulting, as the batch registry strategies and ``SetDefaults_*`` do it.

A Job created without ``manualSelector`` gets a generated selector on its uid and those
labels on its pod template (``generateSelector``, which needs the uid and so runs in the
store after it is assigned); both kinds get their spec defaults, so ``kubectl get -o yaml``
shows what a real cluster returns and the controllers read the same fields.
"""
from __future__ import annotations

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_LABELS = ("controller-uid", "job-name")


def default_job(job: dict) -> None:
    """``SetDefaults_Job``."""
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")


def default_cronjob(cronjob: dict) -> None:
    """``SetDefaults_CronJob``."""
    spec = cronjob.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def generate_selector(job: dict, uid: str) -> None:
    """The selector and template labels of a new Job (the Job strategy's ``generateSelector``)."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    name = (job.get("metadata") or {}).get("name", "")
    template = spec.setdefault("template", {})
    if not isinstance(template, dict):
        return
    meta = template.setdefault("metadata", {})
    labels = meta.setdefault("labels", {}) if isinstance(meta, dict) else None
    if isinstance(labels, dict):
        labels.update({CONTROLLER_UID: uid, JOB_NAME: name, LEGACY_LABELS[0]: uid, LEGACY_LABELS[1]: name})
    spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
