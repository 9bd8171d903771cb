"""One error hierarchy for the whole kit.

Every failure a user can cause (bad data files, bad flags, bad manifests) is an
``InputError``: a ``ValueError`` that names where the bad value came from (file, object,
field), the value itself and what would have been valid, so the CLI can print it as a
single line. Failures of the world outside (a cluster, a file system) are other
``EafixCapacityError`` subclasses. Modelled on kopf's split between permanent and
temporary errors: callers catch the root and decide by subclass.

A message stays one short line whatever the input: the quoted value is shown through a
bounded ``repr`` (a 10 MB string or a billion-laughs structure is never expanded), each
part is cut to ``MAX_PART_CHARS`` and the whole to ``MAX_MESSAGE_CHARS``, with ``...``
where something was cut, and line breaks become spaces.
"""
from __future__ import annotations

import reprlib

MAX_VALUE_CHARS = 200
"""Longest repr of the quoted value before it is cut."""
MAX_PART_CHARS = 400
"""Longest file, object, field, problem or valid text before it is cut."""
MAX_MESSAGE_CHARS = 1200
"""Longest composed message."""
ELLIPSIS = "..."

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = MAX_VALUE_CHARS
_repr.maxother = MAX_VALUE_CHARS
_repr.maxlong = 60
for _name in ("maxtuple", "maxlist", "maxarray", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_repr, _name, 8)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (cut ones end in ``...``)."""
    if len(text) > limit + 4 * MAX_MESSAGE_CHARS:
        text = text[: limit + 4 * MAX_MESSAGE_CHARS]  # never scan megabytes for line breaks
    text = " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def short_repr(value: object) -> str:
    """A ``repr`` of at most ``MAX_VALUE_CHARS`` characters, computed without expanding
    large or deeply nested values."""
    if isinstance(value, str):
        head = value[: MAX_VALUE_CHARS + 1]
        text = repr(head) if len(value) <= MAX_VALUE_CHARS else repr(head[:MAX_VALUE_CHARS]) + ELLIPSIS
    else:
        try:
            text = _repr.repr(value)
        except Exception:  # a value whose own __repr__ fails still gets a message
            text = f"<{type(value).__name__}>"
    return clip(text, MAX_VALUE_CHARS + len(ELLIPSIS) + 2)


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
        where = [clip(str(p), MAX_PART_CHARS) for p in (self.file, self.obj, self.field) if p]
        problem = clip(str(self.problem), MAX_PART_CHARS)
        text = ": ".join(where + [problem]) if where else problem
        if self.value is not None:
            text += f" {short_repr(self.value)}"
        if self.valid:
            text += f"; {clip(str(self.valid), MAX_PART_CHARS)}"
        return clip(text, MAX_MESSAGE_CHARS)


class QuantityError(InputError):
    """Text that is not a Kubernetes quantity."""


class ManifestError(InputError):
    """A manifest that cannot be read, parsed or accepted."""


class OutputError(EafixCapacityError):
    """An output (directory, file) that cannot be written; nothing was changed."""


class ClusterError(EafixCapacityError):
    """A cluster (real or sim) refused or failed a request."""
