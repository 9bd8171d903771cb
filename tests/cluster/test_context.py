"""Contexts, the cluster's identity, the one-line errors of every failure, and the write guard.

One sim with auth (HTTPS, tokens, RBAC) for the module; each failure goes through the official
client's own loader and a real request, and asserts the class and the whole message.
"""
from __future__ import annotations

import base64
import copy
import http.server
import json
import os
import pickle
import socket
import ssl
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import urllib3.exceptions as u3
import yaml
from kubernetes.client.exceptions import ApiException

from eafix_capacity.cluster import errors as E
from eafix_capacity.cluster.context import (SIM_CONTEXT, Target, auth_method, confirmation_prompt, describe,
                                            kubeconfig_paths, load_target, merge_kubeconfigs, require_write,
                                            resolve_context)
from eafix_capacity.errors import ClusterError
from eafix_capacity.sim import auth as A
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.cluster import CONTEXT, SimCluster

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    with SimCluster(kubeconfig=tmp_path_factory.mktemp("ctx") / "kubeconfig", nodes=1, auth=True) as cluster:
        yield cluster


@pytest.fixture()
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KUBECONFIG, and a HOME of its own (``~/.kube/config`` is ``<home>/.kube/config``)."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def sim_doc(sim: SimCluster) -> dict[str, Any]:
    return dict(yaml.safe_load(Path(str(sim.kubeconfig)).read_text()))


def identity(sim: SimCluster) -> str:
    assert sim.store is not None
    return str(sim.store.get(R.NAMESPACE, None, "kube-system")["metadata"]["uid"])


def renamed(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """``doc`` with its context, cluster and user all called ``name``."""
    out = copy.deepcopy(doc)
    for key in ("clusters", "contexts", "users"):
        out[key][0]["name"] = name
    out["contexts"][0]["context"].update(cluster=name, user=name)
    out["current-context"] = name
    return out


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def failure(path: Path | None, *, context: str | None = None, timeout: float = TIMEOUT) -> E.TargetError:
    with pytest.raises(E.TargetError) as err:
        load_target(kubeconfig=path, context=context, timeout=timeout)
    assert "\n" not in str(err.value)
    return err.value


def with_server(doc: dict[str, Any], server: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["clusters"][0]["cluster"]["server"] = server
    return out


def with_token(doc: dict[str, Any], token: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["users"][0]["user"] = {"token": token}
    return out


# --- loading a context ------------------------------------------------------------------------------

@pytest.mark.sim
def test_the_sim_context_loads_with_the_kube_system_uid_as_identity(sim: SimCluster, no_env: Path) -> None:
    target, client = load_target(kubeconfig=sim.kubeconfig, timeout=TIMEOUT)  # the current context: a read
    client.close()
    assert target == Target(context=CONTEXT, cluster=CONTEXT, server=sim.url, user=CONTEXT, namespace="default",
                            identity=identity(sim), kubeconfig=str(sim.kubeconfig), auth="token")
    assert target.is_sim and SIM_CONTEXT == CONTEXT
    assert describe(target) == (f'context "eafix-sim" (the sim): cluster "eafix-sim" at {sim.url}, user "eafix-sim" '
                                f'(token), namespace "default", identity kube-system uid {identity(sim)}')


@pytest.mark.sim
def test_explicit_path_then_kubeconfig_then_home(sim: SimCluster, no_env: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    doc = sim_doc(sim)
    write(no_env / ".kube" / "config", renamed(doc, "from-home"))
    target, client = load_target(timeout=TIMEOUT)
    client.close()
    assert (target.context, target.kubeconfig, target.is_sim) == ("from-home", str(no_env / ".kube/config"), False)
    first = write(tmp_path / "a.yaml", renamed(doc, "from-env"))
    second = write(tmp_path / "b.yaml", dict(renamed(doc, "second"), **{"current-context": "second"}))
    # a missing file in the list is skipped; the first current-context wins, as kubectl merges
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    target, client = load_target(timeout=TIMEOUT)
    client.close()
    assert (target.context, target.kubeconfig) == ("from-env", f"{first}{os.pathsep}{second}")
    target, client = load_target(context="second", timeout=TIMEOUT)  # a context of the second file
    client.close()
    assert target.context == "second" and target.identity == identity(sim)
    target, client = load_target(kubeconfig=sim.kubeconfig, timeout=TIMEOUT)
    client.close()
    assert target.context == CONTEXT


@pytest.mark.sim
def test_an_exec_plugin_runs_through_the_clients_loader(sim: SimCluster, tmp_path: Path) -> None:
    def plugin(token: str) -> dict[str, Any]:
        script = tmp_path / f"plugin-{len(token)}.py"
        script.write_text("import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                          f"'kind': 'ExecCredential', 'status': {{'token': {token!r}}}}}))\n")
        return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                         "args": [str(script)], "interactiveMode": "Never"}}
    doc = sim_doc(sim)
    good = copy.deepcopy(doc)
    good["users"][0]["user"] = plugin(str(doc["users"][0]["user"]["token"]))
    target, client = load_target(kubeconfig=write(tmp_path / "good", good), timeout=TIMEOUT)
    client.close()
    name = os.path.basename(sys.executable)
    assert (target.auth, target.identity) == (f'exec plugin "{name}"', identity(sim))
    bad = copy.deepcopy(doc)
    bad["users"][0]["user"] = plugin("not-a-valid-token")
    err = failure(write(tmp_path / "bad", bad))
    assert type(err) is E.Unauthorized and err.status == 401
    assert str(err) == (f'context "eafix-sim": {sim.url}: 401 Unauthorized: the credentials of user "eafix-sim" were '
                        f'refused; check that the exec plugin "{name}" runs and returns a current credential (run it '
                        "yourself, or log in again)")


@pytest.mark.sim
def test_what_the_clients_loader_refuses(sim: SimCluster, tmp_path: Path) -> None:
    doc = sim_doc(sim)
    missing = copy.deepcopy(doc)
    missing["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                            "command": "eafix-no-such-plugin",
                                            "installHint": "install it with: gcloud components install x"}}
    path = write(tmp_path / "exec", missing)
    err = failure(path)
    assert (type(err), str(err)) == (E.KubeconfigError, f'kubeconfig {path}: context "eafix-sim": {sim.url}: exec: '
                                                        "executable eafix-no-such-plugin not found; install it with: "
                                                        "gcloud components install x")
    no_ca = copy.deepcopy(doc)
    del no_ca["clusters"][0]["cluster"]["certificate-authority-data"]
    no_ca["clusters"][0]["cluster"]["certificate-authority"] = str(tmp_path / "ca.crt")
    path = write(tmp_path / "no-ca", no_ca)
    err = failure(path)
    assert (type(err), str(err)) == (E.KubeconfigError, f'kubeconfig {path}: context "eafix-sim": {sim.url}: the '
                                                        f"client's loader refused it: File does not exist: "
                                                        f"{tmp_path / 'ca.crt'}; compare the file with `kubectl config "
                                                        "view`")


# --- every failure: its class and its one line ------------------------------------------------------

@pytest.mark.sim
def test_a_wrong_token_is_unauthorized(sim: SimCluster, tmp_path: Path) -> None:
    err = failure(write(tmp_path / "kc", with_token(sim_doc(sim), "wrong-token")))
    assert type(err) is E.Unauthorized and isinstance(err, ClusterError)
    assert str(err) == (f'context "eafix-sim": {sim.url}: 401 Unauthorized: the credentials of user "eafix-sim" were '
                        "refused; check the token (expired or revoked?) or run the cloud's auth plugin to get a new "
                        "one")
    doc = with_token(sim_doc(sim), "x")
    doc["users"][0]["user"] = {}
    err = failure(write(tmp_path / "anonymous", doc))
    assert type(err) is E.Unauthorized and str(err).endswith(
        "; the user has no credentials; add a token, a client certificate or an exec plugin to the kubeconfig")


@pytest.mark.sim
def test_a_user_without_rbac_is_forbidden_on_the_identity_read(sim: SimCluster, tmp_path: Path) -> None:
    err = failure(write(tmp_path / "kc", with_token(sim_doc(sim), sim.issue_token("nobody"))))
    assert type(err) is E.Forbidden and err.status == 403
    assert str(err) == (f'context "eafix-sim": {sim.url}: 403 Forbidden: namespaces "kube-system" is forbidden: User '
                        '"nobody" cannot get resource "namespaces" in API group "" in the namespace "kube-system"; '
                        'user "eafix-sim" is authenticated but RBAC does not allow this; ask for a binding that does '
                        "(kubectl auth can-i --list shows what it may do)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.sim
def test_a_closed_port_is_unreachable(sim: SimCluster, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    err = failure(write(tmp_path / "kc", with_server(sim_doc(sim), server)))
    assert type(err) is E.Unreachable
    assert str(err) == (f'context "eafix-sim": {server}: cannot connect: Connection refused; check that the cluster is '
                        'running and that the server URL of cluster "eafix-sim" is right (VPN, firewall, port)')


@pytest.mark.sim
def test_plain_http_to_the_tls_server_is_unreachable_and_says_so(sim: SimCluster, tmp_path: Path) -> None:
    server = sim.url.replace("https://", "http://")
    err = failure(write(tmp_path / "kc", with_server(sim_doc(sim), server)))
    assert type(err) is E.Unreachable
    assert str(err) == (f'context "eafix-sim": {server}: the connection failed: Remote end closed connection without '
                        "response; check that the URL is the cluster's API server (https:// for a TLS server) and the "
                        "network path (proxy, VPN, firewall)")


@pytest.mark.sim
def test_a_wrong_ca_is_a_tls_failure(sim: SimCluster, tmp_path: Path) -> None:
    doc = sim_doc(sim)
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(A.serving_cert().ca_pem).decode()
    err = failure(write(tmp_path / "kc", doc))
    assert type(err) is E.TLSFailure
    # the other CA has the sim CA's subject: OpenSSL finds it as the issuer, and its signature fails
    assert str(err) == (f'context "eafix-sim": {sim.url}: TLS failure: the server\'s certificate does not verify: '
                        'certificate signature failure; check certificate-authority(-data) of cluster "eafix-sim" in '
                        "the kubeconfig, and that the URL is the cluster's")


@pytest.mark.sim
def test_a_server_that_never_answers_is_a_timeout(sim: SimCluster, tmp_path: Path) -> None:
    with socket.socket() as listener:  # the kernel completes the handshake; nobody ever reads or answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        server = f"https://127.0.0.1:{listener.getsockname()[1]}"
        err = failure(write(tmp_path / "kc", with_server(sim_doc(sim), server)), timeout=0.3)
    assert type(err) is E.Timeout
    assert str(err) == (f'context "eafix-sim": {server}: no answer within 0.3 s; check that the API server is healthy '
                        "and not overloaded, or raise the timeout")


@pytest.mark.sim
def test_a_server_that_is_not_an_api_server(sim: SimCluster, tmp_path: Path) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = (200, b"<html>hello</html>") if self.path == "/api/v1/namespaces/kube-system" else (404, b"")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as web:
        thread = threading.Thread(target=web.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            server = f"http://127.0.0.1:{web.server_address[1]}"
            err = failure(write(tmp_path / "kc", with_server(sim_doc(sim), server)))
            web_sub = f"{server}/sub"
            missing = failure(write(tmp_path / "kc2", with_server(sim_doc(sim), web_sub)))
        finally:
            web.shutdown()
            thread.join()
    assert (type(err), str(err)) == (E.TargetError, f'context "eafix-sim": {server}: the kube-system namespace has no '
                                                    "uid; check that the URL is a Kubernetes API server")
    assert (type(missing), missing.status, str(missing)) == (
        E.TargetError, 404, f'context "eafix-sim": {web_sub}: 404 Not Found')


# --- the kubeconfig itself ----------------------------------------------------------------------------

def test_a_missing_kubeconfig(no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    err = failure(missing)
    assert type(err) is E.KubeconfigError
    assert str(err) == f"kubeconfig {missing}: no such file; check the path given with --kubeconfig"
    err = failure(None)
    assert str(err) == f"kubeconfig {no_env}/.kube/config: no such file; pass --kubeconfig FILE or set KUBECONFIG"
    monkeypatch.setenv("KUBECONFIG", f"{missing}{os.pathsep}{tmp_path / 'other'}")
    err = failure(None)
    assert type(err) is E.KubeconfigError
    assert str(err) == (f"kubeconfig {missing}{os.pathsep}{tmp_path / 'other'}: none of the files exists; set "
                        "KUBECONFIG to existing files, or pass --kubeconfig FILE")


def test_unreadable_empty_and_invalid_kubeconfigs(tmp_path: Path) -> None:
    cases = {
        "bad.yaml": ("clusters: [\n  - name: a\n", "not valid YAML at line 2, column 3: expected the node content, but "
                                                   "found '-'; compare the file with `kubectl config view`"),
        "empty.yaml": ("", "the file is empty; point at a kubeconfig with contexts"),
        "list.yaml": ("- a\n- b\n", "not a kubeconfig: the document is a list, not a mapping; a kubeconfig has "
                                    "clusters, contexts and users"),
        "contexts.yaml": ("contexts: {a: 1}\n", "contexts must be a list, got dict; compare the file with "
                                                 "`kubectl config view`"),
        "noname.yaml": ("contexts: [{context: {}}]\n", "an entry of contexts has no name; every cluster, context and "
                                                       "user needs a name"),
    }
    for name, (text, message) in cases.items():
        err = failure(write(tmp_path / name, text))
        assert (type(err), str(err)) == (E.KubeconfigError, f"kubeconfig {tmp_path / name}: {message}")
    colon = write(tmp_path / f"a{os.pathsep}b", "{}")
    assert str(failure(colon)) == (f"kubeconfig {colon}: the path contains {os.pathsep!r}, which the client's loader "
                                   "splits on; move or link the file to a path without it")
    err = failure(tmp_path)  # a directory
    assert (type(err), str(err)) == (E.KubeconfigError, f"kubeconfig {tmp_path}: cannot read the file: Is a directory; "
                                                        "check that it is a readable file")


def test_unknown_context_and_missing_current_context(sim: SimCluster, tmp_path: Path) -> None:
    path = write(tmp_path / "kc", renamed(sim_doc(sim), "prod"))
    err = failure(path, context="nope")
    assert type(err) is E.ContextNotFound
    assert str(err) == (f'kubeconfig {path}: context "nope" does not exist; the kubeconfig has the contexts "prod" '
                        "(kubectl config get-contexts)")
    doc = renamed(sim_doc(sim), "prod")
    del doc["current-context"]
    path = write(tmp_path / "no-current", doc)
    err = failure(path)
    assert type(err) is E.ContextNotFound
    assert str(err) == (f'kubeconfig {path}: no context given and the kubeconfig sets no current-context; pass '
                        '--context NAME (contexts: "prod")')


def test_a_context_whose_cluster_user_or_server_is_missing() -> None:
    base = {"clusters": [{"name": "c", "cluster": {"server": "https://h/"}}], "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"}
    entry = resolve_context(merge_kubeconfigs([("f", base)]), None, kubeconfig="f")
    assert (entry.context, entry.server, entry.namespace, entry.auth) == ("x", "https://h", "default", "no credentials")
    cases = [
        ({"contexts": [{"name": "x", "context": {"cluster": "gone", "user": "u"}}]},
         'kubeconfig f: context "x": cluster "gone" was not found for context "x"; the kubeconfig has the clusters '
         '"c"'),
        ({"contexts": [{"name": "x", "context": {"cluster": "c", "user": "gone"}}]},
         'kubeconfig f: context "x": user "gone" was not found for context "x"; the kubeconfig has the users "u"'),
        ({"contexts": [{"name": "x", "context": {"user": "u"}}]},
         'kubeconfig f: context "x": cluster was not specified for context "x"; set context.cluster to one of the '
         "kubeconfig's clusters"),
        ({"clusters": [{"name": "c", "cluster": {}}]},
         'kubeconfig f: context "x": no server found for cluster "c"; set cluster.server to the API server\'s URL'),
    ]
    for change, message in cases:
        with pytest.raises(E.KubeconfigError) as err:
            resolve_context(merge_kubeconfigs([("f", dict(base, **change))]), None, kubeconfig="f")
        assert str(err.value) == message


def test_paths_and_merging_are_kubectls() -> None:
    assert kubeconfig_paths("/x", env="/a:/b") == (["/x"], "explicit")
    assert kubeconfig_paths(None, env=f"/a{os.pathsep}{os.pathsep}/b") == (["/a", "/b"], "KUBECONFIG")
    assert kubeconfig_paths(None, env="", home_default="/h/config") == (["/h/config"], "default")
    one = {"clusters": [{"name": "c", "cluster": {"server": "https://one"}}], "current-context": "first"}
    two = {"clusters": [{"name": "c", "cluster": {"server": "https://two"}}, {"name": "d", "cluster": {}}],
           "current-context": "second"}
    merged = merge_kubeconfigs([("1", one), ("2", two)])
    assert [c["cluster"].get("server") for c in merged["clusters"]] == ["https://one", None]
    assert merged["current-context"] == "first"


def test_auth_methods_in_the_loaders_order() -> None:
    assert auth_method(None) == "no credentials"
    assert auth_method({"token": "t", "client-certificate-data": "x"}) == "token"
    gke = {"exec": {"command": "/usr/bin/gke-gcloud-auth-plugin"}}
    assert auth_method(gke) == 'exec plugin "gke-gcloud-auth-plugin"'
    assert auth_method({"exec": {"command": "aws", "args": ["eks", "get-token"]}}) == 'exec plugin "aws"'
    assert auth_method({"auth-provider": {"name": "oidc"}}) == 'auth provider "oidc"'
    assert auth_method({"client-certificate-data": "x", "client-key-data": "y"}) == "client certificate"
    assert auth_method({"username": "a", "password": "b"}) == "basic auth"


# --- classify: the client's exceptions (pure) --------------------------------------------------------

def classified(exc: BaseException, **kw: Any) -> E.TargetError:
    return E.classify(exc, context="prod", server="https://1.2.3.4", user="x", **kw)


def test_classify_maps_each_client_exception_to_its_class() -> None:
    body = json.dumps({"kind": "Status", "message": 'pods is forbidden: User "x" cannot list resource "pods"'})
    assert str(classified(ApiException(status=401, reason="Unauthorized"), auth="token")) == (
        'context "prod": https://1.2.3.4: 401 Unauthorized: the credentials of user "x" were refused; check the token '
        "(expired or revoked?) or run the cloud's auth plugin to get a new one")
    forbidden = classified(ApiException(status=403, reason="Forbidden", body=body))
    assert type(forbidden) is E.Forbidden and "403 Forbidden: pods is forbidden: User" in str(forbidden)
    other = classified(ApiException(status=500, reason="Internal Server Error", body="boom\nmore"))
    assert (type(other), other.status, str(other)) == (
        E.TargetError, 500, 'context "prod": https://1.2.3.4: 500 Internal Server Error: boom')
    pool: Any = None
    cases: list[tuple[BaseException, type[E.TargetError], str]] = [
        (u3.MaxRetryError(pool, "/api", u3.NewConnectionError(pool, "Failed to establish a new connection")),
         E.Unreachable, "cannot connect: Failed to establish a new connection"),
        (u3.MaxRetryError(pool, "/api", u3.NameResolutionError("h", pool, socket.gaierror(-2, "Name or service not "
                                                                                            "known"))),
         E.Unreachable, "cannot resolve the server's host name"),
        (u3.MaxRetryError(pool, "/api", u3.ConnectTimeoutError(pool, "timed out")), E.Timeout,
         "no connection within 2 s"),
        (u3.ReadTimeoutError(pool, "/api", "Read timed out"), E.Timeout, "no answer within 2 s"),
        (u3.MaxRetryError(pool, "/api", u3.SSLError(ssl.SSLCertVerificationError(1, "x"))), E.TLSFailure,
         "TLS failure: the server's certificate does not verify"),
        (u3.SSLError(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")), E.TLSFailure,
         "TLS failure: [SSL: WRONG_VERSION_NUMBER] wrong version number"),
        (u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")),
         E.Unreachable, "the connection failed: Connection reset by peer"),
        (RuntimeError("odd"), E.TargetError, "request failed: RuntimeError: odd"),
    ]
    for exc, kind, problem in cases:
        err = classified(exc, timeout=2.0)
        assert type(err) is kind, (exc, err)
        assert str(err).startswith(f'context "prod": https://1.2.3.4: {problem}'), str(err)
        assert "\n" not in str(err)
    done = E.Timeout("t", context="a", server="b")
    assert classified(done) is done


def test_target_errors_survive_pickling() -> None:
    err = E.Forbidden("403 Forbidden: no", context="prod", server="https://h", check="ask", status=403)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.status) == (E.Forbidden, str(err), 403)


# --- the write guard (pure) -----------------------------------------------------------------------------

PROD = Target(context="prod", cluster="gke-prod", server="https://1.2.3.4", user="admin", namespace="default",
              identity="5d1c-uid", kubeconfig="/k", auth="token")
SIM = Target(context=SIM_CONTEXT, cluster=SIM_CONTEXT, server="https://127.0.0.1:1", user=SIM_CONTEXT,
             namespace="default", identity="sim-uid")


def asker(answer: bool) -> tuple[list[str], Callable[[str], bool]]:
    """A confirm callback answering ``answer``, and the prompts it was asked."""
    asked: list[str] = []

    def confirm(prompt: str) -> bool:
        asked.append(prompt)
        return answer
    return asked, confirm


def refusal(target: Target, **kw: Any) -> str:
    with pytest.raises(E.WriteNotConfirmed) as err:
        require_write(target, **kw)
    return str(err.value)


def test_every_write_needs_an_explicit_context() -> None:
    for target in (SIM, PROD):
        assert refusal(target, context_given=False, yes=True, confirm=lambda _: True) == (
            f'context "{target.context}": {target.server}: refusing to write to the current context: a write needs an '
            f'explicit context; pass --context {target.context} (context="{target.context}" in Python) if this is '
            "the cluster you mean")


def test_the_sim_needs_no_confirmation_but_another_cluster_does() -> None:
    require_write(SIM, context_given=True, yes=False, confirm=None)
    assert refusal(PROD, context_given=True, yes=False, confirm=None) == (
        'context "prod": https://1.2.3.4: refusing to write to a cluster that is not the sim (kube-system uid '
        "5d1c-uid) without confirmation; pass --yes, or run interactively to confirm")
    require_write(PROD, context_given=True, yes=True, confirm=None)
    near = Target(context="eafix-sim-2", cluster=SIM_CONTEXT, server=SIM.server, user="", namespace="default",
                  identity="sim-uid")
    assert not near.is_sim and "not the sim" in refusal(near, context_given=True, yes=False, confirm=None)
    # a real cluster's context renamed eafix-sim is still a real cluster: the server decides too
    renamed = Target(context=SIM_CONTEXT, cluster=SIM_CONTEXT, server="https://35.1.2.3", user="admin",
                     namespace="default", identity="prod-uid")
    assert not renamed.is_sim and "not the sim" in refusal(renamed, context_given=True, yes=False, confirm=None)
    assert Target(context=SIM_CONTEXT, cluster=SIM_CONTEXT, server="http://localhost:6443", user="",
                  namespace="default", identity="sim-uid").is_sim


def test_an_interactive_confirmation_repeats_the_context_and_the_identity() -> None:
    asked, yes = asker(True)
    require_write(PROD, context_given=True, yes=False, confirm=yes)
    assert asked == [confirmation_prompt(PROD)] == [
        'Write to context "prod" (cluster "gke-prod" at https://1.2.3.4, kube-system uid 5d1c-uid)? This is not the '
        "sim. [y/N] "]
    assert refusal(PROD, context_given=True, yes=False, confirm=lambda prompt: False) == (
        'context "prod": https://1.2.3.4: the write to kube-system uid 5d1c-uid was not confirmed; nothing was sent; '
        "answer y, or pass --yes")
    asked, no = asker(False)
    require_write(SIM, context_given=True, yes=False, confirm=no)
    assert asked == []  # the sim is never asked about


@pytest.mark.sim
def test_the_guard_on_a_loaded_non_sim_context(sim: SimCluster, tmp_path: Path) -> None:
    target, client = load_target(kubeconfig=write(tmp_path / "kc", renamed(sim_doc(sim), "prod")), context="prod",
                                 timeout=TIMEOUT)
    client.close()
    assert not target.is_sim
    asked, no = asker(False)
    with pytest.raises(E.WriteNotConfirmed):
        require_write(target, context_given=True, yes=False, confirm=no)
    assert asked == [f'Write to context "prod" (cluster "prod" at {sim.url}, kube-system uid {identity(sim)})? This '
                     "is not the sim. [y/N] "]


@pytest.mark.sim
def test_a_reader_that_rbac_refuses_a_write_is_forbidden_with_the_user_named(sim: SimCluster, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from eafix_capacity.cli import main

    assert sim.store is not None
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "reader-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "reader"}]}
    sim.store.create(R.CLUSTERROLEBINDING, binding)
    kubeconfig = write(tmp_path / "kc", with_token(sim_doc(sim), sim.issue_token("reader")))
    manifest = write(tmp_path / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "x", "namespace": "default"}, "data": {"k": "v"}})
    code = main(["apply", str(manifest), "--context", "eafix-sim", "--kubeconfig", str(kubeconfig)])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == "" and "Traceback" not in err
    assert lines[-1] == (f'eafix-capacity: error: context "eafix-sim": {sim.url}: 403 Forbidden: configmaps "x" is '
                         'forbidden: User "reader" cannot patch resource "configmaps" in API group "" in the namespace '
                         '"default"; user "eafix-sim" is authenticated but RBAC does not allow this; ask for a binding '
                         "that does (kubectl auth can-i --list shows what it may do)")
