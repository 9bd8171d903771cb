"""The error every sim API operation raises, carrying the HTTP code and a metav1.Status body.

It lives in its own module so the registry, the store, the patchers and the controllers
can all raise it without importing each other; ``store.ApiError`` re-exports it.
"""
from __future__ import annotations

from eafix_capacity.errors import ClusterError


class ApiError(ClusterError):
    """A request the sim API refuses, answered as a Kubernetes ``Status`` with ``code``.

    ``ApiError(404, ...)`` is a :class:`NotFoundError`, a 409 a :class:`ConflictError`
    (:class:`AlreadyExistsError` for reason ``AlreadyExists``), a 403 a :class:`ForbiddenError`,
    so a caller catches the failure it handles by class (as kopf's ``APINotFoundError``).
    """

    def __new__(cls, code: int, reason: str = "", message: str = "", *, details: dict | None = None) -> "ApiError":
        if cls is ApiError:
            cls = AlreadyExistsError if (code, reason) == (409, "AlreadyExists") else _BY_CODE.get(code, ApiError)
        return super().__new__(cls)

    def __init__(self, code: int, reason: str, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple:
        return type(self), (self.code, self.reason, self.message), {"details": self.details}

    def status(self) -> dict:
        """The metav1.Status body, its keys in the Go struct's order (kind, apiVersion, metadata, status,
        message, reason, details, code), and empty details fields left out as ``omitempty`` leaves them:
        a real server answers ``"details":{"kind":"pods"}`` for a core-group resource."""
        body: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = {k: v for k, v in self.details.items() if v not in ("", None, [], {})}
        body["code"] = self.code
        return body


class StaleError(ApiError):
    """The object a request was built from is gone or has changed: a controller's lost race
    with another writer, retried on its next pass."""


class NotFoundError(StaleError):
    """404 NotFound."""


class ConflictError(StaleError):
    """409: a stale ``resourceVersion`` (Conflict) or a name already taken."""


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists."""


class ForbiddenError(ApiError):
    """403 Forbidden: refused by admission (quota, LimitRange, a missing ServiceAccount) or RBAC."""


_BY_CODE: dict[int, type[ApiError]] = {404: NotFoundError, 409: ConflictError, 403: ForbiddenError}


def not_found(rt_plural: str, group: str, name: str) -> ApiError:
    qualified = f"{rt_plural}.{group}" if group else rt_plural
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found',
                    details={"name": name, "group": group, "kind": rt_plural})


def already_exists(rt_plural: str, group: str, name: str) -> ApiError:
    qualified = f"{rt_plural}.{group}" if group else rt_plural
    return ApiError(409, "AlreadyExists", f'{qualified} "{name}" already exists',
                    details={"name": name, "group": group, "kind": rt_plural})


def conflict(rt_plural: str, group: str, name: str, why: str) -> ApiError:
    qualified = f"{rt_plural}.{group}" if group else rt_plural
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
                    details={"name": name, "group": group, "kind": rt_plural})


def invalid(kind: str, group: str, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid; ``causes`` are ``{"reason": "FieldValueInvalid", "message": ..., "field": ...}``."""
    qualified = f"{kind}.{group}" if group else kind
    # utilerrors.Aggregate's text: distinct messages joined, in brackets when more than one
    texts = list(dict.fromkeys(f'{c.get("field", "")}: {c.get("message", "")}'.lstrip(": ") for c in causes))
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}',
                    details={"name": name, "group": group, "kind": kind, "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)
