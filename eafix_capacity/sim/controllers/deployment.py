"""The Deployment controller: ReplicaSets per template, rolling update and recreate, status.

As pkg/controller/deployment: one ReplicaSet per distinct pod template named by its
``pod-template-hash``, scaled within ``maxSurge``/``maxUnavailable`` (the fencepost
arithmetic is in pure functions here), revision annotations for ``rollout history`` and
``undo``, history pruned past ``revisionHistoryLimit``, and the Available/Progressing
conditions including ``ProgressDeadlineExceeded`` on the sim clock.
"""
from __future__ import annotations

import json
from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ConflictError
from eafix_capacity.kobject import scaled_value
from eafix_capacity.sim.controllers.common import (HASH_LABEL, REVISION, controller_of, deep_copy, drop_zero, now_text,
                                                   ns_name, owner_ref, revision_of, set_condition, strip_hash,
                                                   template_hash)
from eafix_capacity.sim.controllers.context import Context, Snapshot


REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def surge_and_unavailable(max_surge: int | str | None, max_unavailable: int | str | None,
                          replicas: int) -> tuple[int, int]:
    """Deployment rolling update fenceposts: surge rounds up, unavailable rounds down,
    both default to 25%, and when both come out 0 unavailable becomes 1."""
    surge = scaled_value("25%" if max_surge is None else max_surge, replicas, round_up=True, field="maxSurge")
    unavailable = scaled_value("25%" if max_unavailable is None else max_unavailable, replicas, round_up=False,
                               field="maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_rs_replicas(replicas: int, new_current: int, total_current: int, max_surge: int) -> int:
    """Replicas for the new ReplicaSet in a rolling update (``NewRSNewReplicas``)."""
    max_total = replicas + max_surge
    if total_current >= max_total:
        return new_current
    scale_up = min(max_total - total_current, replicas - new_current)
    return new_current + max(scale_up, 0)


def old_rs_scale_down(replicas: int, all_spec: int, new_spec: int, new_available: int,
                      max_unavailable: int) -> int:
    """How many old pods a rolling update may remove now (``reconcileOldReplicaSets``)."""
    min_available = replicas - max_unavailable
    new_unavailable = new_spec - new_available
    return max(0, all_spec - min_available - new_unavailable)


class DeploymentController:
    """Syncs one Deployment at a time against the snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._progress: dict[str, tuple[tuple, float]] = {}
        self._deadline_kicked: set[tuple[str, float]] = set()

    def sync(self, d: dict, snap: Snapshot) -> None:
        ns, name = ns_name(d)
        uid = d["metadata"]["uid"]
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        owned = [rs for rs in snap.replicasets
                 if rs["metadata"].get("namespace") == ns and (controller_of(rs) or {}).get("uid") == uid]
        stripped = json.dumps(strip_hash(template), sort_keys=True)
        new_rs = next((rs for rs in sorted(owned, key=lambda r: r["metadata"]["creationTimestamp"])
                       if json.dumps(strip_hash((rs.get("spec") or {}).get("template") or {}), sort_keys=True)
                       == stripped), None)
        olds = [rs for rs in owned if rs is not new_rs]
        max_rev = max((revision_of(rs) for rs in owned), default=0)
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate") or {}
        surge, unavailable = surge_and_unavailable(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas)
        paused = bool(spec.get("paused"))

        if new_rs is None:
            if paused:
                self._deployment_status(d, owned, None, snap, unavailable)
                return
            total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
            if rolling:
                initial = new_rs_replicas(replicas, 0, total, surge)
            else:
                initial = 0 if any(snap.pods_by_owner.get(rs["metadata"]["uid"]) for rs in olds) or total else replicas
            self._create_replicaset(d, template, initial, max_rev + 1, replicas + (surge if rolling else 0))
            return

        # An old template brought back (rollout undo) becomes the newest revision.
        annotations = dict(new_rs["metadata"].get("annotations") or {})
        rev = revision_of(new_rs)
        want_ann = dict(annotations)
        if rev < max_rev or rev == 0:
            history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
            if rev:
                history.append(str(rev))
            want_ann[REVISION] = str(max_rev + 1 if rev < max_rev else max(max_rev, 1))
            if history:
                want_ann[REVISION_HISTORY] = ",".join(history)
        want_ann[DESIRED_REPLICAS] = str(replicas)
        want_ann[MAX_REPLICAS] = str(replicas + (surge if rolling else 0))
        if want_ann != annotations:
            new = deep_copy(new_rs)
            new["metadata"]["annotations"] = want_ann
            new_rs = self.ctx.update(R.REPLICASET, new, old=new_rs)
        d_ann = d["metadata"].get("annotations") or {}
        if d_ann.get(REVISION) != new_rs["metadata"]["annotations"][REVISION]:
            nd = deep_copy(d)
            nd["metadata"].setdefault("annotations", {})[REVISION] = new_rs["metadata"]["annotations"][REVISION]
            d = self.ctx.update(R.DEPLOYMENT, nd, old=d)

        if not paused:
            if rolling:
                self._rolling_update(d, new_rs, olds, replicas, surge, unavailable, snap)
            else:
                self._recreate(d, new_rs, olds, replicas, snap)
            self._cleanup_history(d, olds, snap)
        self._deployment_status(d, owned, new_rs, snap, unavailable)
    def _past_deadline(self, d: Mapping, progress: tuple) -> bool:
        """Whether the rollout made no progress for ``progressDeadlineSeconds`` of sim time."""
        uid = d["metadata"]["uid"]
        elapsed = self.ctx.clock.elapsed()
        seen = self._progress.get(uid)
        if seen is None or seen[0] != progress:
            seen = self._progress[uid] = (progress, elapsed)
        deadline = float((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
        return elapsed - seen[1] > deadline

    def _create_replicaset(self, d: Mapping, template: Mapping, replicas: int, revision: int,
                           max_replicas: int) -> None:
        ns, name = ns_name(d)
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        h = template_hash(template, collisions or None)
        rs_template = deep_copy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = deep_copy((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
                       if k not in (LAST_APPLIED, REVISION, REVISION_HISTORY)}
        annotations.update({DESIRED_REPLICAS: str(int((d.get("spec") or {}).get("replicas", 1))),
                            MAX_REPLICAS: str(max_replicas), REVISION: str(revision)})
        spec: dict = {"replicas": replicas, "selector": selector, "template": rs_template}
        if (d.get("spec") or {}).get("minReadySeconds"):
            spec["minReadySeconds"] = d["spec"]["minReadySeconds"]
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{name}-{h}", "namespace": ns,
                           "labels": dict(rs_template["metadata"]["labels"]), "annotations": annotations,
                           "ownerReferences": [owner_ref(d, "Deployment")]},
              "spec": spec}
        try:
            created = self.ctx.store.create(R.REPLICASET, rs)
        except ConflictError:
            existing = self.ctx.store.get(R.REPLICASET, ns, f"{name}-{h}")
            if (controller_of(existing) or {}).get("uid") == d["metadata"]["uid"]:
                return
            # A hash collision with someone else's ReplicaSet: bump collisionCount and retry.
            status = deep_copy(d.get("status") or {})
            status["collisionCount"] = collisions + 1
            self.ctx.update_status(R.DEPLOYMENT, d, status)
            return
        self.ctx.event(d, reason="ScalingReplicaSet", component="deployment-controller",
                       message=f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}")

    def _scale_rs(self, d: Mapping, rs: Mapping, replicas: int) -> None:
        old = int((rs.get("spec") or {}).get("replicas", 0))
        if old == replicas:
            return
        new = deep_copy(rs)
        new["spec"]["replicas"] = replicas
        d_replicas = int((d.get("spec") or {}).get("replicas", 1))
        new["metadata"].setdefault("annotations", {})[DESIRED_REPLICAS] = str(d_replicas)
        self.ctx.fresh[new["metadata"]["uid"]] = self.ctx.update(R.REPLICASET, new, old=rs)
        direction = "up" if replicas > old else "down"
        self.ctx.event(d, reason="ScalingReplicaSet", component="deployment-controller",
                       message=f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {replicas}")

    def _rolling_update(self, d: Mapping, new_rs: Mapping, olds: list[dict], replicas: int, surge: int,
                        unavailable: int, snap: Snapshot) -> None:
        active_olds = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        new_spec = int(new_rs["spec"].get("replicas", 0))
        if not active_olds:
            self._scale_rs(d, new_rs, replicas)
            return
        all_spec = new_spec + sum(int(rs["spec"].get("replicas", 0)) for rs in active_olds)
        if new_spec > replicas:
            self._scale_rs(d, new_rs, replicas)
            return
        want_new = new_rs_replicas(replicas, new_spec, all_spec, surge)
        if want_new != new_spec:
            self._scale_rs(d, new_rs, want_new)
            return
        new_available = int((new_rs.get("status") or {}).get("availableReplicas") or 0)
        budget = old_rs_scale_down(replicas, all_spec, new_spec, new_available, unavailable)
        if budget <= 0:
            return
        # Unhealthy old pods go first, then the oldest ReplicaSets shrink within the budget.
        min_available = replicas - unavailable
        available = new_available + sum(int((rs.get("status") or {}).get("availableReplicas") or 0)
                                        for rs in active_olds)
        for rs in sorted(active_olds, key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"])):
            if budget <= 0:
                break
            spec_n = int(rs["spec"].get("replicas", 0))
            rs_available = int((rs.get("status") or {}).get("availableReplicas") or 0)
            unhealthy = max(0, spec_n - rs_available)
            remove = min(unhealthy, budget)
            healthy_room = max(0, available - min_available)
            remove += min(spec_n - remove, healthy_room, budget - remove)
            if remove > 0:
                self._scale_rs(d, rs, spec_n - remove)
                budget -= remove
                available -= max(0, remove - unhealthy)

    def _recreate(self, d: Mapping, new_rs: Mapping, olds: list[dict], replicas: int, snap: Snapshot) -> None:
        active = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0]
        for rs in active:
            self._scale_rs(d, rs, 0)
        # oldPodsRunning: Terminating old pods still run, so the new ones wait until they are gone
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        if active or any((controller_of(p) or {}).get("uid") in old_uids and
                         (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for p in snap.pods):
            return
        self._scale_rs(d, new_rs, replicas)

    def _cleanup_history(self, d: Mapping, olds: list[dict], snap: Snapshot) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if int(rs["spec"].get("replicas", 0)) == 0
                and not int((rs.get("status") or {}).get("replicas") or 0)
                and not snap.pods_by_owner.get(rs["metadata"]["uid"])]
        idle.sort(key=revision_of)
        for rs in idle[:max(0, len(idle) - limit)]:
            self.ctx.delete(R.REPLICASET, rs)

    def _deployment_status(self, d: Mapping, owned: list[dict], new_rs: Mapping | None, snap: Snapshot,
                           unavailable: int) -> None:
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        st = lambda rs, k: int((rs.get("status") or {}).get(k) or 0)  # noqa: E731
        actual = sum(st(rs, "replicas") for rs in owned)
        available = sum(st(rs, "availableReplicas") for rs in owned)
        ready = sum(st(rs, "readyReplicas") for rs in owned)
        updated = st(new_rs, "replicas") if new_rs is not None else 0
        total_spec = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        old = d.get("status") or {}
        now = now_text(self.ctx.clock)
        conditions = list(old.get("conditions") or [])
        if available >= replicas - unavailable:
            conditions = set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                        "Deployment has minimum availability.", now=now, update_time=True)
        else:
            conditions = set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                        "Deployment does not have minimum availability.", now=now, update_time=True)
        if spec.get("paused"):
            conditions = set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused",
                                        "Deployment is paused", now=now, update_time=True)
        elif new_rs is not None:
            rs_name = new_rs["metadata"]["name"]
            complete = updated == replicas and actual == replicas and available == replicas \
                and int((new_rs.get("status") or {}).get("observedGeneration") or 0) >= \
                int(new_rs["metadata"].get("generation", 1))
            if complete:
                self._progress.pop(d["metadata"]["uid"], None)
                conditions = set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                            f'ReplicaSet "{rs_name}" has successfully progressed.', now=now,
                                            update_time=True)
            else:
                prog = next((c for c in conditions if c.get("type") == "Progressing"), None)
                if self._past_deadline(d, (rs_name, updated, available, ready, actual)):
                    conditions = set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                                f'ReplicaSet "{rs_name}" has timed out progressing.', now=now,
                                                update_time=True)
                elif prog is None or prog.get("reason") not in ("NewReplicaSetCreated", "ReplicaSetUpdated") \
                        or rs_name not in prog.get("message", ""):
                    reason, message = (("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
                                       if prog is None or rs_name not in prog.get("message", "")
                                       else ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'))
                    conditions = set_condition(conditions, "Progressing", "True", reason, message, now=now,
                                                update_time=True)
                elif prog.get("reason") == "NewReplicaSetCreated" and updated > 0:
                    conditions = set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                                f'ReplicaSet "{rs_name}" is progressing.', now=now, update_time=True)
        # sync.go getReplicaFailures: the new ReplicaSet's ReplicaFailure (else an old one's) is the Deployment's
        failures = [c for rs in ([new_rs] if new_rs is not None else []) + [r for r in owned if r is not new_rs]
                    for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"]
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        if failures:
            f = failures[0]
            conditions.append({"type": "ReplicaFailure", "status": f["status"],
                               "lastUpdateTime": f["lastTransitionTime"], "lastTransitionTime": f["lastTransitionTime"],
                               "reason": f["reason"], "message": f["message"]})
        order = {"Available": 0, "Progressing": 1}
        conditions.sort(key=lambda c: order.get(c.get("type", ""), 9))
        status = {"observedGeneration": int(d["metadata"].get("generation", 1)), "replicas": actual,
                  "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                  "unavailableReplicas": max(0, total_spec - available), "conditions": conditions}
        if old.get("collisionCount"):
            status["collisionCount"] = old["collisionCount"]
        drop_zero(status, ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                            "unavailableReplicas"))
        self.ctx.update_status(R.DEPLOYMENT, d, status)

    def kick_past_deadlines(self) -> None:
        """A stalled rollout changes nothing, so nothing triggers the pass that would mark it
        ProgressDeadlineExceeded: kick one when a deadline has passed on the sim clock."""
        if not self._progress:
            return
        elapsed = self.ctx.clock.elapsed()
        deployments = {d["metadata"]["uid"]: d for d in self.ctx.list(R.DEPLOYMENT)}
        for uid, (_, since) in list(self._progress.items()):
            d = deployments.get(uid)
            if d is None:
                self._progress.pop(uid, None)
                continue
            deadline = float((d.get("spec") or {}).get("progressDeadlineSeconds", 600))
            if elapsed - since > deadline and (uid, since) not in self._deadline_kicked:
                self._deadline_kicked.add((uid, since))
                self.ctx.kick()
