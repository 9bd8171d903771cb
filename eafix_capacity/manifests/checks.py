"""The check suite: is this set of manifests something a platform team would merge?

Per object it reports whether its kind is known (a misspelt ``Deploymnt`` fails, or with
``ignore_unknown_kinds`` is a warning and the object is skipped), the schema result and,
for pod-bearing workloads, the Pod
Security Standards ``restricted`` profile (plus a read-only root filesystem), requests
and limits, probes, pinned image tags, a PodDisruptionBudget and node spread for
multi-replica services (and a zone spread, where there is one, that selects their pods
and honours taints), runtime settings that must fit inside memory limits (Redis
``maxmemory``, JVM ``-Xmx``, PostgreSQL ``shared_buffers``), and literal secrets in any
object, and memory quantities Kubernetes accepts but nobody means (``256m`` is 256
millibytes). The result is a table (one row per object and check) and a pass/fail; a
check of no objects does not pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, TypeVar

import pandas as pd

from ..kobject import get_in, selector_matches
from ..errors import QuantityError
from ..quantity import memory_typo, parse
from . import runtime as rt
from .importer import _guess_runtime
from .kinds import known_kinds
from .layout import object_ref
from .secrets import find_literal_secrets
from .validate import SchemaSet, validate_object
from .render import KUBERNETES_VERSION

T = TypeVar("T")

CHECK_COLUMNS = ["object", "file", "check", "status", "detail"]
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
CHECKS = ("kind", "schema", "restricted", "resources", "probes", "image", "availability", "config", "secrets")


@dataclass(frozen=True)
class CheckReport:
    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        """No failing row, and at least one row: a check of nothing is not a pass."""
        return len(self.table) > 0 and not bool((self.table["status"] == "fail").any())

    @property
    def failures(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "fail"].reset_index(drop=True)

    def summary(self) -> dict[str, int]:
        counts = self.table["status"].value_counts()
        return {k: int(counts.get(k, 0)) for k in ("pass", "fail", "warn")}


def _pod_spec(obj: dict) -> dict | None:
    return get_in(obj, "spec", "template", "spec") if obj.get("kind") in POD_KINDS else None


def _restricted(pod: dict) -> list[str]:
    """Pod Security Standards ``restricted`` (v1.32) plus a read-only root filesystem."""
    out = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key} is true")
    for v in pod.get("volumes") or []:
        allowed = {"name", "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
        extra = set(v) - allowed
        if extra:
            out.append(f"volume {v.get('name')} uses {sorted(extra)[0]}")
    containers = list(pod.get("initContainers") or []) + list(pod.get("containers") or [])
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c.get("name")
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("hostPort"):
                out.append(f"{name}: hostPort {p['hostPort']} (host ports are refused)")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation is not false")
        drop = (sc.get("capabilities") or {}).get("drop") or []
        if "ALL" not in drop:
            out.append(f"{name}: capabilities not dropped (drop: [ALL])")
        added = set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{name}: adds capabilities {sorted(added)}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile is not RuntimeDefault")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{name}: readOnlyRootFilesystem is not true")
    return out


def _resources(pod: dict) -> list[str]:
    out = []
    for c in pod.get("containers") or []:
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for key in ("cpu", "memory"):
                v = (res.get(part) or {}).get(key)
                if v is None:
                    out.append(f"{c.get('name')}: no {part}.{key}")
                    continue
                try:
                    parse(v)
                    typo = memory_typo(v) if key == "memory" else None
                except QuantityError:
                    out.append(f"{c.get('name')}: {part}.{key} {v!r} is not a valid quantity")
                    continue
                if typo:
                    out.append(f"{c.get('name')}: {part}.{key}: {typo}")
    return out


def _probes(pod: dict) -> list[str]:
    out = []
    for i, c in enumerate(pod.get("containers") or []):
        if i > 0 and not c.get("ports"):
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            if not c.get(probe):
                out.append(f"{c.get('name')}: no {probe}")
    return out


def _image(pod: dict) -> list[str]:
    out = []
    for c in list(pod.get("initContainers") or []) + list(pod.get("containers") or []):
        image = str(c.get("image") or "")
        if not image:
            out.append(f"{c.get('name')}: no image")
        elif "@" in image:
            continue
        else:
            last = image.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else None
            if tag is None:
                out.append(f"{c.get('name')}: image {image} has no tag (means latest)")
            elif tag == "latest":
                out.append(f"{c.get('name')}: image {image} uses the mutable tag latest")
    return out


def _memory_limit(c: dict) -> int | None:
    v = get_in(c, "resources", "limits", "memory")
    try:
        return parse(v).int_value() if v is not None else None
    except QuantityError:
        return None


def _config(obj: dict, pod: dict, config_maps: dict[tuple[str, str], dict]) -> list[str]:
    out: list[str] = []
    labels = {**(get_in(obj, "metadata", "labels") or {}), **(get_in(obj, "spec", "template", "metadata", "labels") or {})}
    containers = pod.get("containers") or []
    if not containers:
        return out
    runtime = _guess_runtime(labels, containers)
    ns = get_in(obj, "metadata", "namespace") or ""
    texts: dict[str, str] = {}
    for v in pod.get("volumes") or []:
        name = get_in(v, "configMap", "name")
        cm = config_maps.get((ns, name)) if name else None
        for key, text in ((cm or {}).get("data") or {}).items():
            texts[key] = str(text)
    main = containers[0]
    limit = _memory_limit(main)

    def over(value: int, fraction: Fraction) -> bool:
        return limit is not None and value > limit * fraction

    if runtime == "redis":
        raw = None
        for key, text in texts.items():
            if key.endswith(".conf"):
                raw = rt.redis_maxmemory_in(text) or raw
        args = [str(a) for a in (main.get("command") or []) + (main.get("args") or [])]
        for i, a in enumerate(args[:-1]):
            if a == "--maxmemory":
                raw = args[i + 1]
        if raw is None:
            out.append("redis: no maxmemory; Redis grows until the container is OOM-killed")
        else:
            n = rt.parse_redis_size(raw)
            if n is None:
                out.append(f"redis: maxmemory {raw!r} is not a size")
            elif over(n, rt.MAX_REDIS_MAXMEMORY):
                out.append(f"redis: maxmemory {raw} ({n} bytes) exceeds {rt.MAX_REDIS_MAXMEMORY} "
                           f"of the memory limit ({limit} bytes)")
    if runtime == "postgres":
        found = None
        for key, text in texts.items():
            if key.endswith(".conf"):
                found = rt.postgres_shared_buffers_in(text) or found
        args = [str(a) for a in (main.get("args") or [])]
        for i, a in enumerate(args):
            if a.startswith("shared_buffers=") and i > 0 and args[i - 1] == "-c":
                found = rt.postgres_shared_buffers_in(a.replace("=", " = ", 1))
        if found is not None:
            line, n = found
            if n is None:
                out.append(f"postgres: cannot read {line!r}")
            elif over(n, rt.MAX_POSTGRES_SHARED_BUFFERS):
                out.append(f"postgres: {line} ({n} bytes) exceeds {rt.MAX_POSTGRES_SHARED_BUFFERS} "
                           f"of the memory limit ({limit} bytes)")
    for c in containers:
        climit = _memory_limit(c)
        for e in c.get("env") or []:
            if isinstance(e, dict) and e.get("name") in ("JAVA_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS") \
                    and isinstance(e.get("value"), str):
                found = rt.jvm_max_heap_in(e["value"])
                if found is None:
                    continue
                text, n = found
                if n is None:
                    out.append(f"{c.get('name')}: {text} is not a heap size")
                elif climit is not None and n > climit * rt.MAX_JVM_HEAP:
                    out.append(f"{c.get('name')}: {text} ({n} bytes) exceeds {rt.MAX_JVM_HEAP} of the "
                               f"memory limit ({climit} bytes)")
    return out


def _scaled(value: object, replicas: int) -> int | None:
    """An int-or-percent PDB field as a pod count (percentages round up, as the
    disruption controller does); None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return -(-int(value[:-1]) * replicas // 100)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _pdb_blocks_eviction(spec: dict, replicas: int) -> str | None:
    """The field that leaves zero allowed disruptions at ``replicas`` healthy pods."""
    if "maxUnavailable" in spec:
        n = _scaled(spec["maxUnavailable"], replicas)
        return f"maxUnavailable {spec['maxUnavailable']}" if n is not None and n <= 0 else None
    if "minAvailable" in spec:
        n = _scaled(spec["minAvailable"], replicas)
        return f"minAvailable {spec['minAvailable']}" if n is not None and n >= replicas else None
    return None


def _availability(obj: dict, pod_labels: dict, pdbs: list[dict], hpas: list[dict]) -> tuple[bool, list[str]]:
    """(multi-replica?, problems)."""
    name = get_in(obj, "metadata", "name")
    ns = get_in(obj, "metadata", "namespace") or ""
    mine_hpas = [h for h in hpas if get_in(h, "spec", "scaleTargetRef", "name") == name
                 and get_in(h, "spec", "scaleTargetRef", "kind") == obj.get("kind")
                 and (get_in(h, "metadata", "namespace") or "") == ns]

    def count(value: object) -> int | None:   # a wrong type is the schema check's to report
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    hpa_max = max((count(get_in(h, "spec", "maxReplicas")) or 0 for h in mine_hpas), default=0)
    hpa_min = min((count(get_in(h, "spec", "minReplicas")) or 1 for h in mine_hpas), default=1)
    replicas = count(get_in(obj, "spec", "replicas"))
    if replicas is None:   # absent: 1, or what an HPA keeps at least
        replicas = hpa_min if mine_hpas else 1
    if obj.get("kind") == "DaemonSet" or max(replicas, hpa_max) <= 1:
        return False, []
    out = []
    mine = [p for p in pdbs if selector_matches(get_in(p, "spec", "selector"), pod_labels)
            and (get_in(p, "metadata", "namespace") or "") == ns]
    if not mine:
        out.append("no PodDisruptionBudget selects its pods")
    for p in mine if replicas > 0 else []:
        blocked = _pdb_blocks_eviction(get_in(p, "spec") or {}, replicas)
        if blocked:
            out.append(f"PodDisruptionBudget {get_in(p, 'metadata', 'name')}: {blocked} with "
                       f"{replicas} replicas allows no eviction, so a node drain never completes")
    spread = get_in(obj, "spec", "template", "spec", "topologySpreadConstraints") or []
    if not any(c.get("topologyKey") == "kubernetes.io/hostname" and selector_matches(c.get("labelSelector"), pod_labels)
               for c in spread):
        out.append("no topologySpreadConstraint over kubernetes.io/hostname selects its pods")
    for c in spread:
        if c.get("topologyKey") != "topology.kubernetes.io/zone":
            continue
        # a zone spread is optional (``zone_spread``), but one that is there must do its work
        if not selector_matches(c.get("labelSelector"), pod_labels):
            out.append("the topologySpreadConstraint over topology.kubernetes.io/zone selects none of "
                       "its pods, so it spreads nothing")
        elif c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule" and c.get("nodeTaintsPolicy") != "Honor":
            # podtopologyspread counts tainted nodes unless Honor: a lost zone stays a domain
            out.append("the topologySpreadConstraint over topology.kubernetes.io/zone lacks nodeTaintsPolicy "
                       "Honor, so the nodes of a lost zone still count and can hold back the replacements")
    return True, out


def _guarded(run: Callable[[], T]) -> T | list[str]:
    """A check's result, or a failure naming the malformed part when a hand-written
    manifest has the wrong shape (a string where a mapping belongs): the schema check
    reports the field, and the check suite itself must not stop with a traceback."""
    try:
        return run()
    except (AttributeError, TypeError, KeyError) as e:
        return [f"cannot check a malformed pod spec ({type(e).__name__}: {e}); see the schema row"]


def run_checks(objects: list[dict], *, files: list[str] | None = None,
               kubernetes_version: str = KUBERNETES_VERSION, validate: bool = True,
               ignore_unknown_kinds: bool = False) -> CheckReport:
    """Every check on every object, as a table with one row per (object, check). An object
    of unknown kind gets a failing ``kind`` row (a warning with ``ignore_unknown_kinds``)
    and only the secrets check: nothing else about it can be known."""
    rows: list[dict] = []
    known = known_kinds(objects, kubernetes_version=kubernetes_version)
    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    hpas = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    config_maps = {(get_in(o, "metadata", "namespace") or "", get_in(o, "metadata", "name")): o
                   for o in objects if o.get("kind") == "ConfigMap"}
    schemas = SchemaSet(kubernetes_version) if validate else None

    def row(obj: dict, file: str, check: str, problems: list[str], status: str | None = None) -> None:
        rows.append({"object": object_ref(obj), "file": file, "check": check,
                     "status": status or ("fail" if problems else "pass"),
                     "detail": "; ".join(problems)})

    for i, obj in enumerate(objects):
        file = files[i] if files else ""
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        if (api_version, kind) not in known:
            hint = known.hint(api_version, kind)
            problem = f"unknown kind {kind!r} in {api_version}" + (f" ({hint})" if hint else "")
            if ignore_unknown_kinds:
                row(obj, file, "kind", [f"skipped, {problem}"], "warn")
            else:
                row(obj, file, "kind", [problem + "; --ignore-unknown-kinds skips such objects"])
            row(obj, file, "secrets", [f"{f.field}: {f.reason}" for f in find_literal_secrets(obj)])
            continue
        if schemas is not None:
            vs = validate_object(obj, schemas, file=file)
            errors = [f"{v.field}: {v.problem}" for v in vs if v.severity == "error"]
            warns = [v.problem for v in vs if v.severity == "warning"]
            row(obj, file, "schema", errors or warns, None if errors or not warns else "warn")
        pod = _pod_spec(obj)
        if pod is not None:
            pod_labels = get_in(obj, "spec", "template", "metadata", "labels") or {}
            for check, run in (("restricted", lambda: _restricted(pod)),
                               ("resources", lambda: _resources(pod)),
                               ("probes", lambda: _probes(pod)),
                               ("image", lambda: _image(pod))):
                row(obj, file, check, _guarded(run))
            multi = _guarded(lambda: _availability(obj, pod_labels, pdbs, hpas))
            if isinstance(multi, list):   # the pod spec was malformed
                row(obj, file, "availability", multi)
            elif multi[0]:
                row(obj, file, "availability", multi[1])
            row(obj, file, "config", _guarded(lambda: _config(obj, pod, config_maps)))
        findings = find_literal_secrets(obj)
        row(obj, file, "secrets", [f"{f.field}: {f.reason}" for f in findings])
    return CheckReport(pd.DataFrame(rows, columns=CHECK_COLUMNS))


