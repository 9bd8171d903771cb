"""Why an apply stopped, named against the file and object each refusal came from.

The API server answers a refused server-side apply with a ``Status``: 409 with one cause
per conflicting field (``reason: FieldManagerConflict``, ``field: .spec.replicas``,
``message: conflict with "kubectl" with subresource "scale" using apps/v1``, as
apimachinery's ``merge.Conflicts``), 403 for a namespace being deleted or a quota it would
exceed, 422 for an invalid object, and discovery has no mapping for a kind whose CRD is
missing. :class:`ApplyFailed` and its subclasses carry every failure of the phase that
failed and the records of what was sent before, so the caller can say both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from eafix_capacity.errors import MAX_MESSAGE_CHARS, ClusterError, clip

_MANAGER = re.compile(r'conflict with "(?P<manager>[^"]*)"(?: with subresource "(?P<sub>[^"]*)")?')


@dataclass(frozen=True)
class FieldConflict:
    field: str
    manager: str
    subresource: str = ""

    def __str__(self) -> str:
        sub = f' (subresource "{self.subresource}")' if self.subresource else ""
        return f'{self.field} owned by "{self.manager}"{sub}'


def field_conflicts(status: Any) -> list[FieldConflict]:
    """The conflicts of a 409 ``Status`` body (a dict), one per cause (pure)."""
    details = status.get("details") if isinstance(status, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    out = []
    for cause in causes or []:
        if not isinstance(cause, dict) or cause.get("reason") != "FieldManagerConflict":
            continue
        m = _MANAGER.search(str(cause.get("message") or ""))
        out.append(FieldConflict(str(cause.get("field") or ""), m.group("manager") if m else "",
                                 (m.group("sub") or "") if m else ""))
    return out


@dataclass(frozen=True)
class ObjectFailure:
    """One object the server (or discovery) refused."""

    category: str
    """``conflict``, ``missing-kind``, ``namespace-terminating``, ``quota``, ``invalid`` or ``refused``."""
    source: str
    ref: str
    status: int | None
    message: str
    conflicts: tuple[FieldConflict, ...] = field(default_factory=tuple)

    def line(self) -> str:
        if self.conflicts:
            said = "conflicts: " + "; ".join(str(c) for c in self.conflicts)
        else:
            said = self.message
        code = f"{self.status}: " if self.status else ""
        return f"{self.source}: {self.ref}: {code}{said}"


class ApplyFailed(ClusterError):
    """A phase of an apply was refused; nothing after it was sent. ``failures`` are the refused
    objects of that phase, ``records`` what was applied (or dry-run) before and in it."""

    def __init__(self, phase: str, failures: list[ObjectFailure], records: list[Any], *, context: str = "",
                 dry_run: bool = False) -> None:
        self.phase, self.failures, self.records = phase, failures, records
        self.context, self.dry_run = context, dry_run
        where = f'context "{context}": ' if context else ""
        mode = "dry run" if dry_run else "apply"
        text = (f"{where}{mode} stopped in phase {phase} ({len(failures)} refused, {len(records)} sent before; "
                f"nothing after this phase was sent): " + " | ".join(f.line() for f in failures))
        super().__init__(clip(text, MAX_MESSAGE_CHARS * 4))

    def __reduce__(self) -> tuple:  # keyword-only arguments: rebuilt from the parts, not from args
        return (_rebuild, (type(self), self.phase, self.failures, self.records, self.context, self.dry_run))


def _rebuild(cls: type[ApplyFailed], phase: str, failures: list[ObjectFailure], records: list[Any], context: str,
             dry_run: bool) -> ApplyFailed:
    return cls(phase, failures, records, context=context, dry_run=dry_run)


class ApplyConflict(ApplyFailed):
    """409: fields another field manager owns; ``force_conflicts=True`` takes them over."""

    @property
    def conflicts(self) -> list[FieldConflict]:
        return [c for f in self.failures for c in f.conflicts]


class MissingKind(ApplyFailed):
    """The cluster serves no such kind: its CRD is not installed."""


class NamespaceTerminating(ApplyFailed):
    """403: the object's namespace is being deleted."""


class QuotaExceeded(ApplyFailed):
    """403: a ResourceQuota of the namespace refuses the object."""


class InvalidObject(ApplyFailed):
    """422: the server's validation refused the object."""


CATEGORY_CLASSES: dict[str, type[ApplyFailed]] = {
    "conflict": ApplyConflict, "missing-kind": MissingKind, "namespace-terminating": NamespaceTerminating,
    "quota": QuotaExceeded, "invalid": InvalidObject, "refused": ApplyFailed,
}
