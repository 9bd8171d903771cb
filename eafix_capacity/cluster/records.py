"""What an apply did to each object: the records apply, prune, diff and notebook 03 share.

A record says, per object, what the server answered (created, changed, unchanged, pruned,
skipped), the paths that changed and their values before and after, and where the object
came from. Secret values never enter a record: :func:`masked` replaces them the way
``kubectl diff`` does (``***``), so a record can be printed, written to ``summary.json`` or
shown in an output cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MASK = "***"
"""What ``kubectl diff`` shows for a Secret's values (kubectl's pkg/cmd/diff Masker)."""
SECRET_VALUE_ROOTS = ("data", "stringData")


@dataclass(frozen=True)
class FieldChange:
    """One changed path of an object: its value before and after (JSON values; ``None`` when
    the path is absent on that side; a Secret's values are ``***``)."""

    path: str
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ApplyRecord:
    phase: str
    file: str
    document: int | None
    kind: str
    api_version: str
    namespace: str | None
    name: str
    outcome: str
    """``created``, ``changed``, ``unchanged``, ``pruned`` or ``skipped`` (see ``note``)."""
    diff: tuple[str, ...] = ()
    """The paths (``.spec.replicas``) that differ between the live object and the applied one,
    compared without managedFields, resourceVersion, generation, timestamps and status."""
    resource_version: str | None = None
    """The stored object's resourceVersion (a real apply only)."""
    dry_run: bool = True
    note: str = ""
    changes: tuple[FieldChange, ...] = ()
    """``diff`` with the values before and after (a Secret's masked)."""

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if k == "changes":
                out[k] = [c.as_dict() for c in v]
            else:
                out[k] = list(v) if isinstance(v, tuple) else v
        return out


def masked(kind: str, path: str, value: Any) -> Any:
    """``value`` as a record may hold it: a Secret's ``data``/``stringData`` values (and those
    whole maps) become ``***``, everything else is kept (pure)."""
    if kind != "Secret" or value is None:
        return value
    root = path.lstrip(".").split(".", 1)[0].split("[", 1)[0]
    if root not in SECRET_VALUE_ROOTS:
        return value
    if isinstance(value, dict):
        return {k: MASK for k in value}
    return MASK


__all__ = ["MASK", "ApplyRecord", "FieldChange", "masked"]
