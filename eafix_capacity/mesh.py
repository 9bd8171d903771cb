"""What the Istio service mesh adds to the cluster's demand.

Every injected pod gains an ``istio-proxy`` sidecar; the mesh also runs its control
plane (istiod) and an ingress gateway. Figures are Istio's chart defaults, as DESIGN.md
records them; the control-plane limits are the kit's assumption (istiod ships without
limits, which would make its worst case unbounded).

``Mesh`` is the checked spelling of the mesh choice: ``parse_mesh`` turns what a user
wrote (a flag, a parameter, a YAML value) into one at the boundary, and everything inside
the kit takes a ``Mesh`` and compares it without normalising again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .catalog import Resources
from .errors import InputError

Mesh = Literal["none", "istio"]
MESHES: tuple[Mesh, ...] = get_args(Mesh)

SIDECAR_NAME = "istio-proxy"
SIDECAR = Resources(cpu_request_m=100, memory_request_bytes=128 * 2**20,
                    cpu_limit_m=2000, memory_limit_bytes=2**30)


@dataclass(frozen=True)
class ControlPlanePod:
    name: str
    namespace: str
    replicas: int
    resources: Resources
    source: str


CONTROL_PLANE = (
    ControlPlanePod("istiod", "istio-system", 1,
                    Resources(500, 2048 * 2**20, 500, 2048 * 2**20),
                    "istio chart default requests 500m/2048Mi; limits assumed equal"),
    ControlPlanePod("istio-ingressgateway", "istio-system", 1,
                    Resources(100, 128 * 2**20, 2000, 2**30),
                    "istio gateway chart defaults"),
)


def parse_mesh(value: object, *, file: str | None = None, obj: str | None = None) -> Mesh:
    """A user's mesh choice as a ``Mesh``: ``None`` and ``""`` mean no mesh, and case is
    ignored (``Istio``); anything else raises ``InputError`` naming the valid values."""
    if value is None or value == "":
        return "none"
    if isinstance(value, str):
        for mesh in MESHES:
            if value.lower() == mesh:
                return mesh
    raise InputError("unknown mesh", file=file, obj=obj, field="mesh", value=value,
                     valid="one of: " + ", ".join(MESHES))
