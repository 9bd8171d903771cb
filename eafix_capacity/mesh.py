"""What the Istio service mesh adds to the cluster's demand.

Every injected pod gains an ``istio-proxy`` sidecar; the mesh also runs its control
plane (istiod) and an ingress gateway. Figures are Istio's chart defaults, as DESIGN.md
records them; the control-plane limits are the kit's assumption (istiod ships without
limits, which would make its worst case unbounded).
"""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import Resources
from .errors import InputError

MESHES = ("none", "istio")

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


def normalise_mesh(value: str | None) -> str:
    """``None``/``""``/``"none"`` mean no mesh; anything else must be a known mesh."""
    mesh = (value or "none").lower()
    if mesh not in MESHES:
        raise InputError("unknown mesh", field="mesh", value=value,
                         valid="one of: " + ", ".join(MESHES))
    return mesh
