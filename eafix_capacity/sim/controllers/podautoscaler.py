"""The HorizontalPodAutoscaler controller: resource metrics to a replica count, every 15 s of sim time.

As pkg/controller/podautoscaler: per-metric proposals with the 10% tolerance, the
stabilisation windows, the scale-up/down rate policies, the min/max clamp, and the
AbleToScale/ScalingActive/ScalingLimited conditions with the real reasons.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from eafix_capacity.kobject import selector_matches
from eafix_capacity.sim import metrics as M
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError, StaleError
from eafix_capacity.sim.controllers.common import (cpu_m_text, deep_copy, is_active, is_ready, now_text, ns_name,
                                                   set_condition)
from eafix_capacity.sim.controllers.context import Context
from eafix_capacity.sim.resources import ResourceType
from eafix_capacity.sim.usage_model import cpu_nanocores, memory_bytes


HPA_SYNC_SECONDS = 15.0
HPA_TOLERANCE = 0.1


def hpa_proposal(current: int, utilization: float, target: float, ready_pods: int) -> int:
    """Replica proposal for one utilisation metric: unchanged within 10% tolerance, else
    ``ceil(ready pods x utilisation / target)``."""
    ratio = utilization / target
    if abs(1.0 - ratio) <= HPA_TOLERANCE:
        return current
    return math.ceil(ratio * ready_pods)


def missing_pods_proposal(current: int, used: float, requested: float, counted: int, target: int,
                          missing: Sequence[int], unready: Sequence[int]) -> int:
    """The replica proposal of replica_calculator GetResourceReplicas when some pods have no
    metrics yet (``missing``, their requests) or are unready: on a scale-up they count as using
    nothing, on a scale-down missing ones as using all their request; no change when that
    flips the direction or lands within tolerance (pure)."""
    ratio = used * 100 / requested / target
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not missing and not scale_up_with_unready:
        return hpa_proposal(current, used * 100 // requested, target, counted)
    n = counted
    if missing and ratio < 1.0:
        used, requested, n = used + sum(missing), requested + sum(missing), n + len(missing)
    elif missing and ratio > 1.0:
        requested, n = requested + sum(missing), n + len(missing)
    if scale_up_with_unready:
        requested, n = requested + sum(unready), n + len(unready)
    new_ratio = used * 100 / requested / target if requested else ratio
    if abs(1.0 - new_ratio) <= HPA_TOLERANCE or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current
    proposal = math.ceil(new_ratio * n)
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


def hpa_scale_limits(current: int, behavior: Mapping | None) -> tuple[int, int]:
    """(largest, smallest) replica count one sync may move to under the scaling policies.

    Defaults: up by max(100%, 4 pods), down by 100%; ``selectPolicy: Min``/``Disabled``."""
    behavior = behavior or {}

    def limit(direction: str, default: list[dict], up: bool) -> int:
        rules = behavior.get(direction) or {}
        policies = rules.get("policies") or default
        select = rules.get("selectPolicy") or "Max"
        if select == "Disabled":
            return current
        values = []
        for p in policies:
            v = int(p.get("value", 0))
            if p.get("type") == "Pods":
                values.append(current + v if up else current - v)
            else:
                values.append(math.ceil(current * (1 + v / 100)) if up else math.ceil(current * (1 - v / 100)))
        if up:
            return max(values) if select == "Max" else min(values)
        return min(values) if select == "Max" else max(values)

    return (limit("scaleUp", [{"type": "Percent", "value": 100}, {"type": "Pods", "value": 4}], True),
            max(0, limit("scaleDown", [{"type": "Percent", "value": 100}], False)))


class HorizontalController:
    """Syncs one HPA when its sync period has passed."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._last: dict[str, float] = {}
        self._history: dict[str, list[tuple[float, int]]] = {}

    def sync_due(self, hpas: list[dict]) -> None:
        """Sync every HPA whose last sync is :data:`HPA_SYNC_SECONDS` of sim time ago."""
        elapsed = self.ctx.clock.elapsed()
        live = {h["metadata"]["uid"] for h in hpas}
        for gone in (set(self._last) | set(self._history)) - live:  # a deleted HPA's history goes with it
            self._last.pop(gone, None)
            self._history.pop(gone, None)
        for hpa in hpas:
            uid = hpa["metadata"]["uid"]
            last = self._last.get(uid)
            if last is not None and elapsed - last < HPA_SYNC_SECONDS:
                continue
            self._last[uid] = elapsed
            try:
                self.sync(hpa, elapsed)
            except StaleError:
                pass

    def sync(self, hpa: dict, elapsed: float) -> None:
        ns, name = ns_name(hpa)
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        kind = ref.get("kind", "")
        rt = {"Deployment": R.DEPLOYMENT, "StatefulSet": R.STATEFULSET, "ReplicaSet": R.REPLICASET}.get(kind)
        old = hpa.get("status") or {}
        now = now_text(self.ctx.clock)
        conditions = list(old.get("conditions") or [])
        status: dict = {"observedGeneration": int(hpa["metadata"].get("generation", 1))}
        if old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        try:
            if rt is None:
                raise ApiError(404, "NotFound", f'no matches for kind "{kind}"')
            target = self.ctx.store.get(rt, ns, ref.get("name", ""))
        except ApiError as e:
            conditions = set_condition(conditions, "AbleToScale", "False", "FailedGetScale",
                                        f"the HPA controller was unable to get the target's current scale: {e.message}",
                                        now=now)
            status.update({"currentReplicas": int(old.get("currentReplicas") or 0), "desiredReplicas": 0,
                           "conditions": conditions})
            self.ctx.update_status(R.HPA, hpa, status)
            return
        current = int((target.get("spec") or {}).get("replicas", 1))
        min_r = int(spec.get("minReplicas", 1))
        max_r = int(spec.get("maxReplicas", max(min_r, 1)))
        if current == 0 and min_r > 0:
            conditions = set_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                                        "scaling is disabled since the replica count of the target is zero", now=now)
            status.update({"currentReplicas": 0, "desiredReplicas": 0, "conditions": conditions})
            self.ctx.update_status(R.HPA, hpa, status)
            return
        # Out of range: clamped before any metric is read, as reconcileAutoscaler does (so a
        # Deployment defaulted to 1 replica under minReplicas 2 gets 2 before metrics exist).
        clamp = (max_r, "Current number of replicas above Spec.MaxReplicas") if current > max_r else \
            (min_r, "Current number of replicas below Spec.MinReplicas") if current < min_r else None
        if clamp is not None:
            desired, reason = clamp
            self._scale(rt, target, hpa, desired, reason)
            conditions = set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                                       f"the HPA controller was able to update the target scale to {desired}", now=now)
            status.update({"lastScaleTime": now, "currentReplicas": current, "desiredReplicas": desired,
                           "conditions": conditions})
            self.ctx.update_status(R.HPA, hpa, status)
            return
        selector = (target.get("spec") or {}).get("selector")
        pods, _, _ = self.ctx.store.list_objects(R.POD, ns)
        pods = [p for p in pods if is_active(p) and selector_matches(selector, p["metadata"].get("labels") or {})]
        default_target = 80  # autoscaling/v2's default when spec.metrics is empty (v1 is not served)
        metric_specs = spec.get("metrics") or [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                       "averageUtilization": default_target}}}]
        proposals: list[tuple[int, str]] = []
        current_metrics = []
        problems = []
        t = self.ctx.clock.now()
        for m in metric_specs:
            if m.get("type") != "Resource":
                problems.append(f"metric type {m.get('type')} is not simulated")
                continue
            res = m.get("resource") or {}
            rname = res.get("name", "cpu")
            tgt = res.get("target") or {}
            used = requested = counted = 0
            missing_request = False
            # replica_calculator groupPods: Pending pods (and, for cpu, unready ones) are unready,
            # Running pods metrics-server has no metrics for yet are missing.
            reported = 0
            unready: list[int] = []
            missing: list[int] = []
            for p in pods:
                containers = (p.get("spec") or {}).get("containers") or []
                pod_request = 0
                for c in containers:
                    req = ((c.get("resources") or {}).get("requests") or {}).get(rname)
                    if req is None:
                        missing_request = True
                    else:
                        pod_request += cpu_nanocores(req) if rname == "cpu" else memory_bytes(req)
                measured = M.pod_is_measured(p, t)
                reported += measured
                if (p.get("status") or {}).get("phase", "Pending") == "Pending" or \
                        (measured and rname == "cpu" and not is_ready(p)):
                    unready.append(pod_request)
                    continue
                if not measured:
                    missing.append(pod_request)
                    continue
                for cname, cpu, mem in M.container_usage(p, self.ctx.model, t):
                    used += cpu if rname == "cpu" else mem
                requested += pod_request
                counted += 1
            if reported == 0:
                problems.append(f"failed to get {rname} resource metric value: failed to get {rname} utilization: "
                                f"unable to get metrics for resource {rname}: no metrics returned from resource "
                                "metrics API")
                continue
            if counted == 0:
                problems.append(f"failed to get {rname} resource metric value: failed to get {rname} utilization: "
                                "did not receive metrics for targeted pods (pods might be unready)")
                continue
            average = used / counted
            avg_text = cpu_m_text(average) if rname == "cpu" else str(int(average))
            if tgt.get("type", "Utilization") == "Utilization":
                if missing_request or requested == 0:
                    problems.append(f"missing request for {rname} in containers")
                    continue
                util = int(used * 100 // requested)
                want = int(tgt.get("averageUtilization", 80))
                proposals.append((missing_pods_proposal(current, used, requested, counted, want, missing, unready),
                                  f"{rname} resource utilization (percentage of request)"))
                current_metrics.append({"type": "Resource", "resource": {
                    "name": rname, "current": {"averageUtilization": util, "averageValue": avg_text}}})
            else:
                target_text = tgt.get("averageValue")
                want_v = cpu_nanocores(target_text) if rname == "cpu" else memory_bytes(target_text)
                proposals.append((hpa_proposal(current, average, max(want_v, 1), counted), f"{rname} resource"))
                current_metrics.append({"type": "Resource", "resource": {"name": rname,
                                                                         "current": {"averageValue": avg_text}}})
        if not proposals:
            conditions = set_condition(conditions, "AbleToScale", "True", "SucceededGetScale",
                                        "the HPA controller was able to get the target's current scale", now=now)
            conditions = set_condition(conditions, "ScalingActive", "False", "FailedGetResourceMetric",
                                        "the HPA was unable to compute the replica count: " + "; ".join(problems),
                                        now=now)
            status.update({"currentReplicas": current, "desiredReplicas": current, "conditions": conditions})
            if current_metrics:
                status["currentMetrics"] = current_metrics
            self.ctx.update_status(R.HPA, hpa, status)
            return
        raw, metric_name = max(proposals)
        # Stabilisation windows: scale down only to the highest recent recommendation.
        behavior = spec.get("behavior") or {}
        down_window = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds", 300)
        up_window = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds", 0)
        uid = hpa["metadata"]["uid"]
        # Like the HPA controller, a newly seen autoscaler starts with the current size as its
        # first recommendation, so it does not scale down before a full stabilisation window.
        known = self._history.setdefault(uid, [(elapsed, current)])
        earlier = [(ts, r) for ts, r in known if elapsed - ts < max(down_window, up_window)]
        self._history[uid] = earlier + [(elapsed, raw)]
        up_rec = min([raw] + [r for ts, r in earlier if elapsed - ts < up_window])
        down_rec = max([raw] + [r for ts, r in earlier if elapsed - ts < down_window])
        stabilized = current
        if stabilized < up_rec:
            stabilized = up_rec
        if stabilized > down_rec:
            stabilized = down_rec
        up_limit, down_limit = hpa_scale_limits(current, behavior)
        desired = min(max(stabilized, down_limit), up_limit)
        limited_reason = None
        if desired > max_r:
            desired, limited_reason = max_r, ("TooManyReplicas",
                                              "the desired replica count is more than the maximum replica count")
        elif desired < min_r:
            desired, limited_reason = min_r, ("TooFewReplicas",
                                              "the desired replica count is less than the minimum replica count")
        elif stabilized > up_limit:
            limited_reason = ("ScaleUpLimit",
                              "the desired replica count is increasing faster than the maximum scale rate")
        elif stabilized < down_limit:
            limited_reason = ("ScaleDownLimit",
                              "the desired replica count is decreasing faster than the maximum scale rate")
        if desired != current:
            self._scale(rt, target, hpa, desired,
                        f"{metric_name} above target" if desired > current else "All metrics below target")
            status["lastScaleTime"] = now
            conditions = set_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                                        f"the HPA controller was able to update the target scale to {desired}", now=now)
        elif raw < current and stabilized > raw:
            conditions = set_condition(conditions, "AbleToScale", "True", "ScaleDownStabilized",
                                        "recent recommendations were higher than current one, applying the highest "
                                        "recent recommendation", now=now)
        else:
            conditions = set_condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                                        "recommended size matches current size", now=now)
        conditions = set_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                                    f"the HPA was able to successfully calculate a replica count from {metric_name}",
                                    now=now)
        if limited_reason:
            conditions = set_condition(conditions, "ScalingLimited", "True", *limited_reason, now=now)
        else:
            conditions = set_condition(conditions, "ScalingLimited", "False", "DesiredWithinRange",
                                        "the desired count is within the acceptable range", now=now)
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        conditions.sort(key=lambda c: order.get(c.get("type", ""), 9))
        status.update({"currentReplicas": current, "desiredReplicas": desired, "currentMetrics": current_metrics,
                       "conditions": conditions})
        self.ctx.update_status(R.HPA, hpa, status)

    def _scale(self, rt: ResourceType, target: Mapping, hpa: Mapping, desired: int, reason: str) -> None:
        new = deep_copy(target)
        new["spec"]["replicas"] = desired
        self.ctx.update(rt, new, old=target, subresource="scale")
        self.ctx.event(hpa, reason="SuccessfulRescale", component="horizontal-pod-autoscaler",
                       message=f"New size: {desired}; reason: {reason}")
