"""Benchmark ``apply`` against the sim: a dry run of the whole recommended rendering, and a real
apply followed by ``verify`` until it PASSes.

The objects are ``manifests/recommended`` as ``load_manifests`` reads it, without the External
Secrets variant (its CRDs are the operator's; the template Secret is applied), as
``tests/cluster/test_apply.py`` applies it. Each sim is 3 n2-standard-8 nodes (the plan's
default), on a clock ``SPEED`` times real time from the trading-day morning, so the readiness
probes' delays (5-10 s of sim time) pass in a fraction of a second: the wall-clock targets are
about the kit's cost, not Kubernetes' probe delays.

Targets (exit 1 if one is missed):
- dry run (``dryRun=All``) of the whole rendering under 2 s wall, from ``load_target`` (its
  identity read is the first request) to the records; best and median of ``DRY_RUNS``, each on
  a cold discovery cache, both on a cluster without the rendering (everything ``created``) and
  on one that runs it (every object checked by the server, every one ``unchanged``);
- apply until verify PASSes under 5 s wall, each sample on a new sim: ``load_target``,
  ``apply(dry_run=False, after_phase=waiter(...))``, then ``run_verify`` (as ``eafix-capacity
  verify --profile recommended`` runs it: its own client, identity read, one list per kind)
  repeated until the overall result is PASS; broken down into apply requests, rollout wait
  and verify.

Requests are counted on the client (the ``ApiClient``'s ``call_api``): discovery, GETs,
PATCHes (server-side apply) and lists. The official client's ``DynamicClient`` caches
discovery in ``tempfile.gettempdir()`` (``osrcp-<md5 of the server URL>.json``, reused by any
later process that talks to the same URL); this script points ``tempfile`` at a directory of
its own and empties it before every sample, so each pays discovery as a first run does.

Run: ``.venv/bin/python bench/bench_apply.py [--profile] [--speed X]`` (``--profile``: cProfile
one dry run and one apply, on the client and in the sim's ``Api.handle``, and print where the
time goes; ``--speed``: the sims' clock, default 100)
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from eafix_capacity.cluster.apply import apply
from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.rollout import waiter
from eafix_capacity.cluster.verifycmd import run_verify
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.manifests.load import LoadedObject, load_manifests
from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.plan import Plan
from eafix_capacity.sim.clock import TRADING_DAY_START
from eafix_capacity.sim.cluster import CONTEXT, SimCluster

NODES = 3
NODE_TYPE = "n2-standard-8"
SPEED = 100.0
DRY_RUNS = 5
APPLY_RUNS = 3
DRY_TARGET_S = 2.0
APPLY_TARGET_S = 5.0
ROLLOUT_TIMEOUT_S = 60.0
POLL_S = 0.5  # rollout.waiter's default, what `eafix-capacity apply` polls at
VERIFY_TIMEOUT_S = 30.0
VERIFY_RETRY_S = 0.1


def load_objects() -> list[LoadedObject]:
    with warnings.catch_warnings():  # the notes on kustomization.yaml and helm/
        warnings.simplefilter("ignore")
        objects = load_manifests(MANIFESTS_DIR / "recommended").objects
    return [o for o in objects if "external-secrets" not in o.file]


def new_sim() -> SimCluster:
    return SimCluster(nodes=NODES, node_type=NODE_TYPE, speed=SPEED, clock_start=TRADING_DAY_START)


# --- counting and timing ---------------------------------------------------------------------

def kind_of_request(method: str, url: str) -> str:
    path = url.split("?")[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    parts = [p for p in path.split("/") if p]
    # discovery: /api, /api/v1, /apis, /apis/GROUP/VERSION, /version
    if method == "GET" and (len(parts) <= 1 or (parts[0] == "api" and len(parts) == 2)
                            or (parts[0] == "apis" and len(parts) == 3)):
        return "discovery"
    if method == "GET":
        # a name after the resource: /api/v1/namespaces/NS/KIND/NAME, /apis/G/V/KIND/NAME, ...
        core = parts[2:] if parts[0] == "api" else parts[3:]
        if core[:1] == ["namespaces"] and len(core) >= 3:
            core = core[2:]
        return "GET object" if len(core) == 2 else "LIST"
    return method


@dataclass
class Meter:
    """The requests made through the wrapped clients, by kind, and the seconds spent waiting for them."""

    requests: Counter[str] = field(default_factory=Counter)
    by_kind: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Seconds from sending to the response, per kind of request."""
    seconds: float = 0.0

    def wrap(self, client: Any) -> Any:
        call_api = client.call_api

        def counting(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kind = kind_of_request(method, url)
            self.requests[kind] += 1
            t0 = time.perf_counter()
            try:
                return call_api(method, url, *args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                self.seconds += took
                self.by_kind[kind] += took

        client.call_api = counting
        return client

    def text(self) -> str:
        order = ("discovery", "GET object", "PATCH", "LIST")
        kinds = [k for k in order if self.requests[k]] + sorted(k for k in self.requests if k not in order)
        parts = [f"{self.requests[k]} {k}" + (f" {self.by_kind[k]:.2f} s" if self.by_kind[k] else "") for k in kinds]
        return f"{sum(self.requests.values())} requests ({', '.join(parts)})"


@contextmanager
def metered_targets(meter: Meter) -> Iterator[None]:
    """Count the requests of the clients ``load_target`` makes meanwhile (``run_verify`` makes its own)."""
    from eafix_capacity.cluster import context

    load = context.load_target

    def metered(**kwargs: Any) -> tuple[Any, Any]:
        target, client = load(**kwargs)
        meter.requests["GET object"] += 1  # the identity read
        return target, meter.wrap(client)

    context.load_target = metered
    try:
        yield
    finally:
        context.load_target = load


@contextmanager
def timed(owner: Any, names: Sequence[str], into: defaultdict[str, float]) -> Iterator[None]:
    """Add the wall time of every call of ``owner.NAME`` to ``into[NAME]`` meanwhile (any thread)."""
    originals = {name: getattr(owner, name) for name in names}
    lock = threading.Lock()

    def wrapper(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    into[name] += time.perf_counter() - t0
        return call

    for name, fn in originals.items():
        setattr(owner, name, wrapper(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(owner, name, fn)


def cold_discovery(cache_dir: Path) -> None:
    """Empty the directory the ``DynamicClient`` keeps its discovery cache in."""
    for entry in cache_dir.glob("osrcp-*.json"):
        entry.unlink()


def reference_loop() -> float:
    """Seconds for a fixed loop of 10 million additions: how busy the shared machine is."""
    t0, x = time.perf_counter(), 0
    for i in range(10_000_000):
        x += i
    return time.perf_counter() - t0


def spread(values: Sequence[float]) -> str:
    return (f"best {min(values):.2f} s, median {statistics.median(values):.2f} s, worst {max(values):.2f} s "
            f"over {len(values)} runs")


# --- 1. the dry run ----------------------------------------------------------------------------

@dataclass
class DryRun:
    seconds: float
    meter: Meter
    outcomes: Counter[str]
    server: float
    """Seconds the sim spent in ``Api.handle`` answering this run's requests."""


def dry_run(sim: SimCluster, objects: list[LoadedObject], cache_dir: Path) -> DryRun:
    from eafix_capacity.sim.api import Api

    cold_discovery(cache_dir)
    meter, server = Meter(), defaultdict[str, float](float)
    with timed(Api, ("handle",), server):
        t0 = time.perf_counter()
        target, client = load_target(kubeconfig=str(sim.kubeconfig), context=CONTEXT)
        try:
            meter.wrap(client)
            meter.requests["GET object"] += 1  # the identity read, sent by load_target before the wrap
            records = apply(objects, api_client=client, target=target, dry_run=True)
        finally:
            client.close()
        took = time.perf_counter() - t0
    return DryRun(took, meter, Counter(r.outcome for r in records), server["handle"])


def verdict(times: Sequence[float], target: float) -> tuple[bool, str]:
    """Met when the best and the median are both under ``target``; the text says which is not."""
    best, median = min(times), statistics.median(times)
    ok = best < target and median < target
    return ok, f"target < {target:g} s: best {'met' if best < target else 'MISSED'}, " \
               f"median {'met' if median < target else 'MISSED'}"


def bench_dry_runs(sim: SimCluster, objects: list[LoadedObject], cache_dir: Path, what: str) -> bool:
    runs = [dry_run(sim, objects, cache_dir) for _ in range(DRY_RUNS)]
    times = [r.seconds for r in runs]
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(runs[-1].outcomes.items()))
    ok, said = verdict(times, DRY_TARGET_S)
    last = runs[-1]
    print(f"dry run, {what}: {spread(times)} ({said}); records: {outcomes}; the last run: "
          f"{last.meter.text()}, {last.meter.seconds:.2f} s of its {last.seconds:.2f} s waiting for responses, "
          f"{last.server:.2f} s of them in the sim's Api.handle")
    return ok


# --- 2. apply until verify PASSes -------------------------------------------------------------

@dataclass
class ApplyRun:
    total: float
    target: float
    apply_requests: float
    rollout: float
    verify: float
    verify_rounds: int
    meter: Meter
    verify_meter: Meter
    records: int
    result: str
    failing: tuple[str, ...]
    """The checks that were not PASS in the first verify round."""


def apply_and_verify(objects: list[LoadedObject], plan: Plan, cache_dir: Path) -> ApplyRun:
    cold_discovery(cache_dir)
    with new_sim() as sim:
        meter = Meter()
        t0 = time.perf_counter()
        target, client = load_target(kubeconfig=str(sim.kubeconfig), context=CONTEXT)
        t_target = time.perf_counter() - t0
        meter.wrap(client)
        meter.requests["GET object"] += 1  # the identity read
        wait = waiter(client, timeout=ROLLOUT_TIMEOUT_S, progress=False, poll_interval=POLL_S)
        waited = [0.0]

        def after_phase(phase: Any, records: Sequence[Any]) -> None:
            w0 = time.perf_counter()
            try:
                wait(phase, records)
            finally:
                waited[0] += time.perf_counter() - w0

        try:
            records = apply(objects, api_client=client, target=target, dry_run=False, context_given=True,
                            after_phase=after_phase)
        finally:
            client.close()
        t1 = time.perf_counter()
        rounds, result = 0, ""
        failing: tuple[str, ...] = ()
        deadline = t1 + VERIFY_TIMEOUT_S
        verify_meter = Meter()
        while True:
            rounds += 1
            with metered_targets(verify_meter):
                got = run_verify(plan, kubeconfig=str(sim.kubeconfig), context=CONTEXT)
            result = got.result
            if rounds == 1:
                failing = tuple(sorted({f"{c.status} {c.name} {c.subject}: expected {c.expected}, found {c.actual}"
                                        for c in got.checks if c.status != "PASS"}))
            if result == "PASS" or time.perf_counter() > deadline:
                break
            time.sleep(VERIFY_RETRY_S)
        t2 = time.perf_counter()
    return ApplyRun(total=t2 - t0, target=t_target, apply_requests=t1 - t0 - t_target - waited[0],
                    rollout=waited[0], verify=t2 - t1, verify_rounds=rounds, meter=meter, verify_meter=verify_meter,
                    records=len(records), result=result, failing=failing)


def bench_apply(objects: list[LoadedObject], plan: Plan, cache_dir: Path) -> bool:
    runs = [apply_and_verify(objects, plan, cache_dir) for _ in range(APPLY_RUNS)]
    for r in runs:
        print(f"  {r.total:.2f} s: target load {r.target:.2f} s; apply requests {r.apply_requests:.2f} s "
              f"({r.records} records); rollout wait {r.rollout:.2f} s; apply's client: {r.meter.text()}; "
              f"verify read+compare {r.verify:.2f} s ({r.verify_rounds} round(s), {r.verify_meter.text()}): "
              f"{r.result}")
        for line in r.failing[:10]:
            print(f"    first verify round: {line}")
    times = [r.total for r in runs]
    ok, said = verdict(times, APPLY_TARGET_S)
    passed = all(r.result == "PASS" for r in runs)
    print(f"apply until verify PASSes (a new sim each run, clock {SPEED:g}x): {spread(times)} ({said}"
          f"{'' if passed else '; verify did NOT PASS in every run'})")
    return ok and passed


# --- profile ---------------------------------------------------------------------------------

def profiled(what: str, fn: Callable[[], Any], limit: int = 25) -> None:
    """cProfile ``fn`` in this thread (the client) and, in the sim's handler threads, every
    request the API answers (``Api.handle``; one request at a time, as the kit sends them)."""
    from eafix_capacity.sim.api import Api

    client, server = cProfile.Profile(), cProfile.Profile()
    lock = threading.Lock()
    handle = Api.handle

    def profiled_handle(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return server.runcall(handle, self, *args, **kwargs)

    Api.handle = profiled_handle  # type: ignore[method-assign]
    try:
        client.enable()
        fn()
        client.disable()
    finally:
        Api.handle = handle  # type: ignore[method-assign]
    # cProfile inflates pure-Python code several times over: the same run's parts by the wall clock
    import eafix_capacity.sim.api as sim_api

    parts: defaultdict[str, float] = defaultdict(float)
    with timed(sim_api.Api, ("handle",), parts), timed(sim_api, ("_decode", "validate", "server_side_apply"), parts):
        t0 = time.perf_counter()
        fn()
        took = time.perf_counter() - t0
    print(f"--- {what}, again without cProfile, by the wall clock: {took:.2f} s; in the sim: "
          + ", ".join(f"{name} {parts[name]:.2f} s" for name in ("handle", "_decode", "validate", "server_side_apply"))
          + " (Api.handle holds the others; validate runs twice per apply PATCH: the applied configuration, "
            "then the merged object)")
    for side, profile in (("the client (this thread; the sim's answers are in its socket reads)", client),
                          ("the sim's Api.handle (its handler threads)", server)):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(limit)
        print(f"--- cProfile of {what}: {side}")
        print(out.getvalue())


def main(argv: Sequence[str]) -> int:
    global SPEED, POLL_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="cProfile one dry run and one apply, client and sim")
    parser.add_argument("--speed", type=float, default=SPEED, help=f"the sims' clock speed (default {SPEED:g})")
    parser.add_argument("--poll", type=float, default=POLL_S,
                        help=f"the rollout wait's poll interval (default {POLL_S:g} s, the CLI's)")
    args = parser.parse_args(argv)
    SPEED, POLL_S = args.speed, args.poll
    loop_before = reference_loop()
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    tempfile.tempdir = str(cache_dir)  # where the DynamicClient keeps its discovery cache
    try:
        t0 = time.perf_counter()
        import kubernetes.client  # noqa: F401  (paid once per process, before any timing below)
        import kubernetes.config  # noqa: F401
        import kubernetes.dynamic  # noqa: F401
        imported = time.perf_counter() - t0
        objects = load_objects()
        plan = plan_from_params(PlanParams(profile="recommended"))
        print(f"{len(objects)} objects of manifests/recommended (the External Secrets variant left out); "
              f"sims of {NODES} x {NODE_TYPE} (the plan: {plan.nodes} x {plan.node_type.name}), clock at "
              f"{SPEED:g}x real time from {TRADING_DAY_START:%Y-%m-%d %H:%M} UTC; rollout poll {POLL_S:g} s")
        t0 = time.perf_counter()
        with new_sim() as sim:
            print(f"(not timed below: the official client's import {imported:.2f} s, sim start-up "
                  f"{time.perf_counter() - t0:.2f} s)")
            ok_fresh = bench_dry_runs(sim, objects, cache_dir, "cluster without the rendering")
            target, client = load_target(kubeconfig=str(sim.kubeconfig), context=CONTEXT)
            try:
                apply(objects, api_client=client, target=target, dry_run=False, context_given=True,
                      after_phase=waiter(client, timeout=ROLLOUT_TIMEOUT_S, progress=False))
            finally:
                client.close()
            ok_live = bench_dry_runs(sim, objects, cache_dir, "cluster that runs the rendering")
            if args.profile:
                cold_discovery(cache_dir)
                profiled("one dry run on the cluster that runs the rendering",
                         lambda: dry_run(sim, objects, cache_dir))
        ok_apply = bench_apply(objects, plan, cache_dir)
        if args.profile:
            profiled("one apply until verify PASSes", lambda: apply_and_verify(objects, plan, cache_dir))
    finally:
        tempfile.tempdir = None
        shutil.rmtree(cache_dir, ignore_errors=True)
    ok = ok_fresh and ok_live and ok_apply
    print(f"machine load: a loop of 10 million additions took {loop_before:.2f} s before, {reference_loop():.2f} s "
          "after (the lower, the quieter the machine)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
