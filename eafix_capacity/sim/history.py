"""``eafix-capacity sim history``: a deployed sim's usage history as an OpenMetrics file.

The Prometheus source and the right-sizing need weeks of history; a sim has none. This
command reads the pods a sim runs (through its kubeconfig, as any client would, or straight
from a :class:`SimCluster` in Python) and writes what cAdvisor and kube-state-metrics would
have reported for them over ``--days`` at ``--step``
(:func:`eafix_capacity.usage.openmetrics.history_lines`), for
``promtool tsdb create-blocks-from openmetrics FILE DIR``. The window ends on a whole step at
least 3 h before now (promtool's backfill is not for Prometheus' head block).
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

from eafix_capacity.errors import InputError
from eafix_capacity.sim import metrics as M
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.usage_model import UsageModel, load_usage_model
from eafix_capacity.usage import openmetrics

DEFAULT_DAYS = 14.0
DEFAULT_STEP = timedelta(seconds=60)


def parse_step(text: str) -> timedelta:
    """A Go duration in whole seconds (``60s``, ``1m15s``, ``2m``)."""
    from eafix_capacity.cluster.applycmd import parse_duration

    seconds = parse_duration(text, flag="--step")
    if seconds < 1 or seconds != int(seconds):
        raise InputError("not a whole number of seconds of at least 1", field="--step", value=text,
                         valid="a step such as 60s or 1m15s")
    return timedelta(seconds=int(seconds))


def deployed(pods: Sequence[Mapping], *, namespace: str | None = None) -> list[Mapping]:
    """The pods that run on a node (what cAdvisor would measure), optionally of one namespace."""
    return [p for p in pods if M.pod_is_measured(p)
            and (not namespace or (p.get("metadata") or {}).get("namespace") == namespace)]


def pods_of_sim(sim: Any, *, namespace: str | None = None) -> list[Mapping]:
    """The deployed pods of a started :class:`~eafix_capacity.sim.cluster.SimCluster` (in-process)."""
    if sim.store is None:
        raise InputError("the sim is not started", field="sim", valid="a started SimCluster")
    pods, _, _ = sim.store.list_objects(R.POD)
    return deployed(pods, namespace=namespace)


def pods_of_context(*, kubeconfig: str | None, context: str | None, namespace: str | None = None,
                    timeout: float = 30.0) -> list[Mapping]:
    """The deployed pods of a running cluster (a sim) read through its kubeconfig."""
    from eafix_capacity.cluster.context import load_target
    from eafix_capacity.cluster.errors import classify
    from eafix_capacity.cluster.rest import list_items

    target, client = load_target(kubeconfig=kubeconfig, context=context, timeout=timeout)
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    try:
        pods = list_items(client, path, "Pod", timeout=timeout)
    except Exception as e:  # the client's and transport's failures, as one line
        raise classify(e, context=target.context, server=target.server) from e
    return deployed(pods, namespace=namespace)


def write_sim_history(pods: Sequence[Mapping], *, out: str | Path, model: UsageModel | None = None,
                      days: float = DEFAULT_DAYS, step: timedelta = DEFAULT_STEP,
                      now: datetime | None = None) -> tuple[datetime, datetime, int]:
    """Write the history of ``pods`` to ``out`` (atomically); the window and the bytes written."""
    start, end = openmetrics.default_window(days=days, step=step, now=now)
    lines = openmetrics.history_lines(pods, model or load_usage_model(), start=start, end=end, step=step)
    return start, end, openmetrics.write_history(out, lines)


def add_parser(sim_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    h = sim_sub.add_parser("history", help="write a deployed sim's usage history as OpenMetrics (for promtool)",
                           description="Write the usage model's history of the pods a sim runs as an OpenMetrics "
                                       "file: backfill it with `promtool tsdb create-blocks-from openmetrics FILE "
                                       "DIR` and query it with `usage ... --prometheus URL`.")
    h.add_argument("--days", type=float, default=DEFAULT_DAYS, help="length of the history (default 14)")
    h.add_argument("--step", default="60s", help="time between samples, a duration (default 60s)")
    h.add_argument("--out", required=True, help="the OpenMetrics file to write")
    h.add_argument("--kubeconfig", default=None, help="the sim's kubeconfig (default KUBECONFIG)")
    h.add_argument("--context", default=None, help="the kubeconfig context (default its current one)")
    h.add_argument("--namespace", "-n", default=None, help="only the pods of this namespace")
    h.add_argument("--usage-model", default=None, help="the usage model file (default data/usage-model.yaml)")
    h.set_defaults(func=run_history)
    return h


def run_history(args: argparse.Namespace) -> int:
    step = parse_step(args.step)
    model = load_usage_model(args.usage_model)
    pods = pods_of_context(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    start, end, size = write_sim_history(pods, out=args.out, model=model, days=args.days, step=step)
    when = f"{start:%Y-%m-%dT%H:%M:%SZ} .. {end:%Y-%m-%dT%H:%M:%SZ}"
    print(f"wrote {args.out}: {len(pods)} pods, {when} every {args.step} ({size} bytes); "
          f"backfill with: promtool tsdb create-blocks-from openmetrics {args.out} DIR")
    return 0
