"""Two catalogues compared per service and field (e.g. imported manifests vs services.yaml).

Only the figures that change a plan are compared: sizing per pod, replicas, HPA bounds,
storage, kind, port, tier, runtime, image and mesh injection. Sources and descriptions
are provenance, not capacity, and are left out.
"""
from __future__ import annotations

import pandas as pd

from ..catalog import Catalog, Service

DIFF_COLUMNS = ["service", "field", "left", "right"]
ABSENT = "(absent)"


def service_fields(s: Service) -> dict[str, object]:
    r = s.pod_resources
    return {
        "kind": s.kind, "port": s.port, "tier": s.tier, "runtime": s.runtime, "image": s.image,
        "replicas": s.replicas,
        "containers": ",".join(c.name for c in s.containers),
        "cpu_request_m": r.cpu_request_m, "memory_request_bytes": r.memory_request_bytes,
        "cpu_limit_m": r.cpu_limit_m, "memory_limit_bytes": r.memory_limit_bytes,
        "hpa_min_replicas": s.hpa.min_replicas if s.hpa else None,
        "hpa_max_replicas": s.hpa.max_replicas if s.hpa else None,
        "hpa_cpu_utilization": s.hpa.cpu_utilization if s.hpa else None,
        "storage_bytes": s.storage_bytes,
        "volumes": ",".join(f"{v.name}={v.size_bytes}@{v.mount_path}" for v in s.volumes),
        "mesh_inject": s.mesh_inject,
    }


def diff_catalogs(left: Catalog, right: Catalog) -> pd.DataFrame:
    """One row per differing (service, field); a service on one side only is one row
    with field ``service``. Empty (with the columns) when the catalogues agree."""
    rows: list[dict[str, object]] = []
    lmap = {s.name: s for s in left.services}
    rmap = {s.name: s for s in right.services}
    names = list(lmap) + [n for n in rmap if n not in lmap]
    for name in names:
        if name not in rmap or name not in lmap:
            rows.append({"service": name, "field": "service",
                         "left": name if name in lmap else ABSENT,
                         "right": name if name in rmap else ABSENT})
            continue
        lf, rf = service_fields(lmap[name]), service_fields(rmap[name])
        for field, lv in lf.items():
            if lv != rf[field]:
                rows.append({"service": name, "field": field, "left": lv, "right": rf[field]})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS).astype(object)
