"""One error hierarchy for the whole kit.

Every failure a user can cause (bad data files, bad flags, bad manifests) is an
``InputError``: a ``ValueError`` that names where the bad value came from (file, object,
field), the value itself and what would have been valid, so the CLI can print it as a
single line. Failures of the world outside (a cluster, a file system) are other
``EafixCapacityError`` subclasses. Modelled on kopf's split between permanent and
temporary errors: callers catch the root and decide by subclass.
"""
from __future__ import annotations


class EafixCapacityError(Exception):
    """Root of every error the kit raises on purpose."""


class InputError(EafixCapacityError, ValueError):
    """Bad input: a data file, a flag, a parameter or a manifest the kit cannot accept.

    The message is built from its parts so every site reports the same shape:
    ``<file>: <object>: <field>: <problem> <value>; <valid>``.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        obj: str | None = None,
        field: str | None = None,
        value: object = None,
        valid: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.obj = obj
        self.field = field
        self.value = value
        self.valid = valid
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = [str(p) for p in (self.file, self.obj, self.field) if p]
        text = ": ".join(where + [self.problem]) if where else self.problem
        if self.value is not None:
            text += f" {self.value!r}"
        if self.valid:
            text += f"; {self.valid}"
        return text


class QuantityError(InputError):
    """Text that is not a Kubernetes quantity."""


class ManifestError(InputError):
    """A manifest that cannot be read, parsed or accepted."""


class OutputError(EafixCapacityError):
    """An output (directory, file) that cannot be written; nothing was changed."""


class ClusterError(EafixCapacityError):
    """A cluster (real or sim) refused or failed a request."""
