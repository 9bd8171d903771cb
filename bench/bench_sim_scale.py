"""Benchmark: how fast the sim's controllers, scheduler and kubelet bring workloads to Running.

1. Scale: Deployments totalling 10,000 pods onto 1,000 nodes, created through the store
   (as the API would) and driven by the controllers; reports the time until every pod is
   Running and the store's write rate (no target: figures for the README), then the sim's
   memory and ``kubectl get pods -A`` over those pods. The scenario runs in a fresh
   interpreter that does nothing else, so the RSS figures are the sim's alone: settled
   (``VmRSS`` once the controllers are idle) and peak (``VmHWM``, the high-water mark over
   the whole run, the listing included). Targets: both under 500 MB, the listing under 3 s.
2. EAFIX: a set shaped like the EAFIX catalogue (10 trading services, redis, postgres,
   prometheus, grafana; 30 pods) applied with the real ``kubectl apply -f DIR``, and the
   committed rendering ``manifests/recommended`` with ``kubectl apply -k``; target: every pod
   Running within 3 s of the apply starting.

Run: ``.venv/bin/python bench/bench_sim_scale.py [--pods 10000 --nodes 1000] [--skip-scale]``
(``--scale-only`` runs just the scale scenario in this process and prints its figures as JSON).
Exits non-zero when a target is missed.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import SimCluster

EAFIX_TARGET_S = 3.0
RSS_TARGET_MB = 500.0
GET_TARGET_S = 3.0
NAMESPACE = "eafix-trading"
TRADING = {  # name: (replicas, cpu, memory, cpu limit, memory limit)
    "data-ingestor": (3, "200m", "256Mi", "500m", "512Mi"),
    "indicator-engine": (3, "300m", "512Mi", "700m", "1Gi"),
    "signal-generator": (3, "200m", "256Mi", "500m", "512Mi"),
    "risk-manager": (3, "300m", "512Mi", "700m", "1Gi"),
    "execution-engine": (3, "200m", "256Mi", "500m", "512Mi"),
    "calendar-ingestor": (2, "100m", "128Mi", "250m", "256Mi"),
    "reentry-matrix-svc": (2, "200m", "256Mi", "500m", "512Mi"),
    "reporter": (2, "100m", "256Mi", "250m", "512Mi"),
    "gui-gateway": (3, "200m", "256Mi", "500m", "512Mi"),
    "compliance-monitor": (2, "100m", "256Mi", "250m", "512Mi"),
    "redis": (1, "250m", "512Mi", "500m", "1Gi"),
    "prometheus": (1, "500m", "2Gi", "1", "4Gi"),
    "grafana": (1, "100m", "256Mi", "250m", "512Mi"),
}


def deployment(name: str, replicas: int, cpu: str, mem: str, cpu_l: str, mem_l: str, *, ns: str) -> dict:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "eafix"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{
                                      "name": name, "image": f"eafix/{name}:1.0.0",
                                      "resources": {"requests": {"cpu": cpu, "memory": mem},
                                                    "limits": {"cpu": cpu_l, "memory": mem_l}}}]}}}}


def eafix_manifests(directory: Path) -> int:
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    pods = 0
    for name, (replicas, cpu, mem, cpu_l, mem_l) in TRADING.items():
        docs.append(deployment(name, replicas, cpu, mem, cpu_l, mem_l, ns=NAMESPACE))
        pods += replicas
    labels = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/part-of": "eafix"}
    docs.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": {"name": "postgres", "namespace": NAMESPACE, "labels": labels},
                 "spec": {"serviceName": "postgres", "replicas": 1,
                          "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
                          "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                              "name": "postgres", "image": "postgres:16.1",
                              "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                            "limits": {"cpu": "1", "memory": "2Gi"}}}]}},
                          "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                              "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}}}]}})
    pods += 1
    (directory / "00-namespace.yaml").write_text(yaml.safe_dump(docs[0]))
    (directory / "10-workloads.yaml").write_text(yaml.safe_dump_all(docs[1:]))
    return pods


def all_running(sim: SimCluster, namespace: str | None, want: int) -> bool:
    assert sim.store is not None
    pods, _, _ = sim.store.list_objects(R.POD, namespace)
    return len(pods) == want and all((p.get("status") or {}).get("phase") == "Running" for p in pods)


class RunningCounter:
    """Counts Running pods from the store's change feed (polling a 10,000-pod list would
    compete with the controllers for the interpreter)."""

    def __init__(self, sim: SimCluster, namespace: str) -> None:
        self.namespace = namespace
        self.running: set[str] = set()
        self.done = threading.Event()
        self.want = 0
        assert sim.store is not None
        sim.store.subscribe(self._on_change)

    def _on_change(self, etype: str, rt: object, obj: dict) -> None:
        if getattr(rt, "key", None) != R.POD.key or obj["metadata"].get("namespace") != self.namespace:
            return
        name = obj["metadata"]["name"]
        if etype != "DELETED" and (obj.get("status") or {}).get("phase") == "Running":
            self.running.add(name)
        else:
            self.running.discard(name)
        if self.want and len(self.running) >= self.want:
            self.done.set()


def bench_apply(apply_args: list[str], *, want: int | None, tmp: str) -> tuple[float, float, int]:
    """(seconds from the start of ``kubectl apply`` until every pod of the namespace is Running,
    seconds the apply command itself took, pods)."""
    with SimCluster(nodes=3, node_type="n2-standard-8") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        base = ["kubectl", f"--kubeconfig={sim.kubeconfig}", f"--cache-dir={tmp}/cache"]
        subprocess.run(base + ["get", "nodes"], env=env, capture_output=True, check=True)  # warm discovery
        t0 = time.perf_counter()
        done = subprocess.run(base + ["apply", *apply_args], env=env, capture_output=True, text=True)
        applied = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"kubectl apply {' '.join(apply_args)} failed: {done.stderr}")
        if want is None:
            sim.settle(timeout=30)
            assert sim.store is not None
            want = len(sim.store.list_objects(R.POD, NAMESPACE)[0])
        while not all_running(sim, NAMESPACE, want):
            if time.perf_counter() - t0 > 30:
                raise SystemExit("the EAFIX pods did not reach Running within 30 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        out = subprocess.run(base + ["wait", "--for=condition=ready", "pod", "--all", "-n", NAMESPACE,
                                     "--timeout=30s"], env=env, capture_output=True, text=True)
        if out.returncode != 0 or out.stdout.count("condition met") != want:
            raise SystemExit(f"kubectl wait failed: {out.stderr}")
        return elapsed, applied, want


def bench_eafix() -> list[tuple[str, float, float, int]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "manifests"
        directory.mkdir()
        want = eafix_manifests(directory)
        results.append(("EAFIX-shaped set (14 services), kubectl apply -f DIR",
                        *bench_apply(["-f", str(directory)], want=want, tmp=tmp)))
        rendering = MANIFESTS_DIR / "recommended"
        if (rendering / "kustomization.yaml").exists():
            results.append(("committed rendering manifests/recommended, kubectl apply -k DIR",
                            *bench_apply(["-k", str(rendering)], want=None, tmp=tmp)))
    return results


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/self/status has no {field} (this benchmark needs Linux)")


def kubectl_get_pods(sim: SimCluster) -> tuple[float, int]:
    """(seconds ``kubectl get pods -A`` took, rows it printed), discovery cached beforehand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    with tempfile.TemporaryDirectory() as cache:
        base = ["kubectl", f"--kubeconfig={sim.kubeconfig}", f"--cache-dir={cache}"]
        subprocess.run(base + ["get", "nodes", "-o", "name"], env=env, capture_output=True, check=True)
        t0 = time.perf_counter()
        out = subprocess.run(base + ["get", "pods", "-A"], env=env, capture_output=True, text=True, check=True)
        return time.perf_counter() - t0, len(out.stdout.splitlines()) - 1


def bench_scale(pods: int, nodes: int, per_deployment: int) -> dict:
    """The scale scenario in this process; run it in a fresh one (``bench_scale_fresh``) for RSS."""
    rss_start = proc_status_mb("VmRSS")
    t_start = time.perf_counter()
    with SimCluster(nodes=nodes, node_type="n2-standard-8") as sim:
        started = time.perf_counter() - t_start
        assert sim.store is not None
        store = sim.store
        store.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scale"}})
        count = pods // per_deployment
        counter = RunningCounter(sim, "scale")
        counter.want = count * per_deployment
        rv0 = store.resource_version
        t0 = time.perf_counter()
        for i in range(count):
            store.create(R.DEPLOYMENT, deployment(f"svc-{i:04d}", per_deployment, "100m", "128Mi", "200m", "256Mi",
                                                   ns="scale"))
        if not counter.done.wait(900):
            raise SystemExit("scale set did not reach Running within 900 s")
        elapsed = time.perf_counter() - t0
        if not all_running(sim, "scale", count * per_deployment):
            raise SystemExit("pods counted Running are not all Running in the store")
        writes = store.resource_version - rv0
        sim.settle(timeout=120)
        gc.collect()
        settled_mb = proc_status_mb("VmRSS")
        all_pods = store.count(R.POD)  # the kube-system pods too: `get pods -A` lists them
        get_s, rows = kubectl_get_pods(sim)
        peak_mb = proc_status_mb("VmHWM")
        return {"pods": count * per_deployment, "nodes": nodes, "startup_s": started, "running_s": elapsed,
                "writes": writes, "writes_per_s": writes / elapsed, "start_rss_mb": rss_start,
                "settled_rss_mb": settled_mb, "peak_rss_mb": peak_mb, "get_pods_s": get_s, "get_pods_rows": rows,
                "all_pods": all_pods}


def bench_scale_fresh(pods: int, nodes: int, per_deployment: int) -> dict:
    """``bench_scale`` in a new interpreter, so no earlier run (or this script) shows in its RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scale-only", "--pods", str(pods), "--nodes", str(nodes),
           "--per-deployment", str(per_deployment)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the scale scenario failed (exit {done.returncode}): {done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--per-deployment", type=int, default=100)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--scale-only", action="store_true", help="run only the scale scenario here; print JSON")
    args = ap.parse_args(argv)
    if args.scale_only:
        print(json.dumps(bench_scale(args.pods, args.nodes, args.per_deployment)))
        return 0

    ok = True
    for label, elapsed, applied, pods in bench_eafix():
        passed = elapsed < EAFIX_TARGET_S
        ok &= passed
        print(f"eafix: {label}: {pods} pods all Running {elapsed:.2f} s after the apply started "
              f"(the apply itself {applied:.2f} s; target < {EAFIX_TARGET_S:.0f} s) {'PASS' if passed else 'FAIL'}")
    if not args.skip_scale:
        r = bench_scale_fresh(args.pods, args.nodes, args.per_deployment)
        print(f"scale: {r['pods']} pods in {r['pods'] // args.per_deployment} Deployments on {r['nodes']} nodes: "
              f"all Running in {r['running_s']:.1f} s ({r['pods'] / r['running_s']:.0f} pods/s; "
              f"{r['writes']} store writes, {r['writes_per_s']:.0f}/s); sim start-up {r['startup_s']:.2f} s")
        mem_ok = r["settled_rss_mb"] < RSS_TARGET_MB and r["peak_rss_mb"] < RSS_TARGET_MB
        print(f"scale: sim memory (fresh process): settled RSS {r['settled_rss_mb']:.0f} MB, peak RSS "
              f"{r['peak_rss_mb']:.0f} MB (interpreter and imports {r['start_rss_mb']:.0f} MB; "
              f"target < {RSS_TARGET_MB:.0f} MB) {'PASS' if mem_ok else 'FAIL'}")
        get_ok = r["get_pods_s"] < GET_TARGET_S and r["get_pods_rows"] == r["all_pods"]
        print(f"scale: `kubectl get pods -A` {r['get_pods_s']:.2f} s ({r['get_pods_rows']} rows, "
              f"{r['all_pods'] - r['pods']} of them kube-system; "
              f"target < {GET_TARGET_S:.0f} s) {'PASS' if get_ok else 'FAIL'}")
        ok &= mem_ok and get_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
