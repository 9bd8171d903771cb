"""Small readers of Kubernetes objects as plain dicts, shared by the manifest checks,
the importer, the sim cluster and the sign-off: nested lookups, leaf walks, label selectors
and IntOrString values scaled against a total."""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

from .errors import InputError


def get_in(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...``, or None where a level is missing or not a mapping."""
    for k in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(k)
    return node


def walk_leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar in ``node`` with its path (``spec.containers[0].image``)."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from walk_leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_leaves(v, f"{path}[{i}]")
    else:
        yield path, node


def selector_matches(selector: Mapping | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions) against labels, as
    LabelSelectorAsSelector reads it: None matches nothing, ``{}`` matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def scaled_value(value: object, total: int, *, round_up: bool, field: str = "value") -> int:
    """An IntOrString against ``total``: ``3`` -> 3, ``"25%"`` of 10 -> 3 (round up) or 2 (down), as
    apimachinery's intstr.GetScaledValueFromIntOrPercent; None is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InputError("must be an integer or a percentage", field=field, value=value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError as e:
            raise InputError("not a percentage", field=field, value=value, valid='e.g. "25%"') from e
        return math.ceil(pct * total / 100) if round_up else (pct * total) // 100
    raise InputError("must be an integer or a percentage", field=field, value=value, valid='e.g. 1 or "25%"')
