"""Schema validation, the check suite, and the literal-secret detector.

Strings that look like real secrets are assembled at run time so the repository never
contains one.
"""
from __future__ import annotations

import base64
import copy

import pytest

from eafix_capacity.errors import EafixCapacityError, ManifestError
from eafix_capacity.manifests.checks import run_checks
from eafix_capacity.manifests.layout import read_tree
from eafix_capacity.manifests.render import KUBERNETES_VERSION
from eafix_capacity.manifests.secrets import find_literal_secrets, is_placeholder, string_findings
from eafix_capacity.manifests.validate import SchemaSet, assert_valid, validate_objects
from eafix_capacity.manifests.workflow import build_profile, check_paths, generate

BASE = build_profile("recommended", mesh="istio").objects


def _objs():
    return copy.deepcopy(BASE)


def _find(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _pod(objs, name):
    kind = "StatefulSet" if name in ("redis", "postgres") else "Deployment"
    return _find(objs, kind, name)["spec"]["template"]["spec"]


def _fails(objs, check, obj_ref):
    report = run_checks(objs)
    rows = report.table[(report.table.check == check) & (report.table.object == obj_ref)]
    assert len(rows) == 1, rows
    return report, rows.iloc[0]


def _aws_key() -> str:
    return "".join(["AK", "IA"]) + "".join(chr(65 + (i * 7) % 26) for i in range(16))


def _pem() -> str:
    return "-----BEGIN " + "RSA PRIVATE" + " KEY-----\n" + "x" * 40 + "\n"


def _blob() -> str:
    return base64.b64encode(bytes((i * 37 + 11) % 256 for i in range(48))).decode()


# -- schema validation ---------------------------------------------------------------------

def test_the_rendering_validates_against_the_stated_kubernetes_version():
    assert KUBERNETES_VERSION == "1.32"
    assert validate_objects(BASE) == []


def test_schema_violation_names_object_and_field_path():
    objs = _objs()
    _pod(objs, "risk-manager")["containers"][0]["livenessProbe"]["initialDelaySecs"] = 3
    with pytest.raises(ManifestError) as e:
        assert_valid(objs)
    assert e.value.obj == "Deployment/eafix-trading/risk-manager"
    assert e.value.field == "spec.template.spec.containers[0].livenessProbe"
    assert "initialDelaySecs" in str(e.value)


def test_wrong_type_is_a_violation_at_its_path():
    objs = _objs()
    _find(objs, "Deployment", "gui-gateway")["spec"]["replicas"] = "two"
    (v,) = validate_objects(objs)
    assert (v.object, v.field) == ("Deployment/eafix-trading/gui-gateway", "spec.replicas")


def test_istio_objects_validate_against_the_kits_schemas():
    objs = _objs()
    _find(objs, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] = "STRICTEST"
    _find(objs, "DestinationRule", "redis")["spec"]["trafficPolicy"]["tls"]["sni_name"] = "x"
    found = {(v.object, v.field) for v in validate_objects(objs)}
    assert found == {("PeerAuthentication/eafix-trading/default", "spec.mtls.mode"),
                     ("DestinationRule/eafix-trading/redis", "spec.trafficPolicy.tls")}


def test_invalid_quantity_is_a_violation():
    objs = _objs()
    _pod(objs, "reporter")["containers"][0]["resources"]["limits"]["memory"] = "1.5 Gi"
    (v,) = validate_objects(objs)
    assert v.field == "spec.template.spec.containers[0].resources.limits.memory"
    assert "invalid quantity" in v.problem


def test_unknown_kinds_are_warnings_and_unknown_versions_errors():
    crd = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    (v,) = validate_objects([crd])
    assert v.severity == "warning"
    with pytest.raises(EafixCapacityError):
        SchemaSet("0.9")


# -- the check suite ------------------------------------------------------------------------

def test_the_rendering_passes_every_check():
    report = run_checks(BASE)
    assert report.passed, report.failures.to_string()
    assert set(report.table.check) == {"schema", "restricted", "resources", "probes", "image",
                                       "availability", "config", "secrets"}
    assert list(report.table.columns) == ["object", "file", "check", "status", "detail"]


def test_committed_trees_pass_the_check_suite():
    from eafix_capacity.paths import MANIFESTS_DIR
    for name in ("minimum", "recommended", "recommended-istio"):
        assert check_paths(MANIFESTS_DIR / name).passed, name


@pytest.mark.parametrize("mutate, check, needle", [
    (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "restricted", "privileged"),
    (lambda p: p["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"), "restricted", "readOnlyRootFilesystem"),
    (lambda p: p["securityContext"].pop("seccompProfile"), "restricted", "seccompProfile"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]), "restricted", "capabilities"),
    (lambda p: p.update(hostNetwork=True), "restricted", "hostNetwork"),
    (lambda p: p["containers"][0]["resources"].pop("limits"), "resources", "no limits.cpu"),
    (lambda p: p["containers"][0].pop("readinessProbe"), "probes", "no readinessProbe"),
    (lambda p: p["containers"][0].update(image="ghcr.io/x/data-ingestor:latest"), "image", "latest"),
    (lambda p: p["containers"][0].update(image="ghcr.io/x/data-ingestor"), "image", "no tag"),
    (lambda p: p.pop("topologySpreadConstraints"), "availability", "topologySpreadConstraint"),
])
def test_each_check_detects_its_failure(mutate, check, needle):
    objs = _objs()
    mutate(_pod(objs, "data-ingestor"))
    report, row = _fails(objs, check, "Deployment/eafix-trading/data-ingestor")
    assert row.status == "fail" and needle in row.detail
    assert not report.passed


def test_missing_pdb_for_a_multi_replica_service_fails():
    objs = [o for o in _objs() if not (o["kind"] == "PodDisruptionBudget"
                                       and o["metadata"]["name"] == "risk-manager-pdb")]
    _, row = _fails(objs, "availability", "Deployment/eafix-trading/risk-manager")
    assert "PodDisruptionBudget" in row.detail


def test_edited_redis_maxmemory_above_the_limit_fails():
    objs = _objs()
    cm = _find(objs, "ConfigMap", "redis-config")
    cm["data"]["redis.conf"] = cm["data"]["redis.conf"].replace("maxmemory 1536mb", "maxmemory 3gb")
    _, row = _fails(objs, "config", "StatefulSet/eafix-trading/redis")
    assert row.status == "fail" and "maxmemory 3gb" in row.detail
    cm["data"]["redis.conf"] = cm["data"]["redis.conf"].replace("maxmemory 3gb\n", "")
    _, row = _fails(objs, "config", "StatefulSet/eafix-trading/redis")
    assert "no maxmemory" in row.detail


def test_edited_postgres_shared_buffers_above_the_limit_fails():
    objs = _objs()
    cm = _find(objs, "ConfigMap", "postgres-config")
    cm["data"]["postgresql.conf"] = cm["data"]["postgresql.conf"].replace(
        "shared_buffers = 1GB", "shared_buffers = 3GB")
    _, row = _fails(objs, "config", "StatefulSet/eafix-trading/postgres")
    assert row.status == "fail" and "shared_buffers = 3GB" in row.detail


def test_jvm_heap_above_the_limit_fails_and_a_lower_one_passes():
    objs = _objs()
    env = {e["name"]: e for e in _pod(objs, "reporter")["containers"][0]["env"]}
    env["JAVA_OPTS"]["value"] = "-Xms512m -Xmx1g -Xmx1400m"
    _, row = _fails(objs, "config", "Deployment/eafix-trading/reporter")
    assert row.status == "fail" and "-Xmx1400m" in row.detail
    env["JAVA_OPTS"]["value"] = "-Xmx1100m"
    _, row = _fails(objs, "config", "Deployment/eafix-trading/reporter")
    assert row.status == "pass"


def test_literal_secret_in_secret_and_env_fails():
    objs = _objs()
    _find(objs, "Secret", "trading-secrets")["stringData"]["REDIS_PASSWORD"] = "correct-horse-" + "battery"
    _pod(objs, "gui-gateway")["containers"][0]["env"].append({"name": "API_TOKEN", "value": "t0k3n" + "value"})
    report = run_checks(objs)
    bad = report.failures[report.failures.check == "secrets"]
    assert set(bad.object) == {"Secret/eafix-trading/trading-secrets", "Deployment/eafix-trading/gui-gateway"}


# -- the detector -------------------------------------------------------------------------

@pytest.mark.parametrize("make, reason", [
    (_aws_key, "AWS"),
    (_pem, "private key"),
    (_blob, "high-entropy"),
    (lambda: "postgresql://trader:" + "s3cr3t" + "@postgres:5432/eafix", "URL"),
    (lambda: "gh" + "p_" + "A1b2C3d4" * 5, "token"),
])
def test_detector_flags_real_looking_values(make, reason):
    findings = string_findings(make(), field="x")
    assert findings and reason in findings[0].reason


@pytest.mark.parametrize("value", [
    "REPLACE_ME", "<redis-password>", "$(REDIS_PASSWORD)", "${POSTGRES_PASSWORD}",
    "ghcr.io/dicky1987/eafix-modular/data-ingestor:v0.1.0",
    "redis://redis:6379", "postgresql://$(USER):$(PASSWORD)@postgres:5432/x",
    "-Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=100",
    "registry.example.com/app@sha256:" + "ab12" * 16,
])
def test_detector_passes_placeholders_and_ordinary_values(value):
    assert string_findings(value, field="x") == []


def test_secret_data_must_decode_to_a_placeholder():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"ok": base64.b64encode(b"REPLACE_ME").decode(),
                       "bad": base64.b64encode(b"hunter" + b"22").decode()}}
    assert [f.field for f in find_literal_secrets(secret)] == ["data.bad"]
    assert is_placeholder("REPLACE_ME") and not is_placeholder("hunter")


def test_generate_refuses_to_write_a_secret_and_leaves_files_untouched(tmp_path, monkeypatch):
    out = tmp_path / "m"
    generate(profile="minimum", out_dir=out)
    before = read_tree(out)
    from eafix_capacity.manifests import workflow
    real_render = workflow.render

    def leaky(*args, **kwargs):
        objs = real_render(*args, **kwargs)
        cm = next(o for o in objs if o["kind"] == "ConfigMap")
        cm["data"]["AWS_ACCESS_KEY_ID"] = _aws_key()
        return objs

    monkeypatch.setattr(workflow, "render", leaky)
    with pytest.raises(ManifestError) as e:
        generate(profile="minimum", out_dir=out)
    assert "looks like a real secret" in str(e.value) and e.value.field == "data.AWS_ACCESS_KEY_ID"
    assert read_tree(out) == before


def test_generate_refuses_a_schema_violation_and_leaves_files_untouched(tmp_path, monkeypatch):
    out = tmp_path / "m"
    generate(profile="minimum", out_dir=out)
    before = read_tree(out)
    from eafix_capacity.manifests import workflow
    real_render = workflow.render

    def broken(*args, **kwargs):
        objs = real_render(*args, **kwargs)
        next(o for o in objs if o["kind"] == "Deployment")["spec"]["replicas"] = "two"
        return objs

    monkeypatch.setattr(workflow, "render", broken)
    with pytest.raises(ManifestError) as e:
        generate(profile="minimum", out_dir=out)
    assert e.value.field == "spec.replicas" and "deployments/" in e.value.file
    assert read_tree(out) == before


@pytest.mark.parametrize("spec, blocked", [
    ({"minAvailable": 2}, "minAvailable 2"),
    ({"minAvailable": "100%"}, "minAvailable 100%"),
    ({"maxUnavailable": 0}, "maxUnavailable 0"),
    ({"maxUnavailable": "0%"}, "maxUnavailable 0%"),
    ({"minAvailable": 1}, None),
    ({"minAvailable": "50%"}, None),
    ({"maxUnavailable": "10%"}, None),   # rounds up to one pod
])
def test_a_pdb_that_allows_no_eviction_fails_availability(spec, blocked):
    objs = _objs()
    pdb = _find(objs, "PodDisruptionBudget", "risk-manager-pdb")
    pdb["spec"] = {**spec, "selector": pdb["spec"]["selector"]}
    report, row = _fails(objs, "availability", "Deployment/eafix-trading/risk-manager")
    if blocked is None:
        assert row.status == "pass", row.detail
    else:
        assert row.status == "fail" and not report.passed
        assert f"risk-manager-pdb: {blocked} with 2 replicas allows no eviction" in row.detail


def test_a_host_port_fails_the_restricted_profile():
    objs = _objs()
    _pod(objs, "data-ingestor")["containers"][0]["ports"][0]["hostPort"] = 8081
    _, row = _fails(objs, "restricted", "Deployment/eafix-trading/data-ingestor")
    assert row.status == "fail" and "hostPort 8081" in row.detail


@pytest.mark.parametrize("mutate", [
    lambda p: p.update(containers="main"),
    lambda p: p["containers"].__setitem__(0, "main"),
    lambda p: p["containers"][0].update(securityContext="restricted"),
    lambda p: p["containers"][0].update(resources="small"),
    lambda p: p.update(volumes=["tmp"]),
])
def test_malformed_pod_specs_are_reported_not_raised(mutate):
    objs = _objs()
    mutate(_pod(objs, "risk-manager"))
    report = run_checks(objs)
    rows = report.table[report.table.object == "Deployment/eafix-trading/risk-manager"]
    assert rows[rows.check == "schema"].iloc[0].status == "fail"
    assert not report.passed and (rows.status == "fail").sum() >= 2


def test_wrong_typed_replicas_is_a_schema_failure_not_a_crash():
    objs = _objs()
    _find(objs, "Deployment", "risk-manager")["spec"]["replicas"] = "two"
    report, row = _fails(objs, "schema", "Deployment/eafix-trading/risk-manager")
    assert row.status == "fail" and "spec.replicas" in row.detail


def test_a_foreign_kind_with_an_istio_kind_name_gets_no_istio_schema():
    foreign = {"apiVersion": "networking.example.io/v1beta1", "kind": "Gateway",
               "metadata": {"name": "g", "namespace": "x"}, "spec": {"listeners": []}}
    (v,) = validate_objects([foreign])
    assert v.severity == "warning" and "no schema for Gateway networking.example.io/v1beta1" in v.problem
