"""The service catalogue: the embedded file against the seed, and every bad input.

Bad files are built in ``tmp_path`` from the real ``data/services.yaml`` with one field
changed, so each test fails for exactly one reason and the error must name that file,
that service, that field, the bad value and what would be valid.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from eafix_capacity.catalog import (
    HPA,
    KINDS,
    TIERS,
    ZERO,
    Catalog,
    Container,
    Resources,
    Service,
    Volume,
    catalog_from_dict,
    load_catalog,
)
from eafix_capacity.errors import EafixCapacityError, InputError, QuantityError
from eafix_capacity.paths import data_file

MI = 2**20
GI = 2**30
SERVICES_YAML = data_file("services.yaml")

# The seed README: service -> port, in its order.
SEED_PORTS = {
    "data-ingestor": 8081,
    "indicator-engine": 8082,
    "signal-generator": 8083,
    "risk-manager": 8084,
    "execution-engine": 8085,
    "calendar-ingestor": 8086,
    "reentry-matrix-svc": 8087,
    "reporter": 8088,
    "gui-gateway": 8080,
    "compliance-monitor": 9201,
    "redis": 6379,
    "postgres": 5432,
    "prometheus": 9090,
    "grafana": 3000,
}

# The seed README's "Resource Allocation" table, transcribed by hand:
# (cpu request m, memory request bytes, cpu limit m, memory limit bytes).
SEED_TABLE = {
    "data-ingestor": (200, 256 * MI, 500, 512 * MI),
    "indicator-engine": (300, 512 * MI, 700, 1 * GI),
    "signal-generator": (200, 256 * MI, 500, 512 * MI),
    "risk-manager": (300, 512 * MI, 700, 1 * GI),
    "execution-engine": (200, 256 * MI, 500, 512 * MI),
    "gui-gateway": (200, 256 * MI, 500, 512 * MI),
}
SEED_TABLE_TEXT = {
    "data-ingestor": ("200m", "256Mi", "500m", "512Mi"),
    "indicator-engine": ("300m", "512Mi", "700m", "1Gi"),
    "signal-generator": ("200m", "256Mi", "500m", "512Mi"),
    "risk-manager": ("300m", "512Mi", "700m", "1Gi"),
    "execution-engine": ("200m", "256Mi", "500m", "512Mi"),
    "gui-gateway": ("200m", "256Mi", "500m", "512Mi"),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def pristine() -> dict[str, Any]:
    return yaml.safe_load(SERVICES_YAML.read_text(encoding="utf-8"))


@pytest.fixture
def doc(pristine: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the real file's document, to change one field of."""
    return copy.deepcopy(pristine)


def raw_service(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["services"] if s["name"] == name)


def write_doc(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the embedded file


def test_embedded_file_loads_all_14_seed_services_with_seed_ports(catalog: Catalog) -> None:
    assert len(catalog.services) == 14
    assert catalog.names() == list(SEED_PORTS)
    assert {s.name: s.port for s in catalog.services} == SEED_PORTS
    assert catalog.source_file == str(SERVICES_YAML)


def test_default_path_is_the_embedded_file(catalog: Catalog) -> None:
    assert load_catalog(SERVICES_YAML) == catalog


@pytest.mark.parametrize("name", sorted(SEED_TABLE))
def test_seed_table_services_carry_exactly_the_seed_figures(catalog: Catalog, name: str) -> None:
    svc = catalog.get(name)
    assert len(svc.containers) == 1
    r = svc.pod_resources
    assert (r.cpu_request_m, r.memory_request_bytes, r.cpu_limit_m, r.memory_limit_bytes) == SEED_TABLE[name]
    assert svc.sources["resources"] == "seed"


@pytest.mark.parametrize("name", sorted(SEED_TABLE_TEXT))
def test_seed_table_figures_are_written_as_the_seed_writes_them(doc: dict[str, Any], name: str) -> None:
    c = raw_service(doc, name)["containers"][0]
    got = (c["requests"]["cpu"], c["requests"]["memory"], c["limits"]["cpu"], c["limits"]["memory"])
    assert got == SEED_TABLE_TEXT[name]


def test_services_outside_the_seed_table_do_not_claim_seed_resources(catalog: Catalog) -> None:
    for s in catalog.services:
        if s.name not in SEED_TABLE:
            assert s.sources["resources"].startswith("assumed:"), s.name


def test_signal_generator_has_the_seed_hpa(catalog: Catalog) -> None:
    svc = catalog.get("signal-generator")
    assert svc.hpa == HPA(min_replicas=2, max_replicas=10, cpu_utilization=70)
    assert svc.replicas == 2
    assert svc.max_replicas == 10
    assert svc.sources["hpa"] == "seed"
    # the seed shows no other HPA
    assert [s.name for s in catalog.services if s.hpa] == ["signal-generator"]


def test_redis_and_postgres_are_statefulsets_everything_else_deployments(catalog: Catalog) -> None:
    kinds = {s.name: s.kind for s in catalog.services}
    assert kinds.pop("redis") == "StatefulSet"
    assert kinds.pop("postgres") == "StatefulSet"
    assert set(kinds.values()) == {"Deployment"}
    # the seed's commands address redis-0 and postgres-0: one replica each
    assert catalog.get("redis").replicas == 1
    assert catalog.get("postgres").replicas == 1


def test_tiers_and_kinds_are_from_the_known_sets(catalog: Catalog) -> None:
    for s in catalog.services:
        assert s.tier in TIERS and s.kind in KINDS
    assert catalog.get("redis").tier == catalog.get("postgres").tier == "infrastructure"
    assert catalog.get("prometheus").tier == catalog.get("grafana").tier == "monitoring"
    assert {s.tier for s in catalog.services} == set(TIERS)


def test_every_figure_has_a_source(catalog: Catalog) -> None:
    for s in catalog.services:
        needed = {"port", "replicas", "resources"}
        if s.hpa:
            needed.add("hpa")
        if s.volumes:
            needed.add("storage")
        assert set(s.sources) == needed, s.name
        for key, text in s.sources.items():
            kind, sep, reason = text.partition(":")
            assert kind.strip() in ("seed", "assumed"), (s.name, key, text)
            if kind.strip() == "assumed":
                assert sep and len(reason.strip()) >= 10, (s.name, key, text)
            assert "\n" not in text


def test_every_service_requests_no_more_than_its_limits(catalog: Catalog) -> None:
    for s in catalog.services:
        for c in s.containers:
            r = c.resources
            assert 0 < r.cpu_request_m <= r.cpu_limit_m, s.name
            assert 0 < r.memory_request_bytes <= r.memory_limit_bytes, s.name


def test_storage_of_statefulsets_counts_every_replica(catalog: Catalog) -> None:
    redis = catalog.get("redis")
    assert redis.volumes == (Volume("data", 10 * GI, "/data", "ReadWriteOnce"),)
    assert redis.storage_bytes == 10 * GI
    assert catalog.with_replicas({"redis": 3}).get("redis").storage_bytes == 30 * GI
    # a Deployment's claim is shared by its replicas
    prom = catalog.get("prometheus")
    assert prom.kind == "Deployment"
    assert prom.storage_bytes == 50 * GI
    assert catalog.with_replicas({"prometheus": 2}).get("prometheus").storage_bytes == 50 * GI
    assert catalog.get("reporter").storage_bytes == 0


def test_total_claims_fit_the_minimum_profile(catalog: Catalog) -> None:
    total = sum(s.storage_bytes for s in catalog.services)
    assert total == (10 + 80 + 50 + 5) * GI
    assert total <= 150 * GI


# ------------------------------------------------------------------ records


def test_resources_add_and_multiply() -> None:
    a = Resources(100, 10, 200, 20)
    b = Resources(1, 2, 3, 4)
    assert a + b == Resources(101, 12, 203, 24)
    assert a * 3 == Resources(300, 30, 600, 60)
    assert a * 0 == ZERO
    assert ZERO + a == a


def test_pod_resources_sum_every_container() -> None:
    svc = Service("x", 80, "trading", "Deployment", 1,
                  (Container("a", Resources(100, MI, 200, 2 * MI)),
                   Container("b", Resources(50, MI, 50, MI))))
    assert svc.pod_resources == Resources(150, 2 * MI, 250, 3 * MI)
    assert svc.max_replicas == 1


def test_quantities_are_rounded_up_like_kubernetes(tmp_path: Path, doc: dict[str, Any]) -> None:
    c = raw_service(doc, "reporter")["containers"][0]
    c["requests"] = {"cpu": "0.0001", "memory": "1.5k"}
    c["limits"] = {"cpu": 1, "memory": "1e6"}
    svc = load_catalog(write_doc(tmp_path, doc)).get("reporter")
    assert svc.pod_resources == Resources(1, 1500, 1000, 1_000_000)


def test_zero_replicas_is_valid_in_the_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    raw_service(doc, "reporter")["replicas"] = 0
    raw_service(doc, "signal-generator")["replicas"] = 0
    cat = load_catalog(write_doc(tmp_path, doc))
    assert cat.get("reporter").replicas == 0
    assert cat.get("signal-generator").replicas == 0


# ------------------------------------------------------------------ get / with_replicas


def test_get_unknown_service_names_the_value_and_the_known_services(catalog: Catalog) -> None:
    with pytest.raises(InputError) as e:
        catalog.get("risk-manger")
    msg = str(e.value)
    assert "unknown service" in msg and "'risk-manger'" in msg
    assert str(SERVICES_YAML) in msg
    assert "risk-manager" in msg and "grafana" in msg


def test_with_replicas_returns_a_changed_copy(catalog: Catalog) -> None:
    changed = catalog.with_replicas({"reporter": 3, "signal-generator": 5})
    assert changed.get("reporter").replicas == 3
    assert changed.get("signal-generator").replicas == 5
    assert catalog.get("reporter").replicas == 1
    assert changed.names() == catalog.names()
    assert changed.source_file == catalog.source_file


def test_with_replicas_accepts_zero_even_under_an_hpa(catalog: Catalog) -> None:
    changed = catalog.with_replicas({"signal-generator": 0, "postgres": 0})
    assert changed.get("signal-generator").replicas == 0
    assert changed.get("postgres").replicas == 0


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"nosuch": 1}, ["unknown service", "'nosuch'", "known services:", "reporter"]),
        ({"reporter": -1}, ["reporter", "replicas", "negative replicas -1", "0 or more"]),
        ({"reporter": "2"}, ["reporter", "replicas", "not an integer '2'", "whole number"]),
        ({"reporter": True}, ["reporter", "replicas", "not an integer True"]),
        ({"signal-generator": 11}, ["signal-generator", "replicas", "11", "hpa.max_replicas 10"]),
        ({"signal-generator": 1}, ["signal-generator", "replicas", "1", "hpa.min_replicas 2"]),
    ],
)
def test_with_replicas_rejects_bad_overrides(catalog: Catalog, overrides: dict[str, Any],
                                             fragments: list[str]) -> None:
    with pytest.raises(InputError) as e:
        catalog.with_replicas(overrides)
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, EafixCapacityError)
    assert str(SERVICES_YAML) in msg
    for f in fragments:
        assert f in msg, (f, msg)


# ------------------------------------------------------------------ bad files

Mutation = Callable[[dict[str, Any]], None]


def _set(service: str, path: str, value: Any) -> Mutation:
    """Set ``path`` (dotted, with [i] list indexes) of ``service`` to ``value``."""

    def mutate(doc: dict[str, Any]) -> None:
        node: Any = raw_service(doc, service)
        parts = path.replace("]", "").replace("[", ".").split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(service: str, path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = raw_service(doc, service)
        parts = path.replace("]", "").replace("[", ".").split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        del node[parts[-1]]

    return mutate


def _resource(service: str, which: str, key: str, value: Any) -> Mutation:
    """Add ``key: value`` to the first container's ``requests`` or ``limits``."""

    def mutate(doc: dict[str, Any]) -> None:
        raw_service(doc, service)["containers"][0][which][key] = value

    return mutate


def _second_container(service: str, name: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        containers = raw_service(doc, service)["containers"]
        containers.append({**copy.deepcopy(containers[0]), "name": name})

    return mutate


def _duplicate(service: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["services"].append(copy.deepcopy(raw_service(doc, service)))

    return mutate


# (id, mutation, service, field, bad value as quoted in the message, what is valid)
BAD_FILES = [
    ("malformed-quantity", _set("reporter", "containers[0].requests.cpu", "1.1.M"),
     "reporter", "containers[0].requests.cpu", "'1.1.M'", "Kubernetes quantity"),
    ("malformed-quantity-0.1mi", _set("redis", "containers[0].limits.memory", "0.1mi"),
     "redis", "containers[0].limits.memory", "'0.1mi'", "Kubernetes quantity"),
    ("quantity-with-space", _set("grafana", "containers[0].requests.memory", "256 Mi"),
     "grafana", "containers[0].requests.memory", "'256 Mi'", "Kubernetes quantity"),
    ("malformed-storage-size", _set("postgres", "storage[0].size", "80GiB"),
     "postgres", "storage[0].size", "'80GiB'", "Kubernetes quantity"),
    ("negative-quantity", _set("reporter", "containers[0].requests.cpu", "-1"),
     "reporter", "containers[0].requests.cpu", "'-1'", "zero or more"),
    ("quantity-not-text", _set("reporter", "containers[0].limits.cpu", [1]),
     "reporter", "containers[0].limits.cpu", "[1]", "quoted Kubernetes quantity"),
    ("unknown-tier", _set("reporter", "tier", "gold"),
     "reporter", "tier", "'gold'", "trading, supporting, infrastructure, monitoring"),
    ("unknown-kind", _set("redis", "kind", "DaemonSet"),
     "redis", "kind", "'DaemonSet'", "Deployment, StatefulSet"),
    ("unknown-runtime", _set("reporter", "runtime", "cobol"),
     "reporter", "runtime", "'cobol'", "one of: generic, jvm"),
    ("unknown-access-mode", _set("redis", "storage[0].access_mode", "RWO"),
     "redis", "storage[0].access_mode", "'RWO'", "ReadWriteOnce"),
    ("negative-replicas", _set("reporter", "replicas", -1),
     "reporter", "replicas", "-1", "0 or more"),
    ("replicas-not-integer", _set("reporter", "replicas", "two"),
     "reporter", "replicas", "'two'", "whole number"),
    ("replicas-above-hpa-max", _set("signal-generator", "replicas", 11),
     "signal-generator", "replicas", "11", "hpa.max_replicas 10"),
    ("hpa-min-above-max", _set("signal-generator", "hpa.min_replicas", 12),
     "signal-generator", "hpa.min_replicas", "12", "min_replicas <= max_replicas"),
    ("hpa-min-zero", _set("signal-generator", "hpa.min_replicas", 0),
     "signal-generator", "hpa.min_replicas", "0", "at least 1"),
    ("hpa-target-zero", _set("signal-generator", "hpa.cpu_utilization", 0),
     "signal-generator", "hpa.cpu_utilization", "0", "at least 1"),
    ("cpu-request-above-limit", _set("reporter", "containers[0].requests.cpu", "1500m"),
     "reporter", "containers[0].requests.cpu", "'1500m'", "at most limits.cpu '1'"),
    ("memory-request-above-limit", _set("risk-manager", "containers[0].requests.memory", "2Gi"),
     "risk-manager", "containers[0].requests.memory", "'2Gi'", "at most limits.memory '1Gi'"),
    ("missing-limits-memory", _drop("indicator-engine", "containers[0].limits.memory"),
     "indicator-engine", "containers[0].limits.memory", "missing field", "required"),
    ("missing-requests", _drop("indicator-engine", "containers[0].requests"),
     "indicator-engine", "containers[0].requests", "missing field", "required"),
    ("missing-port", _drop("grafana", "port"), "grafana", "port", "missing field", "required"),
    ("missing-replicas", _drop("grafana", "replicas"), "grafana", "replicas", "missing field", "required"),
    ("null-kind", _set("grafana", "kind", None), "grafana", "kind", "missing field", "required"),
    ("port-out-of-range", _set("reporter", "port", 70000), "reporter", "port", "70000", "at most 65535"),
    ("empty-containers", _set("reporter", "containers", []), "reporter", "containers", "[]", "non-empty list"),
    ("storage-not-a-list", _set("redis", "storage", {"size": "1Gi"}), "redis", "storage", "'size'", "a list"),
    ("storage-size-zero", _set("redis", "storage[0].size", "0"), "redis", "storage[0].size", "'0'", "positive"),
    ("mesh-inject-not-bool", _set("reporter", "mesh_inject", "yes"), "reporter", "mesh_inject", "'yes'",
     "true or false"),
    ("duplicate-service", _duplicate("reporter"), "reporter", "name", "'reporter'", "each service appears once"),
    ("missing-source", _drop("reporter", "source"), "reporter", "source", "missing field", "required"),
    ("missing-source-resources", _drop("reporter", "source.resources"),
     "reporter", "source.resources", "missing field", "required"),
    ("missing-source-hpa", _drop("signal-generator", "source.hpa"),
     "signal-generator", "source.hpa", "missing field", "required"),
    ("missing-source-storage", _drop("postgres", "source.storage"),
     "postgres", "source.storage", "missing field", "required"),
    ("assumed-without-reason", _set("reporter", "source.resources", "assumed"),
     "reporter", "source.resources", "'assumed'", "assumed: <one-line reason>"),
    ("assumed-with-blank-reason", _set("reporter", "source.replicas", "assumed:   "),
     "reporter", "source.replicas", "'assumed:   '", "assumed: <one-line reason>"),
    ("unknown-source-kind", _set("redis", "source.storage", "guess: 10Gi felt right"),
     "redis", "source.storage", "'guess: 10Gi felt right'", "`seed`, `assumed: <reason>`"),
    ("unknown-source-key", _set("reporter", "source.tier", "seed"),
     "reporter", "source.tier", "'tier'", "one of: port, replicas"),
    # memory with a milli suffix (millibytes) or a fraction of a byte: a typo for Mi
    ("memory-request-millibytes", _set("reporter", "containers[0].requests.memory", "256m"),
     "reporter", "containers[0].requests.memory", "'256m'", "did you mean 256Mi?"),
    ("memory-limit-millibytes", _set("reporter", "containers[0].limits.memory", "512m"),
     "reporter", "containers[0].limits.memory", "'512m'", "did you mean 512Mi?"),
    ("memory-fraction-of-a-byte", _set("grafana", "containers[0].requests.memory", "0.5"),
     "grafana", "containers[0].requests.memory", "'0.5'", "256Mi"),
    # resource names the plan does not count
    ("resource-gpu-unqualified", _resource("reporter", "requests", "gpu", 1),
     "reporter", "containers[0].requests.gpu", "unknown resource name 'gpu'", "nvidia.com/gpu"),
    ("resource-extended", _resource("reporter", "limits", "nvidia.com/gpu", 1),
     "reporter", "containers[0].limits.nvidia.com/gpu", "'nvidia.com/gpu'", "left out of the plan"),
    ("resource-ephemeral-storage", _resource("reporter", "requests", "ephemeral-storage", "1Gi"),
     "reporter", "containers[0].requests.ephemeral-storage", "'ephemeral-storage'", "cpu or memory"),
    ("resource-hugepages", _resource("reporter", "limits", "hugepages-2Mi", "2Mi"),
     "reporter", "containers[0].limits.hugepages-2Mi", "left out of the plan", "cpu or memory"),
    ("resource-bad-qualified-name", _resource("reporter", "requests", "Nvidia.com/gpu", 1),
     "reporter", "containers[0].requests.Nvidia.com/gpu", "not a valid resource name", "cpu or memory"),
    ("resource-kubernetes-io", _resource("reporter", "requests", "kubernetes.io/gpu", 1),
     "reporter", "containers[0].requests.kubernetes.io/gpu", "not a valid resource name", "cpu or memory"),
    ("unknown-container-field", _set("reporter", "containers[0].image", "x"),
     "reporter", "containers[0].image", "'image'", "one of: name, requests, limits"),
    ("unknown-service-field", _set("reporter", "replica", 2),
     "reporter", "replica", "'replica'", "did you mean `replicas`?"),
    # names Kubernetes would refuse
    ("service-name-upper-case", _set("reporter", "name", "Reporter"),
     "Reporter", "name", "not a DNS label 'Reporter'", "DNS-1035 label"),
    ("service-name-underscore", _set("reporter", "name", "re_porter"),
     "re_porter", "name", "'re_porter'", "lower-case letters, digits and '-'"),
    ("service-name-digit-first", _set("reporter", "name", "1reporter"),
     "1reporter", "name", "'1reporter'", "starting with a letter"),
    ("service-name-trailing-dash", _set("reporter", "name", "reporter-"),
     "reporter-", "name", "'reporter-'", "ending with a letter or digit"),
    ("service-name-64-chars", _set("reporter", "name", "r" * 64),
     "r" * 64, "name", "longer than 63 characters (64)", "at most 63"),
    ("container-name-upper-case", _set("reporter", "containers[0].name", "Main"),
     "reporter", "containers[0].name", "not a DNS label 'Main'", "DNS-1123 label"),
    ("container-name-dot", _set("reporter", "containers[0].name", "main.app"),
     "reporter", "containers[0].name", "'main.app'", "DNS-1123 label"),
    ("container-name-64-chars", _set("reporter", "containers[0].name", "c" * 64),
     "reporter", "containers[0].name", "longer than 63", "DNS-1123 label"),
    ("duplicate-container-name", _second_container("reporter", "reporter"),
     "reporter", "containers[1].name", "duplicate container name 'reporter'", "unique within a pod"),
    # more than a cluster runs
    ("replicas-ten-million", _set("reporter", "replicas", 10**7),
     "reporter", "replicas", "too many replicas 10000000", "Kubernetes supports at most 150,000 pods per cluster"),
    ("hpa-max-ten-million", _set("signal-generator", "hpa.max_replicas", 10**7),
     "signal-generator", "hpa.max_replicas", "10000000", "Kubernetes supports at most 150,000 pods per cluster"),
]


@pytest.mark.parametrize(("mutate", "service", "field", "value", "valid"),
                         [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_file_names_file_service_field_value_and_what_is_valid(
    tmp_path: Path, doc: dict[str, Any], mutate: Mutation, service: str, field: str, value: str, valid: str,
) -> None:
    mutate(doc)
    path = write_doc(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_catalog(path)
    err = e.value
    assert isinstance(err, EafixCapacityError) and isinstance(err, ValueError)
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {service}: {field}: "), msg
    assert value in msg, msg
    assert valid in msg, msg
    assert (err.file, err.obj, err.field) == (str(path), service, field)


def test_malformed_quantity_is_a_quantity_error_chained_to_the_parser(tmp_path: Path, doc: dict[str, Any]) -> None:
    _set("reporter", "containers[0].requests.cpu", "1i")(doc)
    with pytest.raises(QuantityError) as e:
        load_catalog(write_doc(tmp_path, doc))
    assert isinstance(e.value.__cause__, QuantityError)


def test_service_without_a_name_is_named_by_its_index(tmp_path: Path, doc: dict[str, Any]) -> None:
    del doc["services"][3]["name"]
    path = write_doc(tmp_path, doc)
    with pytest.raises(InputError, match=r"services\[3\]: name: missing field"):
        load_catalog(path)


def test_service_that_is_not_a_mapping(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["services"].append("redis")
    with pytest.raises(InputError, match=r"services\[14\]: expected a mapping 'redis'"):
        load_catalog(write_doc(tmp_path, doc))


@pytest.mark.parametrize("top", [None, [], {"services": {}}, {"services": None}])
def test_file_without_a_services_list(tmp_path: Path, top: Any) -> None:
    path = write_doc(tmp_path, top)
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: services: missing field")
    assert "`services` list" in msg


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    lines = SERVICES_YAML.read_text(encoding="utf-8").splitlines()
    target = next(i for i, line in enumerate(lines) if "name: risk-manager" in line)
    lines[target] = lines[target].replace("name: risk-manager", "name: [risk-manager")
    path = tmp_path / "services.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ")
    assert "invalid YAML" in msg
    # the scanner notices the unclosed bracket on that line or the next ones
    line_no = int(msg.split("line ", 1)[1].split(",", 1)[0])
    assert target + 1 <= line_no <= target + 3, msg


def test_unclosed_bracket_names_where_it_was_opened(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: [x\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_catalog(path)
    assert str(e.value) == (f"{path}: line 3, column 1: invalid YAML (expected ',' or ']', but got "
                            "'<stream end>'; while parsing a flow sequence at line 2, column 11)")


def test_tab_indentation_is_invalid_yaml_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - name: x\n\tport: 1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 3, column 1: invalid YAML"):
        load_catalog(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="file not found") as e:
        load_catalog(path)
    assert str(path) in str(e.value)


def test_catalog_from_dict_names_the_given_file(doc: dict[str, Any]) -> None:
    _set("reporter", "tier", "gold")(doc)
    with pytest.raises(InputError, match=r"^my-file\.yaml: reporter: tier: invalid value 'gold'"):
        catalog_from_dict(doc, file="my-file.yaml")


def test_catalog_from_dict_round_trips_the_embedded_doc(catalog: Catalog, doc: dict[str, Any]) -> None:
    again = catalog_from_dict(doc, file=str(SERVICES_YAML))
    assert again == catalog


# ------------------------------------------------------------------ the file as a whole


def test_valid_names_and_a_second_container_are_accepted(tmp_path: Path, doc: dict[str, Any]) -> None:
    _set("reporter", "name", "r" * 63)(doc)
    _second_container("r" * 63, "log-shipper-2")(doc)
    catalog = load_catalog(write_doc(tmp_path, doc))
    svc = catalog.get("r" * 63)
    assert [c.name for c in svc.containers] == ["reporter", "log-shipper-2"]


@pytest.mark.parametrize(("key", "hint"), [("service", "did you mean `services`?"), ("version", "one of: services")])
def test_unknown_top_level_key_names_the_key_and_the_valid_ones(tmp_path: Path, doc: dict[str, Any],
                                                                key: str, hint: str) -> None:
    doc[key] = 1
    path = write_doc(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key}: unknown top-level key {key!r}; one of: services"), msg
    assert hint in msg


def test_an_empty_catalogue_is_an_error(tmp_path: Path) -> None:
    path = write_doc(tmp_path, {"services": []})
    with pytest.raises(InputError) as e:
        load_catalog(path)
    assert str(e.value) == (f"{path}: services: empty catalogue: no services []; "
                            "a `services` list with at least one service")


def test_more_pods_in_all_than_a_cluster_runs_is_refused(tmp_path: Path, doc: dict[str, Any]) -> None:
    _set("reporter", "replicas", 80_000)(doc)
    _set("grafana", "replicas", 80_000)(doc)
    path = write_doc(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ")
    assert "the services run 160,0" in msg and "with every HPA at its maximum" in msg
    assert "Kubernetes supports at most 150,000 pods per cluster" in msg


def test_an_hpa_maximum_past_the_pod_limit_in_all_is_refused(tmp_path: Path, doc: dict[str, Any]) -> None:
    _set("signal-generator", "hpa.max_replicas", 140_000)(doc)
    _set("reporter", "replicas", 20_000)(doc)
    with pytest.raises(InputError, match=r"signal-generator: replicas: the services run 160,0\d\d pods"):
        load_catalog(write_doc(tmp_path, doc))


def test_a_replicas_override_past_the_limits_is_refused(catalog: Catalog) -> None:
    with pytest.raises(InputError, match=r"reporter: replicas override: too many replicas 100000000"):
        catalog.with_replicas({"reporter": 10**8})
    with pytest.raises(InputError, match=r"replicas override: the services run 200,0\d\d pods"):
        catalog.with_replicas({"reporter": 100_000, "grafana": 100_000})


def test_a_yaml_bomb_in_a_services_file_is_refused(tmp_path: Path) -> None:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    path = tmp_path / "services.yaml"
    path.write_text("x: &x\n" + "".join("  " + line + "\n" for line in text.splitlines())
                    + "services: [*x]\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: invalid YAML (aliases expand the document to ")
    assert len(msg) < 500


def test_5000_deep_nesting_in_a_services_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "invalid YAML" in msg and "nest" in msg
    assert "\n" not in msg
