"""DataFrames of a plan, for the CLI's table/CSV output and the notebooks."""
from __future__ import annotations

import pandas as pd

from .plan import Plan, service_table
from .profiles import Profile

_MI = 2**20
_GI = 2**30


def services_frame(plan: Plan) -> pd.DataFrame:
    """Per-service figures in readable units (cores, MiB, GiB)."""
    rows = service_table(plan)
    df = pd.DataFrame(rows)
    out = pd.DataFrame({
        "service": df["service"], "tier": df["tier"], "kind": df["kind"], "port": df["port"],
        "replicas": df["replicas"], "hpa_max": df["hpa_max"].astype("Int64"),
        "cpu_request": df["cpu_request_m"] / 1000, "cpu_limit": df["cpu_limit_m"] / 1000,
        "mem_request_mib": df["memory_request_bytes"] / _MI,
        "mem_limit_mib": df["memory_limit_bytes"] / _MI,
        "total_cpu_request": df["total_cpu_request_m"] / 1000,
        "total_mem_request_gib": (df["total_memory_request_bytes"] / _GI).round(2),
        "storage_gib": df["storage_request_bytes"] / _GI,
    })
    return out


def scenarios_frame(plan: Plan) -> pd.DataFrame:
    d = plan.to_dict()["scenarios"]
    rows = [{"scenario": name, "pods": s["pods"], "cpu_request": s["cpu_request_m"] / 1000,
             "mem_request_gib": round(s["memory_request_bytes"] / _GI, 2),
             "nodes_needed": s["nodes_needed"], "lower_bound": s["lower_bound"],
             "nodes_evaluated": s["nodes_evaluated"], "fits": s["fits"],
             "cpu_util": s["cpu_utilisation"], "mem_util": s["memory_utilisation"]}
            for name, s in d.items()]
    return pd.DataFrame(rows)


def gates_frame(plan: Plan) -> pd.DataFrame:
    return pd.DataFrame([{"gate": g.name, "result": "PASS" if g.passed else "FAIL", "detail": g.detail}
                         for g in plan.gates])


def profiles_frame(plan: Plan, profiles: dict[str, Profile]) -> pd.DataFrame:
    """Cluster capacity and the plan's demand against each profile."""
    d = plan.to_dict()
    c = d["cluster"]
    rows = [{"what": "cluster capacity", "cpu_cores": c["capacity_cpu_m"] / 1000,
             "memory_gib": round(c["capacity_memory_bytes"] / _GI, 1), "storage_gib": c["storage_bytes"] / _GI},
            {"what": "cluster allocatable", "cpu_cores": c["allocatable_cpu_m"] / 1000,
             "memory_gib": round(c["allocatable_memory_bytes"] / _GI, 1), "storage_gib": c["storage_bytes"] / _GI},
            {"what": "baseline requests", "cpu_cores": d["totals"]["cpu_request_m"] / 1000,
             "memory_gib": round(d["totals"]["memory_request_bytes"] / _GI, 1),
             "storage_gib": d["totals"]["storage_request_bytes"] / _GI},
            {"what": "baseline limits", "cpu_cores": d["totals"]["cpu_limit_m"] / 1000,
             "memory_gib": round(d["totals"]["memory_limit_bytes"] / _GI, 1), "storage_gib": None}]
    for p in profiles.values():
        rows.append({"what": f"profile {p.name}", "cpu_cores": p.cpu_m / 1000,
                     "memory_gib": p.memory_bytes / _GI, "storage_gib": p.storage_bytes / _GI})
    return pd.DataFrame(rows)


def placement_frame(plan: Plan, scenario: str) -> pd.DataFrame:
    """Pods per node for one scenario at the node count it is judged on."""
    r = plan.scenarios[scenario]
    if r.placement is None:
        return pd.DataFrame(columns=["node", "pods", "cpu_request", "mem_request_gib", "services"])
    rows = []
    for i, pods in r.placement.by_node().items():
        rows.append({"node": f"node-{i}", "pods": r.placement.pods[i],
                     "cpu_request": r.placement.cpu_m[i] / 1000,
                     "mem_request_gib": round(r.placement.memory_bytes[i] / _GI, 2),
                     "services": ", ".join(sorted(pods))})
    return pd.DataFrame(rows)
