"""``eafix-capacity verify``: the live cluster against the plan, from the command line.

The pieces (``context.load_target``, ``livestate.read_live_state``, ``verify.verify``) are
each usable alone; this module wires them in the order a user can trust: the plan is built
first (a bad flag or params file is refused before any request is sent), then the target is
loaded and named on stderr (a read may use the current context, so the user sees which one
it used), then the live state is read once and compared. Every failure of the cluster
becomes a one-line ``TargetError`` (the CLI prints it and exits 2); a check that fails exits
1, and with ``--fail-on WARN`` a warning does too.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence, TextIO

if TYPE_CHECKING:  # the CLI registers this module for every command: nothing heavy is imported until verify runs
    from ..plan import Plan
    from .context import Target
    from .livestate import LiveState
    from .verify import Check, Status

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
FAIL_ON = ("WARN", "FAIL")
FORMATS = ("table", "json")
COLUMNS = ("status", "name", "subject", "expected", "actual", "evidence")


@dataclass(frozen=True)
class VerifyResult:
    """What one run found: the target it read, the checks, and the exit code they call for."""

    target: Target
    checks: tuple[Check, ...]
    fail_on: str = "FAIL"

    @property
    def result(self) -> Status:
        from .verify import worst

        return worst(self.checks)

    @property
    def counts(self) -> dict[str, int]:
        seen = Counter(c.status for c in self.checks)
        return {s: seen.get(s, 0) for s in ("PASS", "WARN", "FAIL")}

    @property
    def exit_code(self) -> int:
        return exit_code(self.checks, fail_on=self.fail_on)


def exit_code(checks: Iterable[Check], *, fail_on: str = "FAIL") -> int:
    """0 when nothing fails; 1 when a check FAILs, or WARNs with ``fail_on="WARN"`` (pure)."""
    statuses = {c.status for c in checks}
    failing = {"FAIL", "WARN"} if fail_on == "WARN" else {"FAIL"}
    return EXIT_CHECK_FAILED if statuses & failing else EXIT_OK


def summary_line(result: VerifyResult) -> str:
    """The last line of the table: counts, the overall result and what makes the exit code."""
    n = result.counts
    line = (f"{len(result.checks)} checks: {n['PASS']} PASS, {n['WARN']} WARN, {n['FAIL']} FAIL; "
            f"overall: {result.result}")
    if result.exit_code:
        names = sorted({c.name for c in result.checks if c.status == "FAIL"
                        or (result.fail_on == "WARN" and c.status == "WARN")})
        line += f" (exit {result.exit_code}: {', '.join(names)})"
    return line


def to_json(result: VerifyResult) -> dict[str, Any]:
    """The document ``--format json`` prints (pure)."""
    t = result.target
    return {"target": {"context": t.context, "cluster": t.cluster, "server": t.server, "user": t.user,
                       "namespace": t.namespace, "identity": t.identity, "is_sim": t.is_sim},
            "result": result.result, "fail_on": result.fail_on, "exit_code": result.exit_code,
            "counts": result.counts, "checks": [c.as_dict() for c in result.checks]}


def table_text(checks: Sequence[Check]) -> str:
    """The checks as aligned text, in verify's order (pure)."""
    import pandas as pd

    from ..tables import plain_text

    rows = [c.as_dict() for c in checks]
    return plain_text(pd.DataFrame(rows, columns=list(COLUMNS)))


def read_live(client: Any, target: Target) -> LiveState:
    """``read_live_state`` with the client's failures turned into the one-line ``TargetError``
    that names the context, the server and what to check."""
    from .errors import classify
    from .livestate import read_live_state

    try:
        return read_live_state(client)
    except Exception as e:
        raise classify(e, context=target.context, server=target.server, user=target.user or None,
                       auth=target.auth or None, cluster=target.cluster) from e


def run_verify(plan: Plan, *, kubeconfig: str | None = None, context: str | None = None,
               fail_on: str = "FAIL", announce: TextIO | None = None) -> VerifyResult:
    """Load the target (``describe`` is written to ``announce`` before anything is read), read
    the live state once, and compare it with ``plan``. Cluster failures raise ``TargetError``."""
    from .context import describe, load_target
    from .verify import verify

    target, client = load_target(kubeconfig=kubeconfig, context=context)
    try:
        if announce is not None:
            print(f"verify: {describe(target)}", file=announce, flush=True)
        live = read_live(client, target)
    finally:
        client.close()
    return VerifyResult(target=target, checks=tuple(verify(live, plan)), fail_on=fail_on)


def _plan(args: argparse.Namespace) -> Plan:
    from ..cli import params_from_args
    from ..inputs import PlanParams, plan_from_params
    from ..manifests.load import printed_warnings

    base = PlanParams.from_yaml(args.plan_params) if args.plan_params else None
    with printed_warnings(sys.stderr):
        return plan_from_params(params_from_args(args, base))


def cmd_verify(args: argparse.Namespace) -> int:
    plan = _plan(args)   # bad input is refused before a request is sent
    result = run_verify(plan, kubeconfig=args.kubeconfig, context=args.context, fail_on=args.fail_on,
                        announce=sys.stderr)
    if args.format == "json":
        print(json.dumps(to_json(result), indent=2))
    else:
        print(table_text(result.checks))
        print()
        print(summary_line(result))
    return result.exit_code


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    from ..cli import add_plan_arguments

    p = subparsers.add_parser(
        "verify", help="compare the live cluster with the plan: named checks, PASS, WARN or FAIL",
        description="Read the cluster once (nodes, pods, workloads, HPAs, PDBs, claims, quota) and compare it "
                    "with the plan the flags (or --plan-params) describe. Exit 0 when no check fails, 1 when "
                    "one does (or warns, with --fail-on WARN), 2 for an error. Reads only: the current "
                    "context is used when --context is left out, and named on stderr.")
    p.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig to read (default: KUBECONFIG, then ~/.kube/config)")
    p.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context (default: the current one)")
    p.add_argument("--plan-params", default=None, metavar="FILE",
                   help="YAML file of plan parameters, as `report --params` (flags override it)")
    add_plan_arguments(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default) or json")
    p.add_argument("--fail-on", choices=FAIL_ON, default="FAIL",
                   help="exit 1 on a FAIL (default), or on a WARN too")
    p.set_defaults(func=cmd_verify)
    return p


__all__ = ["VerifyResult", "add_parser", "cmd_verify", "exit_code", "run_verify", "summary_line", "table_text",
           "to_json"]
