"""Loading manifests (multi-doc, Lists, non-objects, bad input) and importing them."""
from __future__ import annotations

import json
import textwrap
import warnings
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eafix_capacity.catalog import HPA, Container, Resources, Volume, load_catalog
from eafix_capacity.errors import ManifestError, QuantityError
from eafix_capacity.paths import MANIFESTS_DIR
from eafix_capacity.manifests.diff import diff_catalogs
from eafix_capacity.manifests.importer import import_manifests, import_objects, import_summary
from eafix_capacity.manifests.load import ManifestWarning, load_manifests
from eafix_capacity.manifests.render import RenderOptions
from eafix_capacity.manifests.workflow import build, build_profile, generate, import_generated
from eafix_capacity.profiles import load_profiles

CATALOG = load_catalog()

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: example.com/{image}:1.0
        ports:
        - containerPort: {port}
        resources:
          requests: {{cpu: {cpu}, memory: 128Mi}}
          limits: {{cpu: "1", memory: 256Mi}}
"""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _deploy(name="web", replicas=2, port=8080, cpu="100m", image="web"):
    return DEPLOYMENT.format(name=name, replicas=replicas, port=port, cpu=cpu, image=image)


# -- round trip --------------------------------------------------------------------------

@pytest.mark.parametrize("profile, mesh", [("minimum", "none"), ("recommended", "none"),
                                           ("recommended", "istio")])
def test_render_then_import_gives_back_the_catalogue(tmp_path, profile, mesh):
    _, out = generate(profile=profile, mesh=mesh, out_dir=tmp_path / "m")
    imported = import_manifests(out)
    assert imported.services == CATALOG.services
    assert diff_catalogs(imported, CATALOG).empty


def test_committed_rendering_imports_to_the_catalogue():
    assert import_manifests(MANIFESTS_DIR / "recommended").services == CATALOG.services


def test_round_trip_keeps_hpa_mesh_inject_and_multiple_containers():
    changed = []
    for s in CATALOG.services:
        if s.name == "reporter":
            s = replace(s, replicas=3, hpa=HPA(2, 6, 60), mesh_inject=False,
                        containers=s.containers + (replace(s.containers[0], name="log-shipper"),),
                        sources={**s.sources, "hpa": "assumed: test"})
        changed.append(s)
    cat = replace(CATALOG, services=tuple(changed))
    gen = build_profile("recommended", mesh="istio", catalog=cat)
    assert import_generated(gen).services == cat.services


# -- load ----------------------------------------------------------------------------------

def test_multi_document_files_lists_and_skipped_documents(tmp_path):
    _write(tmp_path / "a.yaml", "title: release notes\nversion: 3\n---\n" + _deploy("web") + "---\n")
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}]}
    _write(tmp_path / "sub" / "b.yml", json.dumps(lst))
    _write(tmp_path / "kustomization.yaml", "resources: [a.yaml]\n")
    _write(tmp_path / "notes.txt", "not yaml: [")
    with pytest.warns(ManifestWarning, match=r"a\.yaml: document 0 \(line 1\): skipped"):
        result = load_manifests(tmp_path)
    assert [o.obj["kind"] for o in result.objects] == ["Deployment", "Service", "ConfigMap"]
    assert result.objects[0].document == 1 and result.objects[0].line == 4
    assert len(result.warnings) == 1 and "a.yaml" in result.warnings[0]


def test_unparseable_yaml_names_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n")
    with pytest.raises(ManifestError) as e:
        load_manifests(f)
    assert "bad.yml" in str(e.value) and "line 5" in str(e.value)


@pytest.mark.parametrize("text, missing", [
    ("kind: Deployment\nmetadata: {name: x}\n", "apiVersion"),
    ("apiVersion: apps/v1\nmetadata: {name: x}\n", "kind"),
    ("metadata: {name: x}\nspec: {replicas: 1}\n", "apiVersion"),
])
def test_object_without_kind_or_api_version_is_an_error(tmp_path, text, missing):
    f = _write(tmp_path / "x.yml", text)
    with pytest.raises(ManifestError) as e:
        load_manifests(f)
    assert e.value.field == missing and e.value.file == str(f)


def test_duplicate_object_is_an_error_naming_both_files(tmp_path):
    _write(tmp_path / "one.yml", _deploy("web"))
    _write(tmp_path / "two.yml", _deploy("web", replicas=3))
    with pytest.raises(ManifestError) as e:
        load_manifests(tmp_path)
    msg = str(e.value)
    assert "duplicate object" in msg and "one.yml" in msg and "two.yml" in msg


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(ManifestError):
        load_manifests(tmp_path / "nope")


# -- import of foreign manifests -------------------------------------------------------------

def test_foreign_manifests_import_with_guesses_and_imported_sources(tmp_path):
    _write(tmp_path / "web.yml", _deploy("web", replicas=3))
    _write(tmp_path / "cache.yml", """\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: cache, namespace: shop}
        spec:
          serviceName: cache
          selector: {matchLabels: {app: cache}}
          template:
            metadata: {labels: {app: cache}}
            spec:
              containers:
              - name: redis
                image: redis:7.2
                ports: [{containerPort: 6379}]
                resources: {limits: {cpu: 500m, memory: 1Gi}}
                volumeMounts: [{name: data, mountPath: /data}]
          volumeClaimTemplates:
          - metadata: {name: data}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 5Gi}}
        ---
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: web, namespace: shop}
        spec:
          scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
          minReplicas: 2
          maxReplicas: 5
          metrics:
          - type: Resource
            resource: {name: cpu, target: {type: Utilization, averageUtilization: 65}}
        """)
    cat = import_manifests(tmp_path)
    cache, web = cat.get("cache"), cat.get("web")
    assert (cache.kind, cache.tier, cache.runtime, cache.replicas) == ("StatefulSet", "infrastructure", "redis", 1)
    # requests default to the limits, as Kubernetes does
    assert cache.pod_resources.cpu_request_m == 500 and cache.pod_resources.memory_request_bytes == 2**30
    assert cache.volumes[0].size_bytes == 5 * 2**30 and cache.volumes[0].mount_path == "/data"
    assert web.hpa == HPA(2, 5, 65) and web.replicas == 3 and web.port == 8080
    assert web.sources["replicas"].startswith("imported: ") and "web.yml" in web.sources["replicas"]
    summary = import_summary(cat)
    assert summary["totals"] == {
        "cpu_request_m": 3 * 100 + 500, "memory_request_bytes": 3 * 128 * 2**20 + 2**30,
        "cpu_limit_m": 3 * 1000 + 500, "memory_limit_bytes": 3 * 256 * 2**20 + 2**30,
        "storage_request_bytes": 5 * 2**30}
    assert set(summary["services"][0]) == {"name", "port", "replicas", "cpu_request_m",
                                           "memory_request_bytes", "cpu_limit_m", "memory_limit_bytes"}


def test_deployment_pvc_is_imported_as_storage(tmp_path):
    text = _deploy("db", replicas=1).replace(
        "        resources:", "        volumeMounts: [{name: data, mountPath: /var/db}]\n        resources:")
    text += "      volumes:\n      - name: data\n        persistentVolumeClaim: {claimName: db-data}\n"
    _write(tmp_path / "db.yml", text + """---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db-data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 20Gi}}
""")
    (vol,) = import_manifests(tmp_path).get("db").volumes
    assert (vol.name, vol.size_bytes, vol.mount_path) == ("data", 20 * 2**30, "/var/db")


@pytest.mark.parametrize("cpu", ["1.5.5", "12x", "-1"])
def test_bad_quantity_names_file_object_and_field(tmp_path, cpu):
    f = _write(tmp_path / "web.yml", _deploy("web", cpu=f'"{cpu}"'))
    with pytest.raises(QuantityError) as e:
        import_manifests(tmp_path)
    assert e.value.file == str(f) and e.value.obj == "Deployment/shop/web"
    assert e.value.field == "spec.template.spec.containers[0].resources.requests.cpu"


def test_container_without_resources_is_an_error(tmp_path):
    _write(tmp_path / "web.yml", _deploy("web").replace(
        "          requests: {cpu: 100m, memory: 128Mi}\n          limits: {cpu: \"1\", memory: 256Mi}\n",
        "          {}\n"))
    with pytest.raises(ManifestError) as e:
        import_manifests(tmp_path)
    assert "resources.requests.cpu" in str(e.value)


def test_no_workloads_is_an_error(tmp_path):
    _write(tmp_path / "cm.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    with pytest.raises(ManifestError, match="no Deployment or StatefulSet"):
        import_manifests(tmp_path)


def test_import_objects_accepts_loaded_objects_and_warnings_do_not_stop_it(tmp_path):
    _write(tmp_path / "a.yml", "# header only\ncomment: true\n---\n" + _deploy("web"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cat = import_objects(load_manifests(tmp_path))
    assert cat.names() == ["web"]
    assert any(issubclass(w.category, ManifestWarning) for w in caught)


# -- diff ---------------------------------------------------------------------------------

def test_diff_reports_service_and_field():
    edited = CATALOG.with_replicas({"reporter": 3})
    services = tuple(s for s in edited.services if s.name != "grafana")
    frame = diff_catalogs(replace(edited, services=services), CATALOG)
    assert list(frame.columns) == ["service", "field", "left", "right"]
    rows = {(r.service, r.field): (r.left, r.right) for r in frame.itertuples()}
    assert rows == {("reporter", "replicas"): (3, 1), ("grafana", "service"): ("(absent)", "grafana")}


# -- property: any valid catalogue survives render -> import ---------------------------------

@st.composite
def _service_variant(draw, svc):
    cpu_req = draw(st.integers(1, 8000))
    mem_req = draw(st.integers(1, 64 * 2**30))
    res = Resources(cpu_req, mem_req, cpu_req + draw(st.integers(0, 8000)),
                    mem_req + draw(st.integers(0, 64 * 2**30)))
    hpa = None
    if svc.kind == "Deployment" and draw(st.booleans()):
        lo = draw(st.integers(1, 5))
        hpa = HPA(lo, lo + draw(st.integers(0, 20)), draw(st.integers(1, 1000)))
    if hpa:
        replicas = draw(st.one_of(st.just(0), st.integers(hpa.min_replicas, hpa.max_replicas)))
    else:
        replicas = draw(st.integers(0, 6))
    volumes = tuple(Volume(v.name, draw(st.integers(1, 2**42)), v.mount_path, v.access_mode)
                    for v in svc.volumes)
    sources = {k: v for k, v in svc.sources.items() if k != "hpa"}
    if hpa:
        sources["hpa"] = "assumed: property test"
    return replace(svc, replicas=replicas, hpa=hpa, volumes=volumes, mesh_inject=draw(st.booleans()),
                   containers=(Container(svc.containers[0].name, res),), sources=sources)


@st.composite
def _catalogues(draw):
    return replace(CATALOG, services=tuple(draw(_service_variant(s)) for s in CATALOG.services))


@settings(max_examples=12, deadline=None)
@given(cat=_catalogues(), mesh=st.sampled_from(["none", "istio"]))
def test_any_catalogue_survives_render_and_import(cat, mesh):
    gen = build(cat, load_profiles()["minimum"], RenderOptions(mesh=mesh))
    assert import_generated(gen).services == cat.services


def test_a_key_defined_twice_is_an_error_naming_file_and_line(tmp_path):
    f = _write(tmp_path / "web.yml", _deploy("web", replicas=2).replace(
        "  replicas: 2\n", "  replicas: 2\n  replicas: 5\n"))
    with pytest.raises(ManifestError) as e:
        load_manifests(f)
    assert "web.yml" in str(e.value) and "line 8" in str(e.value)
    assert "mapping key 'replicas' already defined" in str(e.value)


def test_a_merge_key_overridden_explicitly_is_not_a_duplicate(tmp_path):
    f = _write(tmp_path / "cm.yml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data:
          base: &base {a: "1", b: "2"}
          derived:
            <<: *base
            b: "3"
        """)
    (obj,) = load_manifests(f).dicts
    assert obj["data"]["derived"] == {"a": "1", "b": "3"}


HPA_DOC = """---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: {lo}
  maxReplicas: {hi}
"""


@pytest.mark.parametrize("lo, hi, field, needle", [
    (2, '"ten"', "spec.maxReplicas", "not a whole number >= 1 'ten'"),
    (0, 5, "spec.minReplicas", "not a whole number >= 1 0"),
    (6, 5, "spec.minReplicas", "minReplicas above maxReplicas 6"),
])
def test_bad_hpa_names_the_hpa_file_object_and_field(tmp_path, lo, hi, field, needle):
    _write(tmp_path / "web.yml", _deploy("web"))
    hpa = _write(tmp_path / "hpa.yml", HPA_DOC.format(ns="shop", lo=lo, hi=hi))
    with pytest.raises(ManifestError) as e:
        import_manifests(tmp_path)
    assert (e.value.file, e.value.obj, e.value.field) == (str(hpa), "HorizontalPodAutoscaler/shop/web", field)
    assert needle in str(e.value)


def test_bad_replicas_names_the_workload_file_and_field(tmp_path):
    f = _write(tmp_path / "web.yml", _deploy("web", replicas='"two"'))
    with pytest.raises(ManifestError) as e:
        import_manifests(tmp_path)
    assert (e.value.file, e.value.obj, e.value.field) == (str(f), "Deployment/shop/web", "spec.replicas")


def test_an_hpa_in_another_namespace_does_not_scale_the_workload(tmp_path):
    _write(tmp_path / "web.yml", _deploy("web"))
    _write(tmp_path / "hpa.yml", HPA_DOC.format(ns="other", lo=2, hi=5))
    assert import_manifests(tmp_path).get("web").hpa is None
