"""The ``sim`` command group: ``sim up`` serves a sim cluster until interrupted.

``add_parser(subparsers)`` registers it under the kit's CLI; ``main(argv)`` runs it alone
(``python -m eafix_capacity.sim up ...``). Exit codes: 0 after serving until Ctrl-C or
SIGTERM, 2 for bad input (flags, a state file that is not the sim's), 1 when something
outside fails (a port in use, a path that cannot be written), 130 when Ctrl-C interrupts
the start-up.
"""
from __future__ import annotations

import argparse
import signal
import threading
import math
import sys
from datetime import datetime
from typing import Sequence

from eafix_capacity.errors import EafixCapacityError, InputError
from eafix_capacity.limits import MAX_NODES
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import CONTEXT, SimCluster
from eafix_capacity.sim.wal import log_path_for

EXIT_INTERRUPTED = 130


def _zones(text: str) -> tuple[str, ...]:
    """Comma-separated zones; empty ones are kept, for ``SimCluster`` to refuse in one line."""
    return tuple(z.strip() for z in text.split(","))


def _clock_start(text: str) -> datetime:
    if text == "trading-day":
        return TRADING_DAY_START
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time or trading-day: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a time zone, e.g. {text}Z: {text!r}")
    return value


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


def _integer(text: str) -> int:
    """An integer; its range is ``SimCluster``'s to check (one line, naming the limit)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


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
    up = sim_sub.add_parser("up", help="serve a sim cluster until interrupted (Ctrl-C)",
                            description="Serve a sim cluster on 127.0.0.1 until Ctrl-C or SIGTERM (exit 0). "
                                        "Ctrl-C during start-up exits 130; bad input exits 2.")
    up.add_argument("--node-type", default=None, help="a node type of data/node-types.csv (default n2-standard-8)")
    up.add_argument("--nodes", type=_integer, default=None,
                    help=f"number of nodes, 0 to {MAX_NODES} (default 3)")
    up.add_argument("--zones", type=_zones, default=None, help="comma-separated zone letters (default a,b,c)")
    up.add_argument("--pools", default=None, metavar="FILE",
                    help="a pools file (plan --pools): every pool's nodes, labels and taints, instead of "
                         "--node-type/--nodes")
    up.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (0: any free port)")
    up.add_argument("--kubeconfig", default=None, help="where to write the kubeconfig (default: a temp file)")
    up.add_argument("--state", default=None,
                    help="keep the cluster in this file (and FILE.wal): every change is on disk before it is "
                         "answered, and the file is reloaded on start; a state with nodes keeps its own")
    up.add_argument("--speed", type=_speed, default=1.0, help="sim clock speed (x real time)")
    up.add_argument("--clock-start", type=_clock_start, default=None, metavar="TIME",
                    help="where the sim clock starts: an RFC 3339 time (2026-01-14T06:00:00Z) or trading-day "
                         "(the usage model's Wednesday 06:00 UTC); default now, so kubectl's ages read as on a "
                         "real cluster")
    up.add_argument("--provisioner", action="append", default=None, metavar="NAME", dest="provisioners",
                    help="a volume provisioner the sim runs, repeatable; it replaces the default, the CSI driver of "
                         "the node type's cloud (pd.csi.storage.gke.io, ebs.csi.aws.com or disk.csi.azure.com): "
                         "a claim whose StorageClass names another stays Pending, as on a real cluster")
    up.add_argument("--mesh", default=None,
                    help="none or istio, as for `plan --mesh`: istio adds the istio-cni DaemonSet to every node")
    up.add_argument("--auth", action="store_true",
                    help="serve HTTPS with authentication and RBAC: a missing or wrong token is 401, a request RBAC "
                         "does not allow is 403; the kubeconfig's user is kubernetes-admin (system:masters)")
    up.add_argument("--token-auth-file", default=None, metavar="FILE",
                    help='with --auth: more users, as kube-apiserver\'s flag: CSV lines token,user,uid[,"g1,g2"]')
    up.add_argument("--faults", default=None, metavar="FILE",
                    help="a sim faults file: pods (by namespace and label selector) whose image pull fails, "
                         "that crash-loop or never turn Ready (see eafix_capacity/sim/faults.py)")
    up.add_argument("--audit-log", default=None, metavar="FILE",
                    help="as kube-apiserver's --audit-log-path (Metadata level): append one audit.k8s.io/v1 Event "
                         "JSON line per request to FILE (verb, requestURI, user, objectRef, responseStatus)")
    up.add_argument("--from-context", default=None, metavar="NAME",
                    help="serve a twin of this kubeconfig context: its nodes and --namespace's objects are read "
                         "once, read-only (GET and LIST only), onto the sim; Secrets get placeholder values")
    up.add_argument("--from-kubeconfig", default=None, metavar="FILE",
                    help="with --from-context: the kubeconfig to read the context from (default KUBECONFIG, then "
                         "~/.kube/config; --kubeconfig is where the sim writes its own)")
    up.add_argument("--namespace", default=None, metavar="NS",
                    help="with --from-context: the namespace copied (default eafix-trading)")
    up.add_argument("--usage", default=None, metavar="DIR",
                    help="with --from-context: a utilisation store (usage sample --out DIR); the twin's metrics "
                         "follow its observed figures per service instead of the usage model")
    up.set_defaults(func=run_up)
    from eafix_capacity.sim import history  # `sim history`: the usage model's past as OpenMetrics

    history.add_parser(sim_sub)
    return sim


def _flag_text(args: argparse.Namespace, name: str) -> str:
    if name == "zones":
        return f"--zones {','.join(args.zones)}"
    return f"--{name.replace('_', '-')} {getattr(args, name)}"


def _twin_flags(args: argparse.Namespace) -> None:
    """--from-context's companions without it, and the node and state flags with it, are refused."""
    if args.from_context is None:
        for name in ("from_kubeconfig", "namespace", "usage"):
            if getattr(args, name) is not None:
                raise InputError("given without --from-context:", field=f"--{name.replace('_', '-')}",
                                 value=getattr(args, name), valid="it is read only with sim up --from-context NAME")
        return
    for name in ("node_type", "nodes", "zones", "pools", "state", "mesh", "provisioners", "faults", "token_auth_file"):
        if getattr(args, name) is not None:
            raise InputError("cannot be used with --from-context (the twin's nodes and objects are the context's):",
                             field="--provisioner" if name == "provisioners" else f"--{name.replace('_', '-')}",
                             value=_flag_value(getattr(args, name)), valid="leave it out, or drop --from-context")
    if args.auth:
        raise InputError("cannot be used with --from-context", field="--auth", value=True,
                         valid="leave it out (the twin serves without authentication)")


def _flag_value(value: object) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def run_up(args: argparse.Namespace) -> int:
    _twin_flags(args)
    if args.from_context is not None:
        return _run_twin(args)
    sim = SimCluster(node_type=args.node_type, nodes=args.nodes,
                     zones=None if args.zones is None else tuple(args.zones), port=args.port,
                     kubeconfig=args.kubeconfig, state_file=args.state, speed=args.speed, mesh=args.mesh,
                     auth=args.auth, token_file=args.token_auth_file, faults=args.faults,
                     provisioners=args.provisioners, clock_start=args.clock_start, audit_log=args.audit_log,
                     node_objects=_pool_nodes(args))
    return _serve(sim, args)


def _pool_nodes(args: argparse.Namespace) -> list[dict] | None:
    """--pools FILE: the pools' nodes (refused with --node-type/--nodes, which it replaces)."""
    if args.pools is None:
        return None
    for name in ("node_type", "nodes"):
        if getattr(args, name) is not None:
            raise InputError("cannot be used with --pools (the pools file gives every pool's node type and count):",
                             field=f"--{name.replace('_', '-')}", value=getattr(args, name),
                             valid="leave it out, or drop --pools")
    from eafix_capacity.mesh import parse_mesh
    from eafix_capacity.pools import load_pools
    from eafix_capacity.sim.cluster import DEFAULT_ZONES, pool_node_objects
    return pool_node_objects(load_pools(args.pools), zones=DEFAULT_ZONES if args.zones is None else tuple(args.zones),
                             mesh=parse_mesh(args.mesh))


def _run_twin(args: argparse.Namespace) -> int:
    """Read the context once, start its twin (created frozen), then serve it at --speed."""
    print(f'reading context "{args.from_context}" (read-only) for its twin...', flush=True)
    sim = SimCluster.from_context(args.from_context, kubeconfig=args.from_kubeconfig,
                                  namespace=args.namespace or "eafix-trading", usage_store=args.usage,
                                  clock_start=args.clock_start, twin_kubeconfig=args.kubeconfig, port=args.port,
                                  audit_log=args.audit_log)
    if sim.clock is not None:
        sim.clock.set_speed(args.speed)
    snapshot = sim.snapshot
    counts = ", ".join(f"{n} {kind}" for kind, n in snapshot.counts().items() if kind != "Node")
    print(f"twin of {snapshot.source}: {len(snapshot.nodes)} nodes; namespace {snapshot.namespace}: {counts}"
          + (f"; usage from {args.usage}" if args.usage else ""), flush=True)
    sim.run_forever(ready=lambda: _print_banner(sim, args), cancel=None)
    return 0


def _serve(sim: SimCluster, args: argparse.Namespace) -> int:
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        print("starting the sim cluster...", flush=True)
        sim.start(cancel=interrupted)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():  # between the last safe point and here
        sim.stop()
        raise KeyboardInterrupt
    sim.run_forever(ready=lambda: _print_banner(sim, args), cancel=interrupted)
    return 0


def _print_banner(sim: SimCluster, args: argparse.Namespace) -> None:
    summary, loaded = sim.node_summary, sim.loaded
    assert summary is not None
    where = f" restored from {args.state}" if summary.restored else ""
    print(f"sim cluster serving on {sim.url} ({summary.describe()}{where}, context {CONTEXT})")
    if sim.unused_node_settings:
        flags = " ".join(_flag_text(args, name) for name in sim.unused_node_settings)
        verb = "is" if len(sim.unused_node_settings) == 1 else "are"
        print(f"  note: {args.state} holds its own nodes, so {flags} {verb} not used; "
              "start with a new --state file for other nodes")
    print(f"  export KUBECONFIG={sim.kubeconfig}")
    print("  kubectl get nodes")
    print(f"  volume provisioners: {', '.join(sim.provisioners)}")
    if sim.audit_log is not None:
        print(f"  audit log: {sim.audit_log} (one audit.k8s.io/v1 Event per request, Metadata level)")
    if sim.auth is not None:
        print("  auth: HTTPS, tokens and RBAC; you are kubernetes-admin (system:masters); "
              "kubectl create token SERVICEACCOUNT -n NAMESPACE for others")
    if sim.state_file is not None:
        print(f"  state: {sim.state_file} and {log_path_for(sim.state_file)} (every change is on disk before "
              "it is answered)")
        if loaded is not None and loaded.replayed:
            print(f"  replayed {loaded.replayed} logged change(s) over the state file")
        if loaded is not None and loaded.torn_bytes:
            print(f"  note: dropped {loaded.torn_bytes} bytes at the end of the log: a write cut short by a "
                  "crash, never acknowledged")
    print("Press Ctrl-C to stop.", flush=True)


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
    except KeyboardInterrupt:
        print("interrupted: the sim cluster is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
