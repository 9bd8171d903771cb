"""``eafix-capacity usage``: sample a cluster's utilisation, report it, recommend requests, export it.

The library does the work (sources in ``kubectltop``/``metricsapi``/``prometheus``, the run
directory's store in ``store``, ``tables``, ``strategies`` and ``recommend``); this module is
the command line around it. ``sample`` names the target on stderr before the first round and
writes every complete round to the run directory as it goes (Ctrl-C keeps them); ``report``
prints the kube-capacity table and per-service figures; ``recommend`` reads a run directory
or a Prometheus and prints (or writes as a services.yaml) the recommendations with the node
count they lead to; ``export`` writes the samples as CSV or Parquet.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durations import parse_duration
from ..errors import InputError

if TYPE_CHECKING:  # registered for every command: nothing heavy is imported until a usage command runs
    import pandas as pd

    from .kubectltop import Round

SOURCES = ("kubectl-top", "metrics-api")
DEFAULT_NAMESPACE = "eafix-trading"
FORMATS = ("table", "json", "csv")


def default_run_directory(now: datetime) -> Path:
    return Path("reports") / "usage" / now.strftime("%Y%m%dT%H%M%SZ")


def _sample(args: argparse.Namespace) -> int:
    from ..cluster.context import describe, load_target
    from .store import UsageStore

    interval = parse_duration(args.interval, flag="--interval")
    duration = parse_duration(args.duration, flag="--duration") if args.duration else None
    if duration is None and args.samples is None:
        raise InputError("say how long to sample", field="--duration/--samples", value="neither",
                         valid="--duration 10m or --samples N")
    namespace = None if args.all_namespaces else args.namespace
    target, client = load_target(kubeconfig=args.kubeconfig, context=args.context)
    out = Path(args.out) if args.out else default_run_directory(datetime.now(timezone.utc))
    try:
        print(f"usage sample: {describe(target)}; into {out}", file=sys.stderr, flush=True)
        with UsageStore.open(out, create=True) as store:
            def on_round(r: Round) -> None:
                store.append_round(r.samples, node_samples=r.nodes, terminations=r.terminations)

            if args.source == "metrics-api":
                from .metricsapi import sample_metrics_api

                run = sample_metrics_api(client, context=target.context, on_round=on_round, namespace=namespace,
                                         interval=interval, duration=duration, samples=args.samples,
                                         quiet=args.quiet)
            else:
                from .kubectltop import sample_kubectl_top

                run = sample_kubectl_top(context=target.context, kubeconfig=args.kubeconfig, on_round=on_round,
                                         namespace=namespace, interval=interval, duration=duration,
                                         samples=args.samples, quiet=args.quiet)
            counts = store.counts()
    finally:
        client.close()
    stopped = " (interrupted: every complete round is kept)" if run.interrupted else ""
    print(f"{run.rounds} rounds, {run.samples} samples ({run.missing} missing) in {out}; the store holds "
          f"{counts.samples} samples{stopped}")
    return 130 if run.interrupted else 0


def _frame_of(args: argparse.Namespace) -> tuple[pd.DataFrame, list[Any], str]:
    """The samples, the terminations and where they came from: a run directory or Prometheus."""
    from .store import UsageStore

    if args.prometheus:
        from .prometheus import read_prometheus

        window = timedelta(seconds=parse_duration(args.history, flag="--history"))
        result = read_prometheus(args.prometheus, token_file=args.prometheus_token_file,
                                 ca_file=args.prometheus_ca_file, window=window, namespace=args.namespace)
        for warning in result.warnings:
            print(f"note: {warning}", file=sys.stderr)
        # the store turns records into the analysis' frame; a Prometheus read is kept nowhere
        with tempfile.TemporaryDirectory(prefix="eafix-usage-") as tmp, UsageStore.open(tmp, create=True) as store:
            store.append_round(result.samples, terminations=result.terminations)
            return store.frame(), store.terminations(), f"Prometheus {args.prometheus}"
    if not args.directory:
        raise InputError("give a run directory or --prometheus URL", field="DIR", value="none",
                         valid="the --out directory of `usage sample`, or --prometheus URL")
    with UsageStore.open(args.directory, create=False) as store:
        return store.frame(), store.terminations(), f"run directory {args.directory}"


def _report(args: argparse.Namespace) -> int:
    from .store import UsageStore
    from .tables import capacity_table

    with UsageStore.open(args.directory, create=False) as store:
        frame, nodes = store.frame(), store.node_samples()
        span = store.time_range()
    table = capacity_table(frame, nodes, containers=args.containers, usage=args.usage)
    print(table.text)
    print()
    print(service_summary(frame).to_string(index=False))
    if span:
        print(f"\n{len(frame)} samples from {span[0]:%Y-%m-%d %H:%M:%S}Z to {span[1]:%Y-%m-%d %H:%M:%S}Z")
    if args.charts:
        for path in write_charts(frame, Path(args.charts)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def write_charts(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """Each service's usage against its request and limit, and the usage/request distribution,
    as PNG files in ``directory`` (made when missing); the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed, or opened
    import matplotlib.pyplot as plt

    from . import charts

    directory.mkdir(parents=True, exist_ok=True)
    figures = [(f"service-{name or 'unlabelled'}.png", charts.service_usage(frame, name))
               for name in sorted({str(s) for s in frame["service"].dropna().unique()})]
    figures.append(("usage-over-request.png", charts.usage_over_request(frame)))
    written = []
    for name, figure in figures:
        path = directory / name
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def service_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per service and container: samples, CPU p95 and max against the request, memory max against
    the request and the limit (pure; missing samples are not counted)."""
    import pandas as pd

    rows = []
    for (service, container), part in frame.groupby(["service", "container"], observed=True, sort=True):
        cpu, memory = part["cpu_m"].dropna(), part["memory_bytes"].dropna()
        request_m = part["cpu_request_m"].dropna()
        limit_b, request_b = part["memory_limit_bytes"].dropna(), part["memory_request_bytes"].dropna()
        rows.append({
            "service": service or "(unlabelled)", "container": container, "samples": int(len(cpu)),
            "cpu_p95_m": round(float(cpu.quantile(0.95)), 1) if len(cpu) else None,
            "cpu_max_m": round(float(cpu.max()), 1) if len(cpu) else None,
            "cpu_request_m": int(request_m.iloc[-1]) if len(request_m) else None,
            "memory_max_mib": round(float(memory.max()) / 2**20, 1) if len(memory) else None,
            "memory_request_mib": round(float(request_b.iloc[-1]) / 2**20, 1) if len(request_b) else None,
            "memory_limit_mib": round(float(limit_b.iloc[-1]) / 2**20, 1) if len(limit_b) else None,
        })
    return pd.DataFrame(rows)


def _recommend(args: argparse.Namespace) -> int:
    from ..catalog import load_catalog
    from ..inputs import PlanParams
    from .recommend import ALL_HOURS, as_frame, as_json, parse_window, recommended_catalog, replan
    from .strategies import Settings, get_strategy, hpa_from_catalog, recommend

    get_strategy(args.strategy)  # an unknown name is refused before anything is read
    # session-peak without --window reads the trading sessions of the kit's usage model
    text = args.window or ("london,new_york" if args.strategy == "session-peak" else None)
    window = parse_window(text) if text else ALL_HOURS
    catalog = load_catalog(args.catalog) if args.catalog else load_catalog()
    frame, terminations, where = _frame_of(args)
    settings = Settings(allow_hpa=args.allow_hpa, hpa=hpa_from_catalog(catalog), window=window)
    recs = recommend(frame, terminations, strategy=args.strategy, settings=settings)
    label = window.label
    if args.format == "json":
        print(json.dumps(as_json(recs), indent=2))
    elif args.format == "csv":
        as_frame(recs).to_csv(sys.stdout, index=False)
    else:
        print(as_frame(recs).to_string(index=False))
    new = recommended_catalog(catalog, recs, strategy=args.strategy, window=label)
    again = replan(PlanParams(catalog=args.catalog) if args.catalog else PlanParams(), new.catalog)
    print(f"{len(recs)} recommendations from {where} ({args.strategy}, {label}); {again.line()}", file=sys.stderr)
    if args.write_catalog:
        from ..fsio import atomic_write_text

        atomic_write_text(Path(args.write_catalog), new.text, mode=0o644)
        print(f"wrote {args.write_catalog}; changed against the current catalogue:", file=sys.stderr)
        print(new.diff.to_string(index=False) if len(new.diff) else "(nothing)", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_store

    result = export_store(args.directory, args.out, format=args.format)
    print(f"{result.rows} samples written to {result.path} ({result.format})")
    return 0


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    usage = subparsers.add_parser("usage", help="sample, report, right-size and export what the services use",
                                  description="Utilisation of a cluster: sample it (kubectl top or the metrics "
                                              "API) into a run directory, report it, recommend requests and "
                                              "limits (krr's simple, session-peak, the VPA's), export it.")
    sub = usage.add_subparsers(dest="usage_command", metavar="COMMAND")
    s = sub.add_parser("sample", help="sample kubectl top (or the metrics API) every --interval into --out DIR")
    s.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context (default: the current one)")
    s.add_argument("--kubeconfig", default=None, metavar="FILE")
    s.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=f"namespace (default {DEFAULT_NAMESPACE})")
    s.add_argument("--all-namespaces", "-A", action="store_true", help="every namespace")
    s.add_argument("--source", choices=SOURCES, default="kubectl-top", help="kubectl-top (default) or metrics-api")
    s.add_argument("--interval", default="15s", metavar="DURATION", help="between rounds (default 15s; at least 1s)")
    s.add_argument("--duration", default=None, metavar="DURATION", help="how long to sample (e.g. 10m)")
    s.add_argument("--samples", type=int, default=None, metavar="N", help="or how many rounds")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default reports/usage/<UTC time>); an existing one is appended to")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_sample)
    r = sub.add_parser("report", help="the kube-capacity table and per-service figures of a run directory")
    r.add_argument("directory", metavar="DIR")
    r.add_argument("--containers", action="store_true", help="a row per container too")
    r.add_argument("--usage", default="latest", help="latest (default), max or pNN over the window")
    r.add_argument("--charts", default=None, metavar="DIR",
                   help="also write each service's usage chart and the usage/request distribution as PNGs")
    r.set_defaults(func=_report)
    c = sub.add_parser("recommend", help="requests and limits from the samples, and the node count they lead to")
    c.add_argument("directory", metavar="DIR", nargs="?", help="run directory (or --prometheus URL)")
    c.add_argument("--prometheus", default=None, metavar="URL", help="read the history from Prometheus instead")
    c.add_argument("--prometheus-token-file", default=None, metavar="FILE", help="bearer token for Prometheus")
    c.add_argument("--prometheus-ca-file", default=None, metavar="FILE", help="CA bundle for Prometheus' TLS")
    c.add_argument("--history", default="336h", metavar="DURATION", help="Prometheus window (default 14 days)")
    c.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help="namespace read from Prometheus")
    c.add_argument("--strategy", default="simple", help="simple (krr, default), session-peak or vpa")
    c.add_argument("--window", default=None, help="session-peak's hours: london,new_york or '08:00-20:00 UTC weekdays'")
    c.add_argument("--allow-hpa", action="store_true", help="recommend the resource an HPA scales on too")
    c.add_argument("--catalog", default=None, metavar="FILE", help="the current services.yaml (default: the kit's)")
    c.add_argument("--format", choices=FORMATS, default="table")
    c.add_argument("--write-catalog", default=None, metavar="FILE",
                   help="write a services.yaml with the recommended figures (their source says so)")
    c.set_defaults(func=_recommend)
    e = sub.add_parser("export", help="write a run directory's samples as CSV or Parquet")
    e.add_argument("directory", metavar="DIR")
    e.add_argument("--format", choices=("csv", "parquet"), default="csv")
    e.add_argument("--out", required=True, metavar="FILE")
    e.set_defaults(func=_export)
    def no_command(_: argparse.Namespace) -> int:
        usage.print_help()
        return 2

    usage.set_defaults(func=no_command)
    return usage


__all__ = ["add_parser", "default_run_directory", "service_summary", "write_charts"]
