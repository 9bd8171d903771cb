"""What notebook 05 (the capacity sign-off) runs: its parameters, the twin, the rehearsals, the gates.

The notebook is a parameters cell plus calls into this module, so ``eafix-capacity signoff``
(papermill), a test and a user's own script judge the same records. The steps: the twin (with a
``context``: the live cluster read once, read-only, into a sim, and verify's checks against the
plan; without one: the plan's rendering deployed onto a sim shaped like its node pool); the
capacity gates (N+1, N+zone) over the twin's nodes and pods (the live cluster's with a
context); the usage gates over a utilisation store when one is given; the rehearsals on the twin,
each in sim time (the largest node lost, each zone lost, the release rolled out, the node pool
upgraded by the provider's procedure); the policy applied to every gate; ``summary.json``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import InputError
from ..notebookparams import NotebookParameters
from ..plan import DEFAULT_CPU_LIMIT_RATIO, DEFAULT_HEADROOM_PCT, DEFAULT_MEMORY_LIMIT_RATIO

if TYPE_CHECKING:  # the client, the sim and pandas load when a step runs
    import pandas as pd

    from ..cluster.livestate import LiveState
    from ..cluster.notebook import Session
    from ..cluster.verify import Check
    from ..inputs import PlanParams
    from ..plan import Plan
    from ..usage.samples import Termination
    from .nodepool import UpgradeSettings
    from .policy import Policy
    from .records import GateResult, Rehearsal, Signoff

NOTEBOOK = "05_upgrade_signoff"
WHERE = "notebook parameters"
NODE_LOSS = ("largest", "each")
REHEARSALS = ("node-loss", "zone-loss", "release-rollout", "nodepool-upgrade")
PLAN_FIELDS = ("profile", "provider", "node_type", "nodes", "mesh", "headroom_pct", "cpu_limit_ratio",
               "memory_limit_ratio", "storage_gib", "max_pods", "replicas", "catalog", "manifests",
               "ignore_unknown_kinds", "zones", "zonal_pool", "exact", "exact_seconds", "growth_pct",
               "lead_time_days", "pools")
REHEARSAL_FIELDS = ("namespace", "upgrade_node_type", "max_surge", "max_unavailable", "release_catalog",
                    "release_manifests", "node_loss", "rehearsals")
"""The parameters a sign-off params file may set besides the plan's, the policy and the target."""
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


# --- parameters (pure) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookParams(NotebookParameters):
    """The notebook's parameters, checked. ``context=""`` signs off the plan on its twin."""

    profile: str = "recommended"
    provider: str = "gke"
    node_type: str = "n2-standard-8"
    nodes: int = 0
    mesh: str = "none"
    headroom_pct: float = float(DEFAULT_HEADROOM_PCT)
    cpu_limit_ratio: float = float(DEFAULT_CPU_LIMIT_RATIO)
    memory_limit_ratio: float = float(DEFAULT_MEMORY_LIMIT_RATIO)
    storage_gib: float = 0.0
    max_pods: int = 0
    replicas: str = ""
    catalog: str = ""
    manifests: str = ""
    ignore_unknown_kinds: bool = False
    zones: str = ""
    zonal_pool: bool = False
    exact: str = "auto"
    exact_seconds: float = 1.0
    growth_pct: float = 0.0
    lead_time_days: int = 0
    pools: str = ""
    context: str = ""
    kubeconfig: str = ""
    namespace: str = "eafix-trading"
    usage: str = ""
    policy: str = ""
    upgrade_node_type: str = ""
    max_surge: str = ""
    max_unavailable: str = ""
    release_catalog: str = ""
    release_manifests: str = ""
    node_loss: str = "largest"
    rehearsals: str = ",".join(REHEARSALS)
    output_dir: str = "../reports/" + NOTEBOOK

    def _check(self) -> None:
        from ..profiles import get_profile, load_profiles

        get_profile(self.profile, load_profiles(), file=WHERE)
        if self.pools:
            # the rehearsals (drain, node-pool upgrade, node and zone loss) act on one pool
            raise InputError("a sign-off of several node pools is not supported yet", file=WHERE, field="pools",
                             value=self.pools, valid='"" (one pool); plan the pools with eafix-capacity plan --pools')
        self.plan_params()
        self.load_policy()
        if self.kubeconfig and not self.context:
            raise InputError("a kubeconfig without a context", file=WHERE, field="kubeconfig", value=self.kubeconfig,
                             valid='set context to the kubeconfig\'s context, or leave kubeconfig empty ("") to '
                                   "sign off the plan on its twin")
        if not self.namespace:
            raise InputError("empty namespace", file=WHERE, field="namespace", valid="e.g. eafix-trading")
        if self.usage and not Path(self.usage).is_dir():
            raise InputError("not a directory", file=WHERE, field="usage", value=self.usage,
                             valid='a utilisation store directory (eafix-capacity usage sample --out DIR), or ""')
        if self.node_loss not in NODE_LOSS:
            raise InputError("unknown node loss", file=WHERE, field="node_loss", value=self.node_loss,
                             valid="largest (the largest node) or each (every node in turn)")
        self.chosen_rehearsals()
        if self.release_catalog and self.release_manifests:
            raise InputError("a release is a catalogue or a manifest directory, not both", file=WHERE,
                             field="release_manifests", value=self.release_manifests,
                             valid='leave release_catalog or release_manifests empty ("")')
        for name, is_ok, what in (("release_catalog", Path.is_file, "a services.yaml catalogue file"),
                                  ("release_manifests", Path.is_dir, "a manifest directory")):
            value = getattr(self, name)
            if value and not is_ok(Path(value)):
                raise InputError("not found", file=WHERE, field=name, value=value, valid=f'{what}, or ""')
        self.upgrade_settings()
        if self.output_dir == "":
            raise InputError("empty output directory", file=WHERE, field="output_dir",
                             valid="a directory for summary.json, e.g. .")

    def chosen_rehearsals(self) -> tuple[str, ...]:
        """The rehearsals to run, in their order; one left out is a WARN "not rehearsed" (a zone
        loss only ever runs where the nodes have zones)."""
        names = tuple(n.strip() for n in self.rehearsals.split(",") if n.strip())
        for n in names:
            if n not in REHEARSALS:
                raise InputError("unknown rehearsal", file=WHERE, field="rehearsals", value=n,
                                 valid="a comma-separated list of: " + ", ".join(REHEARSALS))
        return tuple(n for n in REHEARSALS if n in names)

    def plan_params(self) -> PlanParams:
        from ..inputs import PlanParams

        return PlanParams.from_notebook(**{name: getattr(self, name) for name in PLAN_FIELDS})

    def load_policy(self) -> Policy:
        from .policy import load_policy

        return load_policy(self.policy or None)

    def upgrade_settings(self, policy: Policy | None = None) -> UpgradeSettings:
        """The node-pool upgrade's settings: the plan's provider's defaults, with ``max_surge``
        and ``max_unavailable`` (a count or a percentage; "" the provider's), the policy's drain
        timeout and ``upgrade_node_type`` (a new node type; "" the same)."""
        from .nodepool import upgrade_settings

        def count(name: str) -> object:
            text = getattr(self, name).strip()
            if not text:
                return "default" if name == "max_surge" else None
            if text.endswith("%") or not text.isdigit():
                return text                 # a percentage, checked (with a bad count) by upgrade_settings
            return int(text)

        provider = self.plan_params().provider
        if provider not in ("gke", "eks", "aks"):
            raise InputError("a node-pool upgrade is rehearsed with a cloud's procedure", file=WHERE,
                             field="provider", value=provider, valid="gke, eks or aks")
        timeout = policy.drain_timeout_seconds if policy is not None else None
        return upgrade_settings(provider, max_surge=count("max_surge"), max_unavailable=count("max_unavailable"),
                                drain_timeout_seconds=timeout, node_type=self.upgrade_node_type or None)

    def inputs(self) -> dict[str, Any]:
        """What the run index and the Markdown summary show of the run's inputs."""
        plan = self.plan_params()
        return {"profile": plan.profile, "provider": plan.provider, "node_type": plan.node_type,
                "nodes": plan.nodes or 0, "mesh": plan.mesh, "catalog": self.catalog, "manifests": self.manifests,
                "context": self.context, "usage": self.usage, "policy": self.policy or "defaults",
                "release": self.release_catalog or self.release_manifests or "",
                "upgrade_node_type": self.upgrade_node_type}


def make_plan(params: NotebookParams) -> Plan:
    from ..inputs import plan_from_params

    return plan_from_params(params.plan_params())


# --- the twin ------------------------------------------------------------------------------------

@dataclass
class Twin:
    """The sim the rehearsals run on, and what was read of the live cluster (with a context)."""

    session: Session
    source: str
    live_state: LiveState | None = None
    live_checks: tuple[Check, ...] | None = None
    rendering: list[Mapping[str, Any]] | None = None
    """The plan's objects the twin was deployed with (the plan's twin only), for the release."""

    def describe(self) -> str:
        return "\n".join([self.source, self.session.describe()])

    def close(self) -> None:
        self.session.close()


def open_twin(params: NotebookParams, plan: Plan) -> Twin:
    """With a context: read the live cluster once (read-only: its state for verify, its objects
    for the twin) and start the twin with the usage store's figures; without: the plan's twin."""
    from .twin import plan_twin, twin_from_context

    if not params.context:
        objects = _rendering(params, plan)
        return Twin(plan_twin(plan, objects=objects), f"no live cluster: the twin is the {plan.profile.name} plan itself",
                    rendering=objects)
    from ..cluster.context import load_target
    from ..cluster.notebook import Session
    from ..cluster.verify import verify
    from ..cluster.verifycmd import read_live
    from ..sim.cluster import CONTEXT

    target, api = load_target(kubeconfig=params.kubeconfig or None, context=params.context)
    try:
        live = read_live(api, target)
    finally:
        api.close()
    checks = tuple(verify(live, plan))
    sim, snapshot = twin_from_context(params.context, kubeconfig=params.kubeconfig or None,
                                      namespace=params.namespace, usage_store=params.usage or None)
    try:
        twin_target, twin_api = load_target(kubeconfig=sim.kubeconfig, context=CONTEXT)
    except BaseException:
        sim.stop()
        raise
    counts = ", ".join(f"{n} {k}" for k, n in sorted(snapshot.counts().items()))
    source = (f"twin of context {params.context} ({target.server}), read once, read-only: "
              f"{len(snapshot.nodes)} nodes; namespace {params.namespace}: {counts}")
    return Twin(Session(twin_target, twin_api, sim), source, live, checks)


def _rendering(params: NotebookParams, plan: Plan) -> list[Mapping[str, Any]]:
    """The objects the plan's twin runs: the manifest directory the plan was imported from, else
    the plan's own rendering."""
    from .twin import plan_objects

    if params.manifests:
        from .release import release_objects

        return [getattr(o, "obj", o) for o in release_objects(manifests=params.manifests,
                                                              params=params.plan_params()).objects]
    return plan_objects(plan)


# --- the gates that need no rehearsal ------------------------------------------------------------

def capacity_gates(twin: Twin, *, policy: Policy) -> list[GateResult]:
    """N+1 and N+zone over the live cluster's nodes and pods (with a context), else the twin's."""
    from ..cluster.rest import list_items
    from .gates import capacity_from_live, capacity_from_objects, n_plus_one, n_plus_zone

    if twin.live_state is not None:
        nodes, pods = capacity_from_live(twin.live_state)
        zoned = capacity_from_objects(list_items(twin.session.api, "/api/v1/nodes", "Node", timeout=30.0), [])[0]
        by_name = {n.name: n for n in zoned}
        nodes = [by_name.get(n.name, n) for n in nodes]
    else:
        api = twin.session.api
        nodes, pods = capacity_from_objects(list_items(api, "/api/v1/nodes", "Node", timeout=30.0),
                                            list_items(api, "/api/v1/pods", "Pod", timeout=30.0))
    return [*n_plus_one(nodes, pods), *n_plus_zone(nodes, pods, policy=policy)]


@dataclass(frozen=True)
class Usage:
    """The utilisation store's samples and terminations (None without a store)."""

    frame: pd.DataFrame | None
    terminations: tuple[Termination, ...] = ()
    source: str = "no usage history given"


def load_usage(params: NotebookParams) -> Usage:
    if not params.usage:
        return Usage(None)
    from ..usage.store import UsageStore

    with UsageStore.open(params.usage, create=False) as store:
        frame, terminations = store.frame(), store.terminations()
    return Usage(frame, tuple(terminations), f"{len(frame)} samples from {params.usage}")


# --- the rehearsals ------------------------------------------------------------------------------

def release_rendering(params: NotebookParams, plan: Plan, *, now: datetime,
                      rendering: Sequence[Mapping[str, Any]] | None = None) -> tuple[list[Any], Plan, str]:
    """The release rehearsed: the catalogue or manifest directory given, else the current
    rendering (``rendering``, or the plan's rendered again) with every workload's pods
    restarted at ``now`` (``kubectl rollout restart``: each rolls out with its surge, as a
    release of new images does)."""
    from .release import release_objects

    if params.release_catalog or params.release_manifests:
        release = release_objects(catalog=params.release_catalog or None, manifests=params.release_manifests or None,
                                  params=params.plan_params())
        return list(release.objects), release.plan, release.source
    current = rendering if rendering is not None else _rendering(params, plan)
    return restarted(current, at=now.strftime("%Y-%m-%dT%H:%M:%SZ")), plan, \
        "the current rendering, every workload restarted (no new release given)"


def restarted(objects: Sequence[Mapping[str, Any]], *, at: str) -> list[dict[str, Any]]:
    """``objects`` with each workload's pod template annotated as ``kubectl rollout restart``
    annotates it, so each rolls out anew (pure: copies)."""
    import copy

    out = []
    for o in objects:
        obj = copy.deepcopy(dict(o))
        if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            meta = obj.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
            meta.setdefault("annotations", {})[RESTARTED_AT] = at
        out.append(obj)
    return out


def rehearse(twin: Twin, params: NotebookParams, plan: Plan, *, policy: Policy,
             progress: Callable[[str], object] = print) -> list[Rehearsal]:
    """The chosen rehearsals on the twin, in sim time: node loss (the largest node, or each in
    turn), each zone lost (when the nodes have zones), the release, then the node-pool upgrade.
    Each loss restores its nodes before the next rehearsal starts."""
    from ..sim.hooks import sim_clock_hooks
    from .failures import largest_node, rehearse_each_node_loss, rehearse_each_zone_loss, rehearse_node_loss
    from .nodepool import rehearse_nodepool_upgrade
    from .observe import list_nodes
    from .release import rehearse_release

    session = twin.session
    assert session.sim is not None, "the rehearsals run on the twin, never on a live cluster"
    sim, api, ns = session.sim, session.api, params.namespace
    hooks = sim_clock_hooks(sim)
    out: list[Rehearsal] = []

    def done(rs: Sequence[Rehearsal]) -> None:
        for r in rs:
            out.append(r)
            progress(f"{r.name}: {'completed' if r.completed else 'did not complete'} ({r.reason})")

    chosen = params.chosen_rehearsals()
    if "node-loss" in chosen and params.node_loss == "each":
        done(rehearse_each_node_loss(api, sim=sim, namespace=ns, clock=hooks.clock, sleep=hooks.sleep))
    elif "node-loss" in chosen:
        done([rehearse_node_loss(api, sim=sim, namespace=ns, node=largest_node(list_nodes(api)), clock=hooks.clock,
                                 sleep=hooks.sleep)])
    if "zone-loss" in chosen:
        done(rehearse_each_zone_loss(api, sim=sim, namespace=ns, clock=hooks.clock, sleep=hooks.sleep))
    if "release-rollout" in chosen:
        objects, new_plan, source = release_rendering(params, plan, now=hooks.clock(), rendering=twin.rendering)
        release = rehearse_release(api, sim=sim, target=session.target, objects=objects, old_plan=plan,
                                   new_plan=new_plan, namespace=ns, clock=hooks.clock, sleep=hooks.sleep)
        done([_with_setting(release, "release", source)])
    if "nodepool-upgrade" in chosen:
        done([rehearse_nodepool_upgrade(session, namespace=ns, settings=params.upgrade_settings(policy),
                                        clock=hooks.clock, sleep=hooks.sleep)])
    return out


def _with_setting(r: Rehearsal, key: str, value: Any) -> Rehearsal:
    from dataclasses import replace

    return replace(r, settings={**r.settings, key: value})


# --- the sign-off --------------------------------------------------------------------------------

def judge_all(params: NotebookParams, plan: Plan, twin: Twin, usage: Usage, rehearsals: Sequence[Rehearsal], *,
              policy: Policy, started: datetime, capacity: Sequence[GateResult] | None = None) -> Signoff:
    """Every gate (the plan's, N+1 and N+zone, the live state's, the usage's, the rehearsals'),
    judged by the policy, with the headroom figures the run index charts. ``capacity`` are the
    capacity gates judged before the rehearsals changed the twin (default: judged now)."""
    from .gates import headroom_figures, judge, live_gates, plan_gates, rehearsal_gates, usage_gates
    from .records import Signoff

    gates = [*plan_gates(plan),
             *(capacity if capacity is not None else capacity_gates(twin, policy=policy)),
             *live_gates(twin.live_checks, policy=policy),
             *usage_gates(usage.frame, policy=policy, catalog=plan.catalog, terminations=usage.terminations),
             *rehearsal_gates(rehearsals, policy=policy, catalog=plan.catalog)]
    verdict, judged = judge(gates, policy=policy)
    return Signoff(verdict, judged, tuple(rehearsals), started, datetime.now(timezone.utc), inputs=params.inputs(),
                   headroom=headroom_figures(judged))


@dataclass(frozen=True)
class Result:
    """One sign-off run's records, as the notebook shows them."""

    signoff: Signoff
    usage: Usage
    twin_source: str


def run(params: NotebookParams, plan: Plan, twin: Twin, *, policy: Policy,
        progress: Callable[[str], object] = print) -> Result:
    """The capacity gates on the twin as deployed, the usage, the rehearsals, the verdict."""
    started = datetime.now(timezone.utc)
    capacity = capacity_gates(twin, policy=policy)
    usage = load_usage(params)
    rehearsals = rehearse(twin, params, plan, policy=policy, progress=progress)
    signoff = judge_all(params, plan, twin, usage, rehearsals, policy=policy, started=started, capacity=capacity)
    return Result(signoff, usage, twin.source)


def summary(params: NotebookParams, result: Result) -> dict[str, Any]:
    """What ``summary.json`` holds: ``Signoff.as_dict()`` and the parameters (the run index and
    ``eafix-capacity signoff`` read it back)."""
    return {"notebook": NOTEBOOK, **result.signoff.as_dict(),
            "parameters": {f.name: getattr(params, f.name) for f in fields(params) if f.name != "output_dir"},
            "twin": result.twin_source, "usage": result.usage.source}


def write_summary(params: NotebookParams, data: Mapping[str, Any]) -> str:
    from ..report import write_summary as write

    return str(write(params.output_dir, dict(data)))


__all__ = ["NOTEBOOK", "NotebookParams", "PLAN_FIELDS", "REHEARSALS", "REHEARSAL_FIELDS", "Result", "Twin", "Usage",
           "capacity_gates", "judge_all", "load_usage", "make_plan", "open_twin", "rehearse", "release_rendering",
           "restarted", "run", "summary", "write_summary"]
