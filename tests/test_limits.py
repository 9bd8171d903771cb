"""Kubernetes' cluster limits are checked by the planner itself, before it lists pods or
packs nodes, whatever built the catalogue or options (the file checks are in
test_catalog.py, the parameter checks in test_inputs.py)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from eafix_capacity import limits
from eafix_capacity.catalog import Catalog, Container, Resources, load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.nodes import load_node_types
from eafix_capacity.plan import Plan, PlanOptions, make_plan
from eafix_capacity.profiles import load_profiles

NODES_LIMIT = "Kubernetes supports at most 5,000 nodes per cluster"
PODS_LIMIT = "Kubernetes supports at most 150,000 pods per cluster"


def test_the_limits_are_the_documented_ones() -> None:
    assert (limits.MAX_NODES, limits.MAX_PODS) == (5000, 150_000)
    assert "cluster-large" in (limits.__doc__ or "")
    assert limits.NODES_LIMIT_TEXT.startswith(NODES_LIMIT)
    assert limits.PODS_LIMIT_TEXT.startswith(PODS_LIMIT)


def plan(catalog: Catalog | None = None, **options: Any) -> Plan:
    return make_plan(catalog or load_catalog(), load_profiles()["recommended"],
                     load_node_types()["n2-standard-8"], PlanOptions(provider="gke", **options))


def with_replicas(catalog: Catalog, name: str, n: int, **changes: object) -> Catalog:
    """The catalogue with one service changed, built without the file's checks."""
    return Catalog(tuple(replace(s, replicas=n, **changes) if s.name == name else s  # type: ignore[arg-type]
                         for s in catalog.services), catalog.source_file)


@pytest.mark.parametrize(("options", "fragments"), [
    ({"nodes": 10**9}, ["nodes: too many nodes 1000000000", NODES_LIMIT]),
    ({"nodes": limits.MAX_NODES + 1}, ["too many nodes 5001", NODES_LIMIT]),
    ({"max_pods": 10**9}, ["max_pods: too many pods per node", PODS_LIMIT]),
    ({"cpu_limit_ratio": math.inf}, ["cpu_limit_ratio", "inf", "finite"]),
    ({"memory_limit_ratio": math.nan}, ["memory_limit_ratio", "nan"]),
])
def test_options_beyond_a_cluster_are_refused(options: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(InputError) as e:
        plan(**options)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_more_pods_than_a_cluster_runs_at_the_hpa_maximum_are_refused() -> None:
    big = with_replicas(load_catalog(), "reporter", limits.MAX_PODS)
    with pytest.raises(InputError) as e:
        plan(big)
    msg = str(e.value)
    assert "services.yaml: replicas: the hpa-max scenario runs 150,0" in msg
    assert PODS_LIMIT in msg


def test_a_rollout_surge_past_the_pod_limit_is_refused() -> None:
    # 130,000 replicas fit at the HPA maximum; their 25% rollout surge does not
    big = with_replicas(load_catalog(), "reporter", 130_000)
    with pytest.raises(InputError) as e:
        plan(big)
    msg = str(e.value)
    assert "the rollout scenario runs 162," in msg and PODS_LIMIT in msg


def test_a_workload_needing_more_nodes_than_a_cluster_has_is_refused_before_packing() -> None:
    # every pod asks for more than half an n2-standard-8, so each needs a node of its own
    catalog = load_catalog()
    huge = Container("reporter", Resources(5000, 2**30, 5000, 2**30))
    big = with_replicas(catalog, "reporter", 6000, containers=(huge,))
    with pytest.raises(InputError) as e:
        plan(big)
    msg = str(e.value)
    assert "nodes: the baseline scenario needs at least 6,0" in msg
    assert "n2-standard-8 nodes" in msg and NODES_LIMIT in msg
    # with a node count given, too: the count is judged only within what a cluster has
    with pytest.raises(InputError, match="needs at least"):
        plan(big, nodes=3)
