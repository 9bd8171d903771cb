"""The library side of notebook 05 (eafix_capacity/signoff/notebook.py) without a kernel or a sim:
the parameters' one-line refusals, the upgrade settings they give, the default release."""
from __future__ import annotations

import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.signoff import notebook as nb


@pytest.mark.parametrize(("values", "message"), [
    ({"node_loss": "random"}, r"node_loss: unknown node loss 'random'; largest"),
    ({"usage": "/nonexistent/store"}, r"usage: not a directory '/nonexistent/store'"),
    ({"release_catalog": "/nonexistent/services.yaml"}, r"release_catalog: not found '/nonexistent/services.yaml'"),
    ({"release_manifests": "/nonexistent"}, r"release_manifests: not found"),
    ({"release_catalog": "a.yaml", "release_manifests": "dir"}, r"release_manifests: a release is a catalogue or a "
                                                                r"manifest directory, not both"),
    ({"max_surge": "0", "max_unavailable": "0"}, r"max_surge and max_unavailable cannot both be 0"),
    ({"upgrade_node_type": "n9-huge"}, r"n9-huge"),
    ({"provider": "generic"}, r"provider: a node-pool upgrade is rehearsed with a cloud's procedure 'generic'"),
    ({"profile": "huge"}, r"profile"),
    ({"namespace": ""}, r"namespace: empty namespace"),
    ({"policy": "/nonexistent/policy.yaml"}, r"/nonexistent/policy.yaml"),
    ({"kubeconfig": "/k"}, r"kubeconfig: a kubeconfig without a context"),
    ({"output_dir": ""}, r"output_dir: empty output directory"),
    ({"nodes": "3"}, r"nodes"),
    ({"colour": "red"}, r"colour: unknown parameter"),
    ({"rehearsals": "node-loss,chaos"}, r"rehearsals: unknown rehearsal 'chaos'; a comma-separated list of: node-loss"),
])
def test_a_bad_parameter_is_one_line_naming_it(values, message):
    with pytest.raises(InputError, match=message) as e:
        nb.NotebookParams.from_notebook(**values)
    assert "\n" not in str(e.value)


def test_the_defaults_sign_off_the_recommended_plan_with_the_providers_upgrade():
    params = nb.NotebookParams.from_notebook()
    assert params.context == "" and params.plan_params().profile == "recommended"
    s = params.upgrade_settings()
    assert (s.provider, s.max_surge, s.max_unavailable, s.drain_timeout_seconds) == ("gke", 1, 0, 3600.0)
    aks = nb.NotebookParams.from_notebook(provider="aks", node_type="Standard_D8s_v5", max_surge="33%").upgrade_settings()
    assert (aks.provider, aks.max_surge, aks.drain_timeout_seconds) == ("aks", "33%", 1800.0)
    two = nb.NotebookParams.from_notebook(max_surge="2", max_unavailable="1").upgrade_settings()
    assert (two.max_surge, two.max_unavailable) == (2, 1)
    assert params.inputs()["policy"] == "defaults" and params.inputs()["release"] == ""
    assert params.chosen_rehearsals() == nb.REHEARSALS
    assert nb.NotebookParams.from_notebook(rehearsals=" nodepool-upgrade, node-loss").chosen_rehearsals() == \
        ("node-loss", "nodepool-upgrade")       # in the order they run


def test_the_policy_drain_timeout_overrides_the_providers(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rehearsal:\n  drain_timeout: 20m\n")
    params = nb.NotebookParams.from_notebook(policy=str(policy))
    assert params.upgrade_settings(params.load_policy()).drain_timeout_seconds == 1200.0


def test_without_a_new_release_every_workload_is_restarted_and_nothing_else_changes():
    objects = [{"kind": "Deployment", "metadata": {"name": "a"}, "spec": {"template": {"metadata": {"labels": {}}}}},
               {"kind": "StatefulSet", "metadata": {"name": "b"}, "spec": {"template": {}}},
               {"kind": "Service", "metadata": {"name": "c"}, "spec": {"ports": []}}]
    out = nb.restarted(objects, at="2026-01-14T12:00:00Z")
    assert [o["spec"]["template"]["metadata"]["annotations"] for o in out[:2]] == \
        [{nb.RESTARTED_AT: "2026-01-14T12:00:00Z"}] * 2
    assert out[2] == objects[2]
    assert "annotations" not in objects[0]["spec"]["template"]["metadata"]     # a copy: the input is unchanged
