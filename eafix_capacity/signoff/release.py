"""Release rehearsal on the twin: apply a new rendering and watch every rollout finish under the quota.

A new EAFIX release reaches the cluster as a new rendering (a changed catalogue rendered by the
kit, or someone's changed manifest directory). Before it reaches production the sign-off applies
it to the twin the way ``eafix-capacity apply`` applies it (server-side apply, phase by phase,
:func:`eafix_capacity.cluster.apply.apply`), waits for each phase's rollouts
(:func:`eafix_capacity.cluster.rollout.wait_for`) on the twin's clock, and records what the
services kept Ready while the Deployments surged. The namespace's ResourceQuota admits each pod
as kube-apiserver's quota admission does, so a surge the quota cannot hold is refused
(``exceeded quota``) and that rollout never finishes: the rehearsal is then ``completed=False``
naming the workload and the quota's refusal.

The evidence carries the old and new plans side by side (:func:`compare_plans`, pure): per
service replicas, requests and limits, and the nodes each scenario needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..cluster.applyerrors import ApplyFailed
from ..cluster.rollout import RolloutTimeout, refs_of_records, wait_for
from ..errors import InputError
from ..plan import Plan, service_table
from .observe import (desired_replicas, list_nodes, list_pods, min_ready, observation_of, read_pdbs,
                      read_workloads, required_ready)
from .records import Observation, Rehearsal

if TYPE_CHECKING:
    from ..cluster.context import Target
    from ..inputs import PlanParams
    from ..sim.cluster import SimCluster

Clock = Callable[[], datetime]
Sleep = Callable[[float], object]

DEFAULT_TIMEOUT_SECONDS = 600.0
"""Per phase: a Deployment's default progressDeadlineSeconds."""
DEFAULT_STEP_SECONDS = 10.0
SERVICE_FIELDS = ("replicas", "hpa_max", "cpu_request_m", "cpu_limit_m", "memory_request_bytes",
                  "memory_limit_bytes", "total_cpu_request_m", "total_memory_request_bytes")


# --- the new rendering ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Release:
    """A rendering to release: its objects (mappings, or loaded objects that keep file and
    document) and the plan of the catalogue it came from."""

    objects: tuple[Any, ...]
    plan: Plan
    source: str


def release_objects(*, catalog: str | Path | None = None, manifests: str | Path | None = None,
                    params: PlanParams | None = None, external_secrets: bool = False) -> Release:
    """The new rendering and its plan, from exactly one of: a catalogue file (rendered by the kit
    with ``params``' profile, provider and mesh, as ``manifests generate`` would) or a manifest
    directory (read as ``kubectl apply -f DIR`` reads it; its plan imported from it)."""
    from dataclasses import replace

    from ..inputs import PlanParams, plan_from_params

    if (catalog is None) == (manifests is None):
        raise InputError("give exactly one of catalog and manifests", field="catalog/manifests",
                         value={"catalog": catalog, "manifests": manifests},
                         valid="a services.yaml catalogue or a manifest directory")
    base = params or PlanParams()
    if catalog is not None:
        from ..catalog import load_catalog
        from ..cluster.notebook import select_objects
        from ..manifests.render import RenderOptions
        from ..manifests.workflow import build
        from ..profiles import get_profile, load_profiles

        cat = load_catalog(catalog)
        plan = plan_from_params(replace(base, catalog=str(catalog), manifests=None), catalog=cat)
        gen = build(cat, get_profile(base.profile, load_profiles()),
                    RenderOptions(mesh=base.mesh, provider=base.provider))
        rendered = tuple(select_objects(gen.objects, external_secrets=external_secrets))
        return Release(rendered, plan, f"catalogue {catalog}")
    from ..manifests.load import load_manifests

    from ..cluster.notebook import EXTERNAL_SECRETS_GROUP

    loaded = load_manifests(str(manifests))
    plan = plan_from_params(replace(base, catalog=None, manifests=str(manifests)))
    # as the notebooks do: the External Secrets variant (it needs the operator's CRDs) only when asked for
    objects = tuple(o for o in loaded.objects if external_secrets or
                    str(o.obj.get("apiVersion") or "").split("/", 1)[0] != EXTERNAL_SECRETS_GROUP)
    return Release(objects, plan, f"manifests {manifests}")


# --- the plans side by side (pure) ---------------------------------------------------------------

def _row(section: str, name: str, field: str, old: Any, new: Any) -> dict[str, Any]:
    return {"section": section, "name": name, "field": field, "old": old, "new": new, "changed": old != new}


def compare_plans(old: Plan, new: Plan) -> list[dict[str, Any]]:
    """The old and new plans side by side, one row per figure (``section`` service, scenario or
    cluster; ``name``; ``field``; ``old``; ``new``; ``changed``): per service its replicas, HPA
    maximum, requests and limits per pod and its baseline totals (None where a plan lacks the
    service); per scenario the nodes it needs; the cluster's node count (pure)."""
    old_rows = {r["service"]: r for r in service_table(old)}
    new_rows = {r["service"]: r for r in service_table(new)}
    rows = []
    for svc in [*old_rows, *(s for s in new_rows if s not in old_rows)]:
        o, n = old_rows.get(svc) or {}, new_rows.get(svc) or {}
        rows += [_row("service", svc, f, o.get(f), n.get(f)) for f in SERVICE_FIELDS]
    for scen in [*old.scenarios, *(s for s in new.scenarios if s not in old.scenarios)]:
        o_s, n_s = old.scenarios.get(scen), new.scenarios.get(scen)
        rows.append(_row("scenario", scen, "nodes_needed", o_s.nodes_needed if o_s else None,
                         n_s.nodes_needed if n_s else None))
    rows.append(_row("cluster", "nodes", "nodes", old.nodes, new.nodes))
    rows.append(_row("cluster", "nodes", "recommended_nodes", old.recommended_nodes, new.recommended_nodes))
    return rows


def replica_failures(workloads: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``Kind namespace/name`` (as the rollout wait names it) -> the message of its ReplicaFailure
    condition (a pod the API refused: the quota's ``exceeded quota: ...``), as the deployment
    controller copies it from its new ReplicaSet (pure)."""
    out = {}
    for w in workloads:
        meta = w.get("metadata") or {}
        for c in (w.get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
                out[f"{w.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name')}"] = \
                    str(c.get("message") or "")
    return out


# --- the rehearsal -------------------------------------------------------------------------------

def rehearse_release(api_client: Any, *, sim: SimCluster | None, target: Target, objects: Sequence[Any],
                     old_plan: Plan, new_plan: Plan, namespace: str, clock: Clock, sleep: Sleep,
                     timeout: float = DEFAULT_TIMEOUT_SECONDS, step: float = DEFAULT_STEP_SECONDS) -> Rehearsal:
    """Apply ``objects`` to the twin (``target`` through ``api_client``; the sim is not touched
    otherwise) and wait up to ``timeout`` seconds per phase for its rollouts, observing the
    namespace at every poll. ``completed`` when every phase was accepted and rolled out."""
    objects = list(objects)
    if not objects:
        raise InputError("an empty rendering: nothing to release", field="objects", value=[],
                         valid="the objects of a catalogue's rendering or a manifest directory (release_objects)")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InputError("must be a number of seconds above 0", field="timeout", value=timeout, valid="e.g. 600")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
        raise InputError("must be a number of seconds above 0", field="step", value=step, valid="e.g. 10")
    from ..cluster.apply import apply

    observations: list[Observation] = []
    started = clock()

    def look(action: str) -> None:
        observations.append(observation_of(list_nodes(api_client), list_pods(api_client, namespace=namespace),
                                           at=clock(), step=len(observations), action=action,
                                           services=services))

    services = tuple(desired_replicas(read_workloads(api_client, namespace=namespace)))
    look("before: the old rendering")
    phase_name = [""]

    def observed_sleep(seconds: float) -> None:
        sleep(seconds)
        look(f"rollout {phase_name[0]}: {(clock() - started).total_seconds():g} s after the first object was sent")

    sent: list[Any] = []  # the records of the phases applied, kept when a rollout wait stops the apply

    def after_phase(phase: Any, records: Sequence[Any]) -> None:
        sent.extend(records)
        phase_name[0] = str(getattr(phase, "name", phase))
        wait_for(api_client, refs_of_records(records), timeout=timeout, progress=False, poll_interval=step,
                 desc=f"rollout {phase_name[0]}", clock=lambda: clock().timestamp(), sleep=observed_sleep)

    records: list[Any] = []
    completed, lines = False, []
    head = ""
    try:
        records = apply(objects, api_client=api_client, target=target, dry_run=False, context_given=True,
                        after_phase=after_phase)
        completed = True
    except RolloutTimeout as e:
        refused = replica_failures(read_workloads(api_client, namespace=namespace))
        for line in e.lines:
            ref = line.split(":", 1)[0]
            lines.append(line + (f"; ReplicaFailure: {refused[ref]}" if ref in refused else ""))
        records = sent
        head = f"rollout {phase_name[0]} not finished within {timeout:g} s"
    except ApplyFailed as e:
        lines = [str(e)]
        records = list(e.records)
        head = "the release was refused"
    look("after the release" if completed else "stopped")
    finished = clock()
    workloads = read_workloads(api_client, namespace=namespace)
    desired = desired_replicas(workloads)
    if completed:
        changed = sum(1 for r in records if r.outcome in ("created", "changed"))
        reason = (f"{len(records)} objects applied ({changed} created or changed), every rollout finished in "
                  f"{(finished - started).total_seconds():g} s")
    else:
        reason = f"{head}: " + " | ".join(lines)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return Rehearsal(
        name="release-rollout", kind="release-rollout", completed=completed, reason=" ".join(reason.split()),
        started=started, finished=finished, observations=tuple(observations), min_ready=min_ready(observations),
        desired=desired, required_ready=required_ready(read_pdbs(api_client, namespace=namespace), desired),
        pending_at_end=observations[-1].pending,
        settings={"namespace": namespace, "timeout_seconds": float(timeout), "step_seconds": float(step),
                  "objects": len(objects), "on_sim": sim is not None},
        details={"plans": compare_plans(old_plan, new_plan),
                 "changed_services": sorted({r["name"] for r in compare_plans(old_plan, new_plan)
                                             if r["section"] == "service" and r["changed"]}),
                 "applied": counts,
                 "changed_objects": [{"object": r.ref, "paths": list(r.diff)} for r in records
                                     if r.outcome == "changed"],
                 "not_finished": lines})


__all__ = ["Release", "compare_plans", "rehearse_release", "release_objects", "replica_failures"]
