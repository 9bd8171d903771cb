"""The twin: a sim holding what a live cluster holds, so the sign-off rehearses there, never on it.

An upgrade rehearsal drains nodes and a release rollout replaces pods: done on the production
cluster, the rehearsal would be the outage it is meant to foresee. :func:`read_snapshot` reads
the live cluster once, read-only (GET and LIST through :mod:`eafix_capacity.cluster.rest`, never a
write), into a :class:`TwinSnapshot`: its nodes (capacity, allocatable, labels, taints, zones,
instance types, cordons) and the EAFIX namespace's objects, stripped of what the server sets
(uid, resourceVersion, managedFields, timestamps, status) so they can be created again.
:func:`start_twin` starts a frozen-clock sim with the same nodes and creates the objects in the
seed's phase order, each HPA's workload at its live ``currentReplicas``; a Secret's values are
never copied (the twin's Secrets hold the same keys with placeholder values, so the pods that use
them start). Usage for the twin's metrics is the utilisation store's observed figures per service
when one is given, else the usage model. Without a live cluster the twin is the plan itself:
:func:`plan_twin` deploys the plan's rendering onto a sim shaped like its node pool, as notebook
04 does (:func:`deploy_objects` is the apply both use).
"""
from __future__ import annotations

import base64
import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import ClusterError, InputError

if TYPE_CHECKING:  # the client, the sim and pandas load when a step runs
    import pandas as pd

    from ..cluster.context import Target
    from ..cluster.notebook import Session
    from ..cluster.records import ApplyRecord
    from ..plan import Plan
    from ..sim.cluster import SimCluster
    from ..sim.usage_model import UsageModel

DEFAULT_NAMESPACE = "eafix-trading"
READ_TIMEOUT = 30.0
PLACEHOLDER = "REPLACE_ME"
"""The value of every key of a twin's Secrets (the kit's template placeholder, accepted by the sim)."""
SERVICE_LABEL = "app.kubernetes.io/name"

# what the twin reads: (field of TwinSnapshot, kind, path under the namespace or cluster-wide)
_NAMESPACED: tuple[tuple[str, str, str], ...] = (
    ("resource_quotas", "ResourceQuota", "/api/v1/namespaces/{ns}/resourcequotas"),
    ("limit_ranges", "LimitRange", "/api/v1/namespaces/{ns}/limitranges"),
    ("service_accounts", "ServiceAccount", "/api/v1/namespaces/{ns}/serviceaccounts"),
    ("pvcs", "PersistentVolumeClaim", "/api/v1/namespaces/{ns}/persistentvolumeclaims"),
    ("secrets", "Secret", "/api/v1/namespaces/{ns}/secrets"),
    ("config_maps", "ConfigMap", "/api/v1/namespaces/{ns}/configmaps"),
    ("deployments", "Deployment", "/apis/apps/v1/namespaces/{ns}/deployments"),
    ("stateful_sets", "StatefulSet", "/apis/apps/v1/namespaces/{ns}/statefulsets"),
    ("daemon_sets", "DaemonSet", "/apis/apps/v1/namespaces/{ns}/daemonsets"),
    ("hpas", "HorizontalPodAutoscaler", "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
    ("pdbs", "PodDisruptionBudget", "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
    ("services", "Service", "/api/v1/namespaces/{ns}/services"),
)
_API_VERSION = {"ResourceQuota": "v1", "LimitRange": "v1", "ServiceAccount": "v1", "PersistentVolumeClaim": "v1",
                "Secret": "v1", "ConfigMap": "v1", "Service": "v1", "Namespace": "v1", "Node": "v1",
                "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
                "StorageClass": "storage.k8s.io/v1"}
_SERVER_METADATA = ("uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers")
_SERVER_ANNOTATIONS = frozenset({
    "deployment.kubernetes.io/revision", "pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node", "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner", "kubectl.kubernetes.io/last-applied-configuration"})
"""Set by controllers for the object they manage (or, last-applied, a copy of what was sent: for a
Secret its values), so not part of what the twin creates."""
_MADE_BY_THE_SERVER = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
"""Every namespace's own (the serviceaccount and root-ca-cert-publisher controllers make them)."""
_PROVIDER_LABELS = (("cloud.google.com/gke-nodepool", "gke"), ("eks.amazonaws.com/nodegroup", "eks"),
                    ("kubernetes.azure.com/agentpool", "aks"))


@dataclass(frozen=True)
class TwinSnapshot:
    """What the twin holds: a live cluster's nodes and one namespace's objects, as plain JSON
    objects that can be created on a sim (server-set fields removed), read once."""

    namespace: str
    namespace_object: dict[str, Any]
    nodes: tuple[dict[str, Any], ...]
    storage_classes: tuple[dict[str, Any], ...] = ()
    resource_quotas: tuple[dict[str, Any], ...] = ()
    limit_ranges: tuple[dict[str, Any], ...] = ()
    service_accounts: tuple[dict[str, Any], ...] = ()
    pvcs: tuple[dict[str, Any], ...] = ()
    secrets: tuple[dict[str, Any], ...] = ()
    """The Secrets' names, types and keys; every value is :data:`PLACEHOLDER` (never the live one)."""
    config_maps: tuple[dict[str, Any], ...] = ()
    deployments: tuple[dict[str, Any], ...] = ()
    stateful_sets: tuple[dict[str, Any], ...] = ()
    daemon_sets: tuple[dict[str, Any], ...] = ()
    hpas: tuple[dict[str, Any], ...] = ()
    pdbs: tuple[dict[str, Any], ...] = ()
    services: tuple[dict[str, Any], ...] = ()
    hpa_replicas: Mapping[str, int] = field(default_factory=dict)
    """Per HPA name, its live ``status.currentReplicas`` (the twin starts its workload there)."""
    source: str = ""
    """The context and server read (for the report)."""

    def namespaced_objects(self) -> list[dict[str, Any]]:
        """The namespace's objects to create (copies), each HPA's workload at its live replicas."""
        scaled = {(h["spec"]["scaleTargetRef"].get("kind"), h["spec"]["scaleTargetRef"].get("name")):
                  self.hpa_replicas[h["metadata"]["name"]]
                  for h in self.hpas if h["metadata"]["name"] in self.hpa_replicas}
        out = []
        for kind_field, _kind, _path in _NAMESPACED:
            for obj in getattr(self, kind_field):
                obj = copy.deepcopy(obj)
                replicas = scaled.get((obj["kind"], obj["metadata"]["name"]))
                if replicas is not None:
                    obj.setdefault("spec", {})["replicas"] = replicas
                out.append(obj)
        return out

    def objects(self) -> list[dict[str, Any]]:
        """Everything the twin creates besides its nodes: the Namespace, the StorageClasses and the
        namespace's objects (in the seed's phase order once :func:`eafix_capacity.cluster.order.phases`
        sorts them)."""
        return [copy.deepcopy(self.namespace_object), *copy.deepcopy(list(self.storage_classes)),
                *self.namespaced_objects()]

    def counts(self) -> dict[str, int]:
        """Objects read per kind (pure), for the report."""
        return dict(sorted(Counter(o["kind"] for o in [*self.nodes, *self.objects()]).items()))


# --- stripping (pure) ----------------------------------------------------------------------------

def strip_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` without the fields the server sets (uid, resourceVersion, managedFields, ...)."""
    out = {k: copy.deepcopy(v) for k, v in meta.items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (out.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    if annotations:
        out["annotations"] = annotations
    else:
        out.pop("annotations", None)
    return out


def strip_object(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """An object as read, ready to create on the sim: ``kind``/``apiVersion`` set (a list's items
    carry neither), server-set metadata and the status removed, and what the server allocates
    (a Service's cluster IPs, a claim's bound volume) left for the twin's server to allocate."""
    out: dict[str, Any] = {"apiVersion": _API_VERSION.get(kind) or str(obj.get("apiVersion") or "v1"), "kind": kind,
                           "metadata": strip_metadata(obj.get("metadata") or {})}
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            out[key] = copy.deepcopy(value)
    if kind == "Service":
        spec = out.get("spec") or {}
        for key in ("clusterIP", "clusterIPs"):
            spec.pop(key, None)
    elif kind == "PersistentVolumeClaim":
        (out.get("spec") or {}).pop("volumeName", None)
    elif kind == "Namespace":
        out.pop("spec", None)  # spec.finalizers: the server's
    elif kind == "Secret":
        out = secret_placeholder(out)
    return out


def secret_placeholder(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The twin's copy of a Secret: the same name, type and keys, every value :data:`PLACEHOLDER`
    (the live values are dropped here, before the snapshot exists). A ``.dockerconfigjson`` or
    ``.dockercfg`` key gets ``{}``: the API server validates those as JSON."""
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    out = {k: copy.deepcopy(v) for k, v in secret.items() if k not in ("data", "stringData")}
    if keys:
        out["data"] = {k: base64.b64encode(b"{}" if k in (".dockerconfigjson", ".dockercfg")
                                           else PLACEHOLDER.encode()).decode() for k in keys}
    return out


def twin_node(node: Mapping[str, Any], *, now: str) -> dict[str, Any]:
    """A node as the twin serves it: the same name, labels, annotations, taints, cordon, capacity,
    allocatable, addresses and node info; its conditions' times stamped ``now`` (pure). A node that
    does not name its provider (a real cluster's) gets ``sim.eafix.io/provider`` from its
    managed-node-pool label, so the twin runs that provider's system pods."""
    meta = strip_metadata(node.get("metadata") or {})
    meta.get("annotations", {}).pop("node.alpha.kubernetes.io/ttl", None)
    labels = meta.get("labels") or {}
    annotations = dict(meta.get("annotations") or {})
    if "sim.eafix.io/provider" not in annotations:
        annotations["sim.eafix.io/provider"] = next((p for label, p in _PROVIDER_LABELS if label in labels), "generic")
    meta["annotations"] = annotations
    spec = {k: copy.deepcopy(v) for k, v in (node.get("spec") or {}).items()
            if k in ("taints", "unschedulable", "podCIDR", "podCIDRs", "providerID")}
    status = node.get("status") or {}
    conditions = [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason", ""),
                   "message": c.get("message", ""), "lastHeartbeatTime": now, "lastTransitionTime": now}
                  for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    if not any(c["type"] == "Ready" for c in conditions):
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                           "lastTransitionTime": now})
    out_status = {k: copy.deepcopy(status[k]) for k in ("capacity", "allocatable", "addresses", "nodeInfo")
                  if k in status}
    out_status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": out_status}


def snapshot_from_items(namespace: str, namespace_object: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
                        lists: Mapping[str, Sequence[Mapping[str, Any]]],
                        storage_classes: Iterable[Mapping[str, Any]], *, source: str = "") -> TwinSnapshot:
    """The snapshot of what was read (pure): ``lists`` maps each TwinSnapshot field of the
    namespace's kinds to the items read."""
    kinds = {name: kind for name, kind, _ in _NAMESPACED}
    stripped: dict[str, tuple[dict[str, Any], ...]] = {}
    for name, kind in kinds.items():
        kept = []
        for item in lists.get(name, ()):
            if (kind, (item.get("metadata") or {}).get("name")) in _MADE_BY_THE_SERVER:
                continue
            if kind == "Secret" and item.get("type") == "kubernetes.io/service-account-token":
                continue  # the token controller's, with a token the twin could not use
            kept.append(strip_object(item, kind))
        stripped[name] = tuple(sorted(kept, key=lambda o: o["metadata"]["name"]))
    hpa_replicas = {}
    for hpa in lists.get("hpas", ()):
        current = (hpa.get("status") or {}).get("currentReplicas")
        if isinstance(current, int) and not isinstance(current, bool):
            hpa_replicas[str(hpa["metadata"]["name"])] = current
    return TwinSnapshot(
        namespace=namespace, namespace_object=strip_object(namespace_object, "Namespace"),
        nodes=tuple(sorted((dict(n) for n in nodes), key=lambda n: n["metadata"]["name"])),
        storage_classes=tuple(sorted((strip_object(sc, "StorageClass") for sc in storage_classes),
                                     key=lambda o: o["metadata"]["name"])),
        hpa_replicas=dict(sorted(hpa_replicas.items())), source=source, **stripped)


# --- reading the live cluster --------------------------------------------------------------------

def read_snapshot(api_client: Any, *, namespace: str = DEFAULT_NAMESPACE, target: Target | None = None,
                  timeout: float = READ_TIMEOUT) -> TwinSnapshot:
    """Read the cluster behind ``api_client`` once, with GET and LIST requests only, into a
    :class:`TwinSnapshot`. An unreachable cluster, a 401 or a 403 raises the cluster library's
    one-line ``TargetError`` (:func:`eafix_capacity.cluster.errors.classify`); a namespace that
    does not exist, a ``TargetError`` naming it."""
    from ..cluster.errors import TargetError, classify
    from ..cluster.rest import get_json, list_items

    context = target.context if target is not None else ""
    server = target.server if target is not None else str(getattr(getattr(api_client, "configuration", None),
                                                                  "host", "") or "")

    def failed(e: Exception) -> TargetError:
        if target is None:
            return classify(e, context=context, server=server, timeout=timeout)
        return classify(e, context=context, server=server, user=target.user or None, auth=target.auth,
                        cluster=target.cluster, timeout=timeout)

    try:
        try:
            ns_object = get_json(api_client, f"/api/v1/namespaces/{namespace}", timeout=timeout)
        except Exception as e:
            if getattr(e, "status", None) == 404:
                raise TargetError(f'namespace "{namespace}" not found', context=context, server=server,
                                  check="name the namespace the EAFIX services run in (--namespace)") from e
            raise
        ns_object.setdefault("kind", "Namespace")
        now = _now_text()
        nodes = [twin_node(n, now=now) for n in list_items(api_client, "/api/v1/nodes", "Node", timeout=timeout)]
        lists = {name: list_items(api_client, path.format(ns=namespace), kind, timeout=timeout)
                 for name, kind, path in _NAMESPACED}
        classes = list_items(api_client, "/apis/storage.k8s.io/v1/storageclasses", "StorageClass", timeout=timeout)
    except TargetError:
        raise
    except ValueError as e:  # an answer that is not JSON
        raise TargetError(f"not a Kubernetes API server's answer: {e}", context=context, server=server) from e
    except Exception as e:
        raise failed(e) from e
    where = f'context "{context}" at {server}' if context else server
    return snapshot_from_items(namespace, ns_object, nodes, lists, classes, source=where)


def _now_text() -> str:
    from ..sim.clock import rfc3339
    from ..sim.hooks import utc_now

    return rfc3339(utc_now())


# --- usage from the utilisation store (pure) ------------------------------------------------------

def observed_usage_document(frame: pd.DataFrame, *, base: Mapping[str, Any]) -> dict[str, Any]:
    """A usage model in the format of ``data/usage-model.yaml`` whose services use what was
    observed (pure): per service its p95 CPU and its peak memory as shares of its request, flat
    (``cpu_session``/``memory_session`` 0: the figures are already the busiest hours'). Services
    the store does not hold keep ``base``'s entries (the shipped model's)."""
    doc = copy.deepcopy(dict(base))
    services = dict(doc.get("services") or {})
    if len(frame):
        rows = frame[frame["service"].astype(str) != ""]
        for service, group in rows.groupby(rows["service"].astype(str), observed=True):
            entry = {"cpu_session": 0.0, "memory_session": 0.0}
            for what, use, req, stat in (("cpu", "cpu_m", "cpu_request_m", "p95"),
                                         ("memory", "memory_bytes", "memory_request_bytes", "max")):
                usable = group[group[req].notna() & (group[req] > 0) & group[use].notna()]
                if not len(usable):
                    continue
                shares = usable[use].astype(float) / usable[req].astype(float)
                value = float(shares.quantile(0.95)) if stat == "p95" else float(shares.max())
                entry[what] = round(min(max(value, 0.0), 100.0), 6)
            if "cpu" in entry and "memory" in entry:
                services[str(service)] = entry
    doc["services"] = services
    return doc


def observed_usage_model(usage_store: str | Path) -> UsageModel:
    """The usage model of :func:`observed_usage_document` over a utilisation store's frame, on the
    shipped model's sessions, noise and defaults."""
    from ..sim.usage_model import DEFAULT_MODEL_PATH, parse_usage_model
    from ..usage.store import UsageStore
    from ..yamlio import load_yaml_text

    with UsageStore.open(usage_store, create=False) as store:
        frame = store.frame()
    base = load_yaml_text(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"), file=str(DEFAULT_MODEL_PATH))
    return parse_usage_model(observed_usage_document(frame, base=base),
                             source=f"observed usage in {Path(usage_store)}")


# --- starting the twin ---------------------------------------------------------------------------

def deploy_objects(session: Session, objects: Iterable[Mapping[str, Any]], *,
                   records: list[ApplyRecord] | None = None) -> list[ApplyRecord]:
    """Apply ``objects`` to the session's sim in the seed's phase order, at most one workload per
    call and the controllers settled before the next: the sim names pods from its seeded
    generator in the order they are made, and the usage model's noise is keyed by pod name, so
    the same objects give the same pods and figures. Records are appended to ``records`` as
    they come (what an apply that failed part-way had sent); apply's errors propagate."""
    from ..cluster.apply import apply
    from ..cluster.order import phases

    sim = session.sim
    if sim is None:
        raise ClusterError("deploy_objects applies to a sim the caller started")
    out = records if records is not None else []
    rollout_kinds = ("Deployment", "StatefulSet", "DaemonSet")

    def send(batch: list[Mapping[str, Any]]) -> None:
        out.extend(apply(batch, api_client=session.api, target=session.target, dry_run=False, context_given=True))
        sim.settle()

    batch: list[Mapping[str, Any]] = []
    for o in (o for phase in phases(list(objects)) for o in phase.objects):
        batch.append(o.obj)
        if o.kind in rollout_kinds:
            send(batch)
            batch = []
    if batch:
        send(batch)
    return out


def _node_type_of(nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """The most common instance type of ``nodes`` when ``data/node-types.csv`` knows it."""
    from ..nodes import get_node_type, load_node_types

    types = Counter(str(((n.get("metadata") or {}).get("labels") or {}).get("node.kubernetes.io/instance-type", ""))
                    for n in nodes)
    known = load_node_types()
    for name, _ in types.most_common():
        try:
            get_node_type(name, known)
            return name
        except InputError:
            continue
    return None


def start_twin(snapshot: TwinSnapshot, *, usage_model: str | Path | UsageModel | None = None,
               usage_store: str | Path | None = None, clock_start: datetime | None = None,
               kubeconfig: str | Path | None = None, port: int = 0, audit_log: str | Path | None = None,
               settle_seconds: float = 0.0) -> SimCluster:
    """Start the twin of ``snapshot``: a sim with a frozen clock (from ``clock_start``, by default
    the usage model's trading-day morning) whose nodes are the snapshot's, then the namespace's
    objects created in the seed's phase order (:func:`deploy_objects`), each HPA's workload at
    its live replicas. Usage: the observed figures of ``usage_store`` (a utilisation store's
    directory), else ``usage_model`` (a file, or a model), else the shipped model. The sim runs
    the provisioners the snapshot's StorageClasses name besides its cloud's own. Returns the
    started sim; it is stopped again if anything fails."""
    from ..cluster.context import load_target
    from ..cluster.notebook import Session
    from ..sim.clock import TRADING_DAY_START, rfc3339
    from ..sim.cluster import CONTEXT, SimCluster
    from ..sim.storage import CSI_DRIVER_OF_CLOUD
    from ..sim.usage_model import UsageModel

    if usage_store is not None and usage_model is not None:
        raise InputError("give a usage store or a usage model, not both", field="usage_model",
                         value=str(usage_model), valid="the observed usage (usage_store) or a model file")
    model = observed_usage_model(usage_store) if usage_store is not None else (
        usage_model if isinstance(usage_model, UsageModel) else None)
    model_path = usage_model if isinstance(usage_model, (str, Path)) else None
    node_type = _node_type_of(snapshot.nodes)
    provisioners = None
    wanted = sorted({str(sc.get("provisioner")) for sc in snapshot.storage_classes if sc.get("provisioner")})
    if wanted:
        from ..nodes import get_node_type, load_node_types

        own = CSI_DRIVER_OF_CLOUD.get(get_node_type(node_type or "n2-standard-8", load_node_types()).provider)
        provisioners = sorted({*wanted, *([own] if own else [])})
    start = clock_start or TRADING_DAY_START
    nodes = [twin_node(n, now=rfc3339(start)) for n in snapshot.nodes]  # conditions as of the twin's clock
    sim = SimCluster(node_type=node_type, speed=0, clock_start=start, kubeconfig=kubeconfig, port=port,
                     usage_model_path=model_path, audit_log=audit_log, node_objects=nodes,
                     provisioners=provisioners)
    sim.start()
    try:
        if model is not None and sim.controllers is not None:
            sim.controllers.set_usage_model(model)
        target, api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
        session = Session(target, api, sim)
        try:
            live = {sc["metadata"]["name"] for sc in _list(api, "/apis/storage.k8s.io/v1/storageclasses")}
            objects = [o for o in snapshot.objects() if not (o["kind"] == "StorageClass"
                                                             and o["metadata"]["name"] in live)]
            deploy_objects(session, objects)
            if settle_seconds > 0 and sim.clock is not None:
                sim.clock.advance(settle_seconds)
                sim.settle()
        finally:
            api.close()
    except BaseException:
        sim.stop()
        raise
    return sim


def _list(api: Any, path: str) -> list[dict[str, Any]]:
    from ..cluster.rest import list_items

    return list_items(api, path, "", timeout=READ_TIMEOUT)


def twin_from_context(context: str, *, kubeconfig: str | Path | None = None, namespace: str = DEFAULT_NAMESPACE,
                      usage_store: str | Path | None = None, usage_model: str | Path | UsageModel | None = None,
                      clock_start: datetime | None = None, twin_kubeconfig: str | Path | None = None,
                      port: int = 0, audit_log: str | Path | None = None) -> tuple[SimCluster, TwinSnapshot]:
    """Read ``context`` of ``kubeconfig`` (as kubectl finds it) once, read-only, and start its
    twin (:func:`start_twin`); the twin writes its own kubeconfig to ``twin_kubeconfig``."""
    from ..cluster.context import load_target

    target, api = load_target(kubeconfig=kubeconfig, context=context)
    try:
        snapshot = read_snapshot(api, namespace=namespace, target=target)
    finally:
        api.close()
    sim = start_twin(snapshot, usage_model=usage_model, usage_store=usage_store, clock_start=clock_start,
                     kubeconfig=twin_kubeconfig, port=port, audit_log=audit_log)
    return sim, snapshot


PLAN_SETTLE_SECONDS = 120.0
"""Sim-clock seconds moved on after deploying a plan's twin: past the rendering's readiness-probe
delays and metrics-server's first scrape, so every pod is Ready and measured."""


def start_plan_sim(plan: Plan, *, usage_model: str | Path | None = None,
                   clock_note: str = "moved on by the rehearsals") -> Session:
    """A frozen-clock sim shaped like the plan's node pool (its node type, count, zones and
    provider) or, for a plan of several pools, like each of them (their labels and taints too),
    from the trading-day morning, with a session on it; nothing deployed yet. ``close()`` stops it."""
    from ..cluster.context import load_target
    from ..cluster.notebook import Session
    from ..sim.clock import TRADING_DAY_START
    from ..sim.cluster import CONTEXT, SimCluster

    from dataclasses import replace

    from ..sim.cluster import DEFAULT_ZONES, pool_node_objects

    zones = plan.zoning.names if plan.zoning is not None else None
    nodes = None
    if plan.pools:
        nodes = pool_node_objects([replace(p.spec, nodes=p.plan.nodes) for p in plan.pools],
                                  provider=plan.options.provider, zones=zones or DEFAULT_ZONES, mesh=plan.options.mesh)
    sim = SimCluster(node_type=plan.node_type.name, nodes=plan.nodes, zones=zones, provider=plan.options.provider,
                     speed=0, clock_start=TRADING_DAY_START, usage_model_path=usage_model or None, node_objects=nodes)
    sim.start()
    try:
        target, api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
        model = Path(usage_model).name if usage_model else "data/usage-model.yaml"
        fleet = (" + ".join(f"{p.plan.nodes} x {p.plan.node_type.name} ({p.name})" for p in plan.pools)
                 if plan.pools else f"{plan.nodes} x {plan.node_type.name}")
        note = (f"sim started in-process: {fleet} ({plan.options.provider}), "
                f"usage model {model}, clock from {TRADING_DAY_START:%Y-%m-%d %H:%M} UTC {clock_note}; "
                "stopped at the end")
        return Session(target, api, sim, (note,))
    except BaseException:
        sim.stop()
        raise


def plan_objects(plan: Plan) -> list[Mapping[str, Any]]:
    """The plan's own rendering: its catalogue with its profile, mesh and provider (and the
    zone spread when the plan has zones), as ``manifests generate`` writes it (without the
    External Secrets variant)."""
    from ..cluster.notebook import select_objects
    from ..manifests.render import RenderOptions
    from ..manifests.workflow import build

    gen = build(plan.catalog, plan.profile, RenderOptions(mesh=plan.options.mesh, provider=plan.options.provider,
                                                          zone_spread=plan.zoning is not None))
    return select_objects(gen.objects, external_secrets=False)


def deploy_plan(session: Session, objects: Iterable[Mapping[str, Any]], *, profile: str,
                records: list[ApplyRecord] | None = None) -> str:
    """Deploy a plan's ``objects`` onto the session's sim (:func:`deploy_objects`, records
    appended to ``records`` as they come), move the clock on by :data:`PLAN_SETTLE_SECONDS` and
    let the controllers settle; the line that says what was applied. Apply's errors propagate."""
    from collections import Counter as _Counter

    sim = session.sim
    if sim is None or sim.clock is None:
        raise ClusterError("deploy_plan deploys onto a frozen-clock sim the caller started")
    out = records if records is not None else []
    deploy_objects(session, objects, records=out)
    sim.clock.advance(PLAN_SETTLE_SECONDS)
    sim.settle()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(_Counter(r.outcome for r in out).items()))
    return (f"applied the {profile} plan: {len(out)} objects ({counts}); clock moved on "
            f"{PLAN_SETTLE_SECONDS:g} s, now {sim.clock.now():%Y-%m-%d %H:%M} UTC")


def plan_twin(plan: Plan, *, objects: Sequence[Mapping[str, Any]] | None = None,
              usage_model: str | Path | None = None) -> Session:
    """Without a live cluster, the twin is the plan itself: ``objects`` (default: the plan's
    rendering, :func:`plan_objects`) deployed onto a sim shaped like its node pool
    (:func:`start_plan_sim`), the mesh's stand-in CRDs first when the plan has the mesh, the
    clock moved on by :data:`PLAN_SETTLE_SECONDS`. The session's ``sim`` is the twin;
    ``close()`` stops it."""
    from ..cluster.notebook import install_mesh_crds

    session = start_plan_sim(plan, usage_model=usage_model)
    try:
        if plan.options.mesh == "istio":
            install_mesh_crds(session)
        note = deploy_plan(session, objects if objects is not None else plan_objects(plan), profile=plan.profile.name)
        session.sim_notes = (*session.sim_notes, note)
    except ClusterError as e:
        session.close()
        raise ClusterError(f"the plan's twin could not be deployed: {e}") from e
    except BaseException:
        session.close()
        raise
    return session


__all__ = ["DEFAULT_NAMESPACE", "PLACEHOLDER", "TwinSnapshot", "deploy_objects", "deploy_plan", "observed_usage_document",
           "observed_usage_model", "plan_objects", "plan_twin", "read_snapshot", "secret_placeholder", "snapshot_from_items",
           "start_plan_sim", "start_twin", "strip_object", "twin_from_context", "twin_node"]
