"""``manifests generate --provider``: the StorageClass names the cluster's own CSI driver and disks."""
from __future__ import annotations

from typing import Any

import pytest
import yaml

from eafix_capacity.catalog import load_catalog
from eafix_capacity.cli import main
from eafix_capacity.errors import InputError
from eafix_capacity.manifests.render import RenderOptions, check_options, render
from eafix_capacity.profiles import load_profiles
from eafix_capacity.sim.storage import CSI_DRIVER_OF_PROVIDER

CATALOG = load_catalog()
PROFILES = load_profiles()


def _storage_class(profile: str, **options: Any) -> dict:
    objs = render(CATALOG, PROFILES[profile], RenderOptions(**options))
    (sc,) = [o for o in objs if o["kind"] == "StorageClass"]
    return sc


@pytest.mark.parametrize("provider, profile, parameters", [
    ("gke", "recommended", {"type": "pd-ssd"}),
    ("gke", "minimum", {"type": "pd-balanced"}),
    ("eks", "recommended", {"type": "gp3", "csi.storage.k8s.io/fstype": "ext4", "encrypted": "true"}),
    ("eks", "minimum", {"type": "gp3", "csi.storage.k8s.io/fstype": "ext4", "encrypted": "true"}),
    ("aks", "recommended", {"skuName": "Premium_LRS"}),
    ("aks", "minimum", {"skuName": "StandardSSD_LRS"}),
])
def test_each_provider_gets_its_csi_driver_and_disk_type(provider, profile, parameters):
    sc = _storage_class(profile, provider=provider)
    assert sc["provisioner"] == CSI_DRIVER_OF_PROVIDER[provider]  # the driver the sim runs for that cloud
    assert sc["parameters"] == parameters
    assert (sc["volumeBindingMode"], sc["reclaimPolicy"]) == ("WaitForFirstConsumer", "Retain")


def test_the_default_is_still_gke():
    assert _storage_class("recommended") == _storage_class("recommended", provider="gke")
    assert _storage_class("recommended")["provisioner"] == "pd.csi.storage.gke.io"


def test_an_explicit_provisioner_gets_no_other_drivers_parameters():
    sc = _storage_class("recommended", provider="eks", storage_provisioner="example.com/nfs")
    assert sc["provisioner"] == "example.com/nfs" and "parameters" not in sc


def test_an_unknown_provider_is_refused():
    with pytest.raises(InputError, match="unknown provider.*one of gke, eks, aks"):
        check_options(RenderOptions(provider="generic"))


def test_cli_renders_the_provider_into_the_storage_class_file(tmp_path, capsys):
    out = tmp_path / "aks"
    assert main(["manifests", "generate", "--profile", "minimum", "--provider", "aks", "--out", str(out)]) == 0
    assert "storage for aks: disk.csi.azure.com" in capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all((out / "storage" / "storage-class.yml").read_text()) if d]
    assert [(d["provisioner"], d["parameters"]) for d in docs] == [("disk.csi.azure.com", {"skuName": "StandardSSD_LRS"})]
    with pytest.raises(SystemExit) as refused:
        main(["manifests", "generate", "--profile", "minimum", "--provider", "generic", "--out", str(tmp_path / "x")])
    assert refused.value.code == 2
    assert "invalid choice: 'generic'" in capsys.readouterr().err
