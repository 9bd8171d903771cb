"""The sign-off policy file: the shipped defaults load, a policy of one's own changes only what
it names, and every bad key, type or value is refused in one line naming the file and the key."""
from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.paths import data_file
from eafix_capacity.signoff.gates import judge
from eafix_capacity.signoff.policy import POLICY_FILE, load_policy, policy_from_mapping, statistic_quantile
from eafix_capacity.signoff.records import GateResult
from eafix_capacity.yamlio import load_yaml_file


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_defaults_load_with_their_sourced_values():
    p = load_policy()
    assert p.required == ("plan", "capacity", "live", "usage", "rehearsal")
    assert p.must_judge == () and p.strict is False
    u = p.usage
    assert (u.min_samples, u.min_window_seconds) == (100, 86400.0)          # krr's 100 points; one day
    assert (u.cpu_statistic, u.cpu_margin_pct, u.memory_statistic, u.memory_margin_pct) == ("p95", 0.0, "peak", 0.0)
    assert (u.oom_kills_allowed, u.max_restarts, u.hpa_max_seconds) == (0, 5, 900.0)   # KubeHpaMaxedOut: 15m
    assert p.drain_timeout_seconds is None and p.tiers == ("trading",)
    assert p.source == str(data_file(POLICY_FILE))


def test_the_defaults_ship_in_the_wheel():
    # setuptools maps data/ to eafix_capacity.data and ships the files its package-data globs match
    root = data_file(POLICY_FILE).parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert project["package-dir"]["eafix_capacity.data"] == "data"
    assert any(fnmatch(POLICY_FILE, g) for g in project["package-data"]["eafix_capacity.data"])


def test_every_default_key_has_a_comment():
    lines = data_file(POLICY_FILE).read_text().splitlines()
    keys = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")
            and ":" in line and not line.rstrip().endswith(":")]
    assert keys
    for i in keys:
        assert lines[i - 1].lstrip().startswith("#"), f"no comment above {lines[i].strip()!r}"


def test_a_policy_of_ones_own_changes_only_what_it_names(tmp_path):
    p = load_policy(write(tmp_path, "strict: true\nusage:\n  cpu: {margin_pct: 10}\n  hpa_max_duration: 30m\n"
                                    "rehearsal:\n  drain_timeout: 1h30m\n"))
    assert p.strict is True
    assert p.usage.cpu_margin_pct == 10.0 and p.usage.cpu_statistic == "p95"    # the other key kept
    assert p.usage.hpa_max_seconds == 1800.0 and p.usage.min_samples == 100
    assert p.drain_timeout_seconds == 5400.0
    assert p.required == load_policy().required


def test_an_empty_policy_file_is_the_defaults(tmp_path):
    assert load_policy(write(tmp_path, "")).usage == load_policy().usage


@pytest.mark.parametrize(("text", "key", "message"), [
    ("strictt: true\n", "strictt", "unknown key; known keys: required, must_judge, strict, usage, rehearsal"),
    ("usage: {min_sample: 5}\n", "usage.min_sample", "unknown key"),
    ("usage: {cpu: {stat: p95}}\n", "usage.cpu.stat", "unknown key; known keys: statistic, margin_pct"),
    ("rehearsal: {drain: 1h}\n", "rehearsal.drain", "unknown key"),
    ("strict: yes please\n", "strict", "not true or false 'yes please'; true or false"),
    ("usage: {min_samples: 0}\n", "usage.min_samples", "out of range 0; a whole number of at least 1"),
    ("usage: {min_samples: 2.5}\n", "usage.min_samples", "not a whole number 2.5"),
    ("usage: {max_restarts: true}\n", "usage.max_restarts", "not a whole number True"),
    ("usage: {oom_kills_allowed: -1}\n", "usage.oom_kills_allowed", "out of range -1"),
    ("usage: {min_window: 24}\n", "usage.min_window", "not a duration 24; a duration with a unit"),
    ("usage: {min_window: one day}\n", "usage.min_window", "not a duration 'one day'"),
    ("usage: {hpa_max_duration: -5m}\n", "usage.hpa_max_duration", "not a duration '-5m'"),
    ("rehearsal: {drain_timeout: 30}\n", "rehearsal.drain_timeout", "not a duration 30"),
    ("usage: {cpu: {statistic: p0}}\n", "usage.cpu.statistic", "not a statistic 'p0'; peak, or pNN"),
    ("usage: {memory: {statistic: p101}}\n", "usage.memory.statistic", "not a statistic 'p101'"),
    ("usage: {memory: {statistic: max}}\n", "usage.memory.statistic", "not a statistic 'max'"),
    ("usage: {cpu: {margin_pct: ten}}\n", "usage.cpu.margin_pct", "not a number 'ten'; a number from 0 to 1000"),
    ("usage: {cpu: {margin_pct: -1}}\n", "usage.cpu.margin_pct", "out of range -1"),
    ("usage: {memory_limit_margin_pct: .nan}\n", "usage.memory_limit_margin_pct", "not a number nan"),
    ("usage: {cpu: p95}\n", "usage.cpu", "not a mapping 'str'"),
    ("usage: [1]\n", "usage", "not a mapping 'list'"),
    ("required: plan\n", "required", "not a list of names 'plan'"),
    ("required: [plan, capacty]\n", "required", "unknown gate 'capacty'; gate groups (plan, capacity"),
    ("required: ['usage:oomm']\n", "required", "unknown gate 'usage:oomm'"),
    ("required: ['n+1:disk']\n", "required", "unknown gate 'n+1:disk'"),
    ("required: ['rehearsal:']\n", "required", "unknown gate 'rehearsal:'"),
    ("must_judge: [rehearsal]\n", "must_judge", "unknown input 'rehearsal'; a list of live, usage, n+zone"),
    ("rehearsal: {tiers: [trade]}\n", "rehearsal.tiers", "unknown input 'trade'; a list of trading, supporting"),
])
def test_every_bad_key_type_or_value_is_one_line_naming_the_file_and_key(tmp_path, text, key, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_policy(path)
    text_ = str(e.value)
    assert text_.startswith(f"{path}: {key}: ")
    assert message in text_
    assert "\n" not in text_


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"policy.yaml: not a mapping 'list'"):
        load_policy(write(tmp_path, "- strict\n"))
    with pytest.raises(InputError, match=r"policy.yaml: line 2, column 1: invalid YAML \(expected .,. or .\]."):
        load_policy(write(tmp_path, "strict: [true\n"))
    with pytest.raises(InputError, match="file not found"):
        load_policy(tmp_path / "missing.yaml")


def test_a_policy_without_defaults_must_be_complete():
    full = load_yaml_file(data_file(POLICY_FILE))
    assert policy_from_mapping(full).usage == load_policy().usage
    del full["usage"]["max_restarts"]
    with pytest.raises(InputError, match=r"<policy>: usage.max_restarts: missing key"):
        policy_from_mapping(full)


def test_statistic_quantile():
    assert statistic_quantile("peak") == 1.0
    assert statistic_quantile("p95") == 0.95
    assert statistic_quantile("p99.9") == pytest.approx(0.999)


def gates() -> list[GateResult]:
    return [GateResult("plan:rollout", "plan", "PASS", "fits"),
            GateResult("usage:cpu-request:risk-manager", "usage", "FAIL", "p95 over its request"),
            GateResult("usage:oom:risk-manager", "usage", "PASS", "no OOM kill"),
            GateResult("rehearsal:node-loss", "rehearsal", "WARN", "not rehearsed")]


def test_required_decides_whether_a_fail_fails_the_signoff(tmp_path):
    verdict, judged = judge(gates(), policy=load_policy())
    assert verdict == "FAIL" and all(g.required for g in judged)
    # the CPU gates are shown but cannot fail the sign-off: the verdict is a WARN, not a PASS
    own = load_policy(write(tmp_path, "required: [plan, capacity, live, 'usage:oom', rehearsal]\n"))
    verdict, judged = judge(gates(), policy=own)
    assert verdict == "WARN"
    assert {g.name: g.required for g in judged} == {"plan:rollout": True, "usage:cpu-request:risk-manager": False,
                                                    "usage:oom:risk-manager": True, "rehearsal:node-loss": True}
    one = load_policy(write(tmp_path, "required: ['usage:cpu-request:risk-manager']\n"))
    assert judge(gates(), policy=one)[0] == "FAIL"
    assert [g.required for g in judge(gates(), policy=one)[1]] == [False, True, False, False]


def test_strict_makes_a_warn_on_a_required_gate_fail(tmp_path):
    passing = [g for g in gates() if g.verdict != "FAIL"]
    assert judge(passing, policy=load_policy())[0] == "WARN"
    strict = load_policy(write(tmp_path, "strict: true\n"))
    assert judge(passing, policy=strict)[0] == "FAIL"
    # a WARN on a gate that is not required does not fail even a strict sign-off
    lenient = load_policy(write(tmp_path, "strict: true\nrequired: [plan, usage]\n"))
    assert judge(passing, policy=lenient)[0] == "WARN"
