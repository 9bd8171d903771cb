"""The ``sim`` command group: ``sim up`` serves a sim cluster until interrupted.

``add_parser(subparsers)`` registers it under the kit's CLI; ``main(argv)`` runs it alone
(``python -m eafix_capacity.sim up ...``).
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Sequence

from eafix_capacity.errors import EafixCapacityError, InputError
from eafix_capacity.sim.cluster import CONTEXT, SimCluster


def _zones(text: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in text.split(",") if z.strip())
    if not zones:
        raise argparse.ArgumentTypeError(f"no zones in {text!r}; give a comma-separated list such as a,b,c")
    return zones


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 0 to 65535: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    sim = subparsers.add_parser("sim", help="run the sim cluster (a Kubernetes API on 127.0.0.1)")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    up = sim_sub.add_parser("up", help="serve a sim cluster until interrupted (Ctrl-C)")
    up.add_argument("--node-type", default="n2-standard-8", help="a node type of data/node-types.csv")
    up.add_argument("--nodes", type=_non_negative_int, default=3, help="number of nodes (default 3)")
    up.add_argument("--zones", type=_zones, default=("a", "b", "c"), help="comma-separated zone letters")
    up.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (0: any free port)")
    up.add_argument("--kubeconfig", default=None, help="where to write the kubeconfig (default: a temp file)")
    up.add_argument("--state", default=None, help="save every change to this file and reload it on start")
    up.add_argument("--speed", type=_speed, default=1.0, help="sim clock speed (x real time)")
    up.set_defaults(func=run_up)
    return sim


def run_up(args: argparse.Namespace) -> int:
    sim = SimCluster(node_type=args.node_type, nodes=args.nodes, zones=tuple(args.zones), port=args.port,
                     kubeconfig=args.kubeconfig, state_file=args.state, speed=args.speed)
    sim.start()
    print(f"sim cluster serving on {sim.url} ({args.nodes} x {args.node_type}, context {CONTEXT})")
    print(f"  export KUBECONFIG={sim.kubeconfig}")
    print("  kubectl get nodes")
    if args.state:
        print(f"  state saved to {args.state}")
    print("Press Ctrl-C to stop.", flush=True)
    sim.run_forever()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eafix_capacity.sim")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EafixCapacityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
