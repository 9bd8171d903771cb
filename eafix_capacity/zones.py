"""Zones: which zone each node of a planned pool is in, and what a zone's loss leaves.

A production cluster is regional: its node pool has nodes in every zone of the region
(GKE regional node pools, EKS node groups across one subnet per zone, AKS zone-redundant
pools), and each of those keeps the same number of nodes in every zone, so a regional
pool's node count is a multiple of its zone count. Nodes are numbered as the sim creates
them: node i is in zone i mod Z (``sim/cluster.node_objects``), so the first k*Z nodes hold
k per zone, the node a drain takes is the last one, and the zone a loss takes is the first
(with a count that is not a multiple, the zone holding the most nodes).

Zones are given as the short names a provider's zones end with (``a,b,c`` on GKE and EKS,
``1,2,3`` on AKS), which become ``topology.kubernetes.io/zone`` values in the provider's
default region (``us-central1-a``, ``us-east-1a``, ``eastus-1``), or as the full zone
names of a real cluster (``europe-west2-a,europe-west2-b``), taken as they are; the sim's
nodes carry the same values. ``--zones 3`` asks for the provider's first three.

Pure: no I/O.
"""
from __future__ import annotations

from typing import Sequence

from .errors import InputError
from .labels import LABEL_VALUE_RULE, is_valid_label_value

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_OF_CLOUD = {"gcp": "us-central1", "aws": "us-east-1", "azure": "eastus"}
DEFAULT_REGION = "local-1"
MAX_ZONES = 10
SHORT_NAME = 2   # zone names up to this long are suffixes in the default region
# GKE and EKS zones end in a letter; AKS availability zones are numbered (eastus-1, -2, -3).
_DEFAULT_NAMES = {"azure": ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10")}
_LETTERS = tuple("abcdefghij")

ZONE_LABEL_RULE = LABEL_VALUE_RULE + "; zones are comma-separated, e.g. a,b,c"
ZONES_VALID = (f"comma-separated zone names such as a,b,c (1,2,3 on AKS), or a count from 1 to {MAX_ZONES} "
               "for the provider's first zones")


def zone_label(cloud: str, zone: str) -> str:
    """The ``topology.kubernetes.io/zone`` value of zone ``zone``: a short name (``a``, ``1``:
    at most 2 characters) in the cloud's default region, a longer one (``europe-west2-a``)
    taken as the full zone name."""
    if len(zone) > SHORT_NAME:
        return zone
    region = REGION_OF_CLOUD.get(cloud, DEFAULT_REGION)
    if cloud == "aws":
        return f"{region}{zone}"
    return f"{region}-{zone}"


def zone_labels(cloud: str, zones: Sequence[str], *, file: str | None = None) -> tuple[str, ...]:
    """The ``topology.kubernetes.io/zone`` values of ``zones``; ``InputError`` for an empty
    zone, a repeated one or one that makes a label value Kubernetes refuses."""
    if not zones:
        raise InputError("at least one zone is needed", file=file, field="zones", value=tuple(zones),
                         valid="e.g. a,b,c")
    out: list[str] = []
    for zone in zones:
        if not zone:
            raise InputError("empty zone name in", file=file, field="zones", value=",".join(zones),
                             valid=ZONE_LABEL_RULE)
        label = zone_label(cloud, zone)
        if not is_valid_label_value(label):
            raise InputError(f"zone {zone!r} makes the label {ZONE_LABEL}={label}, which Kubernetes refuses;",
                             file=file, field="zones", value=",".join(zones), valid=ZONE_LABEL_RULE)
        if label in out:
            raise InputError(f"zone {zone!r} is given twice in", file=file, field="zones",
                             value=",".join(zones), valid="each zone once, e.g. a,b,c")
        out.append(label)
    return tuple(out)


def default_zone_names(cloud: str, count: int) -> tuple[str, ...]:
    """The provider's first ``count`` zone names (``a``, ``b``, ... or ``1``, ``2``, ... on Azure)."""
    return _DEFAULT_NAMES.get(cloud, _LETTERS)[:count]


def parse_zones(value: object, *, file: str | None = None) -> tuple[str, ...] | int:
    """A user's ``zones``: a count (``3``, ``"3"``), names (``"a,b,c"`` or a list), or nothing
    (``None``, ``""``: one zone, the plan as before) as ``()``. Names are stripped and kept
    in order; a count is returned as an int for :func:`resolve_zones`."""
    if value is None or value == "" or value == ():
        return ()
    if isinstance(value, bool):
        raise InputError("not zone names or a count", file=file, field="zones", value=value, valid=ZONES_VALID)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if not 1 <= value <= MAX_ZONES:
            raise InputError("zone count out of range", file=file, field="zones", value=value, valid=ZONES_VALID)
        return value
    if isinstance(value, str):
        names = [z.strip() for z in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(z, str) for z in value):
        names = [z.strip() for z in value]
    else:
        raise InputError("not zone names or a count", file=file, field="zones", value=value, valid=ZONES_VALID)
    if len(names) > MAX_ZONES:
        raise InputError(f"{len(names)} zones in", file=file, field="zones", value=",".join(names),
                         valid=f"at most {MAX_ZONES} zones (regions have 3 or 4)")
    if any(not z for z in names):
        raise InputError("empty zone name in", file=file, field="zones", value=",".join(names), valid=ZONES_VALID)
    return tuple(names)


def resolve_zones(value: object, *, cloud: str, file: str | None = None) -> tuple[str, ...]:
    """The zone names ``value`` asks for on ``cloud``, checked (their labels valid and
    distinct); ``()`` for none."""
    parsed = parse_zones(value, file=file)
    names = default_zone_names(cloud, parsed) if isinstance(parsed, int) else parsed
    if names:
        zone_labels(cloud, names, file=file)
    return names


def node_zones(labels: Sequence[str], nodes: int) -> tuple[str, ...]:
    """The zone of each of ``nodes`` nodes, round-robin over ``labels`` (the sim's order)."""
    return tuple(labels[i % len(labels)] for i in range(nodes)) if labels else ()


def after_zone_loss(labels: Sequence[str], nodes: int) -> tuple[str, ...]:
    """The zones of the nodes left when the first zone, which round-robin gives the most
    nodes, is lost, in node order."""
    return tuple(z for z in node_zones(labels, nodes) if z != labels[0])
