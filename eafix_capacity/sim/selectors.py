"""Label and field selectors, parsed once and matched against stored objects.

The API server accepts ``labelSelector`` in the full set-based grammar (``a=b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) and ``fieldSelector`` as ``path=value``
terms over a per-kind list of supported fields; anything else is a 400 BadRequest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from eafix_capacity.sim.apierror import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        num = _int_or_none(value)
        bound = _int_or_none(self.values[0])
        if num is None or bound is None:
            return False
        return num > bound if self.op == ">" else num < bound


def _int_or_none(text: object) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(key: str, text: str) -> str:
    if not _KEY_RE.match(key) or len(key) > 317:
        raise bad_request(f"unable to parse requirement: invalid label key \"{key}\" in selector \"{text}\"")
    return key


def _check_value(value: str, text: str) -> str:
    if not _VALUE_RE.match(value) or len(value) > 63:
        raise bad_request(f"unable to parse requirement: invalid label value: \"{value}\" in selector \"{text}\"")
    return value


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text or not text.strip():
        return ()
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        term = raw.strip()
        if not term:
            raise bad_request(f"unable to parse requirement: found '', expected: identifier in selector \"{text}\"")
        m = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", term)
        if m:
            key = _check_key(m.group(1), text)
            values = tuple(_check_value(v.strip(), text) for v in m.group(3).split(","))
            reqs.append(Requirement(key, m.group(2), values))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*([^=!<>\s]*)$", term)
        if m:
            op = "=" if m.group(2) == "==" else m.group(2)
            reqs.append(Requirement(_check_key(m.group(1), text), op, (_check_value(m.group(3), text),)))
            continue
        if term.startswith("!"):
            reqs.append(Requirement(_check_key(term[1:].strip(), text), "!"))
            continue
        reqs.append(Requirement(_check_key(term, text), "exists"))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], obj: dict) -> bool:
    if not reqs:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Node": ("spec.unschedulable",),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "ReplicationController": ("status.replicas",),
    "Job": ("status.successful",),
}


@dataclass(frozen=True)
class FieldTerm:
    path: str
    negate: bool
    value: str


def parse_field_selector(text: str | None, kind: str) -> tuple[FieldTerm, ...]:
    if not text or not text.strip():
        return ()
    allowed = _COMMON_FIELDS + _KIND_FIELDS.get(kind, ())
    terms: list[FieldTerm] = []
    for raw in text.split(","):
        if raw == "":
            continue  # fields.ParseSelector skips empty terms: "a=b," and "a=b,,c=d" are valid
        term = raw.strip()
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path = m.group(1).strip()
        if path not in allowed:
            raise bad_request(f'"{path}" is not a known field selector: only "{", ".join(allowed)}"')
        terms.append(FieldTerm(path, m.group(2) == "!=", m.group(3).strip()))
    return tuple(terms)


def _field_value(obj: dict, path: str) -> str:
    if path == "source":
        return str(((obj.get("source") or {}).get("component")) or "")
    cur: object = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return "false" if path in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(terms: tuple[FieldTerm, ...], obj: dict) -> bool:
    for t in terms:
        equal = _field_value(obj, t.path) == t.value
        if equal == t.negate:
            return False
    return True


def matcher(label_selector: str | None, field_selector: str | None, kind: str) -> Callable[[dict], bool]:
    """One predicate for both selectors; raises ApiError 400 on a bad selector."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, kind)
    if not labels and not fields:
        return lambda obj: True
    return lambda obj: labels_match(labels, obj) and fields_match(fields, obj)
