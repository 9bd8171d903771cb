"""The failures of talking to a cluster, one class per failure a caller handles.

The official client raises ``ApiException`` for an HTTP answer and urllib3 exceptions (often
wrapped in ``MaxRetryError``) for everything that never got one; neither names the kubeconfig
context, and their text is a multi-line dump. :func:`classify` (pure) turns each into a
:class:`TargetError` subclass whose message is one line:
``context "prod": https://1.2.3.4: 401 Unauthorized: <what happened>; <what to check>``,
so the CLI can print it and exit 2 without a traceback.
"""
from __future__ import annotations

import json
import socket
import ssl
from typing import Iterator

import urllib3.exceptions as u3

from eafix_capacity.errors import MAX_MESSAGE_CHARS, MAX_PART_CHARS, ClusterError, clip

# urllib3 2 only; with 1.26 the socket.gaierror it wraps is found instead
_NAME_RESOLUTION: type[BaseException] = getattr(u3, "NameResolutionError", socket.gaierror)


class TargetError(ClusterError):
    """A failure against one kubeconfig context; the base of the classes below, and what
    :func:`classify` returns for an HTTP answer none of them covers (``status`` says which)."""

    def __init__(self, problem: str, *, context: str | None = None, server: str | None = None,
                 kubeconfig: str | None = None, check: str | None = None, status: int | None = None) -> None:
        self.problem, self.context, self.server = problem, context, server
        self.kubeconfig, self.check, self.status = kubeconfig, check, status
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.kubeconfig:
            where.append(f"kubeconfig {self.kubeconfig}")
        if self.context is not None:
            where.append(f'context "{self.context}"')
        if self.server:
            where.append(self.server)
        text = ": ".join([clip(p, MAX_PART_CHARS) for p in where] + [clip(self.problem, MAX_PART_CHARS)])
        if self.check:
            text += f"; {clip(self.check, MAX_PART_CHARS)}"
        return clip(text, MAX_MESSAGE_CHARS)

    def __reduce__(self) -> tuple:  # keyword-only arguments: rebuilt from the parts, not from args
        return (_rebuild, (type(self), self.problem, self.context, self.server, self.kubeconfig, self.check,
                           self.status))


def _rebuild(cls: type[TargetError], problem: str, context: str | None, server: str | None,
             kubeconfig: str | None, check: str | None, status: int | None) -> TargetError:
    return cls(problem, context=context, server=server, kubeconfig=kubeconfig, check=check, status=status)


class Unauthorized(TargetError):
    """401: the server did not accept the credentials (or none were sent)."""


class Forbidden(TargetError):
    """403: the credentials are accepted but RBAC does not allow the request."""


class Unreachable(TargetError):
    """No connection: refused, host not resolved, network unreachable, closed before an answer."""


class TLSFailure(TargetError):
    """The TLS handshake failed: the server's certificate does not verify against the kubeconfig's
    CA (or the client certificate was refused, or the server does not speak TLS)."""


class Timeout(TargetError):
    """No connection or no answer within the timeout."""


class ContextNotFound(TargetError):
    """The named context is not in the kubeconfig (or none was named and none is current)."""


class KubeconfigError(TargetError):
    """The kubeconfig is missing, unreadable or not a valid kubeconfig."""


class WriteNotConfirmed(TargetError):
    """The guard refused a write: no explicit context, or a cluster other than the sim without
    ``--yes`` or an interactive confirmation."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (``MaxRetryError.reason``, the arguments urllib3 wraps an
    ``ssl`` error in, ``__cause__``/``__context__``), outermost first, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        reason = getattr(e, "reason", None)
        nested = [reason] if isinstance(reason, BaseException) else []
        nested += [a for a in e.args if isinstance(a, BaseException)]
        nested += [c for c in (e.__cause__, e.__context__) if c is not None]
        todo.extend(nested)


def _first(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _server_message(body: object) -> str:
    """The ``message`` of a ``Status`` body, or the body's first line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip().splitlines()[0]
    return str(doc.get("message") or "") if isinstance(doc, dict) else ""


def _unauthorized_check(auth: str | None) -> str:
    if auth is None or auth == "no credentials":
        return "the user has no credentials; add a token, a client certificate or an exec plugin to the kubeconfig"
    if auth.startswith("exec plugin"):
        return f"check that the {auth} runs and returns a current credential (run it yourself, or log in again)"
    if auth.startswith("auth provider"):
        return f"the {auth} gave an expired or refused token; log in again or use the cloud's exec plugin"
    if auth == "client certificate":
        return "check the client certificate (expired, revoked, or not signed by the cluster's CA)"
    return f"check the {auth} (expired or revoked?) or run the cloud's auth plugin to get a new one"


def classify(exc: BaseException, *, context: str, server: str, user: str | None = None,
             auth: str | None = None, cluster: str | None = None, timeout: float | None = None) -> TargetError:
    """The :class:`TargetError` for ``exc`` raised by the official client on a request to
    ``server`` through ``context`` (pure). ``user``, ``auth`` (how the user authenticates, as
    :func:`eafix_capacity.cluster.context.auth_method` says), ``cluster`` and ``timeout`` only
    make the advice precise. An exception that is already a ``TargetError`` is returned as is."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, TargetError):
        return exc
    who = f'user "{user}"' if user else "the kubeconfig's user"
    cluster_ref = f'cluster "{cluster}"' if cluster else "the cluster"
    api = _first(exc, ApiException)
    if isinstance(api, ApiException) and api.status:
        status = int(api.status)
        said = _server_message(api.body)
        if status == 401:
            return Unauthorized(f"401 Unauthorized: the credentials of {who} were refused",
                                check=_unauthorized_check(auth), status=status, context=context, server=server)
        if status == 403:
            return Forbidden(f"403 Forbidden: {said or 'the request was refused'}",
                             check=f"{who} is authenticated but RBAC does not allow this; ask for a binding that "
                                   "does (kubectl auth can-i --list shows what it may do)", status=status,
                             context=context, server=server)
        return TargetError(f"{status} {api.reason or ''}".rstrip() + (f": {said}" if said else ""),
                           status=status, context=context, server=server)
    limit = f"{timeout:g} s" if timeout is not None else "the timeout"
    no_answer = Timeout(f"no answer within {limit}",
                        check="check that the API server is healthy and not overloaded, or raise the timeout",
                        context=context, server=server)
    if _first(exc, u3.ReadTimeoutError) is not None:
        return no_answer
    resolve = _first(exc, (_NAME_RESOLUTION, socket.gaierror))
    if resolve is not None:
        return Unreachable("cannot resolve the server's host name",
                           check=f"check the server URL of {cluster_ref} in the kubeconfig and your DNS or VPN",
                           context=context, server=server)
    # urllib3 2: NewConnectionError is a ConnectTimeoutError subclass, so it is tested first
    refused = _first(exc, (u3.NewConnectionError, ConnectionRefusedError))
    if refused is not None:
        return Unreachable("cannot connect: " + _reason(refused),
                           check=f"check that the cluster is running and that the server URL of {cluster_ref} is "
                                 "right (VPN, firewall, port)", context=context, server=server)
    if _first(exc, u3.ConnectTimeoutError) is not None:
        return Timeout(f"no connection within {limit}",
                       check="check the server URL, the network path (VPN, firewall) and that the cluster runs",
                       context=context, server=server)
    if _first(exc, socket.timeout) is not None:
        return no_answer
    verify = _first(exc, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        text = getattr(verify, "verify_message", None) or str(verify)
        return TLSFailure(f"TLS failure: the server's certificate does not verify: {text}",
                          check=f"check certificate-authority(-data) of {cluster_ref} in the kubeconfig, and that the "
                                "URL is the cluster's", context=context, server=server)
    tls = _first(exc, (u3.SSLError, ssl.SSLError))
    if tls is not None:
        return TLSFailure(f"TLS failure: {_reason(tls)}",
                          check=f"check that the server speaks HTTPS at this URL, and the CA and client certificate of "
                                f"{cluster_ref} and {who} in the kubeconfig", context=context, server=server)
    closed = _first(exc, (u3.ProtocolError, ConnectionError, u3.ProxyError))
    if closed is not None:
        return Unreachable("the connection failed: " + _reason(closed),
                           check="check that the URL is the cluster's API server (https:// for a TLS server) and "
                                 "the network path (proxy, VPN, firewall)", context=context, server=server)
    return TargetError(f"request failed: {type(exc).__name__}: {_reason(exc)}", context=context, server=server)


def _reason(exc: BaseException) -> str:
    """The innermost readable reason: ``Connection refused`` rather than urllib3's
    ``<urllib3.connection.HTTPConnection object at 0x..>: Failed to establish ...``."""
    for e in reversed(list(_chain(exc))):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, OSError) and not isinstance(e, u3.HTTPError) and str(e):
            return str(e)
    text = str(exc)
    attrs = vars(exc)  # not getattr: NewConnectionError.pool is a deprecated property that warns
    for key in ("conn", "pool"):  # urllib3 prefixes its text with "<connection or pool>: "
        if key in attrs:
            text = text.removeprefix(f"{attrs[key]}: ")
    return text
