"""Go durations on the command line (``300s``, ``5m``, ``1h30m``), as kubectl's flags read them.

kubectl's ``--timeout`` and ``--request-timeout`` take ``time.ParseDuration``'s syntax; the
kit's ``--timeout``, ``--interval`` and ``--duration`` take the same, so one string means the
same to both tools.
"""
from __future__ import annotations

import re

from .errors import InputError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, *, flag: str = "--timeout") -> float:
    """Seconds in a Go duration (``300s``, ``5m``, ``1h30m``, ``0``), as kubectl's ``--timeout``
    reads it with ``time.ParseDuration`` (pure). A number without a unit is refused, as Go does."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        m = _DURATION_PART.match(value, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not value or pos != len(value):
        raise InputError(f"{flag}: invalid duration {text!r}: give a number with a unit (ns, us, ms, s, m, h), "
                         "e.g. 300s, 5m or 1h30m")
    return total
