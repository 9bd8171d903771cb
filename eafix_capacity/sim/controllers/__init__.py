"""The sim cluster's control plane: one module per controller, as kube-controller-manager lays them out.

:class:`~eafix_capacity.sim.controllers.manager.ControllerManager` runs them; the pure
arithmetic each controller uses (template hash, surge and unavailability, PDB budgets, HPA
proposals) is re-exported here for tests and notebooks.
"""
from __future__ import annotations

from eafix_capacity.kobject import scaled_value
from eafix_capacity.sim.controllers.common import (SAFE_ALPHABET, fnv32a, qos_class, random_suffix, safe_encode, semantic,
                                                   template_hash)
from eafix_capacity.sim.controllers.deployment import new_rs_replicas, old_rs_scale_down, surge_and_unavailable
from eafix_capacity.sim.controllers.disruption import EVICTION_REFUSED, Budget, pdb_budget
from eafix_capacity.sim.controllers.manager import ControllerManager
from eafix_capacity.sim.controllers.podautoscaler import hpa_proposal, hpa_scale_limits

__all__ = ["SAFE_ALPHABET", "EVICTION_REFUSED", "Budget", "ControllerManager", "fnv32a", "hpa_proposal",
           "hpa_scale_limits", "new_rs_replicas", "old_rs_scale_down", "pdb_budget", "qos_class", "random_suffix",
           "safe_encode", "scaled_value", "semantic", "surge_and_unavailable", "template_hash"]
