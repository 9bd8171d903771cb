"""What notebook 03 (apply and verify) runs: its parameters, the steps, the summary.

The notebook is a parameters cell plus calls into this module and displays of what it
returns, so a papermill run, a test and a user's own script compute the same records. The
steps, in the order the notebook shows them: the target (a sim started in-process when no
context is given, else a kubeconfig context) and its identity; the plan's objects rendered
in memory; a server-side dry run per object; the apply, phase by phase, waiting for each
phase's rollout; the verify checks against the plan; ``summary.json``.

A rollout that does not finish in time, or a phase the server refuses, is a result, not a
crash: it is recorded with its lines (the scheduler's reason for a Pending pod) and verify
still runs, where the same reasons come back as FAIL checks. Secret values never reach a
record (``records.masked``), and :func:`assert_no_secret_values` checks that again before
anything is shown or written.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..errors import InputError
from ..notebookparams import NotebookParameters

if TYPE_CHECKING:  # the heavy parts (the client, the sim, pandas) load when a step runs
    import pandas as pd

    from ..inputs import PlanParams
    from ..manifests.render import RenderOptions
    from ..plan import Plan
    from ..sim.cluster import SimCluster
    from .context import Target
    from .livestate import LiveState
    from .order import Phase
    from .records import ApplyRecord
    from .verify import Check

NOTEBOOK = "03_apply_and_verify"
SIM_SPEED = 10.0
"""The in-process sim's clock runs ten times faster than the wall clock, so readiness probes
pass in seconds (as tests/cluster/test_verify_cmd.py runs it)."""
SIM_SETTLE_SECONDS = 30.0
"""Sim-clock seconds moved on after the apply: two HPA sync periods (15 s) and past the
rendering's readiness-probe delays, so the HPA has acted and its new replicas are Ready."""
MAX_TIMEOUT = 3600.0
MESH_CRD_GROUPS = ("networking.istio.io", "security.istio.io")
EXTERNAL_SECRETS_GROUP = "external-secrets.io"
OUTCOMES = ("created", "changed", "unchanged", "skipped", "pruned")
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")  # what rollout.wait_for waits for


# --- parameters (pure) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookParams(NotebookParameters):
    """The notebook's parameters, checked. ``context=""`` starts a sim in-process."""

    context: str = ""
    kubeconfig: str = ""
    yes: bool = False
    profile: str = "recommended"
    provider: str = "gke"
    node_type: str = "n2-standard-8"
    nodes: int = 0
    mesh: str = "none"
    zones: str = ""
    dry_run: bool = False
    external_secrets: bool = False
    timeout: float = 120.0
    output_dir: str = "../reports/" + NOTEBOOK

    def _check(self) -> None:
        where = "notebook parameters"
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 0:
            raise InputError("not a node count", file=where, field="nodes", value=self.nodes,
                             valid="a whole number from 1, or 0 for the plan's recommended count")
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= MAX_TIMEOUT:
            raise InputError("not a timeout in seconds", file=where, field="timeout", value=t,
                             valid=f"a number of seconds per phase, above 0 and at most {MAX_TIMEOUT:g}")
        from ..profiles import get_profile, load_profiles

        get_profile(self.profile, load_profiles(), file=where)
        if self.kubeconfig and not self.context:
            raise InputError("a kubeconfig without a context", file=where, field="kubeconfig", value=self.kubeconfig,
                             valid="set context to the kubeconfig's context to write to, or leave kubeconfig "
                                   'empty ("") to start the sim')
        if self.output_dir == "":
            raise InputError("empty output directory", file=where, field="output_dir",
                             valid="a directory for summary.json, e.g. .")
        self.plan_params()  # provider, node type name and mesh, with the plan's own messages

    @property
    def starts_sim(self) -> bool:
        return not self.context

    def plan_params(self) -> PlanParams:
        from ..inputs import PlanParams

        return PlanParams.from_notebook(profile=self.profile, provider=self.provider, node_type=self.node_type,
                                        nodes=self.nodes, mesh=self.mesh, zones=self.zones)

    def render_options(self) -> RenderOptions:
        from ..manifests.render import RenderOptions
        from ..mesh import parse_mesh
        from ..nodes import parse_provider

        return RenderOptions(mesh=parse_mesh(self.mesh), provider=parse_provider(self.provider),
                             zone_spread=bool(self.zones))


def make_plan(params: NotebookParams) -> Plan:
    """The plan the cluster is compared with (an unknown node type is refused here, naming it)."""
    from ..inputs import plan_from_params

    return plan_from_params(params.plan_params())


# --- the objects (pure) --------------------------------------------------------------------------

def select_objects(objects: Iterable[Mapping[str, Any]], *, external_secrets: bool) -> list[Mapping[str, Any]]:
    """The objects to send: without the External Secrets variant (group ``external-secrets.io``,
    which needs the operator's CRDs) unless ``external_secrets`` asks for it; then ``apply``'s
    own ``external_secrets=True`` sends it instead of the placeholder template (see
    :func:`_secrets_choice`). The one place the notebook chooses."""
    if external_secrets:
        return list(objects)
    return [o for o in objects if str(o.get("apiVersion") or "").split("/", 1)[0] != EXTERNAL_SECRETS_GROUP]


def render_objects(params: NotebookParams) -> list[Mapping[str, Any]]:
    """The plan's rendering in memory (what ``manifests generate`` would write), selected."""
    from ..manifests.workflow import build_profile

    gen = build_profile(params.profile, mesh=params.render_options().mesh, options=params.render_options())
    return select_objects(gen.objects, external_secrets=params.external_secrets)


def not_sent(objects: Iterable[Any], stopped_in: str) -> list[str]:
    """``Kind namespace/name`` of the objects in the phases after ``stopped_in``: what an apply
    that stopped there never sent."""
    from .order import phases

    names = [p.name for p in phases(objects)]
    later = names[names.index(stopped_in) + 1:] if stopped_in in names else []
    return [o.ref() for p in phases(objects) if p.name in later for o in p.objects]


def assert_no_secret_values(records: Iterable[ApplyRecord]) -> None:
    """Refuse a Secret record whose changes carry a value (``records.masked`` turns each into
    ``***``): nothing secret may reach an output cell or ``summary.json``."""
    from .records import MASK, SECRET_VALUE_ROOTS

    for r in records:
        if r.kind != "Secret":
            continue
        for c in r.changes:
            root = c.path.lstrip(".").split(".", 1)[0].split("[", 1)[0]
            if root not in SECRET_VALUE_ROOTS:
                continue
            for side in (c.before, c.after):
                values = list(side.values()) if isinstance(side, dict) else [side]
                if any(v is not None and v != MASK for v in values):
                    raise ValueError(f"{r.ref}: the change at {c.path} carries a value; records must mask them")


# --- what each step found ------------------------------------------------------------------------

@dataclass(frozen=True)
class ApplyOutcome:
    """What a dry run or an apply did: the records, and why it stopped when it did.

    ``status``: ``done``; ``refused`` (a phase the server refused: ``lines`` name each refused
    object, its file and the server's message); ``rollout-timeout`` (a phase's workloads were
    not ready in time: ``lines`` say why, one per workload); ``not-run`` (``note`` says why)."""

    dry_run: bool
    status: str
    records: tuple[ApplyRecord, ...] = ()
    phase: str | None = None
    lines: tuple[str, ...] = ()
    not_sent: tuple[str, ...] = ()
    timeout: float | None = None
    waited: tuple[str, ...] = ()
    """The phases whose workloads rolled out (those holding a Deployment, StatefulSet or DaemonSet)."""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("done", "not-run")

    def counts(self) -> dict[str, int]:
        """Records per outcome: created, changed and unchanged always, the others when present."""
        seen = Counter(r.outcome for r in self.records)
        return {k: seen.get(k, 0) for k in OUTCOMES if k in ("created", "changed", "unchanged") or seen.get(k)}

    def rollout(self) -> dict[str, Any]:
        """The rollout part of the summary: ``ready``, ``timeout`` (with the lines), ``stopped``
        (a refused phase ended the apply) or ``not waited`` (nothing was applied)."""
        base = {"phase": None, "timeout_s": self.timeout, "lines": [], "phases": list(self.waited)}
        if self.status == "rollout-timeout":
            return {**base, "outcome": "timeout", "phase": self.phase, "lines": list(self.lines)}
        if self.dry_run or self.status == "not-run":
            return {**base, "outcome": "not waited"}
        if self.status == "refused":
            return {**base, "outcome": "stopped", "phase": self.phase}
        return {**base, "outcome": "ready"}

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "status": self.status, "phase": self.phase, "lines": list(self.lines),
                "not_sent": list(self.not_sent), "note": self.note, "counts": self.counts(),
                "records": [r.as_dict() for r in self.records]}

    def text(self) -> str:
        """One line per fact, for the output cell."""
        mode = "dry run" if self.dry_run else "apply"
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items())
        head = f"{mode}: {len(self.records)} objects ({counts})"
        if self.status == "not-run":
            return f"{mode}: not run: {self.note}"
        if self.status == "done":
            workloads = sum(1 for r in self.records if r.kind in ROLLOUT_KINDS)
            waited = (f"; rollout ready: {workloads} workloads (phases {', '.join(self.waited)})"
                      if self.waited else "")
            return head + waited
        what = ("refused" if self.status == "refused"
                else f"rollout not finished within {self.timeout:g} s")
        out = [f"{head}; stopped in phase {self.phase}: {what}", *(f"  {line}" for line in self.lines)]
        if self.not_sent:
            out.append(f"  not sent: {len(self.not_sent)} objects of the later phases")
        return "\n".join(out)


def outcome_of_failure(error: Exception, objects: Sequence[Any], *, dry_run: bool,
                       records: Sequence[ApplyRecord], timeout: float | None,
                       waited: Sequence[str] = (), phase: str | None = None) -> ApplyOutcome:
    """An :class:`ApplyOutcome` for an apply that stopped with ``error`` (an ``ApplyFailed``, or a
    ``RolloutTimeout`` in ``phase``), given the records sent until then (pure)."""
    from .applyerrors import ApplyFailed
    from .rollout import RolloutTimeout

    if isinstance(error, RolloutTimeout):
        where = phase or ""
        return ApplyOutcome(dry_run, "rollout-timeout", tuple(records), phase, error.lines,
                            tuple(not_sent(objects, where)), error.timeout, tuple(waited))
    if isinstance(error, ApplyFailed):
        return ApplyOutcome(dry_run, "refused", tuple(records), error.phase, tuple(f.line() for f in error.failures),
                            tuple(not_sent(objects, error.phase)), timeout, tuple(waited))
    raise TypeError(f"not an apply failure: {type(error).__name__}")


def overall(checks: Iterable[Check], *outcomes: ApplyOutcome) -> str:
    """FAIL when a check fails or the dry run or apply stopped (a refused phase, a rollout
    timeout); else the worst check."""
    from .verify import worst

    result = worst(checks)
    return "FAIL" if not all(o.ok for o in outcomes) else result


# --- tables (pure) -------------------------------------------------------------------------------

RECORD_COLUMNS = ("phase", "kind", "object", "outcome", "changed", "note")
CHECK_COLUMNS = ("status", "name", "subject", "expected", "actual", "evidence")


def records_frame(records: Iterable[ApplyRecord]) -> pd.DataFrame:
    """One row per object: phase, kind, namespace/name, outcome, the changed paths, the note."""
    import pandas as pd

    rows = [{"phase": r.phase, "kind": r.kind, "object": f"{r.namespace}/{r.name}" if r.namespace else r.name,
             "outcome": r.outcome, "changed": ", ".join(r.diff), "note": r.note} for r in records]
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def outcomes_frame(records: Iterable[ApplyRecord]) -> pd.DataFrame:
    """Objects per phase (in apply order) and outcome."""
    import pandas as pd

    per: dict[str, Counter[str]] = {}
    for r in records:
        per.setdefault(r.phase, Counter())[r.outcome] += 1
    seen = [o for o in OUTCOMES if any(c.get(o) for c in per.values())]
    rows = [{"phase": p, **{o: c.get(o, 0) for o in seen}, "objects": sum(c.values())} for p, c in per.items()]
    return pd.DataFrame(rows, columns=["phase", *seen, "objects"])


def checks_frame(checks: Iterable[Check], *, passing: bool = True) -> pd.DataFrame:
    """The checks with their evidence, FAIL first, then WARN, then PASS (verify's order inside
    each); ``passing=False`` leaves the PASS ones out."""
    import pandas as pd

    rank = {"FAIL": 0, "WARN": 1, "PASS": 2}
    rows = sorted((c.as_dict() for c in checks if passing or c.status != "PASS"), key=lambda d: rank[d["status"]])
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS))


def checks_line(checks: Sequence[Check], *outcomes: ApplyOutcome) -> str:
    """``N checks: P PASS, W WARN, F FAIL; overall: R`` (R counts a stopped dry run or apply as FAIL)."""
    seen = Counter(c.status for c in checks)
    line = (f"{len(checks)} checks: {seen.get('PASS', 0)} PASS, {seen.get('WARN', 0)} WARN, "
            f"{seen.get('FAIL', 0)} FAIL; overall: {overall(checks, *outcomes)}")
    stopped = [f"the {'dry run' if o.dry_run else 'apply'} stopped in phase {o.phase}" for o in outcomes if not o.ok]
    return line + (f" ({'; '.join(stopped)})" if stopped else "")


def check_counts(checks: Iterable[Check]) -> pd.DataFrame:
    """PASS, WARN and FAIL per check name, in verify's order."""
    import pandas as pd

    per: dict[str, Counter[str]] = {}
    for c in checks:
        per.setdefault(c.name, Counter())[c.status] += 1
    rows = [{"check": n, "PASS": c.get("PASS", 0), "WARN": c.get("WARN", 0), "FAIL": c.get("FAIL", 0)}
            for n, c in per.items()]
    return pd.DataFrame(rows, columns=["check", "PASS", "WARN", "FAIL"])


# --- the summary (pure) --------------------------------------------------------------------------

def target_dict(target: Target) -> dict[str, Any]:
    return {"context": target.context, "cluster": target.cluster, "server": target.server, "user": target.user,
            "namespace": target.namespace, "identity": target.identity, "is_sim": target.is_sim,
            "auth": target.auth}


def summary(params: NotebookParams, plan: Plan, target: Target, *, objects: int, dry: ApplyOutcome,
            applied: ApplyOutcome, checks: Sequence[Check], started_sim: bool) -> dict[str, Any]:
    """What ``summary.json`` holds: the target, the plan, the dry run's and the apply's records
    (``ApplyRecord.as_dict``), the rollout outcome, the checks (``Check.as_dict``) and the result."""
    assert_no_secret_values([*dry.records, *applied.records])
    seen = Counter(c.status for c in checks)
    return {
        "notebook": NOTEBOOK,
        "parameters": {f.name: getattr(params, f.name) for f in fields(params) if f.name != "output_dir"},
        "target": {**target_dict(target), "started_sim": started_sim},
        "plan": {"profile": plan.profile.name, "provider": plan.options.provider, "node_type": plan.node_type.name,
                 "nodes": plan.nodes, "mesh": plan.options.mesh},
        "objects": objects,
        "dry_run": dry.as_dict(),
        "apply": applied.as_dict(),
        "rollout": applied.rollout(),
        "checks": [c.as_dict() for c in checks],
        "counts": {s: seen.get(s, 0) for s in ("PASS", "WARN", "FAIL")},
        "result": overall(checks, dry, applied),
    }


def write_summary(params: NotebookParams, data: Mapping[str, Any]) -> str:
    from ..report import write_summary as write

    return str(write(params.output_dir, dict(data)))


# --- the steps that talk to a cluster ------------------------------------------------------------

@dataclass
class Session:
    """The cluster the notebook writes to: the target, the official client for it, and the sim
    when the notebook started one (stopped by :meth:`close`)."""

    target: Target
    api: Any
    sim: SimCluster | None = None
    sim_notes: tuple[str, ...] = ()
    closed: bool = field(default=False, init=False)

    @property
    def started_sim(self) -> bool:
        return self.sim is not None

    def describe(self) -> str:
        from .context import describe

        return "\n".join([describe(self.target), *self.sim_notes])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.api.close()
        finally:
            if self.sim is not None:
                self.sim.stop()


def open_session(params: NotebookParams, plan: Plan) -> Session:
    """Load ``params.context`` from the kubeconfig, or start a sim shaped like the plan (its node
    type, count and provider, the mesh's node agents) on a fast clock from the trading-day
    morning; with the mesh, the sim gets the Istio CRDs an Istio install brings (stand-ins)."""
    from .context import load_target

    if not params.starts_sim:
        target, api = load_target(kubeconfig=params.kubeconfig or None, context=params.context)
        return Session(target, api)
    from ..sim.clock import TRADING_DAY_START
    from ..sim.cluster import SimCluster

    sim = SimCluster(node_type=plan.node_type.name, nodes=plan.nodes, provider=plan.options.provider,
                     zones=plan.zoning.names if plan.zoning is not None else None,
                     mesh=plan.options.mesh, speed=SIM_SPEED, clock_start=TRADING_DAY_START)
    sim.start()
    try:
        target, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
        notes = [f"sim started in-process: {plan.nodes} x {plan.node_type.name} ({plan.options.provider}), "
                 f"clock x{SIM_SPEED:g} from {TRADING_DAY_START:%Y-%m-%d %H:%M} UTC; stopped at the end"]
        session = Session(target, api, sim)
        if plan.options.mesh == "istio":
            crds = install_mesh_crds(session)
            notes.append(f"Istio stand-in CRDs installed in the sim (as istioctl install would): {len(crds)}")
        session.sim_notes = tuple(notes)
        return session
    except BaseException:
        sim.stop()
        raise


def install_mesh_crds(session: Session) -> list[ApplyRecord]:
    """The Istio kinds the rendering's ``istio/`` objects need, on the sim only."""
    from ..manifests.crds import stand_in_crds
    from .apply import apply

    if session.sim is None:
        raise ValueError("stand-in CRDs go to the sim only; a real cluster gets Istio's own")
    return list(apply(stand_in_crds(groups=MESH_CRD_GROUPS), api_client=session.api, target=session.target,
                      dry_run=False, context_given=True))


def _secrets_choice(params: NotebookParams | None) -> dict[str, Any]:
    """``apply``'s ``external_secrets=True`` when the notebook asks for the variant (left out
    otherwise, so the apply without the secrets options still takes these calls)."""
    return {"external_secrets": True} if params is not None and params.external_secrets else {}


def dry_run(session: Session, objects: Sequence[Any], *, params: NotebookParams | None = None) -> ApplyOutcome:
    """The server-side dry run (``dryRun=All``) of every object; a refused phase is recorded."""
    from .apply import apply
    from .applyerrors import ApplyFailed

    try:
        records = apply(objects, api_client=session.api, target=session.target, dry_run=True,
                        **_secrets_choice(params))
    except ApplyFailed as e:
        return outcome_of_failure(e, objects, dry_run=True, records=e.records, timeout=None)
    return ApplyOutcome(True, "done", tuple(records))


def apply_and_wait(session: Session, objects: Sequence[Any], *, params: NotebookParams, dry: ApplyOutcome,
                   progress: bool = True,
                   waiter_factory: Callable[..., Callable[[Phase, Sequence[ApplyRecord]], None]] | None = None,
                   ) -> ApplyOutcome:
    """The real apply, waiting after each phase for its workloads (``params.timeout`` each, a
    progress bar per phase). Not run for ``dry_run`` or when the dry run was refused. A
    ``RolloutTimeout`` or a refused phase stops the apply (nothing of a later phase is sent)
    and is returned as the outcome, with the records of what was sent."""
    from .apply import apply
    from .applyerrors import ApplyFailed
    from .rollout import RolloutTimeout, waiter

    if params.dry_run:
        return ApplyOutcome(False, "not-run", note="dry_run is set: nothing was applied", timeout=params.timeout)
    if not dry.ok:
        return ApplyOutcome(False, "not-run", note=f"the dry run was refused in phase {dry.phase}",
                            timeout=params.timeout)
    wait = (waiter_factory or waiter)(session.api, timeout=params.timeout, progress=progress)
    sent: list[ApplyRecord] = []
    waited: list[str] = []
    current: list[str] = []

    def after_phase(phase: Phase, records: Sequence[ApplyRecord]) -> None:
        sent.extend(records)
        current[:] = [phase.name]
        wait(phase, records)
        if any(r.kind in ROLLOUT_KINDS for r in records):
            waited.append(phase.name)

    try:
        records = apply(objects, api_client=session.api, target=session.target, dry_run=False,
                        context_given=True, yes=params.yes, after_phase=after_phase, **_secrets_choice(params))
    except RolloutTimeout as e:
        return outcome_of_failure(e, objects, dry_run=False, records=sent, timeout=params.timeout, waited=waited,
                                  phase=current[0] if current else None)
    except ApplyFailed as e:
        return outcome_of_failure(e, objects, dry_run=False, records=e.records, timeout=params.timeout,
                                  waited=waited)
    return ApplyOutcome(False, "done", tuple(records), timeout=params.timeout, waited=tuple(waited))


def settle(session: Session) -> str:
    """On the sim the notebook started: let the controllers finish and move the sim clock on by
    :data:`SIM_SETTLE_SECONDS` (the HPA's next syncs, the new replicas' probes) instead of waiting
    for them; returns what was done, for the output cell. A real cluster is left alone: verify
    reads it as it is (right after an apply, an HPA that has not synced yet reports the
    replicas it saw before scaling)."""
    from ..errors import ClusterError

    sim = session.sim
    if sim is None or sim.clock is None:
        return "not the sim the notebook started: verify reads the cluster as it is"
    try:
        sim.settle()
        sim.clock.advance(SIM_SETTLE_SECONDS)
        sim.settle()
    except ClusterError as e:  # controllers still busy (pods that fit nowhere are retried): verify reads as is
        return f"sim: clock moved on {SIM_SETTLE_SECONDS:g} s; {e}"
    return f"sim: clock moved on {SIM_SETTLE_SECONDS:g} s and the controllers settled"


@dataclass(frozen=True)
class Verified:
    live: LiveState
    checks: tuple[Check, ...]


def verify_live(session: Session, plan: Plan, params: NotebookParams) -> Verified:
    """Read the live state once and compare it with the plan (verify's checks)."""
    from .verify import verify
    from .verifycmd import read_live

    live = read_live(session.api, session.target)
    return Verified(live, tuple(verify(live, plan, options=params.render_options())))


__all__ = ["ApplyOutcome", "NotebookParams", "Session", "Verified", "apply_and_wait", "assert_no_secret_values",
           "check_counts", "checks_frame", "checks_line", "dry_run", "make_plan", "not_sent", "open_session", "outcomes_frame",
           "overall", "records_frame", "render_objects", "select_objects", "settle", "summary", "verify_live",
           "write_summary"]
