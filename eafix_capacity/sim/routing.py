"""Parsing a Kubernetes REST path and its query into a typed request.

``/api/v1/namespaces/ns/pods/name/status`` -> group "", version v1, namespace, plural, name,
subresource. Query parameters the real server knows are checked for syntax (a bad
``limit`` or ``dryRun`` value is a 400); unknown parameters are ignored, as a real API
server ignores them.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from eafix_capacity.sim.apierror import ApiError, bad_request

_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_PROPAGATION = ("Orphan", "Background", "Foreground")


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Query:
    watch: bool = False
    resource_version: str = ""
    timeout_seconds: int | None = None
    allow_bookmarks: bool = False
    send_initial_events: bool = False
    label_selector: str | None = None
    field_selector: str | None = None
    limit: int = 0
    continue_token: str = ""
    dry_run: bool = False
    field_manager: str | None = None
    field_validation: str = ""
    force: bool = False
    propagation: str = "Background"
    include_object: str = "Metadata"
    grace_period_seconds: int | None = None
    """DeleteOptions.gracePeriodSeconds given as a query parameter (negative allowed: see Store.delete)."""


def parse_path(path: str) -> ResourcePath | None:
    """A resource path, or None if ``path`` is not under /api/v1 or /apis/<group>/<version>."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3 or any(not p for p in rest):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return ResourcePath(group, version, namespace, plural, name, sub)


def _bool(values: dict[str, list[str]], key: str) -> bool:
    raw = values.get(key, [""])[-1].lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise bad_request(f'{key}: invalid value "{raw}": must be true or false')


def _int(values: dict[str, list[str]], key: str) -> int | None:
    if key not in values:
        return None
    raw = values[key][-1]
    try:
        number = int(raw)
    except ValueError:
        raise bad_request(f'{key}: invalid value "{raw}": must be an integer') from None
    if number < 0:
        raise bad_request(f'{key}: invalid value "{raw}": must be greater than or equal to 0')
    return number


def parse_query(text: str) -> Query:
    try:
        values = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except ValueError as e:
        raise bad_request(f"invalid query string: {e}") from e
    dry = values.get("dryRun", [])
    if any(v != "All" for v in dry):
        raise bad_request(f'dryRun: Unsupported value: "{dry[-1]}": supported values: "All"')
    propagation = values.get("propagationPolicy", ["Background"])[-1] or "Background"
    if propagation not in _PROPAGATION:
        raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}": supported values: '
                          f'{", ".join(repr(p) for p in _PROPAGATION)}')
    if _bool(values, "orphanDependents") and "propagationPolicy" not in values:
        propagation = "Orphan"
    validation = values.get("fieldValidation", [""])[-1]
    if validation and validation not in ("Strict", "Warn", "Ignore"):
        raise bad_request(f'fieldValidation: Unsupported value: "{validation}": supported values: '
                          '"Ignore", "Warn", "Strict"')
    return Query(
        watch=_bool(values, "watch"),
        resource_version=values.get("resourceVersion", [""])[-1],
        timeout_seconds=_int(values, "timeoutSeconds"),
        allow_bookmarks=_bool(values, "allowWatchBookmarks"),
        send_initial_events=_bool(values, "sendInitialEvents"),
        label_selector=values.get("labelSelector", [None])[-1],
        field_selector=values.get("fieldSelector", [None])[-1],
        limit=_int(values, "limit") or 0,
        continue_token=values.get("continue", [""])[-1],
        dry_run=bool(dry),
        field_manager=values.get("fieldManager", [None])[-1],
        field_validation=validation,
        force=_bool(values, "force"),
        propagation=propagation,
        include_object=values.get("includeObject", ["Metadata"])[-1] or "Metadata",
        grace_period_seconds=_grace(values),
    )


def _grace(values: dict[str, list[str]]) -> int | None:
    if "gracePeriodSeconds" not in values:
        return None
    raw = values["gracePeriodSeconds"][-1]
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'gracePeriodSeconds: invalid value "{raw}": must be an integer') from None
