"""Cluster profiles: the seed's figures, the stated units, and bad files."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from eafix_capacity.errors import EafixCapacityError, InputError
from eafix_capacity.paths import data_file
from eafix_capacity.profiles import Profile, get_profile, load_profiles

GIB = 2**30
PROFILES_YAML = data_file("profiles.yaml")


@pytest.fixture(scope="module")
def pristine() -> dict[str, Any]:
    return yaml.safe_load(PROFILES_YAML.read_text(encoding="utf-8"))


@pytest.fixture
def doc(pristine: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(pristine)


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_seed_minimum_profile() -> None:
    p = load_profiles()["minimum"]
    assert p == Profile("minimum", p.description, 12_000, 24 * GIB, 150 * GIB, "any")
    assert "Minimum" in p.description


def test_seed_recommended_profile() -> None:
    p = load_profiles()["recommended"]
    assert p == Profile("recommended", p.description, 24_000, 48 * GIB, 500 * GIB, "ssd")
    assert "Recommended" in p.description


def test_only_the_two_seed_profiles() -> None:
    assert list(load_profiles()) == ["minimum", "recommended"]


def test_file_states_its_units_and_how_it_reads_gb(pristine: dict[str, Any]) -> None:
    assert pristine["units"] == {"cpu": "cores", "memory": "GiB", "storage": "GiB"}
    assert "GiB" in pristine["gb_interpretation"] and "GB" in pristine["gb_interpretation"]
    text = PROFILES_YAML.read_text(encoding="utf-8")
    assert "2^30" in text


def test_decimal_gb_units_are_honoured(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["units"] = {"cpu": "cores", "memory": "GB", "storage": "GB"}
    doc["profiles"]["minimum"]["memory"] = 1.5
    p = load_profiles(write(tmp_path, doc))["minimum"]
    assert p.memory_bytes == 1_500_000_000
    assert p.storage_bytes == 150 * 10**9
    assert p.cpu_m == 12_000


def test_fractional_figures_are_exact(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["profiles"]["minimum"]["cpu"] = 0.1
    doc["profiles"]["minimum"]["memory"] = 0.5
    p = load_profiles(write(tmp_path, doc))["minimum"]
    assert p.cpu_m == 100
    assert p.memory_bytes == GIB // 2


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as e:
        get_profile("maximum", load_profiles())
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, EafixCapacityError)
    assert msg == "profile: unknown profile 'maximum'; one of: minimum, recommended"


@pytest.mark.parametrize(
    ("key", "unit", "valid"),
    [("memory", "MB", "GiB, GB"), ("storage", "TB", "GiB, GB"), ("cpu", "millicores", "cores"),
     ("memory", None, "GiB, GB")],
)
def test_bad_unit_names_file_field_value_and_valid_units(
    tmp_path: Path, doc: dict[str, Any], key: str, unit: str | None, valid: str,
) -> None:
    doc["units"][key] = unit
    path = write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_profiles(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: units.{key}: invalid unit")
    if unit is not None:   # a missing unit has no value to quote
        assert repr(unit) in msg
    assert f"one of: {valid}" in msg


def test_missing_units(tmp_path: Path, doc: dict[str, Any]) -> None:
    del doc["units"]
    path = write(tmp_path, doc)
    with pytest.raises(InputError, match=r"units: missing field; units: \{cpu: cores"):
        load_profiles(path)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("cpu", -12, "not a positive number -12"), ("memory", 0, "not a positive number 0"),
     ("storage", "150GB", "not a positive number '150GB'"), ("cpu", True, "not a positive number True"),
     ("memory", None, "missing field")],
)
def test_bad_figure_names_file_profile_field_and_value(
    tmp_path: Path, doc: dict[str, Any], field: str, value: Any, problem: str,
) -> None:
    doc["profiles"]["recommended"][field] = value
    path = write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_profiles(path)
    assert str(e.value).startswith(f"{path}: recommended: {field}: {problem}")


def test_bad_storage_media(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["profiles"]["recommended"]["storage_media"] = "nvme"
    path = write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_profiles(path)
    assert str(e.value) == f"{path}: recommended: storage_media: invalid value 'nvme'; one of: any, ssd"


@pytest.mark.parametrize("top", [None, [], "profiles"])
def test_file_that_is_not_a_mapping(tmp_path: Path, top: Any) -> None:
    path = write(tmp_path, top)
    with pytest.raises(InputError, match="expected a mapping"):
        load_profiles(path)


def test_no_profiles(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["profiles"] = {}
    with pytest.raises(InputError, match="profiles: missing field"):
        load_profiles(write(tmp_path, doc))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("units: {cpu: cores\nprofiles:\n  minimum: {}\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_profiles(path)
    assert str(e.value).startswith(f"{path}: line ")
    assert "invalid YAML" in str(e.value)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["profiles"]["minimum"].update(cpu=0), "minimum: cpu: not a positive number 0; a number of cores above 0"),
    (lambda d: d["profiles"]["minimum"].pop("memory"), "minimum: memory: missing field; a number of GiB above 0"),
    (lambda d: d["profiles"].update(minimum=12), "minimum: expected a mapping 12; {cpu, memory, storage, storage_media}"),
    (lambda d: d.update(profiles=[]), "profiles: missing field; a mapping of profile name to"),
])
def test_every_profile_error_says_what_is_valid(tmp_path: Path, doc: dict[str, Any], edit, expected: str) -> None:
    edit(doc)
    path = write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_profiles(path)
    assert str(e.value).startswith(f"{path}: {expected}")
