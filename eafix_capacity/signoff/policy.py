"""The sign-off policy: which gates can fail a sign-off, and the margins the gates judge by.

A desk signs off an upgrade by its own rules (how close to its request a service may run, how
long an HPA may sit at its maximum, how long a PodDisruptionBudget may hold up a drain), and
those rules must be written down where a reviewer of the change request can read them, not
buried in code. They live in a YAML file: ``data/signoff-policy.yaml`` holds the defaults, each
with its source, and a policy file of one's own names only the keys it changes. Every key is
checked when the file is loaded; an unknown key, a wrong type or an out-of-range value is one
``InputError`` line naming the file, the key, the value and what would be valid, so a typo
never silently falls back to a default.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..catalog import TIERS
from ..durations import parse_duration
from ..errors import InputError
from ..paths import data_file
from ..yamlio import load_yaml_file
from .records import GATE_GROUPS, GateResult

POLICY_FILE = "signoff-policy.yaml"
PROVIDER_DRAIN_TIMEOUTS: Mapping[str, float] = {"gke": 3600.0, "aks": 1800.0, "eks": 900.0}
"""Seconds a drain may wait on PodDisruptionBudgets during a node-pool upgrade: GKE respects PDBs
for up to an hour, AKS's drainTimeoutInMinutes defaults to 30, EKS managed node groups give up
(PodEvictionFailure) after 15 minutes."""
USAGE_CHECKS = ("cpu-request", "memory-request", "memory-limit", "oom", "restarts", "hpa-max", "samples")
"""The usage gates per service (``usage:<check>:<service>``); ``usage:data`` is the one gate when
there is no usage history at all."""
REHEARSALS = ("nodepool-upgrade", "release-rollout", "node-loss", "zone-loss")
MUST_JUDGE = ("live", "usage", "n+zone")
"""The gates whose input can be missing (a context, a usage history, zone labels)."""
_FAMILIES: Mapping[str, tuple[str, ...] | None] = {
    "plan": None, "n+1": ("cpu", "memory"), "n+zone": ("cpu", "memory"), "live": ("verify",),
    "usage": USAGE_CHECKS + ("data",), "rehearsal": REHEARSALS,
}
_STATISTIC = re.compile(r"p(\d+(?:\.\d+)?)")

Statistic = str
"""``peak`` or ``pNN`` (a percentile, 0 < NN <= 100)."""


@dataclass(frozen=True)
class UsagePolicy:
    min_samples: int
    min_window_seconds: float
    cpu_statistic: Statistic
    cpu_margin_pct: float
    memory_statistic: Statistic
    memory_margin_pct: float
    memory_limit_margin_pct: float
    oom_kills_allowed: int
    max_restarts: int
    hpa_max_seconds: float


@dataclass(frozen=True)
class Policy:
    required: tuple[str, ...]
    must_judge: tuple[str, ...]
    strict: bool
    usage: UsagePolicy
    drain_timeout_seconds: float | None     # None: the rehearsal's or the provider's own
    tiers: tuple[str, ...]
    source: str = ""

    def is_required(self, gate: GateResult) -> bool:
        return any(selects(entry, gate) for entry in self.required)

    def must(self, what: Literal["live", "usage", "n+zone"]) -> bool:
        return what in self.must_judge


def selects(entry: str, gate: GateResult) -> bool:
    """A policy entry names a gate's group, the gate itself, or every gate under a prefix."""
    return entry == gate.group or entry == gate.name or gate.name.startswith(entry + ":")


def statistic_quantile(statistic: Statistic) -> float:
    """The quantile (0..1] a statistic reads: ``peak`` is 1, ``p95`` 0.95."""
    if statistic == "peak":
        return 1.0
    m = _STATISTIC.fullmatch(statistic)
    assert m is not None, statistic  # checked when the policy was loaded
    return float(m.group(1)) / 100


# --- loading -------------------------------------------------------------------------------------

_USAGE_KEYS = ("min_samples", "min_window", "cpu", "memory", "memory_limit_margin_pct", "oom_kills_allowed",
               "max_restarts", "hpa_max_duration")
_RESOURCE_KEYS = ("statistic", "margin_pct")
_REHEARSAL_KEYS = ("drain_timeout", "tiers")
_TOP_KEYS = ("required", "must_judge", "strict", "usage", "rehearsal")


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in ``path`` over the defaults of ``data/signoff-policy.yaml`` (only the defaults
    when ``path`` is None). A key given replaces the default's (a list is not merged)."""
    default_path = data_file(POLICY_FILE)
    defaults = load_yaml_file(default_path)
    if path is None:
        return policy_from_mapping(defaults, source=str(default_path))
    own = load_yaml_file(path)
    return policy_from_mapping({} if own is None else own, source=str(path), defaults=defaults,
                               defaults_source=str(default_path))


def policy_from_mapping(data: object, *, source: str = "<policy>",
                        defaults: Mapping[str, Any] | None = None, defaults_source: str = "<defaults>") -> Policy:
    """A policy from parsed YAML (pure). Keys missing from ``data`` come from ``defaults``
    (``data`` alone must then be complete); every key is checked, and an error names the file
    the bad value came from."""
    values: dict[str, tuple[Any, str]] = {}   # "usage.cpu.statistic" -> (value, file)
    for layer, where in ((defaults, defaults_source), (data, source)):
        if layer is None:
            continue
        top = _mapping(layer, where, None, _TOP_KEYS)
        for k, v in top.items():
            if k in ("usage", "rehearsal"):
                sec = _mapping(v, where, k, _USAGE_KEYS if k == "usage" else _REHEARSAL_KEYS)
                for k2, v2 in sec.items():
                    if k == "usage" and k2 in ("cpu", "memory"):
                        for k3, v3 in _mapping(v2, where, f"usage.{k2}", _RESOURCE_KEYS).items():
                            values[f"usage.{k2}.{k3}"] = (v3, where)
                    else:
                        values[f"{k}.{k2}"] = (v2, where)
            else:
                values[k] = (v, where)

    def get(key: str) -> tuple[Any, str, str]:
        if key not in values:
            raise InputError("missing key", file=source, field=key, valid="every key of data/" + POLICY_FILE)
        v, where = values[key]
        return v, where, key

    strict, ssrc, _ = get("strict")
    if not isinstance(strict, bool):
        raise InputError("not true or false", file=ssrc, field="strict", value=strict, valid="true or false")
    usage = UsagePolicy(
        min_samples=_whole(*get("usage.min_samples"), low=1),
        min_window_seconds=_duration(*get("usage.min_window")),
        cpu_statistic=_statistic(*get("usage.cpu.statistic")),
        cpu_margin_pct=_number(*get("usage.cpu.margin_pct"), low=0, high=1000),
        memory_statistic=_statistic(*get("usage.memory.statistic")),
        memory_margin_pct=_number(*get("usage.memory.margin_pct"), low=0, high=1000),
        memory_limit_margin_pct=_number(*get("usage.memory_limit_margin_pct"), low=0, high=1000),
        oom_kills_allowed=_whole(*get("usage.oom_kills_allowed"), low=0),
        max_restarts=_whole(*get("usage.max_restarts"), low=0),
        hpa_max_seconds=_duration(*get("usage.hpa_max_duration")),
    )
    drain = get("rehearsal.drain_timeout")
    return Policy(
        required=_selectors(*get("required")),
        must_judge=_names(*get("must_judge"), allowed=MUST_JUDGE),
        strict=strict,
        usage=usage,
        drain_timeout_seconds=None if drain[0] is None else _duration(*drain),
        tiers=_tiers(*get("rehearsal.tiers")),
        source=source,
    )


def _mapping(value: object, source: str, where: str | None, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError("not a mapping", file=source, field=where, value=type(value).__name__,
                         valid="a mapping of " + ", ".join(keys))
    for k in value:
        if k not in keys:
            raise InputError("unknown key", file=source, field=f"{where}.{k}" if where else str(k),
                             valid="known keys: " + ", ".join(keys))
    return value


def _whole(value: object, source: str, key: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError("not a whole number" if not isinstance(value, int) or isinstance(value, bool)
                         else "out of range", file=source, field=key, value=value,
                         valid=f"a whole number of at least {low}")
    return value


def _number(value: object, source: str, key: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError("not a number", file=source, field=key, value=value,
                         valid=f"a number from {low:g} to {high:g}")
    if not low <= value <= high:
        raise InputError("out of range", file=source, field=key, value=value,
                         valid=f"a number from {low:g} to {high:g}")
    return float(value)


def _duration(value: object, source: str, key: str) -> float:
    valid = "a duration with a unit (ns, us, ms, s, m, h), e.g. 30s, 15m or 1h30m"
    if not isinstance(value, str):
        raise InputError("not a duration", file=source, field=key, value=value, valid=valid)
    try:
        return parse_duration(value, flag=key)
    except InputError as e:
        raise InputError("not a duration", file=source, field=key, value=value, valid=valid) from e


def _statistic(value: object, source: str, key: str) -> str:
    valid = "peak, or pNN for a percentile (0 < NN <= 100), e.g. p95"
    if isinstance(value, str):
        if value == "peak":
            return value
        m = _STATISTIC.fullmatch(value)
        if m and 0 < float(m.group(1)) <= 100:
            return value
    raise InputError("not a statistic", file=source, field=key, value=value, valid=valid)


def _list(value: object, source: str, key: str, valid: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("not a list of names", file=source, field=key, value=value, valid=valid)
    return value


def _selectors(value: object, source: str, key: str) -> tuple[str, ...]:
    valid = ("gate groups (" + ", ".join(GATE_GROUPS) + "), gates or gate prefixes such as n+1, n+1:cpu, "
             "usage:oom, usage:oom:<service>, rehearsal:nodepool-upgrade, plan:<plan gate>")
    out = []
    for entry in _list(value, source, key, valid):
        head, _, rest = entry.partition(":")
        if entry in GATE_GROUPS or entry in ("n+1", "n+zone"):
            out.append(entry)
            continue
        family = _FAMILIES.get(head)
        second = rest.partition(":")[0]
        ok = head in _FAMILIES and bool(rest) and all(rest.split(":")) and (family is None or second in family)
        if not ok:
            raise InputError("unknown gate", file=source, field=key, value=entry, valid=valid)
        out.append(entry)
    return tuple(out)


def _names(value: object, source: str, key: str, *, allowed: tuple[str, ...]) -> tuple[str, ...]:
    valid = "a list of " + ", ".join(allowed)
    names = _list(value, source, key, valid)
    for n in names:
        if n not in allowed:
            raise InputError("unknown input", file=source, field=key, value=n, valid=valid)
    return tuple(names)


def _tiers(value: object, source: str, key: str) -> tuple[str, ...]:
    return _names(value, source, key, allowed=TIERS)


__all__ = ["Policy", "UsagePolicy", "load_policy", "policy_from_mapping", "selects", "statistic_quantile",
           "PROVIDER_DRAIN_TIMEOUTS", "USAGE_CHECKS", "MUST_JUDGE", "POLICY_FILE"]
