"""The resourcequota controller: each ResourceQuota's ``status.hard`` and ``status.used`` stay true.

Admission charges a quota when it admits a create, but nothing credits it when a pod is
deleted or finishes: as pkg/controller/resourcequota does, this recounts every quota's
usage from the namespace's objects (see :func:`eafix_capacity.sim.admission.quota_status`)
and copies ``spec.hard`` to ``status.hard``, so a ReplicaSet refused for quota gets its
pods once old ones are gone.
"""
from __future__ import annotations

from typing import Any

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.admission import quota_status
from eafix_capacity.sim.apierror import ApiError, StaleError


class ResourceQuotaController:
    def __init__(self, store: Any) -> None:
        self.store = store

    def sync(self) -> None:
        quotas, _, _ = self.store.list_objects(R.RESOURCEQUOTA)
        for rq in quotas:
            with self.store.lock:  # the recount and its write must not interleave with an admission charge
                try:
                    live = self.store.get(R.RESOURCEQUOTA, rq["metadata"].get("namespace"), rq["metadata"]["name"])
                except ApiError:
                    continue
                status = quota_status(self.store, live)
                if status == live.get("status"):
                    continue
                body = {"apiVersion": "v1", "kind": "ResourceQuota",
                        "metadata": {"name": live["metadata"]["name"], "namespace": live["metadata"]["namespace"],
                                     "resourceVersion": live["metadata"]["resourceVersion"]},
                        "status": status}
                try:
                    self.store.update(R.RESOURCEQUOTA, body, subresource="status")
                except StaleError:
                    pass
