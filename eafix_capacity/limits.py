"""Upper bounds a real Kubernetes cluster has, shared by the planner and the sim.

Bad input such as ``--nodes 1000000000`` must be refused before anything is
allocated, with a limit the user can look up. The figures are the ones
Kubernetes documents in "Considerations for large clusters"
(https://kubernetes.io/docs/setup/best-practices/cluster-large/): Kubernetes is
designed for configurations of no more than 110 pods per node, no more than
5,000 nodes, no more than 150,000 total pods and no more than 300,000 total
containers.
"""

from __future__ import annotations

from typing import Final

MAX_NODES: Final = 5000
"""Most nodes per cluster Kubernetes supports."""

MAX_PODS: Final = 150_000
"""Most pods per cluster Kubernetes supports (all namespaces together)."""

MAX_CONTAINERS: Final = 300_000
"""Most containers per cluster Kubernetes supports."""

LARGE_CLUSTERS_DOC: Final = "https://kubernetes.io/docs/setup/best-practices/cluster-large/"
"""Where the limits above are documented; quoted in error messages."""

NODES_LIMIT_TEXT: Final = (
    f"Kubernetes supports at most {MAX_NODES:,} nodes per cluster "
    f"(Considerations for large clusters, {LARGE_CLUSTERS_DOC})"
)
PODS_LIMIT_TEXT: Final = (
    f"Kubernetes supports at most {MAX_PODS:,} pods per cluster "
    f"(Considerations for large clusters, {LARGE_CLUSTERS_DOC})"
)
