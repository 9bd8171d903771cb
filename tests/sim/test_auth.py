"""``sim up --auth``: authentication, impersonation and RBAC as kube-apiserver answers them.

One sim with auth per module; the refusals go through the real kubectl and the official client,
and each asserts the real status code and message.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import kubernetes
import pytest
import yaml

from eafix_capacity.errors import ClusterError, InputError
from eafix_capacity.sim import auth as A
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.cli import add_parser, main as sim_main
from eafix_capacity.sim.cluster import CONTEXT, DUMMY_TOKEN, SimCluster
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

NS = "y"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    base = tmp_path_factory.mktemp("auth")
    tokens = base / "tokens.csv"
    tokens.write_text('tok-carol-not-a-secret,carol,u-7,"team-a,team-b"\n')
    with SimCluster(kubeconfig=base / "kubeconfig", nodes=1, auth=True, token_file=tokens) as cluster:
        admin(cluster, "/api/v1/namespaces", {"metadata": {"name": NS}})
        admin(cluster, f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "bot"}})
        yield cluster


def kubectl(sim: SimCluster, *args: str, token: str | None = None, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cache = Path(str(sim.kubeconfig)).parent / "kube-cache"
    extra = (f"--token={token}",) if token else ()
    return run_kubectl(sim, *extra, *args, cache_dir=cache, check=check, stdin=stdin)


def refused(sim: SimCluster, *args: str, token: str | None = None) -> str:
    result = kubectl(sim, *args, token=token, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip()


def ca_pem(sim: SimCluster) -> bytes:
    doc = yaml.safe_load(Path(str(sim.kubeconfig)).read_text())
    return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])


def raw(sim: SimCluster, method: str, path: str, *, token: str | None = None,
        body: dict | None = None) -> tuple[int, bytes]:
    context = ssl.create_default_context(cadata=ca_pem(sim).decode())
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(sim.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def admin_token(sim: SimCluster) -> str:
    return str(yaml.safe_load(Path(str(sim.kubeconfig)).read_text())["users"][0]["user"]["token"])


def admin(sim: SimCluster, path: str, body: dict) -> None:
    """POST as the admin (set-up without a kubectl process)."""
    status, answer = raw(sim, "POST", path, token=admin_token(sim), body=body)
    assert status == 201, answer


def bind(sim: SimCluster, name: str, *, role: str, user: str, kind: str = "ClusterRole") -> None:
    admin(sim, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", {
        "metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


# --- the kubeconfig, authentication ------------------------------------------------------------------

def test_kubeconfig_names_the_user_as_kind_does_with_a_private_random_admin_token(sim: SimCluster) -> None:
    path = Path(str(sim.kubeconfig))
    doc = yaml.safe_load(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [c["name"] for c in doc["clusters"]] == [CONTEXT] and [u["name"] for u in doc["users"]] == [CONTEXT]
    assert doc["contexts"][0]["context"] == {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}
    assert sim.url.startswith("https://") and admin_token(sim) != DUMMY_TOKEN and len(admin_token(sim)) >= 40
    who = kubectl(sim, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"] == {"username": "kubernetes-admin",
                                                            "groups": ["system:masters", "system:authenticated"]}


def test_a_wrong_or_missing_token_is_401_unauthorized(sim: SimCluster) -> None:
    # discovery's 401 is worded by client-go, a request's by the Status body
    assert refused(sim, "get", "pods", token="not-a-token").splitlines()[-1] == (
        "error: You must be logged in to the server (the server has asked for the client to provide credentials)")
    assert refused(sim, "auth", "whoami", token="not-a-token") == (
        "error: You must be logged in to the server (Unauthorized)")
    status, body = raw(sim, "GET", "/api/v1/namespaces/y/pods")
    assert status == 401 and body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                                      b'"message":"Unauthorized","reason":"Unauthorized","code":401}')
    assert raw(sim, "GET", "/version")[0] == 401  # anonymous only on the health endpoints
    assert raw(sim, "GET", "/healthz") == (200, b"ok")
    assert raw(sim, "GET", "/healthz", token="not-a-token")[0] == 401  # a bad token is never anonymous


def test_a_token_file_user_authenticates_with_its_groups(sim: SimCluster) -> None:
    who = json.loads(kubectl(sim, "auth", "whoami", "-o", "json", token="tok-carol-not-a-secret").stdout)
    assert who["status"]["userInfo"] == {"username": "carol", "uid": "u-7",
                                         "groups": ["team-a", "team-b", "system:authenticated"]}


def test_token_file_and_flags_refused_when_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 3 columns"):
        A.parse_token_file("tok,alice\n", path="t.csv")
    with pytest.raises(InputError, match="only read with auth"):
        SimCluster(token_file=tmp_path / "t.csv")
    assert sim_main(["sim", "up", "--token-auth-file", str(tmp_path / "t.csv")]) == 2
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "up", "--auth", "--token-auth-file", "t.csv"])
    assert (args.auth, args.token_auth_file) == (True, "t.csv")
    assert parser.parse_args(["sim", "up"]).auth is False
    with SimCluster(nodes=0, controllers=False, kubeconfig=tmp_path / "kc") as plain:
        with pytest.raises(ClusterError, match="without auth"):
            plain.issue_token("x")
        assert plain.url.startswith("http://") and DUMMY_TOKEN in (tmp_path / "kc").read_text()


# --- RBAC ---------------------------------------------------------------------------------------------

def test_rbac_refusals_carry_the_real_403_messages(sim: SimCluster) -> None:
    x = sim.issue_token("x")
    assert refused(sim, "get", "pods", "-n", NS, token=x) == (
        'Error from server (Forbidden): pods is forbidden: User "x" cannot list resource "pods" in API group "" '
        'in the namespace "y"')
    assert refused(sim, "get", "nodes", token=x) == (
        'Error from server (Forbidden): nodes is forbidden: User "x" cannot list resource "nodes" in API group "" '
        "at the cluster scope")
    status, body = raw(sim, "GET", "/api/v1/namespaces/y/configmaps/settings", token=x)
    assert status == 403 and json.loads(body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "settings" is forbidden: User "x" cannot get resource "configmaps" in API group "" '
                   'in the namespace "y"', "reason": "Forbidden", "details": {"name": "settings", "kind": "configmaps"},
        "code": 403}
    assert list(json.loads(body)) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details",
                                      "code"]
    assert raw(sim, "GET", "/api", token=x)[0] == 200  # system:discovery, bound to system:authenticated
    status, body = raw(sim, "GET", "/metrics", token=x)
    assert status == 403 and json.loads(body)["message"] == 'forbidden: User "x" cannot get path "/metrics"'


def test_a_rolebinding_grants_its_role_and_can_i_answers_truly(sim: SimCluster) -> None:
    dev = sim.issue_token("dev")
    kubectl(sim, "create", "role", "deployer", "--verb=get,list,watch,create", "--resource=deployments.apps",
            "-n", NS)
    kubectl(sim, "create", "rolebinding", "dev-deployer", "--role=deployer", "--user=dev", "-n", NS)
    assert kubectl(sim, "auth", "can-i", "create", "deployments", "-n", NS, token=dev).stdout.strip() == "yes"
    no = kubectl(sim, "auth", "can-i", "delete", "deployments", "-n", NS, token=dev, check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    assert kubectl(sim, "auth", "can-i", "create", "deployments", "-n", "default", token=dev,
                   check=False).stdout.strip() == "no"
    listed = kubectl(sim, "auth", "can-i", "--list", "-n", NS, token=dev).stdout
    assert any(line.split()[:1] == ["deployments.apps"] and "[get list watch create]" in line
               for line in listed.splitlines())
    kubectl(sim, "create", "deployment", "web", "--image=nginx:1.25", "-n", NS, token=dev)
    sim.settle()
    assert sim.store is not None and sim.store.count(R.POD) >= 1  # the controllers run unchecked
    assert refused(sim, "scale", "deployment", "web", "--replicas=2", "-n", NS, token=dev) == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "dev" cannot patch resource '
        '"deployments/scale" in API group "apps" in the namespace "y"')
    assert refused(sim, "delete", "deployment", "web", "-n", NS, token=dev) == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "dev" cannot delete resource '
        '"deployments" in API group "apps" in the namespace "y"')
    bind(sim, "dev-missing", role="nonexistent", user="dev", kind="Role")
    assert refused(sim, "get", "secrets", "-n", NS, token=dev).endswith(
        'cannot list resource "secrets" in API group "" in the namespace "y": '
        'RBAC: role.rbac.authorization.k8s.io "nonexistent" not found')


def test_the_official_client_sees_the_same_refusal(sim: SimCluster, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(ca_pem(sim))
    config = kubernetes.client.Configuration()
    config.host, config.ssl_ca_cert = sim.url, str(ca)
    config.api_key = {"authorization": f"Bearer {sim.issue_token('x')}"}
    with kubernetes.client.ApiClient(config) as client:
        with pytest.raises(kubernetes.client.ApiException) as err:
            kubernetes.client.CoreV1Api(client).list_namespaced_secret(NS)
    assert err.value.status == 403
    assert json.loads(err.value.body or "{}")["message"] == (
        'secrets is forbidden: User "x" cannot list resource "secrets" in API group "" in the namespace "y"')


def test_privilege_escalation_is_refused(sim: SimCluster) -> None:
    lead = sim.issue_token("lead")
    bind(sim, "lead-admin", role="admin", user="lead")
    kubectl(sim, "create", "role", "pod-reader", "--verb=get", "--resource=pods", "-n", NS, token=lead)
    assert refused(sim, "create", "rolebinding", "lead-root", "--clusterrole=cluster-admin", "--user=lead",
                   "-n", NS, token=lead) == (
        'error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io "lead-root" is forbidden: '
        'user "lead" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}')
    monitoring = ("create", "rolebinding", "ops-monitoring", "--clusterrole=system:monitoring", "--user=ops", "-n", NS)
    assert "is attempting to grant RBAC permissions not currently held" in refused(sim, *monitoring, token=lead)
    admin(sim, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", {  # the bind verb lifts the check
        "metadata": {"name": "bind-monitoring"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"],
                                                            "resources": ["clusterroles"], "verbs": ["bind"],
                                                            "resourceNames": ["system:monitoring"]}]})
    bind(sim, "lead-bind-monitoring", role="bind-monitoring", user="lead", kind="Role")
    kubectl(sim, *monitoring, token=lead)
    assert refused(sim, "create", "role", "node-reader", "--verb=get,list", "--resource=nodes", "-n", NS,
                   token=lead).endswith(
        'is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], '
        'Verbs:["get" "list"]}')


def test_apply_that_creates_needs_create(sim: SimCluster, tmp_path: Path) -> None:
    admin(sim, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", {
        "metadata": {"name": "patcher"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                                    "verbs": ["patch", "get"]}]})
    bind(sim, "patcher", role="patcher", user="patcher", kind="Role")
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": NS},
                "data": {"a": "1"}}
    result = kubectl(sim, "apply", "--server-side", "-f", "-", token=sim.issue_token("patcher"), check=False,
                     stdin=json.dumps(manifest))
    # handlers/patch.go withAuthorization: NewForbidden with RBAC's reason, empty here
    assert (result.returncode, result.stderr.strip()) == (1, 'Error from server (Forbidden): configmaps "new" is '
                                                             "forbidden:")


# --- TokenRequest, ServiceAccounts ------------------------------------------------------------------------

def test_create_token_authenticates_as_the_service_account(sim: SimCluster) -> None:
    token = kubectl(sim, "create", "token", "bot", "-n", NS).stdout.strip()
    who = json.loads(kubectl(sim, "auth", "whoami", "-o", "json", token=token).stdout)["status"]["userInfo"]
    assert who["username"] == "system:serviceaccount:y:bot"
    assert who["groups"] == ["system:serviceaccounts", "system:serviceaccounts:y", "system:authenticated"]
    assert refused(sim, "get", "pods", "-n", NS, token=token) == (
        'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:y:bot" cannot list '
        'resource "pods" in API group "" in the namespace "y"')
    admin(sim, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", {
        "metadata": {"name": "bot-view"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                      "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot"}]})  # the binding's namespace is the account's
    assert kubectl(sim, "get", "pods", "-n", NS, token=token).returncode == 0


def test_token_requests_refused_as_a_real_server_refuses_them(sim: SimCluster) -> None:
    assert refused(sim, "create", "token", "bot", "-n", NS, "--duration=1m") == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        "Invalid value: 60: may not specify a duration less than 10 minutes")
    assert refused(sim, "create", "token", "nobody", "-n", NS) == (
        'error: failed to create token: serviceaccounts "nobody" not found')
    admin(sim, f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "temp"}})
    other = kubectl(sim, "create", "token", "temp", "-n", NS, "--audience=vault").stdout.strip()
    assert refused(sim, "auth", "whoami", token=other).endswith("(Unauthorized)")  # not for the API server
    token = kubectl(sim, "create", "token", "temp", "-n", NS).stdout.strip()
    assert raw(sim, "DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/temp", token=admin_token(sim))[0] == 200
    assert refused(sim, "auth", "whoami", token=token).endswith("(Unauthorized)")  # its account is gone


def test_tokens_expire_on_the_sim_clock(sim: SimCluster) -> None:
    token = kubectl(sim, "create", "token", "bot", "-n", NS, "--duration=10m").stdout.strip()
    assert kubectl(sim, "auth", "whoami", token=token).returncode == 0
    assert sim.clock is not None
    sim.clock.advance(601)
    assert refused(sim, "auth", "whoami", token=token).endswith("(Unauthorized)")


# --- impersonation ---------------------------------------------------------------------------------------

def test_impersonation_needs_the_impersonate_verb(sim: SimCluster) -> None:
    assert refused(sim, "get", "pods", "-n", NS, "--as=x") == (
        'Error from server (Forbidden): pods is forbidden: User "x" cannot list resource "pods" in API group "" '
        'in the namespace "y"')
    who = json.loads(kubectl(sim, "auth", "whoami", "-o", "json", "--as=system:serviceaccount:y:bot").stdout)
    assert who["status"]["userInfo"] == {"username": "system:serviceaccount:y:bot", "groups": [
        "system:serviceaccounts", "system:serviceaccounts:y", "system:authenticated"]}
    who = json.loads(kubectl(sim, "auth", "whoami", "-o", "json", "--as=x", "--as-group=g1", "--as-group=g2").stdout)
    assert who["status"]["userInfo"] == {"username": "x", "groups": ["g1", "g2", "system:authenticated"]}
    x = sim.issue_token("x")
    assert refused(sim, "get", "pods", "--as=admin", token=x) == (
        'Error from server (Forbidden): users "admin" is forbidden: User "x" cannot impersonate resource "users" '
        'in API group "" at the cluster scope')
    assert refused(sim, "get", "pods", "-n", NS, "--as=system:serviceaccount:y:bot", token=x) == (
        'Error from server (Forbidden): serviceaccounts "bot" is forbidden: User "x" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "y"')
    assert kubectl(sim, "auth", "can-i", "list", "nodes", "--as=x", check=False).stdout.strip() == "no"


# --- pure rules -----------------------------------------------------------------------------------------

USER = A.UserInfo("u", groups=("system:authenticated",))


@pytest.mark.parametrize(("method", "path", "query", "want"), [
    ("GET", "/api/v1/namespaces/ns/pods", "", ("list", "ns", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=true", ("watch", "ns", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns/pods", "fieldSelector=metadata.name%3Dweb", ("list", "ns", "pods", "web", "")),
    ("GET", "/api/v1/namespaces/ns/pods/web/log", "", ("get", "ns", "pods", "web", "log")),
    ("DELETE", "/api/v1/namespaces/ns/pods", "", ("deletecollection", "ns", "pods", "", "")),
    ("GET", "/api/v1/namespaces/ns", "", ("get", "ns", "namespaces", "ns", "")),
    ("PUT", "/api/v1/namespaces/ns/finalize", "", ("update", "ns", "namespaces", "ns", "finalize")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web/scale", "", ("patch", "ns", "deployments", "web",
                                                                         "scale")),
    ("POST", "/api/v1/namespaces/ns/serviceaccounts/bot/token", "", ("create", "ns", "serviceaccounts", "bot",
                                                                     "token")),
])
def test_request_attributes_as_request_info_factory(method: str, path: str, query: str,
                                                    want: tuple[str, ...]) -> None:
    a = A.request_attributes(method, path, query, USER)
    assert a.resource_request and (a.verb, a.namespace, a.resource, a.name, a.subresource) == want


def test_non_resource_paths_and_rule_matching() -> None:
    for path in ("/api", "/api/v1", "/apis/apps/v1", "/version"):
        assert not A.request_attributes("GET", path, "", USER).resource_request
    pods = A.request_attributes("GET", "/api/v1/namespaces/ns/pods/web/status", "", USER)
    assert A.rule_allows(pods, {"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]})
    assert not A.rule_allows(pods, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
    assert not A.rule_allows(pods, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"],
                                    "resourceNames": ["other"]})
    api = A.request_attributes("GET", "/apis/apps/v1", "", USER)
    assert A.rule_allows(api, {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]})
    assert not A.rule_allows(api, {"verbs": ["get"], "nonResourceURLs": ["/api"]})


def test_escalation_coverage_rules() -> None:
    owned = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}]
    assert A.uncovered(owned, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "services/status"]}]) == []
    missing = A.uncovered(owned, [{"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}])
    assert [A.compact_string(r) for r in A.compact_rules(missing)] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}']
    assert A.uncovered([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["pods"], "resourceNames": ["a"]}],
                       [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])  # a name is narrower


def test_bootstrap_policy_holds_the_real_roles() -> None:
    roles = {obj["metadata"]["name"]: obj for rt, obj in A.bootstrap_policy() if rt == R.CLUSTERROLE}
    view = A.Attributes(USER, "list", True, resource="pods", namespace="ns")
    secrets = A.Attributes(USER, "get", True, resource="secrets", namespace="ns")
    assert any(A.rule_allows(view, r) for r in roles["view"]["rules"])
    assert not any(A.rule_allows(secrets, r) for r in roles["view"]["rules"])  # view cannot read secrets
    assert any(A.rule_allows(secrets, r) for r in roles["edit"]["rules"])
    bind = A.Attributes(USER, "create", True, api_group="rbac.authorization.k8s.io", resource="rolebindings",
                        namespace="ns")
    assert any(A.rule_allows(bind, r) for r in roles["admin"]["rules"])
    assert not any(A.rule_allows(bind, r) for r in roles["edit"]["rules"])


def test_status_bodies_in_the_real_field_order() -> None:
    body = ApiError(404, "NotFound", 'pods "a" not found', details={"name": "a", "group": "", "kind": "pods"}).status()
    assert list(body) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert body["details"] == {"name": "a", "kind": "pods"}
    assert "details" not in ApiError(400, "BadRequest", "bad").status()
