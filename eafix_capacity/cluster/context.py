"""Which cluster a command talks to, and the guard that keeps writes off the wrong one.

A kubeconfig can hold many contexts, and its current context is whatever the last
``kubectl config use-context`` left: writing to it by default is how a plan gets applied to
production by accident. :func:`load_target` loads one context with the official client's
own loader (so tokens, client certificates, exec plugins such as ``gke-gcloud-auth-plugin``,
``aws eks get-token`` and kubelogin work as they do for kubectl) and reads the cluster's
identity, the UID of its ``kube-system`` namespace (it survives renames of contexts and
clusters), before anything is sent. :func:`require_write` is the guard every write passes:
an explicit context always, and for a cluster other than the sim ``--yes`` or an
interactive confirmation that repeats the context and the identity.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from eafix_capacity.cluster.errors import (ContextNotFound, KubeconfigError, TargetError, WriteNotConfirmed,
                                           classify)

SIM_CONTEXT = "eafix-sim"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The sim's context name (``eafix_capacity.sim.cluster.CONTEXT``, not imported: that pulls in the whole sim)."""
DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_TIMEOUT = 10.0
"""Seconds to connect, and again to wait for an answer, on the identity read."""
DEFAULT_NAMESPACE = "default"  # as kubectl, for a context that names none
IDENTITY_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class Target:
    """One kubeconfig context and the cluster behind it, as read before anything is sent."""

    context: str
    cluster: str
    """The kubeconfig's name for the cluster entry (not a property of the cluster)."""
    server: str
    user: str
    """The kubeconfig's user entry ("" when the context names none: anonymous)."""
    namespace: str
    identity: str
    """The UID of the cluster's kube-system namespace."""
    kubeconfig: str = ""
    """The file(s) the context came from."""
    auth: str = ""
    """How the user authenticates: see :func:`auth_method`."""
    is_sim: bool = field(init=False)
    """Whether this is the sim: the context ``eafix-sim`` AND a server on this machine's loopback,
    the only target written to without ``--yes`` (a real cluster's context renamed ``eafix-sim``
    still needs it)."""

    def __post_init__(self) -> None:
        host = (urlsplit(self.server).hostname or "").lower()
        object.__setattr__(self, "is_sim", self.context == SIM_CONTEXT and host in LOOPBACK_HOSTS)


@dataclass(frozen=True)
class ContextEntry:
    """A context resolved from the merged kubeconfig (pure; no request sent yet)."""

    context: str
    cluster: str
    server: str
    user: str
    namespace: str
    auth: str


# --- where the kubeconfig is (pure) -----------------------------------------------------------------

def kubeconfig_paths(explicit: str | os.PathLike[str] | None, *, env: str | None,
                     home_default: str = DEFAULT_KUBECONFIG) -> tuple[list[str], str]:
    """The files to read and how they were chosen (pure): ``explicit``, else the ``KUBECONFIG``
    list (``env``, split on ``os.pathsep`` as kubectl does), else ``~/.kube/config``."""
    if explicit is not None and str(explicit):
        return [os.path.expanduser(str(explicit))], "explicit"
    if env:
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p], "KUBECONFIG"
    return [os.path.expanduser(home_default)], "default"


def merge_kubeconfigs(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge kubeconfig documents as kubectl does (pure): the first file to define a cluster,
    context or user by name wins, and so does the first ``current-context``."""
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": [], "current-context": ""}
    for path, doc in docs:
        for key in ("clusters", "contexts", "users"):
            entries = doc.get(key) or []
            if not isinstance(entries, list):
                raise KubeconfigError(f"{key} must be a list, got {type(entries).__name__}", kubeconfig=path,
                                      check="compare the file with `kubectl config view`")
            for entry in entries:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                    raise KubeconfigError(f"an entry of {key} has no name", kubeconfig=path,
                                          check="every cluster, context and user needs a name")
                if all(e["name"] != entry["name"] for e in merged[key]):
                    merged[key].append(dict(entry))
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = str(doc["current-context"])
    return merged


def auth_method(user: Mapping[str, Any] | None) -> str:
    """How a kubeconfig user authenticates (pure), in the client loader's order: auth provider,
    token, exec plugin, basic auth; a client certificate may come with any of them."""
    if not user:
        return "no credentials"
    provider = user.get("auth-provider")
    if isinstance(provider, Mapping) and provider.get("name"):
        return f'auth provider "{provider["name"]}"'
    if user.get("token") or user.get("tokenFile"):
        return "token"
    plugin = user.get("exec")
    if isinstance(plugin, Mapping) and plugin.get("command"):
        return f'exec plugin "{os.path.basename(str(plugin["command"]))}"'
    if user.get("client-certificate") or user.get("client-certificate-data"):
        return "client certificate"
    if user.get("username") and user.get("password"):
        return "basic auth"
    return "no credentials"


def _names(entries: list[dict[str, Any]]) -> str:
    return ", ".join(f'"{e["name"]}"' for e in entries) or "none"


def resolve_context(merged: Mapping[str, Any], context: str | None, *, kubeconfig: str) -> ContextEntry:
    """The context ``context`` (default: the current one) of a merged kubeconfig, with its cluster
    and user (pure); ``ContextNotFound`` or ``KubeconfigError`` (client-go's validation messages)."""
    contexts: list[dict[str, Any]] = list(merged.get("contexts") or [])
    name = context if context is not None else str(merged.get("current-context") or "")
    if not name:
        raise ContextNotFound("no context given and the kubeconfig sets no current-context", kubeconfig=kubeconfig,
                              check=f"pass --context NAME (contexts: {_names(contexts)})")
    entry = next((c for c in contexts if c["name"] == name), None)
    if entry is None:  # kubectl: error: context "x" does not exist
        raise ContextNotFound(f'context "{name}" does not exist', kubeconfig=kubeconfig,
                              check=f"the kubeconfig has the contexts {_names(contexts)} "
                                    "(kubectl config get-contexts)")
    body = entry.get("context")
    if not isinstance(body, Mapping):
        raise KubeconfigError("the context has no context: mapping", kubeconfig=kubeconfig, context=name,
                              check="a context needs a cluster and a user")
    cluster_name = str(body.get("cluster") or "")
    if not cluster_name:  # client-go clientcmd validateContext
        raise KubeconfigError(f'cluster was not specified for context "{name}"', kubeconfig=kubeconfig,
                              context=name, check="set context.cluster to one of the kubeconfig's clusters")
    cluster = next((c for c in merged.get("clusters") or [] if c["name"] == cluster_name), None)
    if cluster is None:
        raise KubeconfigError(f'cluster "{cluster_name}" was not found for context "{name}"', kubeconfig=kubeconfig,
                              context=name, check=f"the kubeconfig has the clusters {_names(merged['clusters'])}")
    cluster_body = cluster.get("cluster")
    server = str(cluster_body.get("server") or "") if isinstance(cluster_body, Mapping) else ""
    if not server:  # client-go clientcmd validateClusterInfo
        raise KubeconfigError(f'no server found for cluster "{cluster_name}"', kubeconfig=kubeconfig, context=name,
                              check="set cluster.server to the API server's URL")
    user_name = str(body.get("user") or "")
    user_body: Mapping[str, Any] | None = None
    if user_name:
        user = next((u for u in merged.get("users") or [] if u["name"] == user_name), None)
        if user is None:
            raise KubeconfigError(f'user "{user_name}" was not found for context "{name}"', kubeconfig=kubeconfig,
                                  context=name, check=f"the kubeconfig has the users {_names(merged['users'])}")
        user_body = user.get("user") if isinstance(user.get("user"), Mapping) else None
    return ContextEntry(context=name, cluster=cluster_name, server=server.rstrip("/"), user=user_name,
                        namespace=str(body.get("namespace") or DEFAULT_NAMESPACE), auth=auth_method(user_body))


# --- reading the files ------------------------------------------------------------------------------

def read_kubeconfigs(paths: Sequence[str], *, source: str) -> list[tuple[str, dict[str, Any]]]:
    """The parsed kubeconfig files of ``paths``. An explicit or default file must exist; of a
    ``KUBECONFIG`` list, missing files are skipped (as kubectl) but one must exist."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        if os.pathsep in path:  # the client's loader splits on it again
            raise KubeconfigError(f"the path contains {os.pathsep!r}, which the client's loader splits on",
                                  kubeconfig=path, check="move or link the file to a path without it")
        if not os.path.exists(path):
            if source == "KUBECONFIG":
                continue
            check = ("pass --kubeconfig FILE or set KUBECONFIG" if source == "default"
                     else "check the path given with --kubeconfig")
            raise KubeconfigError("no such file", kubeconfig=path, check=check)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise KubeconfigError(f"cannot read the file: {getattr(e, 'strerror', None) or e}", kubeconfig=path,
                                  check="check that it is a readable file") from e
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise KubeconfigError(f"not valid YAML{at}: {problem}", kubeconfig=path,
                                  check="compare the file with `kubectl config view`") from e
        if doc is None:
            raise KubeconfigError("the file is empty", kubeconfig=path, check="point at a kubeconfig with contexts")
        if not isinstance(doc, dict):
            raise KubeconfigError(f"not a kubeconfig: the document is a {type(doc).__name__}, not a mapping",
                                  kubeconfig=path, check="a kubeconfig has clusters, contexts and users")
        docs.append((path, doc))
    if not docs:
        raise KubeconfigError("none of the files exists", kubeconfig=os.pathsep.join(paths),
                              check="set KUBECONFIG to existing files, or pass --kubeconfig FILE")
    return docs


def load_target(*, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> tuple[Target, Any]:
    """Load ``context`` (default: the current context) of ``kubeconfig`` (default: ``KUBECONFIG``,
    then ``~/.kube/config``) and read the cluster's identity with one GET of the kube-system
    namespace; return the :class:`Target` and the official client's ``ApiClient`` for it.
    Every failure is a :class:`~eafix_capacity.cluster.errors.TargetError` subclass."""
    import kubernetes.client
    import kubernetes.config
    from kubernetes.config.config_exception import ConfigException

    paths, source = kubeconfig_paths(kubeconfig, env=os.environ.get("KUBECONFIG"))
    docs = read_kubeconfigs(paths, source=source)
    where = os.pathsep.join(p for p, _ in docs)
    entry = resolve_context(merge_kubeconfigs(docs), context, kubeconfig=where)
    _check_exec_plugin(docs, entry, kubeconfig=where)
    configuration = kubernetes.client.Configuration()
    # one attempt: urllib3's default three silent retries would turn a timeout into four
    configuration.retries = 0
    try:
        # persist_config=False: a refreshed auth-provider token is never written back into the user's file
        client = kubernetes.config.new_client_from_config(config_file=where, context=entry.context,
                                                          persist_config=False, client_configuration=configuration)
    except ConfigException as e:  # exec plugins that fail are only logged by the client; the 401 says so later
        raise KubeconfigError(f"the client's loader refused it: {e}", kubeconfig=where, context=entry.context,
                              server=entry.server, check="compare the file with `kubectl config view`") from e
    except (OSError, ValueError) as e:  # e.g. certificate-authority names a file that is missing
        raise KubeconfigError(f"the client's loader failed: {e}", kubeconfig=where, context=entry.context,
                              server=entry.server, check="check the files and data the context names") from e
    try:
        metadata = _read_identity_namespace(client, timeout=timeout).get("metadata") or {}
        identity = str(metadata.get("uid") or "") if isinstance(metadata, dict) else ""
    except BaseException as e:
        client.close()
        if not isinstance(e, Exception):
            raise
        raise classify(e, context=entry.context, server=entry.server, user=entry.user or None, auth=entry.auth,
                       cluster=entry.cluster, timeout=timeout) from e
    if not identity:
        client.close()
        raise TargetError(f"the {IDENTITY_NAMESPACE} namespace has no uid", context=entry.context,
                          server=entry.server, check="check that the URL is a Kubernetes API server")
    target = Target(context=entry.context, cluster=entry.cluster, server=entry.server, user=entry.user,
                    namespace=entry.namespace, identity=identity, kubeconfig=where, auth=entry.auth)
    return target, client


def _check_exec_plugin(docs: Sequence[tuple[str, Mapping[str, Any]]], entry: ContextEntry, *,
                       kubeconfig: str) -> None:
    """Refuse an exec plugin that is not installed: the client only logs its failure and sends no
    credentials. The message is kubectl's (client-go exec.go: ``exec: executable %s not found``
    and the plugin's installHint)."""
    user = merge_kubeconfigs(docs)["users"]
    plugin = next((u.get("user", {}).get("exec") for u in user if u["name"] == entry.user), None)
    if not isinstance(plugin, Mapping) or not plugin.get("command"):
        return
    command = str(plugin["command"])
    if os.sep in command or shutil.which(command) is not None:  # a path is resolved by the client itself
        return
    hint = str(plugin.get("installHint") or "").strip()
    raise KubeconfigError(f"exec: executable {command} not found", kubeconfig=kubeconfig, context=entry.context,
                          server=entry.server,
                          check=hint or f"install {command} or put it on PATH (the kubeconfig's user "
                                        f'"{entry.user}" runs it for its credentials)')


def _read_identity_namespace(client: Any, *, timeout: float) -> dict[str, Any]:
    """GET the kube-system namespace as JSON; the client's own exceptions propagate."""
    from eafix_capacity.cluster.rest import get_json

    try:
        answer = get_json(client, f"/api/v1/namespaces/{IDENTITY_NAMESPACE}", timeout=timeout)
    except ValueError:  # not an API server's answer: reported as a namespace without a uid
        return {}
    return answer if isinstance(answer, dict) else {}


# --- telling the user, guarding writes (pure) -------------------------------------------------------

def describe(target: Target) -> str:
    """One line naming the context, the cluster and its identity, for printing before any request."""
    sim = " (the sim)" if target.is_sim else ""
    user = f'user "{target.user}" ({target.auth})' if target.user else "no user (anonymous)"
    return (f'context "{target.context}"{sim}: cluster "{target.cluster}" at {target.server}, {user}, '
            f'namespace "{target.namespace}", identity kube-system uid {target.identity}')


def confirmation_prompt(target: Target) -> str:
    """The question asked before writing to a cluster that is not the sim: it repeats the context
    and the identity so the user sees which cluster they are about to change."""
    return (f'Write to context "{target.context}" (cluster "{target.cluster}" at {target.server}, '
            f"kube-system uid {target.identity})? This is not the sim. [y/N] ")


def require_write(target: Target, *, context_given: bool, yes: bool,
                  confirm: Callable[[str], bool] | None) -> None:
    """Allow a write to ``target`` or raise ``WriteNotConfirmed``. Every write needs an explicit
    context (``context_given``; the current context is never written to by default); a context
    other than the sim's also needs ``yes`` or ``confirm(prompt)`` returning True (``confirm``
    is None when not interactive: then it is refused)."""
    context, server = target.context, target.server
    if not context_given:
        raise WriteNotConfirmed("refusing to write to the current context: a write needs an explicit context",
                                check=f'pass --context {target.context} (context="{target.context}" in Python) '
                                      "if this is the cluster you mean", context=context, server=server)
    if target.is_sim or yes:
        return
    if confirm is None:
        raise WriteNotConfirmed(f"refusing to write to a cluster that is not the sim (kube-system uid "
                                f"{target.identity}) without confirmation",
                                check="pass --yes, or run interactively to confirm", context=context, server=server)
    if not confirm(confirmation_prompt(target)):
        raise WriteNotConfirmed(f"the write to kube-system uid {target.identity} was not confirmed",
                                check="nothing was sent; answer y, or pass --yes", context=context, server=server)
