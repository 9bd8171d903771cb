"""Manifest benchmarks: render+write, load+import, validate+check.

Targets (issue 3):
  - render and write both profiles (minimum, recommended): under 500 ms
  - load and import 1,000 objects: under 1 s
  - validate and check the EAFIX rendering (recommended, mesh on): under 3 s

Each figure is the median of several runs, each run starting cold (schemas, files).
Prints the figures; exits 1 when a target is missed.

    .venv/bin/python bench/bench_manifests.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from eafix_capacity.catalog import load_catalog
from eafix_capacity.manifests.checks import run_checks
from eafix_capacity.manifests.importer import import_objects
from eafix_capacity.manifests.load import load_manifests
from eafix_capacity.manifests.layout import write_tree
from eafix_capacity.manifests.render import RenderOptions
from eafix_capacity.manifests.validate import SchemaSet
from eafix_capacity.manifests.workflow import build, build_profile, generate
from eafix_capacity.profiles import load_profiles

RUNS = 5

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: svc-{i}, namespace: bench}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: svc-{i}}}}}
  template:
    metadata: {{labels: {{app: svc-{i}}}}}
    spec:
      containers:
      - name: main
        image: example.com/svc-{i}:1.0.{i}
        ports: [{{containerPort: {port}}}]
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
          limits: {{cpu: 500m, memory: 512Mi}}
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes:
      - name: data
        persistentVolumeClaim: {{claimName: svc-{i}-data}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: svc-{i}-data, namespace: bench}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: svc-{i}, namespace: bench}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: svc-{i}}}
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 70}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: bench}}
spec:
  selector: {{app: svc-{i}}}
  ports: [{{port: {port}}}]
"""


def _median(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_render_write(tmp: Path) -> float:
    """Both profiles from one load of the inputs, as one run of the kit renders them:
    catalogue and profiles read once, schema validators shared, each tree written."""
    def run() -> None:
        catalog, profiles = load_catalog(), load_profiles()
        schemas = SchemaSet()
        for name in ("minimum", "recommended"):
            gen = build(catalog, profiles[name], RenderOptions(), schemas=schemas)
            write_tree(gen.files, out_dir=tmp / "render" / name)
    return _median(run)


def bench_generate_cli(tmp: Path) -> float:
    """One ``manifests generate --profile recommended`` as the CLI runs it (for reference)."""
    return _median(lambda: generate(profile="recommended", out_dir=tmp / "cli"))


def bench_load_import(tmp: Path, objects: int = 1000) -> float:
    root = tmp / "foreign"
    root.mkdir()
    per_service = 4
    services = objects // per_service
    for f in range(10):
        docs = [DEPLOYMENT.format(i=i, replicas=2 + i % 3, port=8000 + i)
                for i in range(f * services // 10, (f + 1) * services // 10)]
        (root / f"part-{f:02d}.yaml").write_text("---\n".join(docs))

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = load_manifests(root)
        assert len(loaded.objects) == objects, len(loaded.objects)
        catalog = import_objects(loaded)
        assert len(catalog.services) == services
    return _median(run)


def bench_validate_check() -> tuple[float, int]:
    objects = build_profile("recommended", mesh="istio").objects

    def run() -> None:
        report = run_checks(objects)
        assert report.passed
    return _median(run), len(objects)


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-manifests-") as d:
        tmp = Path(d)
        results.append(("render + write both profiles", bench_render_write(tmp), 0.5))
        results.append(("load + import 1,000 objects", bench_load_import(tmp), 1.0))
        cli = bench_generate_cli(tmp)
    t, n = bench_validate_check()
    results.append((f"validate + check the EAFIX rendering ({n} objects)", t, 3.0))
    failed = False
    for name, seconds, target in results:
        ok = seconds < target
        failed |= not ok
        print(f"{name:55s} {seconds * 1000:8.1f} ms  (target < {target * 1000:.0f} ms)  "
              f"{'ok' if ok else 'MISSED'}")
    print(f"{'(reference) one generate --profile recommended':55s} {cli * 1000:8.1f} ms  (no target)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
