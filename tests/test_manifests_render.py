"""The rendering carries exactly the catalogue's sizing and the seed's conventions."""
from __future__ import annotations

from dataclasses import replace

import pytest

from eafix_capacity.catalog import load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.profiles import load_profiles
from eafix_capacity.quantity import parse
from eafix_capacity.scenarios import peak_totals, uses_recreate
from eafix_capacity.manifests import runtime
from eafix_capacity.manifests.render import RenderOptions, image_for, render

CATALOG = load_catalog()
PROFILES = load_profiles()


def _render(profile: str = "recommended", **options) -> list[dict]:
    return render(CATALOG, PROFILES[profile], RenderOptions(**options))


def _by(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _workloads(objects: list[dict]) -> dict[str, dict]:
    return {**_by(objects, "Deployment"), **_by(objects, "StatefulSet")}


def test_every_service_has_a_workload_with_its_replicas_requests_and_limits():
    work = _workloads(_render())
    assert set(work) == set(CATALOG.names())
    for svc in CATALOG.services:
        w = work[svc.name]
        assert w["kind"] == svc.kind
        if svc.hpa is None:
            assert w["spec"]["replicas"] == svc.replicas
        else:  # left to the HPA, whose floor is the plan's baseline
            assert "replicas" not in w["spec"]
            assert w["metadata"]["annotations"]["eafix.io/replicas"] == str(svc.replicas)
        containers = w["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == [c.name for c in svc.containers]
        for c, cat in zip(containers, svc.containers):
            r = c["resources"]
            assert parse(r["requests"]["cpu"]).milli_value() == cat.resources.cpu_request_m
            assert parse(r["requests"]["memory"]).int_value() == cat.resources.memory_request_bytes
            assert parse(r["limits"]["cpu"]).milli_value() == cat.resources.cpu_limit_m
            assert parse(r["limits"]["memory"]).int_value() == cat.resources.memory_limit_bytes


def test_hpas_match_the_catalogue():
    objs = _render()
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in objs if o["kind"] == "HorizontalPodAutoscaler"}
    expected = {s.name: s.hpa for s in CATALOG.services if s.hpa}
    assert set(hpas) == set(expected)
    sg = hpas["signal-generator"]
    assert sg["metadata"]["name"] == "signal-generator-hpa"
    assert (sg["spec"]["minReplicas"], sg["spec"]["maxReplicas"]) == (2, 10)
    assert sg["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_storage_is_volume_claim_templates_for_statefulsets_and_pvcs_for_deployments():
    objs = _render()
    work = _workloads(objs)
    pvcs = _by(objs, "PersistentVolumeClaim")
    for svc in CATALOG.services:
        for v in svc.volumes:
            if svc.kind == "StatefulSet":
                tmpl = {t["metadata"]["name"]: t for t in work[svc.name]["spec"]["volumeClaimTemplates"]}
                size = tmpl[v.name]["spec"]["resources"]["requests"]["storage"]
            else:
                size = pvcs[f"{svc.name}-{v.name}"]["spec"]["resources"]["requests"]["storage"]
            assert parse(size).int_value() == v.size_bytes
    assert _by(objs, "StorageClass").keys() == {"eafix-ssd"}
    assert _by(_render("minimum"), "StorageClass").keys() == {"eafix-standard"}


def test_redis_and_postgres_are_statefulsets_with_headless_services_and_seed_labels():
    objs = _render()
    services = _by(objs, "Service")
    for name in ("redis", "postgres"):
        sts = _by(objs, "StatefulSet")[name]
        assert sts["spec"]["serviceName"] == name
        assert services[name]["spec"]["clusterIP"] == "None"
        # kubectl wait -l app.kubernetes.io/name=redis
        assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name
        c = sts["spec"]["template"]["spec"]["containers"][0]
        assert "exec" in c["readinessProbe"] and "tcpSocket" in c["livenessProbe"]


def test_http_services_probe_healthz_with_the_seed_timings_and_are_scraped():
    work = _workloads(_render())
    for svc in CATALOG.services:
        if svc.runtime not in ("generic", "jvm"):
            continue
        tmpl = work[svc.name]["spec"]["template"]
        c = tmpl["spec"]["containers"][0]
        live, ready = c["livenessProbe"], c["readinessProbe"]
        assert live["httpGet"]["path"] == ready["httpGet"]["path"] == "/healthz"
        assert (live["initialDelaySeconds"], live["periodSeconds"]) == (30, 10)
        assert (ready["initialDelaySeconds"], ready["periodSeconds"]) == (5, 5)
        assert tmpl["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(svc.port),
            "prometheus.io/path": "/metrics"}


def test_pods_meet_the_restricted_profile_and_spread_over_nodes():
    for w in _workloads(_render()).values():
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
        (spread,) = pod["topologySpreadConstraints"]
        assert spread == {
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": w["spec"]["selector"]["matchLabels"]}}
        assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == w["metadata"]["name"]


def test_pdbs_exist_exactly_for_multi_replica_services():
    objs = _render()
    pdbs = {o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for o in objs
            if o["kind"] == "PodDisruptionBudget"}
    multi = {s.name for s in CATALOG.services
             if s.replicas > 1 or (s.hpa and s.hpa.max_replicas > 1)}
    assert pdbs == multi and "reporter" not in pdbs


def test_images_are_tagged_never_latest_and_registry_override_applies():
    work = _workloads(_render(image_registry="registry.example.com/eafix", image_tag="v0.2.0"))
    di = work["data-ingestor"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert di == "registry.example.com/eafix/dicky1987/eafix-modular/data-ingestor:v0.2.0"
    assert work["redis"]["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/library/redis:7.2.5"
    default = _workloads(_render())
    assert default["signal-generator"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "ghcr.io/dicky1987/eafix-modular/signal-generator:v0.1.0"
    svc = replace(CATALOG.get("reporter"), image="")
    assert image_for(svc, RenderOptions()) == "reporter:v0.1.0"


@pytest.mark.parametrize("options, field", [
    ({"image_tag": "latest"}, "image_tag"),
    ({"image_tag": "bad tag"}, "image_tag"),
    ({"namespace": "Bad_NS"}, "namespace"),
    ({"mesh": "linkerd"}, "mesh"),
    ({"image_registry": "HTTP://x"}, "image_registry"),
])
def test_bad_options_are_input_errors(options, field):
    with pytest.raises(InputError) as e:
        _render(**options)
    assert e.value.field == field


def test_runtime_settings_fit_inside_the_limits():
    objs = _render()
    cms = _by(objs, "ConfigMap")
    assert "maxmemory 1536mb" in cms["redis-config"]["data"]["redis.conf"]   # 75% of 2Gi
    assert "shared_buffers = 1GB" in cms["postgres-config"]["data"]["postgresql.conf"]  # 25% of 4Gi
    reporter = _workloads(objs)["reporter"]["spec"]["template"]["spec"]["containers"][0]
    opts = {e["name"]: e.get("value") for e in reporter["env"]}["JAVA_OPTS"]
    assert opts == "-Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=100"   # the seed's JAVA_OPTS
    assert runtime.java_opts(3 * 2**30).startswith("-Xms1g -Xmx2g")
    assert runtime.redis_maxmemory_bytes(1000 * 2**20) == 750 * 2**20


def test_quota_admits_the_plans_peak_and_the_profiles_storage():
    for mesh in ("none", "istio"):
        objs = _render("minimum", mesh=mesh)
        hard = _by(objs, "ResourceQuota")["eafix-trading-quota"]["spec"]["hard"]
        peak = peak_totals(CATALOG, mesh=mesh)
        assert parse(hard["requests.cpu"]).milli_value() == peak.cpu_request_m
        assert parse(hard["requests.memory"]).int_value() == peak.memory_request_bytes
        assert parse(hard["limits.cpu"]).milli_value() == peak.cpu_limit_m
        assert parse(hard["limits.memory"]).int_value() == peak.memory_limit_bytes
        assert parse(hard["requests.storage"]).int_value() == PROFILES["minimum"].storage_bytes
        limits = _by(objs, "LimitRange")["eafix-trading-limits"]["spec"]["limits"][0]
        assert parse(limits["max"]["cpu"]).milli_value() == 2000


def test_rollout_strategy_follows_the_plans_surge_assumption():
    work = _workloads(_render())
    for svc in CATALOG.services:
        if svc.kind != "Deployment":
            continue
        strategy = work[svc.name]["spec"]["strategy"]
        assert strategy["type"] == ("Recreate" if uses_recreate(svc) else "RollingUpdate")


def test_mesh_adds_istio_objects_and_injection_label_but_no_sidecar_in_pod_specs():
    plain, mesh = _render(), _render(mesh="istio")
    ns = _by(mesh, "Namespace")["eafix-trading"]
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    assert "istio-injection" not in _by(plain, "Namespace")["eafix-trading"]["metadata"]["labels"]
    kinds = {o["kind"] for o in mesh} - {o["kind"] for o in plain}
    assert kinds == {"Gateway", "VirtualService", "DestinationRule", "PeerAuthentication",
                     "AuthorizationPolicy"}
    for w in _workloads(mesh).values():
        assert "istio-proxy" not in [c["name"] for c in w["spec"]["template"]["spec"]["containers"]]
    assert _workloads(mesh) == _workloads(plain)


def test_mesh_inject_false_is_labelled_on_the_pod():
    svcs = tuple(replace(s, mesh_inject=False) if s.name == "redis" else s for s in CATALOG.services)
    objs = render(replace(CATALOG, services=svcs), PROFILES["recommended"], RenderOptions(mesh="istio"))
    labels = _by(objs, "StatefulSet")["redis"]["spec"]["template"]["metadata"]["labels"]
    assert labels["sidecar.istio.io/inject"] == "false"


def test_namespace_enforces_restricted_and_secrets_are_placeholders():
    objs = _render(namespace="eafix-staging")
    ns = _by(objs, "Namespace")["eafix-staging"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(o["metadata"].get("namespace", "eafix-staging") == "eafix-staging" for o in objs)
    secret = _by(objs, "Secret")["trading-secrets"]
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    assert "data" not in secret
    assert {"SecretStore", "ExternalSecret"} <= {o["kind"] for o in objs}


def test_network_policies_start_from_default_deny():
    pols = _by(_render(), "NetworkPolicy")
    deny = pols["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    redis = pols["redis-traffic"]["spec"]
    assert redis["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert "egress" not in redis
    for s in CATALOG.services:
        assert f"{s.name}-traffic" in pols


def test_render_is_deterministic():
    assert _render(mesh="istio") == _render(mesh="istio")


# -- what the NetworkPolicies let through ---------------------------------------------------

def _pod_labels(objs: list[dict], name: str) -> dict:
    return _workloads(objs)[name]["spec"]["template"]["metadata"]["labels"]


def _peer_matches(peer: dict, policy_ns: str, ns: str, labels: dict) -> bool:
    from eafix_capacity.kobject import selector_matches
    if "ipBlock" in peer:   # the policies' ipBlocks leave out the private ranges pods live in
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return selector_matches(peer.get("podSelector", {}), labels)


def _rule_allows(rule: dict, key: str, policy_ns: str, peer: tuple[str, dict], port: int, proto: str) -> bool:
    ports = rule.get("ports")
    if ports is not None and not any(p.get("protocol", "TCP") == proto and p.get("port") == port
                                     for p in ports):
        return False
    peers = rule.get(key)
    return peers is None or any(_peer_matches(p, policy_ns, *peer) for p in peers)


def _side_allows(pols: list[dict], direction: str, me: tuple[str, dict], other: tuple[str, dict],
                 port: int, proto: str) -> bool:
    from eafix_capacity.kobject import selector_matches
    key = "from" if direction == "Ingress" else "to"
    field = direction.lower()
    mine = [p for p in pols if p["metadata"]["namespace"] == me[0]
            and selector_matches(p["spec"]["podSelector"], me[1])
            and direction in p["spec"]["policyTypes"]]
    return not mine or any(_rule_allows(r, key, p["metadata"]["namespace"], other, port, proto)
                           for p in mine for r in p["spec"].get(field, []))


def _allowed(objs: list[dict], src: tuple[str, dict], dst: tuple[str, dict], port: int,
             proto: str = "TCP") -> bool:
    """NetworkPolicy semantics: the source's egress and the destination's ingress must both
    admit the connection (a pod no policy selects in a direction is open in it)."""
    pols = [o for o in objs if o["kind"] == "NetworkPolicy"]
    return (_side_allows(pols, "Egress", src, dst, port, proto)
            and _side_allows(pols, "Ingress", dst, src, port, proto))


NS = "eafix-trading"
INGRESS_CONTROLLER = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
ACME_SOLVER = (NS, {"acme.cert-manager.io/http01-solver": "true"})


@pytest.mark.parametrize("mesh", ["none", "istio"])
def test_prometheus_can_scrape_every_pod_that_asks_to_be_scraped(mesh):
    objs = _render(mesh=mesh)
    prom = (NS, _pod_labels(objs, "prometheus"))
    scraped = [(name, w["spec"]["template"]) for name, w in _workloads(objs).items()
               if (w["spec"]["template"]["metadata"].get("annotations") or {}).get("prometheus.io/scrape") == "true"]
    assert {"grafana", "prometheus", "signal-generator"} <= {n for n, _ in scraped}
    for name, tmpl in scraped:
        port = int(tmpl["metadata"]["annotations"]["prometheus.io/port"])
        assert _allowed(objs, prom, (NS, tmpl["metadata"]["labels"]), port), name


def test_network_policies_admit_what_the_services_need_and_nothing_broader():
    objs = _render()
    pods = {s.name: (NS, _pod_labels(objs, s.name)) for s in CATALOG.services}
    dns = ("kube-system", {"k8s-app": "kube-dns"})
    for name, pod in pods.items():
        assert _allowed(objs, pod, dns, 53, "UDP") and _allowed(objs, pod, dns, 53, "TCP"), name
    assert _allowed(objs, INGRESS_CONTROLLER, pods["gui-gateway"], 8080)
    assert not _allowed(objs, INGRESS_CONTROLLER, pods["risk-manager"], 8084)
    assert _allowed(objs, pods["signal-generator"], pods["redis"], 6379)
    assert _allowed(objs, pods["risk-manager"], pods["execution-engine"], 8085)
    assert not _allowed(objs, pods["grafana"], pods["redis"], 6379)
    assert not _allowed(objs, pods["signal-generator"], pods["redis"], 6380)


def test_cert_manager_http01_solver_is_reachable_from_the_ingress_controller_only():
    objs = _render()
    assert _allowed(objs, INGRESS_CONTROLLER, ACME_SOLVER, 8089)
    assert not _allowed(objs, INGRESS_CONTROLLER, ACME_SOLVER, 8080)
    assert not _allowed(objs, (NS, _pod_labels(objs, "risk-manager")), ACME_SOLVER, 8089)
    assert not _allowed(objs, ("default", {"app": "x"}), ACME_SOLVER, 8089)
    no_gateway = replace(CATALOG, services=tuple(s for s in CATALOG.services if s.name != "gui-gateway"))
    pols = _by(render(no_gateway, PROFILES["recommended"], RenderOptions()), "NetworkPolicy")
    assert "allow-acme-http01-solver" not in pols


def test_hpa_targets_leave_replicas_to_the_hpa_unless_scaled_to_zero():
    """`kubectl apply` of a Deployment with spec.replicas would reset an HPA-scaled service."""
    objects = _render()
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _by(objects, "HorizontalPodAutoscaler").values()}
    work = _workloads(objects)
    assert hpas, "the catalogue has at least one HPA"
    for name, hpa in hpas.items():
        assert "replicas" not in work[name]["spec"]
        assert hpa["spec"]["minReplicas"] <= int(work[name]["metadata"]["annotations"]["eafix.io/replicas"])
    scaled_to_zero = CATALOG.with_replicas({"signal-generator": 0})
    w = _workloads(render(scaled_to_zero, PROFILES["recommended"]))["signal-generator"]
    assert w["spec"]["replicas"] == 0 and "eafix.io/replicas" not in w["metadata"].get("annotations", {})
