"""The same sizing as Helm values for the EAFIX chart the seed installs.

The seed deploys with ``helm install eafix-trading ./eafix-trading --set
global.imageRegistry=ghcr.io --set image.tag=v0.1.0`` and scales with ``--set
services.signalGenerator.replicas=5``; these values use that shape
(``services.<serviceCamelCase>``, ``resources.<serviceCamelCase>.requests|limits``) so a
Helm user deploys exactly what the plan sized.
"""
from __future__ import annotations

from ..catalog import Catalog
from ..quantity import from_bytes, from_milli
from .render import DEFAULT_NAMESPACE, RenderOptions, check_options


def camel(name: str) -> str:
    """``signal-generator`` -> ``signalGenerator``."""
    first, *rest = name.replace("_", "-").split("-")
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


def helm_values(catalog: Catalog, options: RenderOptions | None = None) -> dict:
    """Values overrides: replicas, autoscaling, persistence and per-service resources."""
    options = check_options(options or RenderOptions())
    services: dict = {}
    resources: dict = {}
    for s in catalog.services:
        key = camel(s.name)
        entry: dict = {"replicas": s.replicas}
        if s.hpa:
            entry["autoscaling"] = {"enabled": True, "minReplicas": s.hpa.min_replicas,
                                    "maxReplicas": s.hpa.max_replicas,
                                    "targetCPUUtilizationPercentage": s.hpa.cpu_utilization}
        else:
            entry["autoscaling"] = {"enabled": False}
        if s.volumes:
            v = s.volumes[0]
            entry["persistence"] = {"enabled": True, "size": str(from_bytes(v.size_bytes)),
                                    "accessMode": v.access_mode}
        services[key] = entry
        r = s.containers[0].resources
        resources[key] = {
            "requests": {"cpu": str(from_milli(r.cpu_request_m)),
                         "memory": str(from_bytes(r.memory_request_bytes))},
            "limits": {"cpu": str(from_milli(r.cpu_limit_m)),
                       "memory": str(from_bytes(r.memory_limit_bytes))},
        }
    values: dict = {"global": {"imageRegistry": options.image_registry or "ghcr.io"},
                    "image": {"tag": options.image_tag}}
    if options.namespace != DEFAULT_NAMESPACE:
        values["namespaceOverride"] = options.namespace
    values["istio"] = {"enabled": options.mesh == "istio"}
    values["services"] = services
    values["resources"] = resources
    return values
