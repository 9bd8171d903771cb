"""Pure tests of the controllers' arithmetic: template hashes and names, rollout fenceposts,
PodDisruptionBudget budgets and HPA proposals."""
from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eafix_capacity.errors import InputError
from eafix_capacity.sim.controllers import (SAFE_ALPHABET, fnv32a, hpa_proposal, hpa_scale_limits,
                                            new_rs_replicas, old_rs_scale_down, pdb_budget, qos_class,
                                            random_suffix, safe_encode, scaled_value, semantic,
                                            surge_and_unavailable, template_hash)

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}


def test_alphabet_is_apimachinerys():
    assert SAFE_ALPHABET == "bcdfghjklmnpqrstvwxz2456789"
    assert not set("aeiou013") & set(SAFE_ALPHABET)


def test_fnv32a_known_values():
    # Reference values of the FNV-1a 32-bit hash.
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encode_maps_digits_like_go():
    assert safe_encode("0123456789") == "456789bcdf"


def test_template_hash_form_and_stability():
    h = template_hash(TEMPLATE)
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", h)
    assert set(h) <= set("456789bcdf")
    assert template_hash(TEMPLATE) == h
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}
    assert template_hash(changed) != h
    assert template_hash(TEMPLATE, 1) != h


def test_template_hash_ignores_nulls_kubectl_sends_back():
    with_null = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}}, "spec": TEMPLATE["spec"]}
    assert template_hash(with_null) == template_hash(TEMPLATE)
    assert semantic(with_null) == TEMPLATE


def test_random_suffix_is_seeded():
    a = random_suffix(random.Random(7))
    assert a == random_suffix(random.Random(7))
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{5}", a)


@pytest.mark.parametrize("value, total, up, want", [
    (3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), ("25%", 4, False, 1),
    ("25%", 3, False, 0), ("25%", 3, True, 1), ("100%", 7, False, 7), ("0%", 7, True, 0), (None, 5, True, 0),
])
def test_scaled_value(value, total, up, want):
    assert scaled_value(value, total, round_up=up) == want


@pytest.mark.parametrize("bad", ["1", "x%", True, 1.5])
def test_scaled_value_rejects_bad_int_or_string(bad):
    with pytest.raises(InputError):
        scaled_value(bad, 10, round_up=True)


@pytest.mark.parametrize("surge, unavailable, replicas, want", [
    (None, None, 10, (3, 2)),      # 25% up / 25% down
    (None, None, 3, (1, 0)),
    (None, None, 1, (1, 0)),
    (0, 0, 5, (0, 1)),             # both zero: one may be unavailable
    ("50%", "50%", 5, (3, 2)),
    (2, 0, 4, (2, 0)),
])
def test_surge_and_unavailable(surge, unavailable, replicas, want):
    assert surge_and_unavailable(surge, unavailable, replicas) == want


def test_new_rs_replicas_respects_surge():
    assert new_rs_replicas(10, 0, 10, 3) == 3       # may add 3 beyond the 10 old
    assert new_rs_replicas(10, 3, 13, 3) == 3       # at the ceiling: wait
    assert new_rs_replicas(10, 3, 11, 3) == 5
    assert new_rs_replicas(3, 0, 0, 1) == 3         # fresh deployment


def test_old_rs_scale_down_keeps_min_available():
    # 10 replicas, 3 new not yet available, 10 old: may remove 13 - 8 - 3 = 2
    assert old_rs_scale_down(10, 13, 3, 0, 2) == 2
    assert old_rs_scale_down(10, 13, 3, 3, 2) == 5
    assert old_rs_scale_down(3, 4, 1, 0, 0) == 0


@given(replicas=st.integers(1, 50), surge=st.integers(0, 10), unavailable=st.integers(0, 10))
def test_rolling_update_fenceposts_never_break_bounds(replicas, surge, unavailable):
    """Simulate a rollout step by step: total pods never exceed replicas + surge, and available
    pods never drop below replicas - unavailable (when both are not zero)."""
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = min(unavailable, replicas)
    old, new, new_avail = replicas, 0, 0
    for _ in range(10 * replicas + 10):
        new = new_rs_replicas(replicas, new, old + new, surge)
        assert old + new <= replicas + surge or new == 0
        down = min(old, old_rs_scale_down(replicas, old + new, new, new_avail, unavailable))
        old -= down
        assert old + new_avail >= replicas - unavailable
        new_avail = new   # the new pods become available
        if old == 0 and new == replicas:
            break
    assert (old, new) == (0, replicas)


@pytest.mark.parametrize("spec, pods, healthy, scale, want", [
    ({"minAvailable": 2}, 3, 3, 3, (3, 2, 3, 1)),
    ({"minAvailable": 3}, 3, 3, 3, (3, 3, 3, 0)),
    ({"minAvailable": "50%"}, 3, 3, 4, (4, 2, 3, 1)),     # percentages round up
    ({"maxUnavailable": 1}, 3, 3, 3, (3, 2, 3, 1)),
    ({"maxUnavailable": "34%"}, 3, 3, 3, (3, 1, 3, 2)),  # 34% of 3 = 1.02 -> 2 unavailable
    ({"maxUnavailable": 1}, 3, 2, 3, (3, 2, 2, 0)),      # one already down
    ({"minAvailable": 1}, 0, 0, 0, (0, 1, 0, 0)),
])
def test_pdb_budget(spec, pods, healthy, scale, want):
    b = pdb_budget(spec, matching_pods=pods, healthy=healthy, controller_scale=scale)
    assert (b.expected, b.desired_healthy, b.current_healthy, b.disruptions_allowed) == want


def test_hpa_proposal_tolerance_and_ceiling():
    assert hpa_proposal(4, 85, 80, 4) == 4          # within 10%
    assert hpa_proposal(4, 200, 80, 4) == 10        # ceil(4 * 2.5)
    assert hpa_proposal(4, 20, 80, 4) == 1
    assert hpa_proposal(3, 100, 60, 3) == 5         # ceil(3 * 1.667)


def test_hpa_scale_limits_defaults_and_policies():
    assert hpa_scale_limits(2, None) == (6, 0)      # max(2 x 2, 2 + 4)
    assert hpa_scale_limits(10, None) == (20, 0)
    assert hpa_scale_limits(10, {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                                 "scaleDown": {"policies": [{"type": "Percent", "value": 10}]}}) == (11, 9)
    assert hpa_scale_limits(5, {"scaleDown": {"selectPolicy": "Disabled"}})[1] == 5


def test_qos_class():
    def pod(res):
        return {"spec": {"containers": [{"name": "c", "resources": res}]}}
    assert qos_class(pod({})) == "BestEffort"
    assert qos_class(pod({"limits": {"cpu": "1", "memory": "1Gi"}})) == "Guaranteed"
    assert qos_class(pod({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})) \
        == "Guaranteed"
    assert qos_class(pod({"requests": {"cpu": "100m"}})) == "Burstable"
