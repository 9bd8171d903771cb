"""Benchmark ``verify`` on a large cluster: read the live state and compare it with the plan.

A sim with 1,000 nodes and 10,000 bound pods (loaded straight into its store, as
``bench_sim_api.py`` loads them; the pods carry the catalogue's service labels, so the
per-service spread and per-node request checks do real work). Timed from the start of
``load_target`` (the official client's import included, as a fresh ``eafix-capacity verify``
pays it) to the last check.

Targets (exit 1 if one is missed): read + verify under 5 s, and exactly one list call per kind
(no per-pod or per-node request), counted on the client.

Run: ``.venv/bin/python bench/bench_verify.py``
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.livestate import KINDS, read_live_state
from eafix_capacity.cluster.verify import verify
from eafix_capacity.inputs import PlanParams, plan_from_params
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import SimCluster

NODES = 1000
PODS = 10_000
TARGET_S = 5.0
NS = "eafix-trading"


def load(sim: SimCluster) -> None:
    store = sim.store
    assert store is not None
    nodes = [n["metadata"]["name"] for n in store.list(R.NODE)[0]]
    services = [s.name for s in load_catalog().services]
    store.create(R.NAMESPACE, {"metadata": {"name": NS}})
    for i in range(PODS):
        svc = services[i % len(services)]
        store.create(R.POD, {
            "metadata": {"name": f"{svc}-7d9f8b6c5d-{i:05d}", "namespace": NS,
                         "labels": {"app.kubernetes.io/name": svc}},
            "spec": {"nodeName": nodes[i % len(nodes)], "containers": [
                {"name": svc, "image": f"eafix/{svc}:1.0",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250 % 250}.{i % 250}",
                       "containerStatuses": [{"name": svc, "ready": True, "restartCount": 0,
                                              "state": {"running": {}}}]}})


def counted(client: Any) -> Counter[tuple[str, str]]:
    """Count the client's requests by (method, path without the query)."""
    calls: Counter[tuple[str, str]] = Counter()
    call_api = client.call_api

    def counting(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls[(method, url.split("?")[0].split("://", 1)[-1].partition("/")[2])] += 1
        return call_api(method, url, *args, **kwargs)

    client.call_api = counting
    return calls


def main() -> int:
    plan = plan_from_params(PlanParams())
    with SimCluster(nodes=NODES, controllers=False) as sim:
        load(sim)
        t0 = time.perf_counter()
        _, client = load_target(kubeconfig=str(sim.kubeconfig), context="eafix-sim")
        calls = counted(client)
        try:
            live = read_live_state(client)
        finally:
            client.close()
        t1 = time.perf_counter()
        checks = verify(live, plan)
        t2 = time.perf_counter()
    total = t2 - t0
    lists = sorted(path for (method, path), n in calls.items() if method == "GET")
    one_each = len(calls) == len(KINDS) and set(calls.values()) == {1}
    print(f"verify on {len(live.nodes)} nodes + {len(live.pods)} pods: read {t1 - t0:.2f} s (target load, "
          f"client import included), verify {t2 - t1:.2f} s, total {total:.2f} s (target < {TARGET_S:g} s); "
          f"{sum(calls.values())} requests for {len(KINDS)} kinds ({'one list call per kind' if one_each else lists}); "
          f"{len(checks)} checks")
    ok = total < TARGET_S and one_each and len(live.nodes) == NODES and len(live.pods) >= PODS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
