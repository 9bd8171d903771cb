"""The sim's audit log (kube-apiserver's --audit-log-path, Metadata level), driven in-process."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from eafix_capacity.errors import OutputError
from eafix_capacity.sim import cli
from eafix_capacity.sim.api import Api
from eafix_capacity.sim.audit import AuditLog
from eafix_capacity.sim.auth import Auth
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.store import Store

START = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
JSON = {"content-type": "application/json", "user-agent": "kubectl/v1.32.0 (linux/amd64)"}


def _api(tmp_path: Path, *, enforce: bool = False) -> tuple[Api, Auth, Path]:
    clock = SimClock(start=START, speed=0)
    store = Store(clock=clock)
    auth = Auth(store=store, enforce=enforce, now=clock.now)
    path = tmp_path / "audit.log"
    return Api(store, auth=auth, audit=AuditLog(path, now=clock.now)), auth, path


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _cm(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}).encode()


def test_each_request_is_one_event_with_the_request_info_verb(tmp_path: Path) -> None:
    api, _, path = _api(tmp_path)
    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}).encode()
    calls = [
        ("POST", "/api/v1/namespaces", "", ns),
        ("POST", "/api/v1/namespaces/t/configmaps", "", _cm("a")),
        ("GET", "/api/v1/namespaces/t/configmaps/a", "", b""),
        ("GET", "/api/v1/namespaces/t/configmaps", "labelSelector=x%3Dy", b""),
        ("PUT", "/api/v1/namespaces/t/configmaps/a", "", _cm("a")),
        ("PATCH", "/api/v1/namespaces/t/configmaps/a", "", b'{"data":{"k":"w"}}'),
        ("DELETE", "/api/v1/namespaces/t/configmaps/a", "", b""),
        ("DELETE", "/api/v1/namespaces/t/configmaps", "", b""),
        ("GET", "/api/v1/namespaces/t/configmaps/missing", "", b""),
        ("GET", "/version", "", b""),
    ]
    statuses = []
    for method, p, q, body in calls:
        headers = dict(JSON, **({"content-type": "application/merge-patch+json"} if method == "PATCH" else {}))
        statuses.append(api.handle(method, p, q, headers, body).status)
    assert statuses == [201, 201, 200, 200, 200, 200, 200, 200, 404, 200]
    events = _events(path)
    assert [e["verb"] for e in events] == ["create", "create", "get", "list", "update", "patch", "delete",
                                           "deletecollection", "get", "get"]
    for e in events:
        assert (e["kind"], e["apiVersion"], e["level"], e["stage"]) == ("Event", "audit.k8s.io/v1", "Metadata",
                                                                        "ResponseComplete")
        assert e["user"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
        assert e["requestReceivedTimestamp"] == "2026-01-14T06:00:00.000000Z"  # the sim clock, in MicroTime
        assert e["userAgent"] == "kubectl/v1.32.0 (linux/amd64)"
    assert len({e["auditID"] for e in events}) == len(events)
    assert events[3]["requestURI"] == "/api/v1/namespaces/t/configmaps?labelSelector=x%3Dy"
    assert events[2]["objectRef"] == {"resource": "configmaps", "namespace": "t", "name": "a", "apiVersion": "v1"}
    assert events[3]["objectRef"] == {"resource": "configmaps", "namespace": "t", "apiVersion": "v1"}
    assert events[0]["responseStatus"] == {"metadata": {}, "code": 201}
    missing = events[8]["responseStatus"]
    assert missing["code"] == 404 and missing["reason"] == "NotFound" and missing["status"] == "Failure"
    assert missing["message"] == 'configmaps "missing" not found'
    assert "objectRef" not in events[9]  # a non-resource request


def test_a_watch_is_logged_when_it_starts_and_when_it_ends(tmp_path: Path) -> None:
    api, _, path = _api(tmp_path)
    assert api.handle("POST", "/api/v1/namespaces/default/configmaps", "", JSON, _cm("a")).status == 201
    resp = api.handle("GET", "/apis/apps/v1/namespaces/t/deployments", "watch=true&timeoutSeconds=5", JSON, b"")
    assert resp.stream is not None
    started = _events(path)[1:]
    assert [(e["verb"], e["stage"]) for e in started] == [("watch", "ResponseStarted")]
    assert started[0]["objectRef"] == {"resource": "deployments", "namespace": "t", "apiGroup": "apps",
                                       "apiVersion": "v1"}
    resp.stream.close()  # the client went away before the first frame
    resp = api.handle("GET", "/api/v1/namespaces/default/configmaps", "watch=true&timeoutSeconds=5", JSON, b"")
    assert resp.stream is not None
    assert b'"type":"ADDED"' in next(resp.stream)
    resp.stream.close()
    both = _events(path)[2:]
    assert [(e["verb"], e["stage"]) for e in both] == [("watch", "ResponseStarted"), ("watch", "ResponseComplete")]
    assert both[0]["auditID"] == both[1]["auditID"]


def test_with_auth_the_event_names_the_authenticated_user(tmp_path: Path) -> None:
    api, auth, path = _api(tmp_path, enforce=True)
    admin = auth.issue_token("alice", groups=("system:masters",))
    nobody = auth.issue_token("bob")
    headers = lambda token: dict(JSON, authorization=f"Bearer {token}")  # noqa: E731
    assert api.handle("GET", "/api/v1/namespaces", "", headers(admin), b"").status == 200
    assert api.handle("GET", "/api/v1/namespaces", "", headers(nobody), b"").status == 403
    assert api.handle("GET", "/api/v1/namespaces", "", dict(JSON, authorization="Bearer wrong"), b"").status == 401
    assert api.handle("GET", "/api/v1/nodes", "", dict(headers(admin), **{"impersonate-user": "carol"}),
                      b"").status == 403
    alice, bob, failed, impersonated = _events(path)
    assert alice["user"] == {"username": "alice", "groups": ["system:masters", "system:authenticated"]}
    assert bob["user"]["username"] == "bob" and bob["responseStatus"]["code"] == 403
    assert bob["responseStatus"]["message"] == ('namespaces is forbidden: User "bob" cannot list resource '
                                                '"namespaces" in API group "" at the cluster scope')
    assert failed["user"] == {} and failed["responseStatus"]["code"] == 401
    assert impersonated["user"]["username"] == "alice"
    assert impersonated["impersonatedUser"]["username"] == "carol"  # carol may not list nodes: 403


@pytest.mark.sim
def test_the_log_is_appended_to_and_a_bad_path_is_one_line_at_start(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"earlier": true}\n', encoding="utf-8")
    log = AuditLog(path)
    log.write({"kind": "Event"})
    log.close()
    assert path.read_text(encoding="utf-8").splitlines() == ['{"earlier": true}', '{"kind":"Event"}']
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match=f"cannot write the audit log to {blocker}/a.log: parent {blocker} is not "
                                          "a directory"):
        SimCluster(audit_log=blocker / "a.log", system_pods=False, controllers=False).start()
    with pytest.raises(OutputError, match="cannot write the audit log to .*: Is a directory"):
        AuditLog(tmp_path)
    assert cli.main(["sim", "up", "--nodes", "0", "--audit-log", str(blocker / "a.log")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: cannot write the audit log to {blocker}/a.log: parent {blocker} is not a directory"


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_sim_started_with_an_audit_log_writes_each_request_of_kubectl(tmp_path: Path) -> None:
    from eafix_capacity.sim.testing import run_kubectl

    path = tmp_path / "audit.log"
    with SimCluster(nodes=1, speed=0, audit_log=path, kubeconfig=tmp_path / "kc", system_pods=False) as sim:
        run_kubectl(sim, "create", "configmap", "x", "-n", "default", cache_dir=tmp_path / "cache")
        size = path.stat().st_size
    assert size > 0
    events = _events(path)
    writes = [e for e in events if e["verb"] == "create"]
    assert [(e["objectRef"]["resource"], e["objectRef"].get("name", "")) for e in writes] == [("configmaps", "")]
    assert writes[0]["requestURI"].startswith("/api/v1/namespaces/default/configmaps")
    assert writes[0]["userAgent"].startswith("kubectl/")
