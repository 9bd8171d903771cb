"""The check a notebook's parameters get before anything runs: known names, the declared types.

papermill injects whatever a caller passes (a YAML file, ``-p name value``), so a misspelt
name or ``nodes = "3"`` would otherwise surface as a traceback several cells later. Each
notebook's ``NotebookParams`` derives from :class:`NotebookParameters`, whose ``from_notebook``
calls :func:`check_names_and_types` first, then the notebook's own checks of the values.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, TypeVar

from .errors import InputError

WHERE = "notebook parameters"
P = TypeVar("P", bound="NotebookParameters")


class NotebookParameters:
    """The base of each notebook's frozen ``NotebookParams`` dataclass: :meth:`from_notebook`
    checks the names and types, builds the parameters, then runs the notebook's own ``_check``."""

    @classmethod
    def from_notebook(cls: type[P], **values: Any) -> P:
        """Check the notebook's parameters; a bad one raises an ``InputError`` whose one line
        names the parameter, the value and what is valid."""
        check_names_and_types(cls, values)
        params = cls(**values)
        params._check()
        return params

    def _check(self) -> None:
        """The notebook's checks of the values (none here)."""


def check_names_and_types(cls: type, values: Mapping[str, Any], *, where: str = WHERE) -> None:
    """Refuse a name that is not a field of the dataclass ``cls``, and a value that is not a
    ``bool`` or ``str`` where the field is declared so (one-line ``InputError`` s)."""
    known = [f.name for f in fields(cls)]
    for name in values:
        if name not in known:
            raise InputError("unknown parameter", file=where, field=name, valid="one of: " + ", ".join(known))
    for f in fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        want = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if want == "bool" and not isinstance(v, bool):
            raise InputError("not True or False", file=where, field=f.name, value=v, valid="True or False")
        if want == "str" and not isinstance(v, str):
            raise InputError("not a string", file=where, field=f.name, value=v,
                             valid=f'a string such as "{f.default}"' if f.default else 'a string ("" for none)')
