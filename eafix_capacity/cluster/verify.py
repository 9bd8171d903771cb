"""The live cluster against the plan: named checks, each PASS, FAIL or WARN with evidence.

A plan says how many nodes of which type, what each node leaves for pods, and what every
service runs (replicas, HPA bounds, requests and limits, image, PDB, claims); the rendered
manifests carry exactly that. ``verify`` is pure: it takes the ``LiveState`` records
(``livestate.read_live_state`` reads them in one list call per kind) and a ``Plan`` and says,
check by check, where the cluster differs, quoting what the cluster reported (the
scheduler's message for a Pending pod, the termination reason for a restart). Quantities
are compared as values, never as text: the API server stores canonical forms.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..catalog import Service
from ..errors import InputError, QuantityError
from ..manifests.render import RenderOptions, claim_name, hpa_name, image_for, selector_labels, storage_class_name
from ..plan import Plan
from ..quantity import parse
from ..scenarios import is_multi_replica
from .livestate import HPA, LiveState, Node, Pod, Workload

Status = Literal["PASS", "FAIL", "WARN"]
DEFAULT_ALLOCATABLE_TOLERANCE_PCT = 1.0
# Waiting reasons that mean a container will not start without a change (kubelet's
# CrashLoopBackOff, image pull errors, a missing ConfigMap or Secret key).
STUCK_REASONS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError")


@dataclass(frozen=True)
class Check:
    name: str
    subject: str
    status: Status
    expected: str
    actual: str
    evidence: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "subject": self.subject, "status": self.status,
                "expected": self.expected, "actual": self.actual, "evidence": self.evidence}


def _value(text: str | int | None) -> Fraction | None:
    """A quantity's exact value; None for a missing or unreadable one."""
    if text is None:
        return None
    try:
        return parse(text).value
    except QuantityError:
        return None


def _fmt(v: Fraction | None, kind: str) -> str:
    if v is None:
        return "none"
    if kind == "cpu":
        milli = v * 1000
        return f"{float(milli):g}m"
    return f"{int(v)} bytes ({float(v) / 2**30:.3g} GiB)" if v >= 2**20 else f"{float(v):g} bytes"


# -- nodes --------------------------------------------------------------------------------

def _node_checks(live: LiveState, plan: Plan, tolerance_pct: float) -> list[Check]:
    out: list[Check] = []
    n, want = len(live.nodes), plan.nodes
    status: Status = "PASS" if n == want else ("FAIL" if n < want else "WARN")
    out.append(Check("node-count", "cluster", status, str(want), str(n),
                     f"{n} nodes listed: " + ", ".join(x.name for x in live.nodes) if live.nodes else "no nodes listed"))
    model = {"cpu": Fraction(plan.node.cpu_m, 1000), "memory": Fraction(plan.node.memory_bytes),
             "pods": Fraction(plan.node.max_pods)}
    for node in live.nodes:
        t = node.instance_type
        out.append(Check("node-instance-type", node.name, "PASS" if t == plan.node_type.name else "FAIL",
                         plan.node_type.name, t or "no label",
                         f"label node.kubernetes.io/instance-type={t}" if t else
                         "the node has no node.kubernetes.io/instance-type label"))
        out.append(_allocatable_check(node, model, tolerance_pct, plan))
        out.append(Check("node-schedulable", node.name, "FAIL" if node.unschedulable else "PASS",
                         "schedulable", "cordoned" if node.unschedulable else "schedulable",
                         "spec.unschedulable=true: no new pod lands on it" if node.unschedulable else ""))
        out.append(Check("node-ready", node.name, "PASS" if node.ready else "FAIL", "Ready",
                         "Ready" if node.ready else "NotReady", node.ready_message))
    if plan.zoning is not None:
        out.append(_zones_check(live, plan))
    return out


def _zones_check(live: LiveState, plan: Plan) -> Check:
    """With zones, the nodes per ``topology.kubernetes.io/zone`` the plan counts on (node i in
    zone i mod Z): fewer in a zone is a FAIL (its loss, or the spread, was judged on nodes that
    are not there), more a WARN."""
    want = Counter(plan.node_zones)
    got = Counter(n.zone or "no zone label" for n in live.nodes)
    short = {z: want[z] - got.get(z, 0) for z in want if got.get(z, 0) < want[z]}
    extra = {z: c for z, c in got.items() if c > want.get(z, 0)}
    status: Status = "FAIL" if short else "WARN" if extra else "PASS"

    def text(c: Mapping[str, int]) -> str:
        return ", ".join(f"{z}={n}" for z, n in sorted(c.items()))
    detail = ("; ".join(filter(None, [("missing " + text(short)) if short else "",
                                      ("more than planned " + text(extra)) if extra else ""]))
              or "every zone as planned")
    return Check("node-zones", "cluster", status, text(want), text(got), detail)


def _allocatable_check(node: Node, model: Mapping[str, Fraction], tolerance_pct: float, plan: Plan) -> Check:
    """Each of cpu, memory and pods within ``tolerance_pct`` of the model's figure (from
    nodes.allocatable: capacity less kube/system reserved and the eviction threshold). Less
    than the model is a FAIL (the plan counted room the node does not have); more, a WARN."""
    worst: Status = "PASS"
    parts, diffs = [], []
    for key, want in model.items():
        got = _value(node.allocatable.get(key))
        shown = node.allocatable.get(key, "missing")
        parts.append(f"{key}={shown}")
        if got is None:
            worst = "FAIL"
            diffs.append(f"{key} not reported")
            continue
        off = (got - want) / want * 100 if want else Fraction(0)
        if abs(off) > Fraction(tolerance_pct):
            diffs.append(f"{key} {float(off):+.2f}% against the model's {_model_text(key, want)}")
            if off < 0:
                worst = "FAIL"
            elif worst == "PASS":
                worst = "WARN"
    expected = (f"cpu={plan.node.cpu_m}m memory={plan.node.memory_bytes} pods={plan.node.max_pods} "
                f"(within {tolerance_pct:g}%)")
    evidence = "; ".join(diffs) if diffs else f"every figure within {tolerance_pct:g}% of the model"
    return Check("node-allocatable", node.name, worst, expected, " ".join(parts), evidence)


def _model_text(key: str, v: Fraction) -> str:
    return _fmt(v, "cpu") if key == "cpu" else f"{int(v)}"


# -- workloads ------------------------------------------------------------------------------

def _workload_checks(svc: Service, w: Workload, live: LiveState, options: RenderOptions) -> list[Check]:
    out: list[Check] = []
    subject = f"{w.kind}/{w.name}"
    hpa = next((h for h in live.hpas if h.namespace == w.namespace and h.target_kind == w.kind
                and h.target_name == w.name), None)
    # with an HPA the rendering leaves spec.replicas to it: the plan's figure is its range
    if svc.hpa is not None and svc.replicas > 0:
        lo, hi = svc.hpa.min_replicas, svc.hpa.max_replicas
        ok = lo <= w.desired <= hi
        out.append(Check("replicas-desired", subject, "PASS" if ok else "FAIL", f"{lo}..{hi} (HPA)",
                         str(w.desired), f"spec.replicas={w.desired}"))
    else:
        out.append(Check("replicas-desired", subject, "PASS" if w.desired == svc.replicas else "FAIL",
                         str(svc.replicas), str(w.desired), f"spec.replicas={w.desired}"))
    current = w.observed_generation is not None and w.observed_generation >= w.generation
    out.append(Check("rollout-observed", subject, "PASS" if current else "FAIL",
                     f"observedGeneration {w.generation}", str(w.observed_generation),
                     "" if current else "the controller has not seen the latest spec: its replica counts are stale"))
    counts = {"updated": w.updated, "ready": w.ready, "available": w.available}
    if w.kind == "Deployment":
        counts["replicas"] = w.replicas
    short = {k: v for k, v in counts.items() if v != w.desired}
    if w.kind == "StatefulSet" and w.update_revision and w.current_revision != w.update_revision:
        short["revision"] = 0
    out.append(Check("replicas-ready", subject, "PASS" if not short else "FAIL",
                     f"{w.desired} desired, all updated, ready and available",
                     " ".join(f"{k}={v}" for k, v in counts.items()),
                     "" if not short else "short: " + ", ".join(
                         "currentRevision != updateRevision" if k == "revision" else f"{k} {counts[k]} of {w.desired}"
                         for k in short)))
    out += _hpa_checks(svc, subject, hpa, w)
    out += _container_checks(svc, w, subject, options)
    return out


def _hpa_checks(svc: Service, subject: str, hpa: HPA | None, w: Workload) -> list[Check]:
    if svc.hpa is None:
        if hpa is not None:
            return [Check("hpa", subject, "WARN", "no HPA", f"{hpa.name} {hpa.min_replicas}..{hpa.max_replicas}",
                          "the plan counts fixed replicas; an HPA may scale past them")]
        return []
    want = f"{hpa_name(svc)} {svc.hpa.min_replicas}..{svc.hpa.max_replicas}"
    if hpa is None:
        return [Check("hpa", subject, "FAIL", want, "missing", "no HPA targets this workload")]
    bounds = (hpa.min_replicas, hpa.max_replicas) == (svc.hpa.min_replicas, svc.hpa.max_replicas)
    cur = hpa.current_replicas
    inside = cur is not None and hpa.min_replicas <= cur <= hpa.max_replicas
    why = []
    if not bounds:
        why.append(f"bounds {hpa.min_replicas}..{hpa.max_replicas}, planned "
                   f"{svc.hpa.min_replicas}..{svc.hpa.max_replicas}")
    # the HPA controller reads the scale on its own period (15 s): just after a rollout its status may
    # still hold the count from before, while the workload itself is inside the bounds
    stale = (cur is not None and cur < hpa.min_replicas and cur < w.replicas
             and hpa.min_replicas <= w.replicas <= hpa.max_replicas and w.ready == w.replicas)
    if not inside:
        why.append(f"currentReplicas {cur} outside {hpa.min_replicas}..{hpa.max_replicas}"
                   + (f" while the workload runs {w.replicas}: the HPA has not synced since the rollout; "
                      "verify again after its sync period (15 s)" if stale else ""))
    status: Status = "PASS" if not why else ("WARN" if bounds and stale else "FAIL")
    return [Check("hpa", subject, status, want,
                  f"{hpa.name} {hpa.min_replicas}..{hpa.max_replicas} current={cur}", "; ".join(why))]


def _container_checks(svc: Service, w: Workload, subject: str, options: RenderOptions) -> list[Check]:
    out: list[Check] = []
    image = image_for(svc, options)
    live = {c.name: c for c in w.containers}
    for c in svc.containers:
        where = f"{subject} container {c.name}"
        got = live.get(c.name)
        if got is None:
            out.append(Check("resources", where, "FAIL", "the container", "missing",
                             "containers: " + ", ".join(live) if live else "no containers"))
            continue
        r = c.resources
        planned = {("requests", "cpu"): Fraction(r.cpu_request_m, 1000),
                   ("requests", "memory"): Fraction(r.memory_request_bytes),
                   ("limits", "cpu"): Fraction(r.cpu_limit_m, 1000),
                   ("limits", "memory"): Fraction(r.memory_limit_bytes)}
        wrong, shown = [], []
        for (part, key), want in planned.items():
            text = (got.requests if part == "requests" else got.limits).get(key)
            value = _value(text)
            shown.append(f"{part}.{key}={text if text is not None else 'none'}")
            if value != want:
                wrong.append(f"{part}.{key} {text if text is not None else 'missing'} "
                             f"!= planned {_fmt(want, key)}")
        expected = " ".join(f"{p}.{k}={_fmt(v, k)}" for (p, k), v in planned.items())
        out.append(Check("resources", where, "PASS" if not wrong else "FAIL", expected, " ".join(shown),
                         "; ".join(wrong)))
        out.append(Check("image", where, "PASS" if got.image == image else "FAIL", image, got.image,
                         "" if got.image == image else "not the image the plan renders"))
    return out


def _pdb_check(svc: Service, namespace: str, live: LiveState) -> Check | None:
    if not is_multi_replica(svc):
        return None
    labels = selector_labels(svc.name)
    subject = f"service {svc.name}"
    matching = [p for p in live.pdbs if p.namespace == namespace and p.selector and not p.has_expressions
                and all(labels.get(k) == v for k, v in p.selector.items())]
    if not matching:
        return Check("pdb", subject, "FAIL", f"{svc.name}-pdb with disruptionsAllowed >= 1", "missing",
                     f"no PodDisruptionBudget in {namespace} selects app.kubernetes.io/name={svc.name}")
    p = max(matching, key=lambda x: x.disruptions_allowed)
    ok = p.disruptions_allowed >= 1
    return Check("pdb", subject, "PASS" if ok else "FAIL", "disruptionsAllowed >= 1",
                 f"{p.name} disruptionsAllowed={p.disruptions_allowed}",
                 f"currentHealthy={p.current_healthy} expectedPods={p.expected_pods}"
                 + ("" if ok else ": a node drain would block on it"))


# -- pods ---------------------------------------------------------------------------------

def _pod_checks(pods: Iterable[Pod], namespaces: tuple[str, ...]) -> list[Check]:
    out: list[Check] = []
    scope = [p for p in pods if p.namespace in namespaces]
    where = ",".join(namespaces)
    pending = [p for p in scope if p.phase == "Pending"]
    for p in pending:
        why = (f"{p.unschedulable_reason}: {p.unschedulable_message}" if p.unschedulable_reason
               else "scheduled, containers not started" if p.node else "no scheduling decision yet")
        out.append(Check("pod-pending", f"pod {p.namespace}/{p.name}", "FAIL", "Running", "Pending", why))
    if not pending:
        out.append(Check("pod-pending", f"namespace {where}", "PASS", "no Pending pod", "none",
                         f"{len(scope)} pods"))
    bad = 0
    for p in scope:
        for s in p.statuses:
            subject = f"pod {p.namespace}/{p.name} container {s.name}"
            if s.waiting_reason in STUCK_REASONS:
                bad += 1
                out.append(Check("pod-waiting", subject, "FAIL", "running", s.waiting_reason or "",
                                 f"{s.waiting_reason}: {s.waiting_message}".rstrip(": ")
                                 + f" (restarts {s.restarts})"))
            if s.last_termination_reason == "OOMKilled":
                bad += 1
                out.append(Check("pod-oom-killed", subject, "FAIL", "no OOM kill", "OOMKilled",
                                 f"last terminated OOMKilled, restarts {s.restarts}: the memory limit is too low"))
            elif s.restarts > 0:
                bad += 1
                out.append(Check("pod-restarts", subject, "WARN", "0 restarts", str(s.restarts),
                                 f"last terminated: {s.last_termination_reason or 'unknown reason'}"))
    if not bad:
        out.append(Check("pod-restarts", f"namespace {where}", "PASS", "no restart, OOM kill or crash loop",
                         "none", f"{sum(len(p.statuses) for p in scope)} containers"))
    return out


def pod_requests(p: Pod) -> dict[str, Fraction]:
    """What the scheduler counts for a pod: per resource, the larger of the containers' sum
    and the largest init container (as k8s.io/component-helpers resource.PodRequests, without
    overhead or sidecar init containers)."""
    out: dict[str, Fraction] = {}
    for key in ("cpu", "memory"):
        total = sum((_value(c.requests.get(key)) or Fraction(0) for c in p.containers), Fraction(0))
        init = max((_value(c.requests.get(key)) or Fraction(0) for c in p.init_containers), default=Fraction(0))
        out[key] = max(total, init)
    return out


def _per_node_checks(live: LiveState) -> list[Check]:
    out: list[Check] = []
    on: dict[str, list[Pod]] = defaultdict(list)
    for p in live.pods:
        if p.node and not p.terminated:
            on[p.node].append(p)
    for node in live.nodes:
        pods = on.get(node.name, [])
        sums = {"cpu": Fraction(0), "memory": Fraction(0)}
        for p in pods:
            for k, v in pod_requests(p).items():
                sums[k] += v
        over, shown = [], []
        for key, used in sums.items():
            room = _value(node.allocatable.get(key))
            shown.append(f"{key} {_fmt(used, key)} of {_fmt(room, key)}")
            if room is not None and used > room:
                over.append(f"{key} requests {_fmt(used, key)} exceed allocatable {_fmt(room, key)}")
        out.append(Check("node-requests", node.name, "PASS" if not over else "FAIL",
                         "requests within allocatable", "; ".join(shown), "; ".join(over)))
        max_pods = _value(node.allocatable.get("pods"))
        ok = max_pods is None or len(pods) <= max_pods
        out.append(Check("node-pods", node.name, "PASS" if ok else "FAIL", f"at most {_fmt_int(max_pods)} pods",
                         str(len(pods)), "" if ok else "more pods than the kubelet's max pods"))
    return out


def _fmt_int(v: Fraction | None) -> str:
    return "?" if v is None else str(int(v))


def _zone_spread_check(svc: Service, namespace: str, live: LiveState) -> Check | None:
    """The rendering's zone spread (maxSkew 1 over topology.kubernetes.io/zone, DoNotSchedule,
    nodeTaintsPolicy Honor): over the zones with a ready, schedulable node, the service's
    running replicas differ by at most one between zones."""
    if not is_multi_replica(svc):
        return None
    zone_of = {n.name: n.zone for n in live.nodes}
    pods = [p for p in live.pods if p.namespace == namespace and p.service == svc.name
            and p.node and not p.terminated]
    if len(pods) < 2:
        return None
    domains = {n.zone for n in live.nodes if n.zone and n.ready and not n.unschedulable}
    per_zone = Counter({z: 0 for z in domains})
    per_zone.update(zone_of.get(p.node or "") or "no zone label" for p in pods)
    actual = ", ".join(f"{z}={c}" for z, c in sorted(per_zone.items()))
    counted = [per_zone[z] for z in domains]
    skew = max(counted) - min(counted) if counted else 0
    subject = f"service {svc.name}"
    if skew > 1:
        worst = max(domains, key=lambda z: (per_zone[z], z))
        return Check("zone-spread", subject, "FAIL", "at most 1 more replica in one zone than in another", actual,
                     f"{per_zone[worst]} of {len(pods)} replicas in {worst}: its loss takes more than the plan's "
                     "zone-loss judged")
    return Check("zone-spread", subject, "PASS", "at most 1 more replica in one zone than in another", actual, "")


def _spread_check(svc: Service, namespace: str, live: LiveState) -> Check | None:
    """The rendering's spread (maxSkew 1 on kubernetes.io/hostname, DoNotSchedule): while a
    service has no more replicas than there are schedulable nodes, no node runs two."""
    pods = [p for p in live.pods if p.namespace == namespace and p.service == svc.name
            and p.node and not p.terminated]
    if len(pods) < 2:
        return None
    nodes = sum(1 for n in live.nodes if not n.unschedulable and n.ready)
    per_node = Counter(p.node for p in pods)
    doubled = {n: c for n, c in per_node.items() if c > 1}
    subject = f"service {svc.name}"
    actual = ", ".join(f"{n}={c}" for n, c in sorted(per_node.items(), key=lambda x: str(x[0])))
    if len(pods) <= nodes and doubled:
        return Check("spread", subject, "FAIL", f"one replica per node ({len(pods)} replicas, {nodes} nodes)",
                     actual, "two or more replicas on " + ", ".join(str(n) for n in sorted(doubled, key=str))
                     + ": one node's loss takes them all")
    return Check("spread", subject, "PASS", f"at most {-(-len(pods) // max(nodes, 1))} per node", actual, "")


# -- storage and quota ----------------------------------------------------------------------

def _claim_checks(plan: Plan, namespace: str, live: LiveState, workloads: Mapping[str, Workload]) -> list[Check]:
    out: list[Check] = []
    cls = storage_class_name(plan.profile)
    claims = {c.name: c for c in live.pvcs if c.namespace == namespace}
    for svc in plan.catalog.services:
        for v in svc.volumes:
            if svc.kind == "StatefulSet":
                w = workloads.get(svc.name)
                n = w.desired if w is not None else svc.replicas
                names = [f"{v.name}-{svc.name}-{i}" for i in range(n)]   # volumeClaimTemplates naming
            else:
                names = [claim_name(svc, v.name)]
            for name in names:
                c = claims.get(name)
                want = f"Bound, {cls}, {_fmt(Fraction(v.size_bytes), 'memory')}"
                if c is None:
                    out.append(Check("claim", f"pvc {namespace}/{name}", "FAIL", want, "missing",
                                     f"no PersistentVolumeClaim {name} in {namespace}"))
                    continue
                why = []
                if c.phase != "Bound":
                    why.append(f"phase {c.phase}")
                if c.storage_class != cls:
                    why.append(f"class {c.storage_class}, planned {cls}")
                if _value(c.requested) != v.size_bytes:
                    why.append(f"requests {c.requested}, planned {_fmt(Fraction(v.size_bytes), 'memory')}")
                cap = _value(c.capacity)
                if c.phase == "Bound" and (cap is None or cap < v.size_bytes):
                    why.append(f"capacity {c.capacity} below the planned size")
                out.append(Check("claim", f"pvc {namespace}/{name}", "PASS" if not why else "FAIL", want,
                                 f"{c.phase}, {c.storage_class}, {c.requested} (capacity {c.capacity})",
                                 "; ".join(why)))
    return out


def _quota_checks(namespace: str, live: LiveState) -> list[Check]:
    quotas = [q for q in live.quotas if q.namespace == namespace]
    if not quotas:
        return [Check("quota", f"namespace {namespace}", "WARN", "the plan's ResourceQuota", "none",
                      "no ResourceQuota in the namespace: nothing caps what it may request")]
    out = []
    for q in quotas:
        over = []
        for key, hard in sorted(q.hard.items()):
            used, limit = _value(q.used.get(key, "0")), _value(hard)
            if used is not None and limit is not None and used > limit:
                over.append(f"{key} used {q.used.get(key)} > hard {hard}")
        out.append(Check("quota", f"resourcequota {namespace}/{q.name}", "PASS" if not over else "FAIL",
                         "used within hard", " ".join(f"{k}={q.used.get(k, '0')}/{v}" for k, v in sorted(q.hard.items())),
                         "; ".join(over)))
    return out


# -- the whole comparison --------------------------------------------------------------------

def verify(live: LiveState, plan: Plan, *, options: RenderOptions | None = None,
           allocatable_tolerance_pct: float = DEFAULT_ALLOCATABLE_TOLERANCE_PCT) -> list[Check]:
    """Every check, in a stable order: nodes, then per service (workload, HPA, containers,
    PDB, spread), pods, per node, storage, quota. ``options`` are the render options the
    manifests were made with (namespace, image tag and registry)."""
    if plan.pools:
        # the node checks compare every node with one node type: a pooled plan would be misjudged
        raise InputError("verify judges a plan of one node pool; this plan has pools", field="pools",
                         value=", ".join(p.name for p in plan.pools),
                         valid="verify each pool's plan on its own, or plan without --pools")
    options = options or RenderOptions(mesh=plan.options.mesh)
    ns = options.namespace
    out = _node_checks(live, plan, allocatable_tolerance_pct)
    found: dict[str, Workload] = {}
    for svc in plan.catalog.services:
        w = live.workload(svc.kind, ns, svc.name)
        if w is None:
            out.append(Check("workload", f"{svc.kind}/{svc.name}", "FAIL", f"{svc.kind} in {ns}", "missing",
                             f"no {svc.kind} {svc.name} in namespace {ns}"))
        else:
            found[svc.name] = w
            out += _workload_checks(svc, w, live, options)
        out += [c for c in (_pdb_check(svc, ns, live), _spread_check(svc, ns, live),
                            _zone_spread_check(svc, ns, live) if plan.zoning is not None else None) if c]
    namespaces = (ns, "istio-system") if plan.options.mesh == "istio" else (ns,)
    out += _pod_checks(live.pods, namespaces)
    out += _per_node_checks(live)
    out += _claim_checks(plan, ns, live, found)
    out += _quota_checks(ns, live)
    return out


def worst(checks: Iterable[Check]) -> Status:
    statuses = {c.status for c in checks}
    return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "PASS"


__all__ = ["Check", "verify", "worst", "pod_requests", "DEFAULT_ALLOCATABLE_TOLERANCE_PCT"]
