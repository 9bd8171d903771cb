"""Kubernetes label keys and values as the API server validates them, for the kit's own
inputs (zones, node pools' labels, taints and a catalogue's node selectors): a value the
kit would write into an object must be one a real API server accepts, refused here in one
line rather than by kubectl later.

Mirrors k8s.io/apimachinery/pkg/util/validation/validation.go: IsQualifiedName for keys
(an optional DNS-1123 subdomain prefix of at most 253 characters and ``/``, then a name of
at most 63 characters matching qualifiedNameFmt) and IsValidLabelValue for values (at
most 63 characters, empty or qualifiedNameFmt). Pure.
"""
from __future__ import annotations

import re
from typing import Any, Callable

LABEL_VALUE_MAX_LENGTH = 63
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_KEY_RULE = ("a label key is an optional DNS subdomain prefix and '/', then a name of at most 63 characters, "
                  "alphanumeric at both ends with '-', '_' or '.' between (e.g. eafix.io/pool)")
LABEL_VALUE_RULE = ("a label value is at most 63 characters, empty or alphanumeric at both ends with '-', '_' or "
                    "'.' between (Kubernetes IsValidLabelValue)")


def is_valid_label_value(value: str) -> bool:
    """Whether Kubernetes accepts ``value`` as a label value."""
    return len(value) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE.fullmatch(value) is not None


def is_valid_label_key(key: str) -> bool:
    """Whether Kubernetes accepts ``key`` as a label key (or a taint's key)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or _DNS_SUBDOMAIN.fullmatch(prefix) is None):
        return False
    return 0 < len(name) <= LABEL_VALUE_MAX_LENGTH and _QUALIFIED_NAME.fullmatch(name) is not None


Fail = Callable[[str, str, Any, str], Exception]
"""Builds the caller's error from (field, problem, value, what is valid)."""


def label_map(raw: Any, *, field: str, fail: Fail) -> dict[str, str]:
    """A mapping of label keys to label values, each as the API server accepts it (``{}`` for
    None): a pool's labels, a service's nodeSelector. ``fail`` builds the one-line error, which
    names ``field`` (or ``field.KEY`` for a bad value)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail(field, "not a mapping", raw, "LABEL_KEY: VALUE entries, e.g. {eafix.io/pool: memory}")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not is_valid_label_key(k):
            raise fail(field, "invalid label key", k, LABEL_KEY_RULE)
        if not isinstance(v, str) or not is_valid_label_value(v):
            raise fail(f"{field}.{k}", "invalid label value", v, LABEL_VALUE_RULE + ", quoted as a string")
        out[k] = v
    return out
