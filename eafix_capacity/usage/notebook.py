"""What notebook 04 (utilisation and right-sizing) runs: its parameters, the steps, the summary.

The notebook closes the loop plan -> deploy -> observe -> re-plan, and is a parameters cell
plus calls into this module, so a papermill run, a test and a user's own script compute the
same records. The steps, in the order the notebook shows them: the target (with no context,
a sim started in-process with the plan's rendering applied, its clock frozen and moved on by
the sampler itself, so a trading day of rounds takes seconds); sampling with the chosen
source into a run directory's store (or a Prometheus read); the charts and the kube-capacity
table over the samples; the recommendations of the chosen strategy and the plan's node count
on the recommended catalogue; ``summary.json``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import InputError
from ..notebookparams import NotebookParameters

if TYPE_CHECKING:  # the heavy parts (the client, the sim, pandas) load when a step runs
    import pandas as pd

    from ..cluster.notebook import Session
    from ..inputs import PlanParams
    from ..plan import Plan
    from ..sim.hooks import ClockHooks
    from .kubectltop import Round, SampleRun
    from .recommend import Recommendation, Replan, SessionWindow
    from .samples import NodeSample, Termination
    from .tables import Allocatable

NOTEBOOK = "04_utilisation"
SOURCES = ("kubectl-top", "metrics-api", "prometheus")
STRATEGIES = ("simple", "session-peak", "vpa")
MAX_DURATION = 14 * 86400.0
WHERE = "notebook parameters"


# --- parameters (pure) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookParams(NotebookParameters):
    """The notebook's parameters, checked. ``context=""`` starts a sim in-process."""

    context: str = ""
    kubeconfig: str = ""
    namespace: str = "eafix-trading"
    source: str = "metrics-api"
    prometheus_url: str = ""
    prometheus_end: str = ""
    interval: float = 840.0
    duration: float = 86400.0
    strategy: str = "simple"
    window: str = "london,new_york"
    service: str = "execution-engine"
    usage_model: str = ""
    profile: str = "recommended"
    node_type: str = "n2-standard-8"
    output_dir: str = "../reports/" + NOTEBOOK

    def _check(self) -> None:
        if self.source not in SOURCES:
            raise InputError("unknown source", file=WHERE, field="source", value=self.source,
                             valid="one of: " + ", ".join(SOURCES))
        if self.source == "prometheus" and not self.prometheus_url:
            raise InputError("source prometheus without a URL", file=WHERE, field="prometheus_url", value="",
                             valid="the Prometheus to read, e.g. http://127.0.0.1:9090")
        if self.prometheus_url and self.source != "prometheus":
            raise InputError("a Prometheus URL is read only with source prometheus", file=WHERE,
                             field="prometheus_url", value=self.prometheus_url,
                             valid='set source = "prometheus", or leave prometheus_url empty ("")')
        if self.prometheus_end:
            if self.source != "prometheus":
                raise InputError("a window's end is read only with source prometheus", file=WHERE,
                                 field="prometheus_end", value=self.prometheus_end,
                                 valid='set source = "prometheus", or leave prometheus_end empty ("")')
            self.window_end()
        if self.strategy not in STRATEGIES:
            raise InputError("unknown strategy", file=WHERE, field="strategy", value=self.strategy,
                             valid="one of: " + ", ".join(STRATEGIES))
        from .kubectltop import MIN_INTERVAL

        for name, low in (("interval", MIN_INTERVAL), ("duration", MIN_INTERVAL)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not low <= v <= MAX_DURATION:
                raise InputError("not a number of seconds", file=WHERE, field=name, value=v,
                                 valid=f"seconds from {low:g} to {MAX_DURATION:g} (14 days)")
        if self.source != "prometheus" and self.interval > self.duration:
            raise InputError("the interval is longer than the duration", file=WHERE, field="interval",
                             value=self.interval, valid=f"at most the duration ({self.duration:g} s)")
        if self.kubeconfig and not self.context:
            raise InputError("a kubeconfig without a context", file=WHERE, field="kubeconfig", value=self.kubeconfig,
                             valid='set context to the kubeconfig\'s context, or leave kubeconfig empty ("") '
                                   "to start the sim")
        if self.usage_model and self.context:
            raise InputError("a usage model is the sim's: a real cluster's usage is its own", file=WHERE,
                             field="usage_model", value=self.usage_model,
                             valid='leave usage_model empty ("") with a context, or the context empty for the sim')
        if self.usage_model:
            from ..sim.usage_model import load_usage_model

            try:
                load_usage_model(self.usage_model)
            except InputError as e:  # its own message names the file, the service and the field
                raise InputError(f"not a usage model ({e})", file=WHERE, field="usage_model",
                                 value=self.usage_model,
                                 valid="a usage-model YAML like data/usage-model.yaml") from e
        if not self.namespace:
            raise InputError("empty namespace", file=WHERE, field="namespace", valid="e.g. eafix-trading")
        if self.output_dir == "":
            raise InputError("empty output directory", file=WHERE, field="output_dir",
                             valid="a directory for summary.json, e.g. .")
        self.session_window()
        from ..profiles import get_profile, load_profiles

        get_profile(self.profile, load_profiles(), file=WHERE)
        self.plan_params()
        from ..catalog import load_catalog

        names = [s.name for s in load_catalog().services]
        if self.service not in names:
            raise InputError("not a service of the catalogue", file=WHERE, field="service", value=self.service,
                             valid="one of: " + ", ".join(names))

    def window_end(self) -> datetime | None:
        """The end of the Prometheus window read (None: now), so a report can be re-run on the same
        history; an ISO 8601 time with its UTC offset."""
        if not self.prometheus_end:
            return None
        try:
            end = datetime.fromisoformat(self.prometheus_end)
        except ValueError:
            end = None
        if end is None or end.tzinfo is None:
            raise InputError("not an ISO 8601 time with its UTC offset", file=WHERE, field="prometheus_end",
                             value=self.prometheus_end, valid='e.g. "2026-01-14T16:00:00Z", or "" for now')
        return end.astimezone(timezone.utc)

    @property
    def starts_sim(self) -> bool:
        return not self.context and self.source != "prometheus"

    def session_window(self) -> SessionWindow:
        """The hours ``session-peak`` reads (parsed for every strategy, so a typo fails here)."""
        from .recommend import parse_window

        return parse_window(self.window, source="window")

    def plan_params(self) -> PlanParams:
        from ..inputs import PlanParams

        return PlanParams.from_notebook(profile=self.profile, provider="gke", node_type=self.node_type, nodes=0,
                                        mesh="none")


def make_plan(params: NotebookParams) -> Plan:
    """The plan deployed on the sim and re-run on the recommended catalogue."""
    from ..inputs import plan_from_params

    return plan_from_params(params.plan_params())


def rounds_planned(params: NotebookParams) -> int:
    """Sampling rounds the run takes (pure): one per ``interval`` within ``duration``."""
    from .kubectltop import check_schedule

    return check_schedule(interval=params.interval, duration=params.duration, samples=None)


# --- the target ----------------------------------------------------------------------------------

def open_target(params: NotebookParams, plan: Plan) -> Session | None:
    """The kubeconfig context, or a sim shaped like the plan (frozen clock from the trading-day
    morning, the usage model of ``params.usage_model``); None for a Prometheus read."""
    from ..cluster.context import load_target
    from ..cluster.notebook import Session
    from ..signoff.twin import start_plan_sim

    if params.source == "prometheus":
        return None
    if not params.starts_sim:
        target, api = load_target(kubeconfig=params.kubeconfig or None, context=params.context)
        return Session(target, api)
    return start_plan_sim(plan, usage_model=params.usage_model or None, clock_note="moved on by the sampler")


def describe(session: Session | None, params: NotebookParams) -> str:
    if session is None:
        end = params.window_end()
        ending = f"ending {end:%Y-%m-%d %H:%M:%S} UTC" if end else "ending now"
        return (f"Prometheus {params.prometheus_url}: {params.duration:g} s of history {ending} "
                f"(namespace {params.namespace}); no cluster is contacted")
    return session.describe()


def deploy(session: Session, params: NotebookParams) -> str:
    """On the sim the notebook started: apply the plan's rendering (notebook 03's objects) in the
    seed's phase order, and move the clock on by ``signoff.twin.PLAN_SETTLE_SECONDS`` (past the
    readiness-probe delays and metrics-server's first scrape); a real cluster is
    sampled as it runs. Each call sends at most one workload and the controllers settle before the next:
    the sim names pods from its seeded generator in the order they are made, and the usage
    model's noise is keyed by pod name, so the same plan gives the same pods and figures."""
    from ..cluster import notebook as nb03
    from ..cluster.records import ApplyRecord
    from ..errors import ClusterError
    from ..signoff.twin import deploy_plan

    sim = session.sim
    if sim is None or sim.clock is None:
        return "not the sim the notebook started: sampled as it runs"
    objects = nb03.render_objects(nb03.NotebookParams(profile=params.profile, node_type=params.node_type))
    records: list[ApplyRecord] = []
    try:
        return deploy_plan(session, objects, profile=params.profile, records=records)  # as the sign-off's twin
    except ClusterError as e:
        return f"applied {len(records)} objects; {e}"


# --- sampling ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sampled:
    """What the sampling step kept: the run (None for Prometheus), the store's directory, notes."""

    run: SampleRun | None
    directory: str
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        if self.run is None:
            return "; ".join(self.notes)
        r = self.run
        stopped = " (interrupted: every complete round is kept)" if r.interrupted else ""
        span = (f" from {r.started:%Y-%m-%d %H:%M} to {r.finished:%Y-%m-%d %H:%M} UTC"
                if r.started and r.finished else "")
        return f"{r.rounds} rounds, {r.samples} samples ({r.missing} missing){span}{stopped}"


def run_directory(params: NotebookParams) -> Path:
    return Path(params.output_dir) / "samples"


def sim_clock_hooks(session: Session) -> ClockHooks:
    """``clock`` and ``sleep`` for a sampler on the sim the session started."""
    from ..sim.hooks import sim_clock_hooks as hooks

    assert session.sim is not None
    return hooks(session.sim)


def sample(session: Session | None, params: NotebookParams, *, quiet: bool = False) -> Sampled:
    """Take the rounds into the run directory's store, one transaction per round (a Prometheus
    read is one append). On the sim the store is emptied first: the pods are new each run."""
    from .store import FILENAME, UsageStore

    directory = run_directory(params)
    if session is None:
        from .prometheus import read_prometheus

        result = read_prometheus(params.prometheus_url, window=timedelta(seconds=params.duration),
                                 end=params.window_end(), namespace=params.namespace)
        with UsageStore.open(directory, create=True) as store:
            store.append_round(result.samples, terminations=result.terminations)
        return Sampled(None, str(directory), (f"{len(result.samples)} samples from {params.prometheus_url}",
                                              *result.warnings))
    if session.sim is not None:
        for suffix in ("", "-wal", "-shm"):
            (directory / (FILENAME + suffix)).unlink(missing_ok=True)
    from ..sim.hooks import wall_clock_hooks

    hooks = sim_clock_hooks(session) if session.sim is not None else wall_clock_hooks()
    with UsageStore.open(directory, create=True) as store:
        def on_round(r: Round) -> None:
            store.append_round(r.samples, node_samples=r.nodes, terminations=r.terminations)

        if params.source == "metrics-api":
            from .metricsapi import sample_metrics_api

            run = sample_metrics_api(session.api, context=session.target.context, on_round=on_round,
                                     namespace=params.namespace, interval=params.interval, duration=params.duration,
                                     quiet=quiet, clock=hooks.clock, sleep=hooks.sleep)
        else:
            from .kubectltop import sample_kubectl_top

            kubeconfig = str(session.sim.kubeconfig) if session.sim is not None else (params.kubeconfig or None)
            run = sample_kubectl_top(context=session.target.context, kubeconfig=kubeconfig, on_round=on_round,
                                     namespace=params.namespace, interval=params.interval, duration=params.duration,
                                     quiet=quiet, clock=hooks.clock, sleep=hooks.sleep)
    return Sampled(run, str(directory))


@dataclass(frozen=True)
class Observed:
    """The samples as the analysis reads them."""

    frame: pd.DataFrame
    nodes: list[NodeSample]
    terminations: list[Termination]
    allocatable: dict[str, Allocatable]


def load(sampled: Sampled, session: Session | None) -> Observed:
    """The store's frame, node samples and terminations, and the nodes' allocatable (read once;
    none for a Prometheus read)."""
    from .store import UsageStore
    from .tables import parse_allocatable

    with UsageStore.open(sampled.directory, create=False) as store:
        frame, nodes, terminations = store.frame(), store.node_samples(), store.terminations()
    allocatable: dict[str, Allocatable] = {}
    if session is not None:
        from ..cluster.rest import list_items

        items = list_items(session.api, "/api/v1/nodes", "Node", timeout=30.0)
        allocatable = parse_allocatable({n["metadata"]["name"]: (n.get("status") or {}).get("allocatable") or {}
                                         for n in items})
    return Observed(frame, nodes, terminations, allocatable)


def oom_kills(terminations: Sequence[Termination]) -> dict[str, int]:
    """OOM kills seen per ``workload/container`` (pure)."""
    from .strategies.common import workload_of

    out: dict[str, int] = {}
    for t in terminations:
        if t.reason == "OOMKilled":
            key = f"{workload_of(t.service, t.pod)}/{t.container}"
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def oom_line(terminations: Sequence[Termination]) -> str:
    kills = oom_kills(terminations)
    if not kills:
        return "no OOM kills"
    return f"{sum(kills.values())} OOM kills: " + ", ".join(f"{k} x{n}" for k, n in kills.items())


# --- right-sizing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RightSized:
    recommendations: tuple[Recommendation, ...]
    replan: Replan
    window: str
    changes: int


def right_size(observed: Observed, params: NotebookParams, plan_params: PlanParams | None = None) -> RightSized:
    """The strategy's recommendations (the catalogue's HPAs flagged) and the plan re-run on the
    recommended catalogue."""
    from ..catalog import load_catalog
    from .recommend import ALL_HOURS, recommended_catalog, replan
    from .strategies import Settings, hpa_from_catalog, recommend

    catalog = load_catalog()
    window = params.session_window() if params.strategy == "session-peak" else ALL_HOURS
    recs = recommend(observed.frame, observed.terminations, strategy=params.strategy,
                     settings=Settings(hpa=hpa_from_catalog(catalog), window=window))
    new = recommended_catalog(catalog, recs, strategy=params.strategy, window=window.label)
    return RightSized(tuple(recs), replan(plan_params or params.plan_params(), new.catalog), window.label,
                      len(new.changes))


# --- the summary (pure) --------------------------------------------------------------------------

def summary(params: NotebookParams, *, target: Mapping[str, Any], sampled: Sampled, observed: Observed,
            sized: RightSized) -> dict[str, Any]:
    """What ``summary.json`` holds: the parameters, the target, the counts (rounds, samples,
    missing, per-source, OOM kills), the recommendations (``as_json``) and the node counts."""
    from .recommend import as_json

    run = sampled.run
    kills = oom_kills(observed.terminations)
    frame = observed.frame
    return {
        "notebook": NOTEBOOK,
        "parameters": {f.name: getattr(params, f.name) for f in fields(params) if f.name != "output_dir"},
        "target": dict(target),
        "counts": {
            "rounds": run.rounds if run else None,
            "rounds_planned": rounds_planned(params) if run else None,
            "samples": run.samples if run else len(frame),
            "missing": run.missing if run else int(frame["cpu_m"].isna().sum()),
            "stored_samples": len(frame),
            "node_samples": len(observed.nodes),
            "terminations": len(observed.terminations),
            "oom_kills": sum(kills.values()),
        },
        "oom_kills": kills,
        "strategy": params.strategy,
        "window": sized.window,
        **as_json(sized.recommendations),
        "nodes": sized.replan.to_dict(),
        "catalogue_changes": sized.changes,
    }


def target_dict(session: Session | None, params: NotebookParams) -> dict[str, Any]:
    if session is None:
        return {"prometheus": params.prometheus_url, "is_sim": False, "started_sim": False}
    t = session.target
    return {"context": t.context, "server": t.server, "identity": t.identity, "is_sim": t.is_sim,
            "started_sim": session.started_sim}


def write_summary(params: NotebookParams, data: Mapping[str, Any]) -> str:
    from ..report import write_summary as write

    return str(write(params.output_dir, dict(data)))


__all__ = ["NOTEBOOK", "NotebookParams", "Observed", "RightSized", "Sampled", "deploy", "describe", "load",
           "make_plan", "oom_kills", "oom_line", "open_target", "right_size", "rounds_planned", "run_directory",
           "sample", "sim_clock_hooks", "summary", "target_dict", "write_summary"]
