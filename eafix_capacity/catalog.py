"""The EAFIX service catalogue: what each service asks of a cluster.

Loaded from ``data/services.yaml`` (or built by the manifest importer) into frozen
records whose figures are plain integers: CPU in millicores, memory and storage in
bytes, already rounded up the way Kubernetes rounds quantities. Everything downstream
(scenarios, packing, plan, manifests) reads these records and nothing else.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import InputError, QuantityError
from .labels import LABEL_KEY_RULE, LABEL_VALUE_RULE, is_valid_label_key, is_valid_label_value, label_map
from .limits import MAX_PODS, PODS_LIMIT_TEXT
from .paths import data_file
from .quantity import memory_typo, parse
from .scheduling import Toleration
from .yamlio import load_yaml_file

TIERS = ("trading", "supporting", "infrastructure", "monitoring")
KINDS = ("Deployment", "StatefulSet")
RUNTIMES = ("generic", "jvm", "redis", "postgres", "prometheus", "grafana")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany", "ReadWriteMany")
SOURCE_KEYS = ("port", "replicas", "resources", "hpa", "storage")
SOURCE_KINDS = ("seed", "assumed", "imported", "recommended")   # recommended: usage/recommend.py
SERVICE_KEYS = ("name", "description", "port", "tier", "kind", "replicas", "runtime", "image",
                "mesh_inject", "containers", "hpa", "storage", "source", "growth_pct", "node_selector",
                "tolerations")
TOLERATION_KEYS = ("key", "operator", "value", "effect")
TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOP_KEYS = ("services",)
CONTAINER_KEYS = ("name", "requests", "limits")
# The resources the capacity model plans. Kubernetes also accepts ephemeral-storage,
# hugepages-<size> and extended resources (pkg/apis/core/helper:
# IsStandardContainerResourceName, IsExtendedResourceName), but node-types.csv has no
# figures for them and Resources carries none, so the plan would silently leave them
# out: they are refused with a message that says so instead of being dropped.
RESOURCE_NAMES = ("cpu", "memory")
KUBERNETES_ONLY_RESOURCES = ("ephemeral-storage",)

# IsDNS1123Label (k8s.io/apimachinery/pkg/util/validation): lower-case alphanumerics and
# '-', starting and ending with an alphanumeric, at most 63 characters. Container names
# must be one (pod validation, validateContainers).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# IsDNS1035Label: the same, starting with a letter. A Kubernetes Service's name must be
# one (ValidateServiceName is NameIsDNS1035Label unless the alpha feature gate
# RelaxedServiceNameValidation is on), and the kit renders a Service per service.
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_LABEL_MAX = 63
# IsQualifiedName's name part, and a DNS-1123 subdomain for its prefix.
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container or one pod (millicores and bytes)."""

    cpu_request_m: int
    memory_request_bytes: int
    cpu_limit_m: int
    memory_limit_bytes: int

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_request_m + other.cpu_request_m,
            self.memory_request_bytes + other.memory_request_bytes,
            self.cpu_limit_m + other.cpu_limit_m,
            self.memory_limit_bytes + other.memory_limit_bytes,
        )

    def __mul__(self, n: int) -> Resources:
        return Resources(
            self.cpu_request_m * n,
            self.memory_request_bytes * n,
            self.cpu_limit_m * n,
            self.memory_limit_bytes * n,
        )


ZERO = Resources(0, 0, 0, 0)


@dataclass(frozen=True)
class Container:
    name: str
    resources: Resources


@dataclass(frozen=True)
class HPA:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int


@dataclass(frozen=True)
class Volume:
    """A persistent volume claim of a service (a volumeClaimTemplate for StatefulSets)."""

    name: str
    size_bytes: int
    mount_path: str
    access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    tier: str
    kind: str
    replicas: int
    containers: tuple[Container, ...]
    hpa: HPA | None = None
    volumes: tuple[Volume, ...] = ()
    runtime: str = "generic"
    image: str = ""
    description: str = ""
    mesh_inject: bool = True
    sources: Mapping[str, str] = field(default_factory=dict)
    # demand growth per month in percent for the growth runway (growth.py); None: the
    # plan's --growth figure. Read only when a runway is asked for.
    growth_pct: float | None = None
    # the node pool the service runs in (pools.py): its pods' nodeSelector and tolerations
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()

    @property
    def pod_resources(self) -> Resources:
        """Requests and limits of one pod of the service's own containers."""
        total = ZERO
        for c in self.containers:
            total = total + c.resources
        return total

    @property
    def storage_bytes(self) -> int:
        """Storage claimed by all replicas (each StatefulSet replica has its own claims)."""
        per_pod = sum(v.size_bytes for v in self.volumes)
        return per_pod * self.replicas if self.kind == "StatefulSet" else per_pod

    @property
    def max_replicas(self) -> int:
        return self.hpa.max_replicas if self.hpa else self.replicas


@dataclass(frozen=True)
class Catalog:
    services: tuple[Service, ...]
    source_file: str = ""

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def get(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise InputError(
            "unknown service", file=self.source_file or None, value=name,
            valid="known services: " + ", ".join(self.names()),
        )

    def with_replicas(self, overrides: Mapping[str, int]) -> Catalog:
        """A copy with some services' replica counts changed (validated like the file)."""
        by_name = {s.name: s for s in self.services}
        for name, n in overrides.items():
            svc = self.get(name)
            # the bad value is the override (a flag or parameter), not the file's own figure
            _check_replicas(n, svc.hpa, file=self.source_file, obj=name, field="replicas override")
            by_name[name] = replace(svc, replicas=n)
        changed = Catalog(tuple(by_name[s.name] for s in self.services), self.source_file)
        check_pod_total(changed, field="replicas override")
        return changed


def max_pods_total(catalog: Catalog) -> int:
    """Pods of the catalogue's services with every HPA at its maximum (an HPA does not
    scale a service scaled to zero): the most any scenario runs before rollout surges
    and the mesh's control plane."""
    return sum(s.max_replicas if s.replicas > 0 else 0 for s in catalog.services)


def check_pod_total(catalog: Catalog, *, field: str = "replicas") -> None:
    """Refuse a catalogue whose pods at the HPA maximum exceed what a cluster supports."""
    total = max_pods_total(catalog)
    if total > MAX_PODS:
        biggest = max(catalog.services, key=lambda s: s.max_replicas if s.replicas > 0 else 0)
        raise InputError(
            f"the services run {total:,} pods with every HPA at its maximum "
            f"({biggest.name}: {biggest.max_replicas:,})", file=catalog.source_file or None,
            obj=biggest.name, field=field, valid=f"{PODS_LIMIT_TEXT}; at most {MAX_PODS:,} pods in all")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a services file (default: the embedded ``data/services.yaml``)."""
    p = Path(path) if path is not None else data_file("services.yaml")
    doc = load_yaml_file(p)
    return catalog_from_dict(doc, file=str(p))


def catalog_from_dict(doc: Any, *, file: str = "<dict>") -> Catalog:
    if isinstance(doc, dict):
        unknown = sorted((k for k in doc if k not in TOP_KEYS), key=str)
        if unknown:
            raise InputError("unknown top-level key", file=file, field=str(unknown[0]),
                             value=unknown[0], valid=_one_of(unknown[0], TOP_KEYS))
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        raise InputError("missing field", file=file, field="services",
                         valid="the file must be a mapping with a `services` list")
    if not doc["services"]:
        raise InputError("empty catalogue: no services", file=file, field="services", value=[],
                         valid="a `services` list with at least one service")
    services: list[Service] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["services"]):
        svc = _service(raw, file=file, index=i)
        if svc.name in seen:
            raise InputError("duplicate service", file=file, obj=svc.name, field="name",
                             value=svc.name, valid="each service appears once")
        seen.add(svc.name)
        services.append(svc)
    catalog = Catalog(tuple(services), file)
    check_pod_total(catalog)
    return catalog


def _one_of(key: object, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return "one of: " + ", ".join(valid) + hint


class _Fields:
    """Typed access to one mapping of a data file, with errors that say where."""

    def __init__(self, raw: Any, *, file: str, obj: str, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            raise InputError("expected a mapping", file=file, obj=obj, field=prefix or None,
                             value=raw)
        self.raw, self.file, self.obj, self.prefix = raw, file, obj, prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str, value: Any = None, valid: str | None = None) -> InputError:
        return InputError(problem, file=self.file, obj=self.obj, field=self.path(key),
                          value=value, valid=valid)

    def only(self, keys: tuple[str, ...]) -> None:
        """Refuse any key outside ``keys`` (the first, with a close-match hint)."""
        unknown = sorted((k for k in self.raw if k not in keys), key=str)
        if unknown:
            raise self.fail(str(unknown[0]), "unknown field", unknown[0], _one_of(unknown[0], keys))

    def label(self, key: str, *, what: str, letter_first: bool, valid: str) -> str:
        """A name that must be a DNS-1123 label (DNS-1035 with ``letter_first``)."""
        name = self.text(key)
        problem = _dns_label_problem(name, letter_first=letter_first)
        if problem:
            raise self.fail(key, f"{what} {problem}", name, valid)
        return name

    def required(self, key: str) -> Any:
        if key not in self.raw or self.raw[key] is None:
            raise self.fail(key, "missing field", valid=f"`{self.path(key)}` is required "
                            "(the fields are listed at the top of data/services.yaml)")
        return self.raw[key]

    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None,
                default: int | None = None) -> int:
        v = self.raw.get(key, default) if default is not None else self.required(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, "not an integer", v, "a whole number")
        if minimum is not None and v < minimum:
            raise self.fail(key, f"must be at least {minimum}, got", v)
        if maximum is not None and v > maximum:
            raise self.fail(key, f"must be at most {maximum}, got", v,
                            PODS_LIMIT_TEXT if maximum == MAX_PODS else None)
        return v

    def text(self, key: str, *, choices: tuple[str, ...] | None = None, default: str | None = None) -> str:
        v = self.raw.get(key, default) if default is not None else self.required(key)
        if not isinstance(v, str) or not v:
            raise self.fail(key, "not a non-empty string", v)
        if choices is not None and v not in choices:
            raise self.fail(key, "invalid value", v, "one of: " + ", ".join(choices))
        return v

    def quantity(self, key: str, *, cpu: bool) -> int:
        v = self.required(key)
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise self.fail(key, "not a quantity", v, "a quoted Kubernetes quantity such as \"250m\" or \"1Gi\"")
        try:
            q = parse(str(v))
        except QuantityError as e:
            raise QuantityError(
                "malformed quantity", file=self.file, obj=self.obj, field=self.path(key),
                value=str(v), valid="a Kubernetes quantity such as \"250m\", \"1.5\", \"512Mi\" or \"1G\"",
            ) from e
        if q.value < 0:
            raise self.fail(key, "negative quantity", str(v), "a quantity of zero or more")
        return q.milli_value() if cpu else q.int_value()

    def memory(self, key: str) -> int:
        """A memory quantity; ``256m`` (millibytes) and fractions of a byte are refused."""
        n = self.quantity(key, cpu=False)
        typo = memory_typo(str(self.raw[key]))
        if typo:
            raise QuantityError(typo, file=self.file, obj=self.obj, field=self.path(key),
                                valid="whole bytes with a binary suffix, e.g. \"256Mi\" or \"1Gi\"")
        return n

    def resource_names(self) -> None:
        """Refuse a key of ``requests``/``limits`` the plan would not count."""
        for key in self.raw:
            problem = _resource_name_problem(key)
            if problem:
                raise self.fail(str(key), problem, key,
                                "cpu or memory: the capacity model plans only these two (Kubernetes "
                                "extended resources are qualified with a domain, e.g. nvidia.com/gpu)")

    def sub(self, key: str) -> _Fields:
        return _Fields(self.required(key), file=self.file, obj=self.obj, prefix=self.path(key))


def _check_replicas(n: Any, hpa: HPA | None, *, file: str, obj: str, field: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise InputError("not an integer", file=file, obj=obj, field=field, value=n,
                         valid="a whole number of replicas, 0 or more")
    if n < 0:
        raise InputError("negative replicas", file=file, obj=obj, field=field, value=n,
                         valid="0 or more (0 scales the service to zero)")
    if n > MAX_PODS:
        raise InputError("too many replicas", file=file, obj=obj, field=field, value=n,
                         valid=f"at most {MAX_PODS:,}: {PODS_LIMIT_TEXT}")
    if hpa is not None and n != 0 and not hpa.min_replicas <= n <= hpa.max_replicas:
        raise InputError(
            "replicas outside the HPA bounds", file=file, obj=obj, field=field, value=n,
            valid=f"between hpa.min_replicas {hpa.min_replicas} and hpa.max_replicas {hpa.max_replicas}, or 0",
        )


def _resource_name_problem(key: object) -> str | None:
    """Why ``key`` cannot be a resource of the plan, or None when it is one."""
    if key in RESOURCE_NAMES:
        return None
    name = str(key)
    if name in KUBERNETES_ONLY_RESOURCES or name.startswith("hugepages-"):
        return ("a Kubernetes resource the plan has no node figures for "
                "(it would be left out of the plan)")
    if _is_extended_resource_name(name):
        return ("an extended resource the plan has no node figures for "
                "(it would be left out of the plan)")
    if "/" not in name:
        return "unknown resource name"
    return "not a valid resource name"


def _is_extended_resource_name(name: str) -> bool:
    """Kubernetes' IsExtendedResourceName: qualified with a domain outside kubernetes.io,
    no ``requests.`` prefix, and ``requests.<name>`` a qualified name."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    prefix, _, rest = f"requests.{name}".partition("/")
    return (len(prefix) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(prefix) is not None
            and len(rest) <= DNS_LABEL_MAX and _QUALIFIED_NAME.fullmatch(rest) is not None)


def _dns_label_problem(name: str, *, letter_first: bool) -> str | None:
    """Why ``name`` is not a DNS-1123 (or, with ``letter_first``, DNS-1035) label."""
    if len(name) > DNS_LABEL_MAX:
        return f"name longer than {DNS_LABEL_MAX} characters ({len(name)})"
    pattern = DNS1035_LABEL if letter_first else DNS1123_LABEL
    if pattern.fullmatch(name) is None:
        return "not a DNS label"
    return None


def _resources(f: _Fields) -> Resources:
    req, lim = f.sub("requests"), f.sub("limits")
    req.resource_names()
    lim.resource_names()
    r = Resources(req.quantity("cpu", cpu=True), req.memory("memory"),
                  lim.quantity("cpu", cpu=True), lim.memory("memory"))
    if r.cpu_request_m > r.cpu_limit_m:
        raise f.fail("requests.cpu", "request above limit", req.raw["cpu"],
                     f"at most limits.cpu {lim.raw['cpu']!r}")
    if r.memory_request_bytes > r.memory_limit_bytes:
        raise f.fail("requests.memory", "request above limit", req.raw["memory"],
                     f"at most limits.memory {lim.raw['memory']!r}")
    return r


MAX_GROWTH_PCT = 1000.0


def check_growth_pct(v: Any) -> str | None:
    """Why ``v`` is not a monthly growth percentage (0 to 1000, finite), or None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "not a number"
    if not math.isfinite(v):
        return "not a finite number"
    if v < 0:
        return "negative growth"
    if v > MAX_GROWTH_PCT:
        return "growth above 1000% a month"
    return None


def _growth_pct(v: Any, f: _Fields) -> float | None:
    if v is None:
        return None
    problem = check_growth_pct(v)
    if problem:
        raise f.fail("growth_pct", problem, v, "percent demand growth per month, 0 to 1000, "
                     "or leave it out for the plan's --growth")
    return float(v)


def _tolerations(raw: Any, f: _Fields) -> tuple[Toleration, ...]:
    """The pods' tolerations, checked as pkg/apis/core/validation validateTolerations does."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise f.fail("tolerations", "not a list", raw,
                     "a list of {key, operator, value, effect}, e.g. [{key: eafix.io/pool, value: memory, "
                     "effect: NoSchedule}]")
    out: list[Toleration] = []
    for i, t in enumerate(raw):
        where = f"tolerations[{i}]"
        if not isinstance(t, dict):
            raise f.fail(where, "not a mapping", t, "{key, operator, value, effect}")
        unknown = sorted((k for k in t if k not in TOLERATION_KEYS), key=str)
        if unknown:
            raise f.fail(f"{where}.{unknown[0]}", "unknown field", unknown[0], _one_of(unknown[0], TOLERATION_KEYS))
        key, operator = t.get("key", ""), t.get("operator", "Equal")
        value, effect = t.get("value", ""), t.get("effect", "")
        if not isinstance(key, str) or (key and not is_valid_label_key(key)):
            raise f.fail(f"{where}.key", "invalid toleration key", key, LABEL_KEY_RULE + ", or empty with Exists")
        if operator not in TOLERATION_OPERATORS:
            raise f.fail(f"{where}.operator", "invalid toleration operator", operator,
                         "one of: " + ", ".join(TOLERATION_OPERATORS))
        if not key and operator != "Exists":
            # validateTolerations: "operator must be Exists when `key` is empty, which means
            # \"match all values and all keys\""
            raise f.fail(f"{where}.operator", "operator must be Exists when key is empty", operator,
                         "operator: Exists (an empty key matches every taint), or give a key")
        if operator == "Exists" and value != "":
            # validateTolerations: "value must be empty when `operator` is 'Exists'"
            raise f.fail(f"{where}.value", "value must be empty when operator is Exists", value,
                         "leave value out with Exists, or use operator: Equal")
        if not isinstance(value, str) or not is_valid_label_value(value):
            raise f.fail(f"{where}.value", "invalid toleration value", value, LABEL_VALUE_RULE + ", quoted as a string")
        if effect not in ("", *TOLERATION_EFFECTS):
            raise f.fail(f"{where}.effect", "invalid toleration effect", effect,
                         "one of: " + ", ".join(TOLERATION_EFFECTS) + ", or empty for every effect")
        out.append(Toleration(key, str(operator), value, str(effect)))
    return tuple(out)


def _hpa(raw: Any, *, file: str, obj: str) -> HPA | None:
    if raw is None:
        return None
    f = _Fields(raw, file=file, obj=obj, prefix="hpa")
    lo = f.integer("min_replicas", minimum=1, maximum=MAX_PODS)
    hi = f.integer("max_replicas", minimum=1, maximum=MAX_PODS)
    if lo > hi:
        raise f.fail("min_replicas", f"above max_replicas {hi}:", lo,
                     "min_replicas <= max_replicas")
    return HPA(lo, hi, f.integer("cpu_utilization", minimum=1, maximum=1000))


def _sources(raw: Any, svc: Service, *, file: str) -> dict[str, str]:
    f = _Fields(raw, file=file, obj=svc.name, prefix="source")
    needed = ["port", "replicas", "resources"]
    if svc.hpa:
        needed.append("hpa")
    if svc.volumes:
        needed.append("storage")
    out: dict[str, str] = {}
    for key in needed:
        v = f.text(key)
        kind, _, reason = v.partition(":")
        if kind.strip() not in SOURCE_KINDS:
            raise f.fail(key, "invalid source", v,
                         "`seed`, `assumed: <reason>`, `imported: <manifest file>` or "
                         "`recommended: <strategy>, <window>, <n> samples`")
        if kind.strip() != "seed" and not reason.strip():
            raise f.fail(key, f"{kind.strip()} figure without a reason", v,
                         f"`{kind.strip()}: <one-line reason>`")
        out[key] = v
    extra = sorted(set(f.raw) - set(SOURCE_KEYS))
    if extra:
        raise f.fail(extra[0], "unknown source key", extra[0], "one of: " + ", ".join(SOURCE_KEYS))
    return out


def _service(raw: Any, *, file: str, index: int) -> Service:
    name = raw.get("name") if isinstance(raw, dict) else None
    obj = name if isinstance(name, str) and name else f"services[{index}]"
    f = _Fields(raw, file=file, obj=obj)
    name = f.label("name", what="service", letter_first=True,
                   valid="a DNS-1035 label, as a Kubernetes Service name must be: at most 63 lower-case "
                         "letters, digits and '-', starting with a letter and ending with a letter or digit")
    f.only(SERVICE_KEYS)
    containers_raw = f.required("containers")
    if not isinstance(containers_raw, list) or not containers_raw:
        raise f.fail("containers", "expected a non-empty list", containers_raw)
    containers: list[Container] = []
    for i, c in enumerate(containers_raw):
        cf = _Fields(c, file=file, obj=name, prefix=f"containers[{i}]")
        cf.only(CONTAINER_KEYS)
        cname = cf.label("name", what="container", letter_first=False,
                         valid="a DNS-1123 label, as Kubernetes requires of container names: at most 63 "
                               "lower-case letters, digits and '-', starting and ending with a letter or digit")
        if any(c.name == cname for c in containers):
            raise cf.fail("name", "duplicate container name", cname,
                          "container names are unique within a pod")
        containers.append(Container(cname, _resources(cf)))
    hpa = _hpa(raw.get("hpa"), file=file, obj=name)
    volumes = []
    storage_raw = raw.get("storage") or []
    if not isinstance(storage_raw, list):
        raise f.fail("storage", "expected a list", storage_raw)
    for i, v in enumerate(storage_raw):
        vf = _Fields(v, file=file, obj=name, prefix=f"storage[{i}]")
        size = vf.quantity("size", cpu=False)
        if size <= 0:
            raise vf.fail("size", "storage size must be positive", vf.raw["size"])
        volumes.append(Volume(vf.text("name"), size, vf.text("mount_path"),
                              vf.text("access_mode", choices=ACCESS_MODES, default="ReadWriteOnce")))
    replicas = f.required("replicas")
    _check_replicas(replicas, hpa, file=file, obj=name, field="replicas")
    mesh_inject = raw.get("mesh_inject", True)
    if not isinstance(mesh_inject, bool):
        raise f.fail("mesh_inject", "not a boolean", mesh_inject, "true or false")
    growth_pct = _growth_pct(raw.get("growth_pct"), f)
    node_selector = label_map(raw.get("node_selector"), field="node_selector", fail=f.fail)
    tolerations = _tolerations(raw.get("tolerations"), f)
    svc = Service(
        name=name,
        port=f.integer("port", minimum=1, maximum=65535),
        tier=f.text("tier", choices=TIERS),
        kind=f.text("kind", choices=KINDS),
        replicas=replicas,
        containers=tuple(containers),
        hpa=hpa,
        volumes=tuple(volumes),
        runtime=f.text("runtime", choices=RUNTIMES, default="generic"),
        image=raw.get("image") or "",
        description=raw.get("description") or "",
        mesh_inject=mesh_inject,
        growth_pct=growth_pct,
        node_selector=node_selector,
        tolerations=tolerations,
    )
    return replace(svc, sources=_sources(f.required("source"), svc, file=file))
