"""The seed's cluster profiles (minimum, recommended) as exact figures.

``data/profiles.yaml`` states its units; this module turns them into millicores and
bytes so they compare directly with the plan's totals.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import InputError
from .paths import data_file
from .yamlio import load_yaml_file

_GIB = 2**30
UNIT_FACTORS = {"cores": 1000, "GiB": _GIB, "GB": 10**9}
MEDIA = ("any", "ssd")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    cpu_m: int
    memory_bytes: int
    storage_bytes: int
    storage_media: str


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    p = Path(path) if path is not None else data_file("profiles.yaml")
    doc = load_yaml_file(p)
    file = str(p)
    if not isinstance(doc, dict):
        raise InputError("expected a mapping", file=file, value=doc,
                         valid="a YAML mapping with `units` and `profiles`")
    units = doc.get("units")
    if not isinstance(units, dict):
        raise InputError("missing field", file=file, field="units",
                         valid="units: {cpu: cores, memory: GiB|GB, storage: GiB|GB}")
    factors = {}
    for key, allowed in (("cpu", ("cores",)), ("memory", ("GiB", "GB")), ("storage", ("GiB", "GB"))):
        unit = units.get(key)
        if not isinstance(unit, str) or unit not in allowed:
            raise InputError("invalid unit", file=file, field=f"units.{key}", value=unit,
                             valid="one of: " + ", ".join(allowed))
        factors[key] = UNIT_FACTORS[unit]
    profiles = doc.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise InputError("missing field", file=file, field="profiles",
                         valid="a mapping of profile name to {cpu, memory, storage, storage_media}")
    out = {}
    for name, raw in profiles.items():
        if not isinstance(raw, dict):
            raise InputError("expected a mapping", file=file, obj=name, value=raw,
                             valid="{cpu, memory, storage, storage_media}")
        figures = {}
        for key in ("cpu", "memory", "storage"):
            v = raw.get(key)
            valid = f"a number of {units[key]} above 0"
            if v is None:
                raise InputError("missing field", file=file, obj=name, field=key, valid=valid)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise InputError("not a positive number", file=file, obj=name, field=key, value=v, valid=valid)
            figures[key] = int(Fraction(str(v)) * factors[key])
        media = raw.get("storage_media", "any")
        if media not in MEDIA:
            raise InputError("invalid value", file=file, obj=name, field="storage_media",
                             value=media, valid="one of: " + ", ".join(MEDIA))
        out[name] = Profile(name, str(raw.get("description", "")), figures["cpu"],
                            figures["memory"], figures["storage"], media)
    return out


def get_profile(name: str, profiles: dict[str, Profile], *, file: str | None = None) -> Profile:
    """The profile called ``name``; ``file`` (where ``profiles`` came from) goes into the
    error so a user knows which file lists the valid names."""
    try:
        return profiles[name]
    except KeyError:
        raise InputError("unknown profile", file=file, field="profile", value=name,
                         valid="one of: " + ", ".join(profiles)) from None
