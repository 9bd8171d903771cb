"""The sim's audit log: kube-apiserver's ``--audit-log-path`` at the ``Metadata`` level.

A sign-off reads a live cluster to build its twin and must prove that it wrote nothing. On a
real cluster the proof is the API server's audit log; the sim keeps the same log so a test can
read it: one JSON line per request, an ``audit.k8s.io/v1`` ``Event`` (the fields of
staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go that the Metadata level carries), with
the verb as the request-info resolver names it (``request.RequestInfoFactory``: GET of a
collection is ``list``, ``?watch=true`` ``watch``, DELETE of a collection ``deletecollection``),
the authenticated user (``system:anonymous`` when the sim does not authenticate) and the
``objectRef`` of a resource request, its times stamped by the sim clock (as everything the sim
stamps: a frozen clock gives every event the same time). Each event is appended to the file the user names as the
request completes; nothing is kept in memory. A watch, a long-running request, is logged at
``ResponseStarted`` when its stream starts and at ``ResponseComplete`` when it ends, as
kube-apiserver's audit filter logs it.
"""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Mapping

from eafix_capacity.errors import OutputError
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.auth import ANONYMOUS, UNAUTHENTICATED, UserInfo, request_attributes

if TYPE_CHECKING:
    from eafix_capacity.sim.api import Response
    from eafix_capacity.sim.auth import Auth

API_VERSION = "audit.k8s.io/v1"
LEVEL = "Metadata"
READ_VERBS = frozenset({"get", "list", "watch"})
"""The verbs that change nothing (authorizer.AttributesRecord.IsReadOnly: get, list, watch)."""


def micro_time(t: datetime) -> str:
    """metav1.MicroTime's JSON form: RFC 3339 with microseconds, in UTC."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_uri(path: str, query_text: str) -> str:
    return f"{path}?{query_text}" if query_text else path


def user_json(user: UserInfo | None) -> dict[str, Any]:
    """authentication/v1 UserInfo as the event carries it; ``{}`` for a request that failed to
    authenticate (WithFailedAuthenticationAudit logs no user)."""
    return user.as_json() if user is not None else {}


def response_status(status: int, body: bytes) -> dict[str, Any]:
    """The event's ``responseStatus``: the code alone for a success; for a refusal the ``Status``
    the server answered (its status, message, reason, details and code), as the audit filter
    copies it from the response object."""
    out: dict[str, Any] = {"metadata": {}, "code": status}
    if status < 300 or not body:
        return out
    try:
        said = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return out
    if isinstance(said, dict) and said.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if said.get(key) not in (None, "", {}):
                out[key] = said[key]
    return out


def event(*, method: str, path: str, query_text: str, headers: Mapping[str, str], status: int, body: bytes,
          user: UserInfo | None, impersonated: UserInfo | None, received: datetime, stage_time: datetime,
          stage: str = "ResponseComplete", audit_id: str | None = None) -> dict[str, Any]:
    """One ``audit.k8s.io/v1`` Event at the Metadata level (pure)."""
    attrs = request_attributes(method, path, query_text, user or UserInfo(""))
    ev: dict[str, Any] = {"kind": "Event", "apiVersion": API_VERSION, "level": LEVEL,
                          "auditID": audit_id or str(uuid.uuid4()), "stage": stage,
                          "requestURI": request_uri(path, query_text), "verb": attrs.verb, "user": user_json(user)}
    if impersonated is not None:
        ev["impersonatedUser"] = user_json(impersonated)
    ev["sourceIPs"] = ["127.0.0.1"]  # the sim listens on the loopback only
    if headers.get("user-agent"):
        ev["userAgent"] = headers["user-agent"]
    if attrs.resource_request:
        ref = {"resource": attrs.resource, "namespace": attrs.namespace, "name": attrs.name,
               "apiGroup": attrs.api_group, "apiVersion": attrs.api_version, "subresource": attrs.subresource}
        ev["objectRef"] = {k: v for k, v in ref.items() if v}  # omitempty, as ObjectReference's fields
    ev["responseStatus"] = response_status(status, body)
    ev["requestReceivedTimestamp"] = micro_time(received)
    ev["stageTimestamp"] = micro_time(stage_time)
    return ev


class AuditLog:
    """Appends one line per request to ``path`` (opened, or refused, at construction)."""

    def __init__(self, path: str | Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._now = now or (lambda: datetime.now(timezone.utc))
        for parent in self.path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f"cannot write the audit log to {self.path}: parent {parent} is not a directory")
                break
        try:
            self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        except OSError as e:
            raise OutputError(f"cannot write the audit log to {self.path}: {e.strerror or e}") from e
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now()

    def write(self, ev: Mapping[str, Any]) -> None:
        line = json.dumps(ev, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                return
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def record(self, auth: Auth, *, method: str, path: str, query_text: str, headers: Mapping[str, str],
               response: Response, user: UserInfo | None, received: datetime) -> Response:
        """Log ``response`` to the request; return it (a watch's stream wrapped so its end is logged)."""
        requestor, impersonated = self._users(auth, headers, path, user)
        common: dict[str, Any] = dict(method=method, path=path, query_text=query_text, headers=headers, user=requestor,
                      impersonated=impersonated, received=received)
        if response.stream is None:
            self.write(event(status=response.status, body=response.body, stage_time=self.now(), **common))
            return response
        audit_id = str(uuid.uuid4())
        self.write(event(status=response.status, body=b"", stage_time=self.now(), stage="ResponseStarted",
                         audit_id=audit_id, **common))
        response.stream = self._logged(response.stream, response.status, audit_id, common)
        return response

    def _logged(self, stream: Iterator[bytes], status: int, audit_id: str,
                common: dict[str, Any]) -> Iterator[bytes]:
        try:
            yield from stream
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            self.write(event(status=status, body=b"", stage_time=self.now(), audit_id=audit_id, **common))

    @staticmethod
    def _users(auth: Auth, headers: Mapping[str, str], path: str,
               user: UserInfo | None) -> tuple[UserInfo | None, UserInfo | None]:
        """The authenticated user and the impersonated one. Without authentication every request
        is the anonymous user's, as kube-apiserver's anonymous authenticator names it."""
        if not auth.enforce:
            return UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,)), None
        impersonating = bool(headers.get("impersonate-user"))
        if user is not None and not impersonating:
            return user, None
        try:
            requestor = auth.authenticate(headers, path)
        except ApiError:
            return None, None  # 401: no user
        if not impersonating:
            return requestor, None  # refused by the authorizer (403)
        if user is None:  # refused after impersonation (the authorizer) or by it (then only the requestor)
            try:
                user = auth.impersonate(requestor, headers)
            except ApiError:
                return requestor, None
        return requestor, user
