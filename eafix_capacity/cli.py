"""The ``eafix-capacity`` command.

Bad input never shows a traceback: every ``EafixCapacityError`` is printed as one line
on stderr and the command exits 2. Gate failures exit 1 only when asked
(``--fail-on-gate``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from .errors import EafixCapacityError, InputError
from .exact import check_seconds
from .inputs import PlanParams, parse_count, plan_from_params
from .plan import zones_line

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away


class _Parser(argparse.ArgumentParser):
    """argparse with bad flags reported like every other bad input: one line, exit 2.
    Subparsers inherit the class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"eafix-capacity: error: {message} (see `{self.prog} --help`)\n")


def _replicas(values: list[str] | None) -> dict[str, int]:
    out = {}
    for v in values or []:
        name, sep, n = v.partition("=")
        count = parse_count(n)
        if not sep or not name or count is None:
            raise InputError("invalid --replicas", file="command line", field="replicas", value=v,
                             valid="SERVICE=N, e.g. reporter=2")
        out[name] = count
    return out


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``plan`` and ``report`` (defaults come from PlanParams)."""
    d = PlanParams()
    p.add_argument("--profile", default=None, help=f"cluster profile: minimum or recommended (default {d.profile})")
    p.add_argument("--provider", default=None, help=f"gke, eks, aks or generic (default {d.provider})")
    p.add_argument("--node-type", default=None, help=f"a name from data/node-types.csv (default {d.node_type})")
    p.add_argument("--nodes", type=int, default=None, help="node count to judge, 1 to 5,000 (default: the recommended count)")
    p.add_argument("--mesh", default=None, help="none or istio (adds sidecars and control plane)")
    p.add_argument("--headroom", type=float, default=None, dest="headroom_pct",
                   help=f"percent of each node kept free at baseline (default {d.headroom_pct:g})")
    p.add_argument("--cpu-limit-ratio", type=float, default=None,
                   help=f"largest allowed CPU limits / allocatable (default {d.cpu_limit_ratio:g})")
    p.add_argument("--memory-limit-ratio", type=float, default=None,
                   help=f"largest allowed memory limits / allocatable (default {d.memory_limit_ratio:g})")
    p.add_argument("--storage-gib", type=float, default=None,
                   help="persistent storage provisioned, GiB (default: the profile's)")
    p.add_argument("--max-pods", type=int, default=None, help="pods per node, 1 to 150,000 (default: the provider's)")
    p.add_argument("--catalog", default=None, help="services file, relative to the working directory (default: data/services.yaml)")
    p.add_argument("--manifests", default=None, help="plan from existing manifests in this directory (relative to the working directory)")
    p.add_argument("--replicas", action="append", metavar="SERVICE=N", help="override a service's replicas")
    p.add_argument("--ignore-unknown-kinds", action="store_true", default=None,
                   help="with --manifests: skip objects of unknown kind with a warning (default: an error)")
    p.add_argument("--zones", default=None, metavar="LIST|N",
                   help="a regional pool's zones, comma-separated (a,b,c; 1,2,3 on AKS), or a count of the "
                        "provider's: node counts are multiples of them, each multi-replica service spreads over "
                        "them, and the gates zone-loss and n+1 are judged (default: no zones)")
    p.add_argument("--zonal-pool", action="store_true", default=None,
                   help="with --zones: node counts need not be the same in every zone")
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                   help="prove each scenario's minimum node count with a constraint solver (OR-Tools CP-SAT), "
                        "or report the best found and the proven bound; --no-exact: First-Fit Decreasing only "
                        "(default: with --pools, the solver for each pool under 20 nodes; else off)")
    p.add_argument("--exact-seconds", type=float, default=None, metavar="S",
                   help="with --exact: the solver's time budget per scenario (default 1)")
    p.add_argument("--growth", type=float, default=None, metavar="PCT", dest="growth_pct",
                   help="demand growth per month, percent (0 to 1000; a service's growth_pct in the "
                        "catalogue overrides it): the months until the first gate fails at the planned "
                        "count, and the nodes needed at 6 and 12 months (gate growth-runway)")
    p.add_argument("--lead-time-days", type=int, default=None, metavar="N",
                   help="with --growth: days to get more capacity; a shorter runway fails growth-runway")
    p.add_argument("--pools", default=None, metavar="FILE",
                   help="several node pools (data/pools-memory.yaml shows the format): each sized for the "
                        "services only it runs, judged per pool and in total")


def params_from_args(args: argparse.Namespace, base: PlanParams | None = None) -> PlanParams:
    values = dict((base or PlanParams()).__dict__)
    seconds = getattr(args, "exact_seconds", None)
    exact = getattr(args, "exact", None)
    pools = getattr(args, "pools", None) or values.get("pools")
    if seconds is not None and not (exact or (exact is None and (values.get("exact") or pools))):
        raise InputError("only with --exact (or --pools), got", file="command line",
                         field="--exact-seconds", value=seconds, valid="add --exact, or leave the flag out")
    if seconds is not None:
        check_seconds(seconds, field="--exact-seconds", file="command line")
    for name in ("profile", "provider", "node_type", "nodes", "mesh", "headroom_pct", "cpu_limit_ratio",
                 "memory_limit_ratio", "storage_gib", "max_pods", "catalog", "manifests",
                 "ignore_unknown_kinds", "zones", "zonal_pool", "exact", "exact_seconds", "growth_pct",
                 "lead_time_days", "pools"):
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if getattr(args, "replicas", None):
        values["replicas"] = {**values["replicas"], **_replicas(args.replicas)}
    # relative --catalog/--manifests are resolved against the working directory here, so
    # a report's kernel (running in notebooks/) reads the same files
    return PlanParams.from_mapping(values, source="command line", origin="cli")


def _cmd_plan(args: argparse.Namespace) -> int:
    if getattr(args, "compare_node_types", False):
        return _cmd_compare(args)
    for flag in ("providers", "families", "chart"):
        if getattr(args, flag, None) is not None:
            raise InputError("only with --compare-node-types, got", file="command line", field=f"--{flag}",
                             value=getattr(args, flag), valid="add --compare-node-types, or leave the flag out")
    _check_plan_output(args)
    from .manifests.load import printed_warnings   # what --manifests skipped, on stderr
    params = params_from_args(args)
    with printed_warnings(sys.stderr):
        plan = plan_from_params(params)
    if args.format == "json":
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        from . import tables
        if args.out is not None:
            from pathlib import Path

            from .fsio import atomic_write_text
            texts = tables.csv_tables(plan)  # every table made before the first is written
            for name, text in texts.items():
                print(atomic_write_text(Path(args.out) / name, text, mode=0o666))
        elif args.format == "csv":
            sys.stdout.write(tables.frame(plan, args.table or "services").to_csv(index=False))
        else:
            default = ["pools"] * bool(plan.pools) + ["services", "scenarios", "gates"]
            for name in ([args.table] if args.table else default):
                print(tables.plain_text(tables.frame(plan, name)))
                print()
                if name == "scenarios" and _solved(plan):
                    print(_exact_text(plan, params.exact_seconds))
                    print()
            from .cost import plan_cost
            print(plan_cost(plan).line())   # before the summary line, which stays the last
            if plan.zone_labels:
                print(zones_line(plan))
            fleet = (" + ".join(f"{p.plan.nodes} x {p.plan.node_type.name} ({p.name})" for p in plan.pools)
                     if plan.pools else f"{plan.nodes} x {plan.node_type.name}")
            print(f"nodes: {fleet} ({plan.options.provider}); "
                  f"recommended: {plan.recommended_nodes}; overall: {'PASS' if plan.passed else 'FAIL'}")
            if plan.growth is not None:
                for line in plan.growth.lines():
                    print(line)
    return EXIT_GATE_FAILED if args.fail_on_gate and not plan.passed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    """``plan --compare-node-types``: every node type's smallest passing count and its cost."""
    from .cost import COMPARE_PROVIDERS, comparison_lines, comparison_to_dict, compare_from_params, parse_choices
    from .nodes import FAMILIES
    if args.pools is not None:
        return _cmd_compare_pools(args)
    given = {"--provider": args.provider, "--nodes": args.nodes, "--table": args.table,
             "--out": args.out, "--growth": args.growth_pct, "--lead-time-days": args.lead_time_days}
    for flag, value in given.items():
        if value is not None:
            hint = "--providers to choose clouds" if flag == "--provider" else "leave the flag out"
            raise InputError("not with --compare-node-types, got", file="command line", field=flag, value=value,
                             valid=hint)
    providers = parse_choices(args.providers, flag="--providers", valid=COMPARE_PROVIDERS)
    families = parse_choices(args.families, flag="--families", valid=FAMILIES)
    chosen = args.node_type   # --node-type: its place in the table is named, not a plan input here
    params = params_from_args(argparse.Namespace(**{**vars(args), "node_type": None}))
    from .manifests.load import printed_warnings
    with printed_warnings(sys.stderr):
        comparisons = compare_from_params(params, providers=providers, families=families)
    if args.chart is not None:
        from .charts import node_type_costs
        _write_chart(node_type_costs(comparisons, chosen=chosen), args.chart)
    if args.format == "json":
        print(json.dumps(comparison_to_dict(comparisons, chosen=chosen), indent=2))
        return 0
    from . import tables
    df = tables.comparison_frame(comparisons)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    print(tables.plain_text(df))
    print()
    for line in comparison_lines(comparisons, chosen=chosen):
        print(line)
    return 0


def _write_chart(figure: Any, path: str) -> None:
    """``--chart FILE.png``: the figure written atomically, its path said on stderr."""
    import io
    from pathlib import Path

    from .fsio import atomic_write_bytes
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    print(f"chart: {atomic_write_bytes(Path(path), buf.getvalue(), mode=0o666)}", file=sys.stderr)


def _cmd_compare_pools(args: argparse.Namespace) -> int:
    """``plan --compare-node-types --pools FILE``: per pool, each node type of the pools' cloud in it."""
    from .cost import comparison_lines, comparison_to_dict, compare_pools_from_params, parse_choices
    from .nodes import FAMILIES
    from .pools import load_pools
    given = {"--providers": args.providers, "--nodes": args.nodes, "--table": args.table, "--out": args.out,
             "--growth": args.growth_pct, "--lead-time-days": args.lead_time_days}
    for flag, value in given.items():
        if value is not None:
            hint = ("the pools' node types fix the cloud; --provider names its managed Kubernetes"
                    if flag == "--providers" else "leave the flag out")
            raise InputError("not with --compare-node-types --pools, got", file="command line", field=flag,
                             value=value, valid=hint)
    families = parse_choices(args.families, flag="--families", valid=FAMILIES)
    params = params_from_args(args)
    from .manifests.load import printed_warnings
    with printed_warnings(sys.stderr):
        pools = load_pools(args.pools)
        by_pool = compare_pools_from_params(params, pools=pools, families=families)
    chosen = {p.name: p.node_type for p in pools}
    if args.chart is not None:
        from .charts import pool_node_type_costs
        _write_chart(pool_node_type_costs(by_pool, chosen=chosen), args.chart)
    if args.format == "json":
        print(json.dumps({"pools": {pool: comparison_to_dict(cs, chosen=chosen[pool]) for pool, cs in by_pool.items()}},
                         indent=2))
        return 0
    from . import tables
    frames = [tables.comparison_frame(cs) for cs in by_pool.values()]
    if args.format == "csv":
        import pandas as pd
        sys.stdout.write(pd.concat(frames, ignore_index=True).to_csv(index=False))
        return 0
    for (pool, cs), df in zip(by_pool.items(), frames):
        print(f"pool {pool} (the other pools as the file gives them; cost: the cluster's):")
        print(tables.plain_text(df))
        for line in comparison_lines(cs, chosen=chosen[pool]):
            print("  " + line)
        print()
    return 0


def _solved(plan: Any) -> list[tuple[str, Any]]:
    """(pool, plan) of every plan whose counts the solver proved: the plan, or its pools."""
    plans = [(p.name, p.plan) for p in plan.pools] if plan.pools else [("", plan)]
    return [(name, p) for name, p in plans if p.options.exact]


def _exact_text(plan: Any, seconds: float) -> str:
    """One line per scenario: the solver's count, its verdict and First-Fit Decreasing's count."""
    lines = [f"exact node counts (CP-SAT, at most {seconds:g} s per scenario):"]
    for pool, p in _solved(plan):
        for name, r in p.scenarios.items():
            lines.append(f"  {pool + '/' if pool else ''}{name}: {r.nodes_needed} nodes, {r.exact}; "
                         f"first-fit decreasing {r.first_fit_nodes}")
    return "\n".join(lines)


def _check_plan_output(args: argparse.Namespace) -> None:
    """``--table`` and ``--out`` need a tabular format; refused before any work."""
    if args.format is None:
        args.format = "csv" if args.out is not None else "table"
    if args.out is not None and args.format != "csv":
        raise InputError("--out writes one CSV file per table, not", field="--format", value=args.format,
                         valid="--format csv (or leave --format out)")
    if args.out is not None and args.table is not None:
        raise InputError("--out writes every table, so it cannot take", field="--table",
                         value=args.table, valid="either --out DIR or --table NAME")
    if args.table is not None and args.format == "json":
        raise InputError("--format json is the whole plan, not the table", field="--table", value=args.table,
                         valid="--table with --format csv or table")


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import run_report
    base = PlanParams.from_yaml(args.params) if args.params else None
    params = params_from_args(args, base)
    result = run_report(params, out_root=args.out)
    print(result.html)
    if not result.passed:
        failed = ", ".join(result.failed_gates)
        print(f"gates failed: {failed}", file=sys.stderr)
        if args.fail_on_gate:
            return EXIT_GATE_FAILED
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eafix-capacity",
        description="Plan, deploy and verify the capacity of the EAFIX trading system on Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plan", help="size the cluster: nodes per scenario and PASS/FAIL gates",
                       description="Compute requests and limits per service, nodes needed under baseline, "
                                   "HPA maximum, rollout surge and a drained node, and judge the gates.")
    add_plan_arguments(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default=None,
                   help="table (default), json (the whole plan) or csv (one table, see --table)")
    p.add_argument("--table", choices=("services", "scenarios", "gates", "placement", "cost", "pools"), default=None,
                   help="the table --format csv writes (default services) or --format table prints "
                        "(default services, scenarios and gates)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write services.csv, scenarios.csv, gates.csv and placement.csv into DIR")
    p.add_argument("--fail-on-gate", action="store_true", help="exit 1 when a gate fails")
    p.add_argument("--compare-node-types", action="store_true",
                   help="plan every node type on its cloud (gcp on gke, aws on eks, azure on aks): the smallest "
                        "count that passes every gate and its monthly cost, cheapest first")
    p.add_argument("--providers", default=None, metavar="LIST",
                   help="with --compare-node-types: only these, comma-separated from gke, eks, aks")
    p.add_argument("--families", default=None, metavar="LIST",
                   help="with --compare-node-types: only these, comma-separated from general, compute, memory")
    p.add_argument("--chart", default=None, metavar="FILE.png",
                   help="with --compare-node-types: write the cost chart to FILE.png")
    p.set_defaults(func=_cmd_plan)

    r = sub.add_parser("report", help="run the capacity notebook with papermill into reports/<UTC time>-<n>/",
                       description="Execute notebooks/01_capacity_model.ipynb with the given parameters, "
                                   "write the executed notebook, an HTML export without code and "
                                   "summary.json to reports/<UTC timestamp>-<n>/, and print the HTML path.")
    add_plan_arguments(r)
    r.add_argument("--params", help="YAML file of parameters (flags override it); relative catalog and "
                                     "manifests paths in it are relative to the file's own directory")
    r.add_argument("--out", default="reports", help="root directory for report runs (default reports)")
    r.add_argument("--fail-on-gate", action="store_true", help="exit 1 when a gate fails")
    r.set_defaults(func=_cmd_report)

    for module in ("eafix_capacity.manifests.cli", "eafix_capacity.sim.cli", "eafix_capacity.cluster.verifycmd",
                   "eafix_capacity.cluster.applycmd", "eafix_capacity.usage.cli", "eafix_capacity.signoff.cli"):
        __import__(module, fromlist=["add_parser"]).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except EafixCapacityError as e:
        print(f"eafix-capacity: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`eafix-capacity plan --format json | head`): stop
        # quietly, and keep Python's exit-time flush from failing on the dead pipe
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
