"""``eafix-capacity manifests generate|check|import``.

``add_parser`` registers the subcommands on the main parser's subparsers; each handler
returns an exit code (0 ok, 1 checks failed) and raises EafixCapacityError on bad input,
which the main entry point prints as one line with exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from .importer import import_objects, import_summary
from .kinds import IGNORE_FLAG
from .load import LoadResult, load_manifests, printed_warnings
from .render import DEFAULT_IMAGE_TAG, DEFAULT_NAMESPACE, STORAGE_PROVIDERS, RenderOptions
from .checks import run_checks
from .workflow import generate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("manifests", help="generate, check and import Kubernetes manifests")
    sub = p.add_subparsers(dest="manifests_command", metavar="{generate,check,import}")
    sub.required = True

    g = sub.add_parser("generate", help="render a profile into manifests/<profile>/ (atomic)")
    g.add_argument("--profile", required=True, help="cluster profile: minimum or recommended")
    g.add_argument("--mesh", default="none", help="none (default) or istio")
    g.add_argument("--provider", choices=STORAGE_PROVIDERS, default="gke",
                   help="the cluster the StorageClass is for: its CSI driver and disk types (default gke)")
    g.add_argument("--out", default=None,
                   help="output directory (default: manifests/<profile>[-istio] of the kit)")
    g.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    g.add_argument("--image-registry", default=None, help="registry for the EAFIX images")
    g.add_argument("--image-tag", default=DEFAULT_IMAGE_TAG, help="tag for the EAFIX images")
    g.add_argument("--zone-spread", action="store_true",
                   help="also spread every multi-replica service over topology.kubernetes.io/zone "
                        "(maxSkew 1): for a cluster whose nodes are in several zones")
    g.add_argument("--pools", default=None, metavar="FILE",
                   help="a pools file (data/pools-memory.yaml): the services its pools list get the pool's "
                        "labels as nodeSelector and tolerations of its taints")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("check", help="validate and check manifests; exit 1 when a check fails")
    c.add_argument("path", nargs="+", help="manifest files or directories")
    c.add_argument("--format", choices=("table", "json"), default="table")
    c.add_argument("--all", action="store_true", help="show passing rows too")
    _add_ignore_unknown_kinds(c)
    c.set_defaults(func=cmd_check)

    i = sub.add_parser("import", help="read Deployments/StatefulSets/HPAs/PVCs as a catalogue")
    i.add_argument("path", nargs="+", help="manifest files or directories")
    i.add_argument("--format", choices=("table", "json"), default="table")
    _add_ignore_unknown_kinds(i)
    i.set_defaults(func=cmd_import)
    return p


def _add_ignore_unknown_kinds(p: argparse.ArgumentParser) -> None:
    p.add_argument(IGNORE_FLAG, action="store_true",
                   help="skip objects of a kind neither Kubernetes, the kit's schemas nor a CRD in the "
                        "set defines, with a warning each (default: an error)")


def _out(args: argparse.Namespace) -> TextIO:
    return getattr(args, "stdout", None) or sys.stdout


def cmd_generate(args: argparse.Namespace) -> int:
    options = RenderOptions(namespace=args.namespace, mesh=args.mesh, provider=args.provider,
                            image_registry=args.image_registry, image_tag=args.image_tag,
                            zone_spread=args.zone_spread)
    catalog = None
    if args.pools:
        from ..catalog import load_catalog
        from ..pools import load_pools, place_services
        catalog = place_services(load_catalog(), load_pools(args.pools), file=args.pools)
    gen, path = generate(profile=args.profile, out_dir=args.out, options=options, catalog=catalog)
    zones = ", zone spread" if options.zone_spread else ""
    print(f"wrote {len(gen.objects)} objects in {len(gen.files)} files to {path} "
          f"(profile {gen.profile}, mesh {gen.mesh}, storage for {options.provider}: {options.provisioner}{zones})",
          file=_out(args))
    return 0


def _load(args: argparse.Namespace) -> LoadResult:
    """The manifests under ``args.path`` (their notes and warnings are printed by the
    caller's ``printed_warnings``)."""
    return load_manifests(*args.path)


def cmd_check(args: argparse.Namespace) -> int:
    with printed_warnings(sys.stderr):
        loaded = _load(args)
        report = run_checks(loaded.dicts, files=loaded.files,
                            ignore_unknown_kinds=args.ignore_unknown_kinds)
    out = _out(args)
    table = report.table if args.all else report.table[report.table["status"] != "pass"]
    read = {"objects": len(loaded.objects), "files": len(loaded.files_read),
            "passed_over": [s.path for s in loaded.skipped]}
    if args.format == "json":
        json.dump({"passed": report.passed, "summary": report.summary(), **read,
                   "rows": table.to_dict(orient="records")}, out, indent=2)
        out.write("\n")
    else:
        if len(table):
            print(table.to_string(index=False), file=out)
        s = report.summary()
        print(f"{'PASS' if report.passed else 'FAIL'}: {s['pass']} passed, {s['fail']} failed, "
              f"{s['warn']} warnings ({read['objects']} objects in {read['files']} files)", file=out)
    return 0 if report.passed else 1


def cmd_import(args: argparse.Namespace) -> int:
    with printed_warnings(sys.stderr):
        loaded = _load(args)
        catalog = import_objects(loaded, source=", ".join(args.path),
                                 ignore_unknown_kinds=args.ignore_unknown_kinds)
    summary = import_summary(catalog)
    out = _out(args)
    if args.format == "json":
        json.dump(summary, out, indent=2)
        out.write("\n")
        return 0
    import pandas as pd

    frame = pd.DataFrame(summary["services"])
    print(frame.to_string(index=False), file=out)
    t = summary["totals"]
    print("totals (baseline): " + ", ".join(f"{k}={v}" for k, v in t.items()), file=out)
    return 0
