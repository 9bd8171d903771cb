"""``eafix-capacity apply`` and ``eafix-capacity diff``: a rendered directory onto a cluster.

The library's :func:`~eafix_capacity.cluster.apply.apply` does the work; this module is the
command line around it: load the directory (bad input is refused before the cluster is
contacted), name the target on stderr before anything is sent, wait for the rollouts with a
progress bar, and print one line per object (``kubectl apply``'s ``deployment.apps/x
configured``, with the kit's outcomes and the changed paths). ``diff`` is the same apply as a
server-side dry run, printed path by path, with ``kubectl diff``'s exit codes: 0 no
difference, 1 differences, 2 an error. A Secret's values are never printed (``***``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from ..durations import parse_duration

if TYPE_CHECKING:  # registered for every command: nothing heavy is imported until apply or diff runs
    from .records import ApplyRecord

DEFAULT_TIMEOUT = "300s"
EXIT_NO_DIFFERENCE = 0
EXIT_DIFFERENCES = 1
OUTCOMES = ("created", "changed", "unchanged", "pruned", "kept", "skipped")
DIFFERENT = frozenset({"created", "changed", "pruned"})
def api_resource(record: ApplyRecord) -> str:
    """``deployment.apps``: kubectl's lower-case kind and group (pure)."""
    group = record.api_version.split("/", 1)[0] if "/" in record.api_version else ""
    return f"{record.kind.lower()}.{group}" if group else record.kind.lower()


def record_line(record: ApplyRecord) -> str:
    """One line per object, as ``kubectl apply`` prints (``deployment.apps/x configured``) with
    the kit's outcome, the namespace, the changed paths and the note (pure)."""
    where = f" -n {record.namespace}" if record.namespace else ""
    line = f"{api_resource(record)}/{record.name}{where} {record.outcome}"
    if record.dry_run:
        line += " (server dry run)"
    if record.diff:
        shown = ", ".join(record.diff[:6]) + (f", ... ({len(record.diff)} paths)" if len(record.diff) > 6 else "")
        line += f": {shown}"
    if record.note:
        line += f" [{record.note}]"
    return line


def summary_line(records: Sequence[ApplyRecord], *, dry_run: bool) -> str:
    """The counts per outcome (pure)."""
    seen = Counter(r.outcome for r in records)
    counts = ", ".join(f"{seen[o]} {o}" for o in OUTCOMES if seen.get(o))
    return f"{len(records)} objects: {counts or 'none'}{' (dry run: nothing was changed)' if dry_run else ''}"


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def diff_text(records: Sequence[ApplyRecord]) -> str:
    """What ``diff`` prints: every object that differs, with each changed path's live and applied
    values (a Secret's as ``***``), and the source it came from (pure)."""
    lines: list[str] = []
    for r in records:
        if r.outcome not in DIFFERENT:
            continue
        source = f" ({r.file}{'' if r.document is None else f', document {r.document}'})" if r.file else ""
        lines.append(f"{r.outcome} {api_resource(r)}/{r.name}{f' -n {r.namespace}' if r.namespace else ''}{source}")
        for change in r.changes:
            lines.append(f"  {change.path}: {_value(change.before)} -> {_value(change.after)}")
        if r.note and r.outcome == "pruned":
            lines.append(f"  {r.note}")
    return "\n".join(lines)


def has_differences(records: Sequence[ApplyRecord]) -> bool:
    return any(r.outcome in DIFFERENT for r in records)


def load_objects(paths: Sequence[str], *, stream: TextIO) -> list[Any]:
    """The objects of the files and directories ``paths`` (each with its file and document),
    their loader's notes printed on ``stream``."""
    from ..manifests.load import load_manifests, printed_warnings

    with printed_warnings(stream):
        return list(load_manifests(*paths).objects)


class _Collector:
    """``after_phase`` that keeps every applied phase's records (printed even when a later
    rollout wait fails) and waits for the phase's rollouts (``wait`` is ``rollout.waiter``'s)."""

    def __init__(self, wait: Callable[[Any, Sequence[Any]], None] | None) -> None:
        self.records: list[Any] = []
        self._wait = wait

    def __call__(self, phase: Any, records: Sequence[Any]) -> None:
        self.records.extend(records)
        if self._wait is not None:
            self._wait(phase, records)


def _secret_values(spec: str | None) -> Any:
    if not spec:
        return None
    from .secrets import read_secret_values

    return read_secret_values(spec, environ=os.environ)


def _print_records(records: Sequence[Any], args: argparse.Namespace, *, out: TextIO) -> None:
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in records], indent=2), file=out)
    elif not args.quiet:
        for record in records:
            print(record_line(record), file=out)


def cmd_apply(args: argparse.Namespace) -> int:
    from .applyerrors import ApplyFailed
    from .apply import apply
    from .context import describe, load_target
    from .rollout import waiter

    timeout = parse_duration(args.timeout)
    objects = load_objects(args.paths, stream=sys.stderr)
    values = _secret_values(args.secrets_from)
    target, client = load_target(kubeconfig=args.kubeconfig, context=args.context)
    try:
        print(f"{'dry run' if args.dry_run else 'apply'}: {describe(target)}", file=sys.stderr, flush=True)
        wait = None if args.dry_run or args.no_wait else waiter(client, timeout=timeout, progress=not args.quiet)
        collector = _Collector(wait)
        try:
            records = apply(objects, target=target, api_client=client, dry_run=args.dry_run,
                            force_conflicts=args.force_conflicts, prune=args.prune, secrets=values,
                            external_secrets=args.external_secrets, context_given=args.context is not None,
                            yes=args.yes, confirm=_confirm if sys.stdin.isatty() else None,
                            after_phase=collector)
        except ApplyFailed as e:
            _print_records(e.records, args, out=sys.stdout)
            raise
        except Exception:
            _print_records(collector.records, args, out=sys.stdout)
            raise
    finally:
        client.close()
    _print_records(records, args, out=sys.stdout)
    if args.format != "json":
        print(summary_line(records, dry_run=args.dry_run))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from .apply import apply
    from .context import describe, load_target

    objects = load_objects(args.paths, stream=sys.stderr)
    values = _secret_values(args.secrets_from)
    target, client = load_target(kubeconfig=args.kubeconfig, context=args.context)
    try:
        print(f"diff: {describe(target)}", file=sys.stderr, flush=True)
        records = apply(objects, target=target, api_client=client, dry_run=True, prune=args.prune, secrets=values,
                        external_secrets=args.external_secrets, force_conflicts=args.force_conflicts)
    finally:
        client.close()
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in records], indent=2))
    else:
        text = diff_text(records)
        if text:
            print(text)
        for r in records:
            if r.outcome in ("skipped", "kept"):
                print(f"note: {record_line(r)}", file=sys.stderr)
    return EXIT_DIFFERENCES if has_differences(records) else EXIT_NO_DIFFERENCE


def _confirm(prompt: str) -> bool:
    """Ask on the terminal (the prompt on stderr: stdout carries the records)."""
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="DIR", help="rendered manifests directory (or YAML files)")
    p.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig to read (default: KUBECONFIG, then ~/.kube/config)")
    p.add_argument("--prune", action="store_true",
                   help="also delete what an earlier apply of the kit made and DIR no longer has "
                        "(claims and namespaces are kept)")
    p.add_argument("--force-conflicts", action="store_true",
                   help="take over fields another field manager owns (default: report the conflicts)")
    p.add_argument("--secrets-from", default=None, metavar="FILE|env[:PREFIX]",
                   help="values for the Secret template's placeholders: a KEY=VALUE or YAML file, or the "
                        "environment (env: the key's own name; env:PREFIX: PREFIX+KEY)")
    p.add_argument("--external-secrets", action="store_true",
                   help="apply the External Secrets Operator variant instead of the Secret template")
    p.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json records")


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    a = subparsers.add_parser(
        "apply", help="server-side apply a rendered directory, phase by phase, and wait for the rollouts",
        description="Apply DIR with server-side apply (field manager eafix-capacity) in the seed's order: CRDs, "
                    "namespaces, storage, secrets, configmaps, Redis and PostgreSQL (then wait until ready), the "
                    "trading and supporting workloads, Services, ingress, the mesh's objects. A refused phase "
                    "stops the apply (nothing after it is sent). A real apply needs --context; a cluster that "
                    "is not the sim also needs --yes or an interactive confirmation. Exit 0 when everything "
                    "applied and rolled out, 2 for an error.")
    _common(a)
    a.add_argument("--context", default=None, metavar="NAME",
                   help="kubeconfig context: required for a real apply (a dry run may use the current one)")
    a.add_argument("--dry-run", action="store_true", help="send dryRun=All: show per object what would change")
    a.add_argument("--yes", action="store_true", help="write to a cluster that is not the sim without asking")
    a.add_argument("--timeout", default=DEFAULT_TIMEOUT, metavar="DURATION",
                   help=f"rollout wait per phase (Go duration, default {DEFAULT_TIMEOUT})")
    a.add_argument("--no-wait", action="store_true", help="do not wait for the rollouts")
    a.add_argument("--quiet", action="store_true", help="no progress bar and no line per object: the summary only")
    a.set_defaults(func=cmd_apply)
    d = subparsers.add_parser(
        "diff", help="what apply would change, path by path (a server-side dry run): exit 0 none, 1 some",
        description="Send DIR as a server-side dry run and print every object that would be created, changed "
                    "(each path's live and applied value; a Secret's as ***) or pruned. Exit 0 when there is no "
                    "difference, 1 when there are, 2 for an error, as kubectl diff. Reads only: the current "
                    "context is used when --context is left out, and named on stderr.")
    _common(d)
    d.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context (default: the current one)")
    d.set_defaults(func=cmd_diff)
    return a


__all__ = ["add_parser", "api_resource", "cmd_apply", "cmd_diff", "diff_text", "has_differences", "parse_duration",
           "record_line", "summary_line"]
