"""Secret templates, and the detector that keeps real secrets out of written manifests.

The kit never knows a secret. It renders a ``Secret`` whose values are ``REPLACE_ME``
placeholders (for a first ``kubectl apply`` on a test cluster) and the recommended
alternative, an External Secrets Operator ``SecretStore`` plus ``ExternalSecret`` that
fill the same Secret from a vault. Before anything is written, every string of every
object goes through :func:`find_literal_secrets`; a hit stops the write.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..kobject import walk_leaves

SECRET_NAME = "trading-secrets"
SECRET_STORE_NAME = "eafix-vault"
PLACEHOLDER = "REPLACE_ME"

# key in the Secret -> (path in the vault, what it is)
SECRET_KEYS: dict[str, tuple[str, str]] = {
    "REDIS_PASSWORD": ("eafix-trading/redis", "password"),
    "POSTGRES_USER": ("eafix-trading/postgres", "username"),
    "POSTGRES_PASSWORD": ("eafix-trading/postgres", "password"),
    "GRAFANA_ADMIN_PASSWORD": ("eafix-trading/grafana", "admin-password"),
    "BROKER_API_KEY": ("eafix-trading/broker", "api-key"),
}

# Values that are clearly not secrets: placeholders and references to variables.
_PLACEHOLDER = re.compile(
    r"^(?:|REPLACE[_-]?ME[A-Za-z0-9_.:-]*|<[^<>]*>|CHANGE[_-]?ME[A-Za-z0-9_.:-]*"
    r"|\$\([A-Za-z_][A-Za-z0-9_]*\)|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)$"
)
_AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_TOKEN_PREFIX = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
                           r"|sk_live_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20,})")
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://([^/\s:@]*):([^@\s/]+)@", re.IGNORECASE)
_SECRETISH_NAME = re.compile(r"(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)",
                             re.IGNORECASE)
_DIGEST = re.compile(r"sha(?:256|512):[0-9a-f]+")
_WORD = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


@dataclass(frozen=True)
class SecretFinding:
    """A value that looks like a real secret: where it is and why it was flagged."""

    field: str
    reason: str


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(word: str) -> bool:
    """A long token mixing upper case, lower case and digits with high entropy (an API
    key, a base64 blob), or a long hex string that is not a content digest."""
    if len(word) < 24 or is_placeholder(word):
        return False
    if re.fullmatch(r"[0-9a-f]{32,}", word):
        return True
    classes = sum(bool(re.search(p, word)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes == 3 and _entropy(word) >= 4.0


def string_findings(value: str, *, field: str) -> list[SecretFinding]:
    """Reasons a string looks like it carries a real secret."""
    out = []
    if _PRIVATE_KEY.search(value):
        out.append(SecretFinding(field, "a PEM private key"))
    if _AWS_KEY.search(value):
        out.append(SecretFinding(field, "an AWS access key id"))
    if _TOKEN_PREFIX.search(value):
        out.append(SecretFinding(field, "an API token"))
    for m in _URL_PASSWORD.finditer(value):
        if not is_placeholder(m.group(2)):
            out.append(SecretFinding(field, "a password inside a URL"))
            break
    scrubbed = _DIGEST.sub("", value)
    if not out and any(_looks_random(w) for w in _WORD.findall(scrubbed)):
        out.append(SecretFinding(field, "a high-entropy token (key or base64 blob)"))
    return out


def _secret_findings(obj: dict) -> list[SecretFinding]:
    out = []
    for key in ("data", "stringData"):
        values = obj.get(key) or {}
        if not isinstance(values, dict):
            continue
        for k, v in values.items():
            text = str(v) if v is not None else ""
            if key == "data":
                try:
                    text = base64.b64decode(text, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    out.append(SecretFinding(f"{key}.{k}", "a literal Secret value"))
                    continue
            if not is_placeholder(text):
                out.append(SecretFinding(f"{key}.{k}", "a literal Secret value, not a placeholder"))
    return out


def _env_findings(obj: dict) -> list[SecretFinding]:
    """``env`` entries whose name says secret but whose value is written literally."""
    out = []
    for path, value in walk_leaves(obj, ""):
        if not path.endswith(".value") or not isinstance(value, str) or is_placeholder(value):
            continue
        parent = path[: -len(".value")]
        name = _lookup(obj, parent + ".name")
        if isinstance(name, str) and _SECRETISH_NAME.search(name):
            out.append(SecretFinding(path, f"a literal value for {name} (use secretKeyRef)"))
    return out


def _lookup(obj: Any, path: str) -> Any:
    node = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(node, list) or idx >= len(node):
                return None
            node = node[idx]
        else:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
    return node


def find_literal_secrets(obj: dict) -> list[SecretFinding]:
    """Every value of a manifest object that looks like a real secret."""
    out: list[SecretFinding] = []
    if obj.get("kind") == "Secret":
        out.extend(_secret_findings(obj))
    out.extend(_env_findings(obj))
    for path, value in walk_leaves(obj, ""):
        if isinstance(value, str) and not (obj.get("kind") == "Secret" and path.split(".")[0] in ("data", "stringData")):
            out.extend(string_findings(value, field=path))
    return out


def secret_template(namespace: str, labels: dict[str, str]) -> dict:
    """The Secret the workloads read, with placeholders only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {
                "eafix.io/template": "placeholders only: fill from your secret manager, "
                                     "or apply secrets/external-secrets/external-secret-store.yml instead",
            },
        },
        "type": "Opaque",
        "stringData": {k: PLACEHOLDER for k in SECRET_KEYS},
    }


def external_secret_objects(namespace: str, labels: dict[str, str]) -> list[dict]:
    """The External Secrets Operator alternative: a vault SecretStore and an ExternalSecret."""
    store = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "SecretStore",
        "metadata": {"name": SECRET_STORE_NAME, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "provider": {
                "vault": {
                    "server": "https://vault.example.com",
                    "path": "secret",
                    "version": "v2",
                    "auth": {
                        "kubernetes": {
                            "mountPath": "kubernetes",
                            "role": namespace,
                        }
                    },
                }
            }
        },
    }
    external = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": SECRET_STORE_NAME, "kind": "SecretStore"},
            "target": {"name": SECRET_NAME, "creationPolicy": "Owner"},
            "data": [
                {"secretKey": k, "remoteRef": {"key": path, "property": prop}}
                for k, (path, prop) in SECRET_KEYS.items()
            ],
        },
    }
    return [store, external]
