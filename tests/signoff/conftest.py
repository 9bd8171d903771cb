"""Fixtures for the sign-off tests: a running sim and the real kubectl against it."""
from __future__ import annotations

from eafix_capacity.sim.testing import frozen_sim_module, kubectl, run_kubectl, sim_cluster, sim_cluster_module

__all__ = ["frozen_sim_module", "kubectl", "run_kubectl", "sim_cluster", "sim_cluster_module"]
