"""Node types, and what one node of a type leaves for workload pods on each provider.

Sizing divides demand by what a node can actually schedule, not by its capacity: every
managed Kubernetes reserves CPU and memory for the kubelet and container runtime, keeps a
hard-eviction margin, and runs DaemonSets whose requests land on every node before any
workload pod. This module holds the node catalogue (``data/node-types.csv``) and the
published reservation formulas of GKE, EKS and AKS (plus a stated ``generic`` profile for
self-managed clusters), and returns the arithmetic as an ``Allocatable`` record so that
every figure in a plan can be traced back to its formula.

Units: CPU in millicores, memory in bytes. ``Mi``/``Gi`` are binary (2**20, 2**30); AKS
states its memory reservation in decimal megabytes (``MB`` = 10**6 bytes), kept as such.
GCP and Azure publish memory as "GB" meaning GiB; the CSV records it in GiB throughout.

``Provider`` is the checked spelling of the Kubernetes provider: ``parse_provider`` turns
user input into one at the boundary, and the formulas here take a ``Provider`` as given.
"""
from __future__ import annotations

import csv
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Literal, assert_never, get_args

from eafix_capacity.errors import InputError
from eafix_capacity.mesh import Mesh
from eafix_capacity.paths import data_file

MIB = 2**20
GIB = 2**30
MB = 10**6  # decimal megabyte, as in the AKS documentation

Provider = Literal["gke", "eks", "aks", "generic"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
CLOUDS = ("aws", "gcp", "azure")
FAMILIES = ("general", "compute", "memory")
CLOUD_OF_PROVIDER: Mapping[Provider, str] = MappingProxyType({"gke": "gcp", "eks": "aws", "aks": "azure"})


def parse_provider(value: object, *, file: str | None = None, obj: str | None = None) -> Provider:
    """A user's provider choice as a ``Provider`` (case ignored: ``EKS`` is ``eks``);
    anything else raises ``InputError`` naming the valid values."""
    if isinstance(value, str):
        for provider in PROVIDERS:
            if value.lower() == provider:
                return provider
    raise InputError("unknown provider" if value is not None else "no provider given",
                     file=file, obj=obj, field="provider", value=value, valid="one of: " + ", ".join(PROVIDERS))

CSV_COLUMNS = (
    "name",
    "provider",
    "family",
    "vcpus",
    "memory_gib",
    "max_pods",
    "price_usd_per_hour",
    "price_source",
)
# Optional: where a price comes from. A CSV without the column still loads (basis "unstated").
OPTIONAL_CSV_COLUMNS = ("price_basis",)
# list: the provider's published price of the type; derived: computed from the provider's
# published per-vCPU and per-GB rates, not a figure of the list; estimate: not from the
# provider; unknown: no price (the price cell is empty).
PRICE_BASES = ("list", "derived", "estimate", "unknown")
DEFAULT_NODE_TYPES_PATH = data_file("node-types.csv")

GKE_DEFAULT_MAX_PODS = 110
AKS_DEFAULT_MAX_PODS = 250  # Azure CNI overlay
GENERIC_DEFAULT_MAX_PODS = 110  # kubelet default --max-pods
EVICTION_HARD_MEMORY_BYTES = 100 * MIB  # memory.available<100Mi on GKE, EKS, AKS 1.29+

# (first core, last core, share of each core in the band) for the GKE/EKS CPU ladder.
_CPU_LADDER = (
    (0, 1, Fraction(6, 100)),
    (1, 2, Fraction(1, 100)),
    (2, 4, Fraction(5, 1000)),
    (4, None, Fraction(25, 10000)),
)
# (from GiB, to GiB, share) for GKE memory on nodes of 1 GiB or more.
_GKE_MEMORY_BANDS = (
    (0, 4, Fraction(25, 100)),
    (4, 8, Fraction(20, 100)),
    (8, 16, Fraction(10, 100)),
    (16, 128, Fraction(6, 100)),
    (128, None, Fraction(2, 100)),
)
# AKS 1.29+ kube-reserved CPU table (cores -> millicores), as published.
AKS_CPU_TABLE: Mapping[int, int] = MappingProxyType(
    {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}
)

# Self-managed clusters have no vendor formula; these are the kit's stated reservations.
GENERIC_KUBE_RESERVED_CPU_M = 100
GENERIC_KUBE_RESERVED_MEMORY_BYTES = 256 * MIB
GENERIC_SYSTEM_RESERVED_CPU_M = 100
GENERIC_SYSTEM_RESERVED_MEMORY_BYTES = 256 * MIB


@dataclass(frozen=True)
class NodeType:
    """One purchasable machine shape. ``provider`` is the cloud: aws, gcp or azure."""

    name: str
    provider: str
    family: str
    vcpus: int
    memory_bytes: int
    max_pods: int
    price_usd_per_hour: Decimal | None
    price_source: str
    price_basis: str = "unstated"   # one of PRICE_BASES, or "unstated" when the CSV has no column

    @property
    def cpu_m(self) -> int:
        return self.vcpus * 1000


@dataclass(frozen=True)
class Reservation:
    """What the node keeps back from pods: kube-reserved, system-reserved, eviction."""

    kube_cpu_m: int
    kube_memory_bytes: int
    system_cpu_m: int
    system_memory_bytes: int
    eviction_memory_bytes: int

    @property
    def cpu_m(self) -> int:
        return self.kube_cpu_m + self.system_cpu_m

    @property
    def memory_bytes(self) -> int:
        return self.kube_memory_bytes + self.system_memory_bytes + self.eviction_memory_bytes


@dataclass(frozen=True)
class DaemonSet:
    """Per-node requests of one DaemonSet (one pod on every node). ``basis`` says where
    the figures come from, so a report can show it next to the number."""

    name: str
    cpu_m: int
    memory_bytes: int
    basis: str = ""


@dataclass(frozen=True)
class Allocatable:
    """A node's capacity, the reservation, allocatable, and what DaemonSets leave."""

    node_type: str
    provider: Provider
    capacity_cpu_m: int
    capacity_memory_bytes: int
    reservation: Reservation
    cpu_m: int
    memory_bytes: int
    max_pods: int
    daemonsets: tuple[DaemonSet, ...]

    @property
    def daemonset_cpu_m(self) -> int:
        return sum(d.cpu_m for d in self.daemonsets)

    @property
    def daemonset_memory_bytes(self) -> int:
        return sum(d.memory_bytes for d in self.daemonsets)

    @property
    def daemonset_pods(self) -> int:
        return len(self.daemonsets)

    @property
    def workload_cpu_m(self) -> int:
        return self.cpu_m - self.daemonset_cpu_m

    @property
    def workload_memory_bytes(self) -> int:
        return self.memory_bytes - self.daemonset_memory_bytes

    @property
    def workload_pods(self) -> int:
        return self.max_pods - self.daemonset_pods

    def as_dict(self) -> dict[str, object]:
        """Flat figures for a DataFrame row or summary.json (no nested records)."""
        return {
            "node_type": self.node_type,
            "provider": self.provider,
            "capacity_cpu_m": self.capacity_cpu_m,
            "capacity_memory_bytes": self.capacity_memory_bytes,
            **{f"reserved_{k}": v for k, v in asdict(self.reservation).items()},
            "allocatable_cpu_m": self.cpu_m,
            "allocatable_memory_bytes": self.memory_bytes,
            "max_pods": self.max_pods,
            "daemonset_cpu_m": self.daemonset_cpu_m,
            "daemonset_memory_bytes": self.daemonset_memory_bytes,
            "daemonset_pods": self.daemonset_pods,
            "workload_cpu_m": self.workload_cpu_m,
            "workload_memory_bytes": self.workload_memory_bytes,
            "workload_pods": self.workload_pods,
        }


# --------------------------------------------------------------------------- loading

_UINT = re.compile(r"[0-9]+")


def load_node_types(path: str | Path | None = None) -> dict[str, NodeType]:
    """Read and validate a node-types CSV (default: the kit's ``data/node-types.csv``).

    Every row is checked; the first bad one raises ``InputError`` naming the file, the
    line and row name, the field, the bad value and what would be valid.
    """
    file = Path(path) if path is not None else DEFAULT_NODE_TYPES_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("cannot read node types file", file=str(file), value=str(e)) from e
    return parse_node_types(text, file=str(file))


def parse_node_types(text: str, *, file: str = "<node types>") -> dict[str, NodeType]:
    """Parse node-types CSV text; pure counterpart of ``load_node_types``."""
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames
    if not header:
        raise InputError("empty file, no header row", file=file, valid=f"columns: {', '.join(CSV_COLUMNS)}")
    header = [h.strip() for h in header]
    reader.fieldnames = header
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(
            "missing column", file=file, obj="header", field=missing[0], value=missing[0],
            valid=f"columns: {', '.join(CSV_COLUMNS)}",
        )
    unknown = [c for c in header if c not in CSV_COLUMNS + OPTIONAL_CSV_COLUMNS]
    if unknown:
        raise InputError(
            "unknown column", file=file, obj="header", field=unknown[0], value=unknown[0],
            valid=f"columns: {', '.join(CSV_COLUMNS)} (and optionally {', '.join(OPTIONAL_CSV_COLUMNS)})",
        )
    types: dict[str, NodeType] = {}
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        node = _parse_row(row, file=file, line=line)
        if node.name in types:
            raise InputError(
                "duplicate node type name", file=file, obj=f"line {line}", field="name",
                value=node.name, valid=f"names must be unique; first defined on line {first_line[node.name]}",
            )
        types[node.name] = node
        first_line[node.name] = line
    if not types:
        raise InputError("no node types in file", file=file, valid="at least one data row")
    return types


def _parse_row(row: Mapping[str | None, object], *, file: str, line: int) -> NodeType:
    if row.get(None):
        raise InputError(
            "more fields than columns", file=file, obj=f"line {line}", value=row[None],
            valid=f"{len(row) - 1} fields: {', '.join(str(k) for k in row if k is not None)}",
        )
    cells = {c: ("" if row.get(c) is None else str(row[c]).strip()) for c in CSV_COLUMNS + OPTIONAL_CSV_COLUMNS}
    name = cells["name"]
    obj = f"line {line} ({name})" if name else f"line {line}"

    def bad(problem: str, field: str, valid: str) -> InputError:
        return InputError(problem, file=file, obj=obj, field=field, value=cells[field], valid=valid)

    if not name or any(ch.isspace() for ch in name):
        raise bad("invalid name", "name", "a non-empty name without spaces, e.g. m5.large")
    if cells["provider"] not in CLOUDS:
        raise bad("unknown provider", "provider", f"one of {', '.join(CLOUDS)}")
    if cells["family"] not in FAMILIES:
        raise bad("unknown family", "family", f"one of {', '.join(FAMILIES)}")

    def positive_int(field: str) -> int:
        if not _UINT.fullmatch(cells[field]) or int(cells[field]) <= 0:
            raise bad("not a positive integer", field, "a whole number greater than 0")
        return int(cells[field])

    vcpus = positive_int("vcpus")
    max_pods = positive_int("max_pods")

    memory_gib = _decimal(cells["memory_gib"])
    if memory_gib is None or memory_gib <= 0:
        raise bad("not a positive number of GiB", "memory_gib", "a number greater than 0, e.g. 16 or 5.25")
    memory_exact = Fraction(memory_gib) * GIB
    if memory_exact.denominator != 1:
        raise bad("not a whole number of bytes", "memory_gib", "GiB with at most 30 binary fraction digits, e.g. 5.25")

    price: Decimal | None = None
    if cells["price_usd_per_hour"]:
        price = _decimal(cells["price_usd_per_hour"])
        if price is None or price < 0:
            raise bad("not a price", "price_usd_per_hour", "empty, or a number of USD per hour >= 0")
        if not cells["price_source"]:
            raise bad(
                "price without a source", "price_source",
                "state where and when the price was taken, e.g. 'AWS on-demand us-east-1 list price, 2024-06'",
            )
    basis = _price_basis(cells, has_column="price_basis" in row, bad=bad)
    return NodeType(
        name=name,
        provider=cells["provider"],
        family=cells["family"],
        vcpus=vcpus,
        memory_bytes=int(memory_exact),
        max_pods=max_pods,
        price_usd_per_hour=price,
        price_source=cells["price_source"],
        price_basis=basis,
    )


def _price_basis(cells: Mapping[str, str], *, has_column: bool, bad: Callable[[str, str, str], InputError]) -> str:
    """The row's ``price_basis``: a priced row says list, derived or estimate; an unpriced
    row says unknown (or leaves the cell empty)."""
    priced = bool(cells["price_usd_per_hour"])
    basis = cells["price_basis"]
    if not has_column or (not basis and priced):
        return "unstated" if priced else "unknown"
    if not basis:
        return "unknown"
    if basis not in PRICE_BASES:
        raise bad("unknown price basis", "price_basis", f"one of {', '.join(PRICE_BASES)}")
    if priced and basis == "unknown":
        raise bad("a price whose basis is unknown", "price_basis",
                  "list, derived or estimate for a priced row; or leave price_usd_per_hour empty")
    if not priced and basis != "unknown":
        raise bad(f"missing price, but price_basis is {basis}:", "price_usd_per_hour",
                  "a number of USD per hour >= 0, or price_basis unknown")
    return basis


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def get_node_type(name: str, types: Mapping[str, NodeType], *, file: str | None = None) -> NodeType:
    """The node type called ``name``; an unknown name lists the valid ones (and names
    ``file``, where ``types`` came from, when given)."""
    try:
        return types[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(types), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise InputError(
            "unknown node type", file=file, field="node_type", value=name,
            valid=f"{hint}known node types: {', '.join(sorted(types))}",
        ) from None


# --------------------------------------------------------------------------- formulas


def _ladder_shares(cpu_m: int) -> list[Fraction]:
    """Reserved millicores per band of the GKE/EKS ladder, unrounded."""
    shares = []
    for first, last, share in _CPU_LADDER:
        lo = first * 1000
        hi = cpu_m if last is None else min(cpu_m, last * 1000)
        if hi > lo:
            shares.append((hi - lo) * share)
    return shares


def gke_kube_reserved_cpu_m(cpu_m: int) -> int:
    # GKE does not say how it rounds; rounding up keeps the plan on the safe side.
    return math.ceil(sum(_ladder_shares(cpu_m), Fraction(0)))


def eks_kube_reserved_cpu_m(cpu_m: int) -> int:
    # The EKS AMI bootstrap does integer arithmetic per band, i.e. floors each band.
    return sum(math.floor(s) for s in _ladder_shares(cpu_m))


def gke_kube_reserved_memory_bytes(memory_bytes: int) -> int:
    if memory_bytes < GIB:
        return 255 * MIB
    total = Fraction(0)
    for first, last, share in _GKE_MEMORY_BANDS:
        lo = first * GIB
        hi = memory_bytes if last is None else min(memory_bytes, last * GIB)
        if hi > lo:
            total += (hi - lo) * share
    return math.ceil(total)


def eks_kube_reserved_memory_bytes(max_pods: int) -> int:
    return (255 + 11 * max_pods) * MIB


def aks_kube_reserved_cpu_m(vcpus: int) -> int:
    """AKS 1.29+ kube-reserved CPU.

    The published table covers 1, 2, 4, 8, 16, 32 and 64 cores. Its steps are exactly
    60m for the 1st core, +40m for the 2nd, +20m for each of cores 3-4 and +10m for each
    core above 4, so that piecewise-linear rule is used: it returns the table value for
    every tabled core count and the straight line between neighbours otherwise (12 cores
    -> 220m, 48 -> 580m), continuing at 10m per core above 64.
    """
    return 60 + 40 * (min(vcpus, 2) - 1) + 20 * max(0, min(vcpus, 4) - 2) + 10 * max(0, vcpus - 4)


def aks_kube_reserved_memory_bytes(memory_bytes: int, max_pods: int) -> int:
    """min(20 MB x maxPods + 50 MB, 25% of memory), MB being 10**6 bytes."""
    return min((20 * max_pods + 50) * MB, math.ceil(Fraction(memory_bytes, 4)))


def _check_max_pods(max_pods: object, node: str) -> int:
    if isinstance(max_pods, bool) or not isinstance(max_pods, int) or max_pods <= 0:
        raise InputError("max pods must be a positive integer", obj=node, field="max_pods", value=max_pods,
                         valid="an integer greater than 0")
    return max_pods


def reservation(node: NodeType, *, provider: Provider, max_pods: int) -> Reservation:
    """kube-reserved, system-reserved and eviction threshold of ``node`` on ``provider``."""
    _check_max_pods(max_pods, node.name)
    if provider == "gke":
        return Reservation(
            kube_cpu_m=gke_kube_reserved_cpu_m(node.cpu_m),
            kube_memory_bytes=gke_kube_reserved_memory_bytes(node.memory_bytes),
            system_cpu_m=0,
            system_memory_bytes=0,
            eviction_memory_bytes=EVICTION_HARD_MEMORY_BYTES,
        )
    if provider == "eks":
        return Reservation(
            kube_cpu_m=eks_kube_reserved_cpu_m(node.cpu_m),
            kube_memory_bytes=eks_kube_reserved_memory_bytes(max_pods),
            system_cpu_m=0,
            system_memory_bytes=0,
            eviction_memory_bytes=EVICTION_HARD_MEMORY_BYTES,
        )
    if provider == "aks":
        return Reservation(
            kube_cpu_m=aks_kube_reserved_cpu_m(node.vcpus),
            kube_memory_bytes=aks_kube_reserved_memory_bytes(node.memory_bytes, max_pods),
            system_cpu_m=0,
            system_memory_bytes=0,
            eviction_memory_bytes=EVICTION_HARD_MEMORY_BYTES,
        )
    if provider == "generic":
        return Reservation(
            kube_cpu_m=GENERIC_KUBE_RESERVED_CPU_M,
            kube_memory_bytes=GENERIC_KUBE_RESERVED_MEMORY_BYTES,
            system_cpu_m=GENERIC_SYSTEM_RESERVED_CPU_M,
            system_memory_bytes=GENERIC_SYSTEM_RESERVED_MEMORY_BYTES,
            eviction_memory_bytes=EVICTION_HARD_MEMORY_BYTES,
        )
    assert_never(provider)


# --------------------------------------------------------------------------- DaemonSets

_NODE_EXPORTER = DaemonSet(
    "node-exporter", 112, 200 * MIB,
    "kube-prometheus manifests/nodeExporter-daemonset.yaml: node-exporter 102m/180Mi + kube-rbac-proxy 10m/20Mi",
)
_FLUENT_BIT = DaemonSet(
    "fluent-bit", 100, 128 * MIB,
    "estimate: the fluent/fluent-bit Helm chart sets no requests; replace with measured usage",
)
_ISTIO_CNI = DaemonSet(
    "istio-cni-node", 100, 100 * MIB, "istio cni Helm chart default requests 100m/100Mi",
)
_DEFAULT_DAEMONSETS: Mapping[Provider, tuple[DaemonSet, ...]] = MappingProxyType({
    "gke": (
        DaemonSet("kube-proxy", 100, 50 * MIB,
                  "kubernetes cluster/gce configure-helper.sh defaults KUBE_PROXY_CPU_REQUEST=100m, "
                  "KUBE_PROXY_MEMORY_REQUEST=50Mi (GKE runs it as a static pod; it still takes a pod slot)"),
        DaemonSet("netd", 10, 30 * MIB, "estimate: GKE CNI agent; check `kubectl -n kube-system get ds netd`"),
        DaemonSet("fluentbit-gke", 100, 200 * MIB,
                  "estimate: GKE's default log agent (two containers); "
                  "check `kubectl -n kube-system get ds fluentbit-gke`"),
        _NODE_EXPORTER,
    ),
    "eks": (
        DaemonSet("kube-proxy", 100, 0, "EKS kube-proxy add-on DaemonSet requests cpu 100m, no memory request"),
        DaemonSet("aws-node", 25, 0, "aws/amazon-vpc-cni-k8s charts/aws-vpc-cni values.yaml requests cpu 25m"),
        _NODE_EXPORTER,
        _FLUENT_BIT,
    ),
    "aks": (
        DaemonSet("kube-proxy", 100, 0, "AKS kube-proxy DaemonSet requests cpu 100m, no memory request"),
        DaemonSet("azure-cns", 40, 250 * MIB,
                  "estimate: Azure CNI overlay node agent; check `kubectl -n kube-system get ds azure-cns`"),
        DaemonSet("cloud-node-manager", 50, 50 * MIB, "cloud-provider-azure Helm chart default requests 50m/50Mi"),
        _NODE_EXPORTER,
        _FLUENT_BIT,
    ),
    "generic": (
        DaemonSet("kube-proxy", 0, 0, "kubeadm's kube-proxy DaemonSet sets no requests; it still takes a pod slot"),
        DaemonSet("calico-node", 250, 0, "Calico manifest calico.yaml requests cpu 250m"),
        _NODE_EXPORTER,
        _FLUENT_BIT,
    ),
})


def default_daemonsets(provider: Provider, *, mesh: Mesh = "none") -> tuple[DaemonSet, ...]:
    """The DaemonSets assumed on every node of ``provider`` (plus istio-cni with Istio)."""
    base = _DEFAULT_DAEMONSETS[provider]
    return base + (_ISTIO_CNI,) if mesh == "istio" else base


# --------------------------------------------------------------------------- allocatable


def default_max_pods(node: NodeType, provider: Provider) -> int:
    """Pods per node when not configured: GKE 110 (capped by the node's own limit), EKS
    the ENI formula value from the CSV, AKS 250 (CNI overlay), generic the kubelet's 110."""
    if provider == "gke":
        return min(node.max_pods, GKE_DEFAULT_MAX_PODS)
    if provider == "eks":
        return node.max_pods
    if provider == "aks":
        return AKS_DEFAULT_MAX_PODS
    if provider == "generic":
        return GENERIC_DEFAULT_MAX_PODS
    assert_never(provider)


def allocatable(
    node: NodeType,
    *,
    provider: Provider,
    max_pods: int | None = None,
    daemonsets: tuple[DaemonSet, ...] | None = None,
    mesh: Mesh = "none",
) -> Allocatable:
    """Allocatable = capacity - kube-reserved - system-reserved - eviction threshold, and
    what the DaemonSets leave for workload pods.

    ``provider`` must run on the node's cloud (gke/gcp, eks/aws, aks/azure; generic takes
    any). ``daemonsets`` defaults to ``default_daemonsets(provider, mesh=mesh)``. A node
    whose reservations or DaemonSets leave nothing raises ``InputError``.
    """
    cloud = CLOUD_OF_PROVIDER.get(provider)
    if cloud is not None and node.provider != cloud:
        raise InputError(
            f"{node.name} is a {node.provider} node type, but provider", obj=node.name, field="provider",
            value=provider, valid=f"a node type on {cloud}, or provider generic",
        )
    pods = default_max_pods(node, provider) if max_pods is None else _check_max_pods(max_pods, node.name)
    if daemonsets is None:
        daemonsets = default_daemonsets(provider, mesh=mesh)
    else:
        daemonsets = tuple(daemonsets)
        for d in daemonsets:
            if not isinstance(d, DaemonSet) or d.cpu_m < 0 or d.memory_bytes < 0:
                raise InputError("not a DaemonSet with non-negative requests", obj=node.name, field="daemonsets",
                                 value=d, valid="DaemonSet(name, cpu_m >= 0, memory_bytes >= 0)")
    reserved = reservation(node, provider=provider, max_pods=pods)
    result = Allocatable(
        node_type=node.name,
        provider=provider,
        capacity_cpu_m=node.cpu_m,
        capacity_memory_bytes=node.memory_bytes,
        reservation=reserved,
        cpu_m=node.cpu_m - reserved.cpu_m,
        memory_bytes=node.memory_bytes - reserved.memory_bytes,
        max_pods=pods,
        daemonsets=daemonsets,
    )
    if result.cpu_m <= 0 or result.memory_bytes <= 0:
        raise InputError("node type too small: reservations exceed capacity", obj=node.name, field="node_type",
                         value=node.name, valid="a node type with more CPU and memory")
    # a node the DaemonSets fill completely can run no workload pod: bad input, not a plan
    for what, left in (("CPU", result.workload_cpu_m), ("memory", result.workload_memory_bytes),
                       ("pod slots", result.workload_pods)):
        if left <= 0:
            more_pods = f", or max pods above {pods}" if what == "pod slots" else ""
            raise InputError(f"DaemonSets leave no {what} of the node's allocatable for workload pods",
                             obj=node.name, field="daemonsets", value=[d.name for d in daemonsets],
                             valid=f"a larger node type or fewer/smaller DaemonSets{more_pods}")
    return result
