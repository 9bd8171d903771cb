"""Node types and allocatable: DESIGN.md anchors, shipped catalogue, bad inputs."""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eafix_capacity.errors import InputError
from eafix_capacity.mesh import parse_mesh
from eafix_capacity.nodes import (
    AKS_CPU_TABLE,
    CLOUD_OF_PROVIDER,
    CSV_COLUMNS,
    DEFAULT_NODE_TYPES_PATH,
    GIB,
    MB,
    MIB,
    PROVIDERS,
    DaemonSet,
    NodeType,
    aks_kube_reserved_cpu_m,
    allocatable,
    default_daemonsets,
    get_node_type,
    load_node_types,
    parse_provider,
    reservation,
)

HEADER = ",".join(CSV_COLUMNS)
GOOD_ROW = "m5.large,aws,general,2,8,29,0.096,\"AWS on-demand us-east-1 list price, 2024-06\""


@pytest.fixture(scope="module")
def types() -> dict[str, NodeType]:
    return load_node_types()


def node(name: str = "x", provider: str = "aws", vcpus: int = 4, gib: int = 16, max_pods: int = 58) -> NodeType:
    return NodeType(name, provider, "general", vcpus, gib * GIB, max_pods, None, "")


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "node-types.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ shipped catalogue


def test_shipped_csv_loads_every_row(types: dict[str, NodeType]) -> None:
    data_rows = DEFAULT_NODE_TYPES_PATH.read_text(encoding="utf-8").strip().splitlines()[1:]
    assert len(types) == len(data_rows) >= 15


def test_shipped_csv_covers_every_cloud_and_family(types: dict[str, NodeType]) -> None:
    seen = {(t.provider, t.family) for t in types.values()}
    assert seen == {(c, f) for c in ("aws", "gcp", "azure") for f in ("general", "compute", "memory")}
    assert min(t.vcpus for t in types.values()) == 2
    assert max(t.vcpus for t in types.values()) >= 16


def test_shipped_csv_facts(types: dict[str, NodeType]) -> None:
    assert types["m5.large"].memory_bytes == 8 * GIB
    assert types["m5.large"].max_pods == 29
    assert types["m5.xlarge"].max_pods == 58
    assert types["m5.2xlarge"].max_pods == 58
    assert types["c5.xlarge"].max_pods == 58
    assert types["m5.4xlarge"].max_pods == 234
    assert types["e2-standard-4"].memory_bytes == 16 * GIB
    assert types["n2-highmem-4"].memory_bytes == 32 * GIB
    assert types["Standard_D4s_v5"].vcpus == 4
    assert types["m5.large"].price_usd_per_hour == Decimal("0.096")


def test_shipped_prices_state_source_and_date(types: dict[str, NodeType]) -> None:
    for t in types.values():
        if t.price_usd_per_hour is not None:
            assert t.price_source and any(ch.isdigit() for ch in t.price_source), t.name


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_shipped_type_has_positive_allocatable(types: dict[str, NodeType], provider: str) -> None:
    cloud = CLOUD_OF_PROVIDER.get(provider)
    for t in types.values():
        if cloud in (None, t.provider):
            a = allocatable(t, provider=provider, mesh="istio")
            assert 0 < a.workload_cpu_m < a.cpu_m < a.capacity_cpu_m
            assert 0 < a.workload_memory_bytes < a.memory_bytes < a.capacity_memory_bytes


def test_get_node_type(types: dict[str, NodeType]) -> None:
    assert get_node_type("m5.large", types).vcpus == 2
    with pytest.raises(InputError) as e:
        get_node_type("m5.lareg", types)
    assert "m5.lareg" in str(e.value) and "m5.large" in str(e.value) and "Standard_D4s_v5" in str(e.value)


# ------------------------------------------------------------------ DESIGN.md anchors


def test_eks_m5_large_anchor(types: dict[str, NodeType]) -> None:
    r = reservation(types["m5.large"], provider="eks", max_pods=29)
    assert r.kube_cpu_m == 70  # 60m + 10m
    assert r.kube_memory_bytes == 574 * MIB == (255 + 11 * 29) * MIB
    assert r.eviction_memory_bytes == 100 * MIB
    a = allocatable(types["m5.large"], provider="eks")
    assert a.max_pods == 29
    assert a.cpu_m == 2000 - 70
    assert a.memory_bytes == 8 * GIB - 574 * MIB - 100 * MIB


@pytest.mark.parametrize(
    ("vcpus", "gke_m", "eks_m"),
    [(1, 60, 60), (2, 70, 70), (4, 80, 80), (8, 90, 90), (16, 110, 110), (5, 83, 82)],
)
def test_cpu_ladder(vcpus: int, gke_m: int, eks_m: int) -> None:
    # 4 cores: 60 + 10 + 5 + 5; 5 cores adds 2.5m: GKE rounds up, the EKS AMI floors.
    assert reservation(node(provider="gcp", vcpus=vcpus), provider="gke", max_pods=110).kube_cpu_m == gke_m
    assert reservation(node(vcpus=vcpus), provider="eks", max_pods=58).kube_cpu_m == eks_m


def test_gke_memory_16gib(types: dict[str, NodeType]) -> None:
    r = reservation(types["e2-standard-4"], provider="gke", max_pods=110)
    expected = Fraction(25, 100) * 4 + Fraction(20, 100) * 4 + Fraction(10, 100) * 8  # 2.6 GiB
    assert r.kube_memory_bytes == math.ceil(expected * GIB)
    assert r.eviction_memory_bytes == 100 * MIB
    a = allocatable(types["e2-standard-4"], provider="gke")
    assert a.memory_bytes == 16 * GIB - math.ceil(expected * GIB) - 100 * MIB
    assert a.cpu_m == 4000 - 80
    assert a.max_pods == 110


@pytest.mark.parametrize(
    ("gib", "expected_gib"),
    [
        (8, Fraction(1) + Fraction(8, 10)),
        (64, Fraction(26, 10) + Fraction(6, 100) * 48),
        (256, Fraction(26, 10) + Fraction(6, 100) * 112 + Fraction(2, 100) * 128),
    ],
)
def test_gke_memory_bands(gib: int, expected_gib: Fraction) -> None:
    r = reservation(node(provider="gcp", gib=gib), provider="gke", max_pods=110)
    assert r.kube_memory_bytes == math.ceil(expected_gib * GIB)


def test_gke_memory_under_1gib() -> None:
    small = NodeType("tiny", "gcp", "general", 1, 600 * MIB, 110, None, "")
    assert reservation(small, provider="gke", max_pods=110).kube_memory_bytes == 255 * MIB


@pytest.mark.parametrize(("cores", "millicores"), sorted(AKS_CPU_TABLE.items()))
def test_aks_cpu_table(cores: int, millicores: int) -> None:
    assert aks_kube_reserved_cpu_m(cores) == millicores
    r = reservation(node(provider="azure", vcpus=cores, gib=max(4, cores * 4)), provider="aks", max_pods=30)
    assert r.kube_cpu_m == millicores


def test_aks_4_cores_anchor(types: dict[str, NodeType]) -> None:
    assert allocatable(types["Standard_D4s_v5"], provider="aks").reservation.kube_cpu_m == 140


def test_aks_cpu_between_table_points_is_linear() -> None:
    assert aks_kube_reserved_cpu_m(12) == 220
    assert aks_kube_reserved_cpu_m(48) == 580
    assert aks_kube_reserved_cpu_m(3) == 120


def test_aks_memory_uses_decimal_mb() -> None:
    # The AKS doc's example: 30 max pods -> 20 MB x 30 + 50 MB = 650 MB (10**6 bytes).
    r = reservation(node(provider="azure", gib=8), provider="aks", max_pods=30)
    assert r.kube_memory_bytes == 650 * MB == 650_000_000
    assert r.eviction_memory_bytes == 100 * MIB


def test_aks_memory_capped_at_25_percent(types: dict[str, NodeType]) -> None:
    a = allocatable(types["Standard_D4s_v5"], provider="aks")  # 250 pods -> 5050 MB > 4 GiB
    assert a.max_pods == 250
    assert a.reservation.kube_memory_bytes == 4 * GIB
    assert a.memory_bytes == 16 * GIB - 4 * GIB - 100 * MIB


def test_generic_reservations(types: dict[str, NodeType]) -> None:
    a = allocatable(types["m5.xlarge"], provider="generic")
    r = a.reservation
    assert (r.kube_cpu_m, r.system_cpu_m) == (100, 100)
    assert (r.kube_memory_bytes, r.system_memory_bytes, r.eviction_memory_bytes) == (256 * MIB, 256 * MIB, 100 * MIB)
    assert a.max_pods == 110
    assert a.cpu_m == 4000 - 200
    assert a.memory_bytes == 16 * GIB - 612 * MIB


@given(
    provider=st.sampled_from(PROVIDERS),
    vcpus=st.integers(min_value=2, max_value=96),
    gib=st.integers(min_value=16, max_value=768),  # EKS: (255 + 11 x 737) Mi fits in 16 GiB
    max_pods=st.integers(min_value=8, max_value=737),
)
def test_allocatable_is_capacity_minus_reserved_minus_eviction(provider: str, vcpus: int, gib: int, max_pods: int) -> None:
    cloud = CLOUD_OF_PROVIDER.get(provider, "aws")
    n = node(provider=cloud, vcpus=vcpus, gib=gib, max_pods=max_pods)
    a = allocatable(n, provider=provider, max_pods=max_pods, daemonsets=())
    r = a.reservation
    assert a.cpu_m == n.vcpus * 1000 - r.kube_cpu_m - r.system_cpu_m
    assert a.memory_bytes == n.memory_bytes - r.kube_memory_bytes - r.system_memory_bytes - r.eviction_memory_bytes
    assert (a.workload_cpu_m, a.workload_memory_bytes, a.workload_pods) == (a.cpu_m, a.memory_bytes, max_pods)


# ------------------------------------------------------------------ max pods and DaemonSets


def test_default_max_pods(types: dict[str, NodeType]) -> None:
    assert allocatable(types["m5.4xlarge"], provider="eks").max_pods == 234
    assert allocatable(types["m5.4xlarge"], provider="generic").max_pods == 110
    assert allocatable(types["n2-standard-16"], provider="gke").max_pods == 110
    assert allocatable(types["Standard_D16s_v5"], provider="aks").max_pods == 250
    assert allocatable(types["m5.large"], provider="eks", max_pods=110).max_pods == 110


def test_gke_caps_max_pods_at_110() -> None:
    assert allocatable(node(provider="gcp", max_pods=256), provider="gke").max_pods == 110
    assert allocatable(node(provider="gcp", max_pods=32), provider="gke").max_pods == 32


def test_daemonsets_subtract_from_workload(types: dict[str, NodeType]) -> None:
    ds = (DaemonSet("a", 100, 64 * MIB), DaemonSet("b", 25, 0))
    a = allocatable(types["m5.large"], provider="eks", daemonsets=ds)
    assert (a.daemonset_cpu_m, a.daemonset_memory_bytes, a.daemonset_pods) == (125, 64 * MIB, 2)
    assert a.workload_cpu_m == 1930 - 125
    assert a.workload_memory_bytes == 8 * GIB - 674 * MIB - 64 * MIB
    assert a.workload_pods == 27


def test_default_daemonsets_per_provider() -> None:
    eks = {d.name: d for d in default_daemonsets("eks")}
    assert eks["aws-node"].cpu_m == 25
    assert eks["kube-proxy"].cpu_m == 100
    assert {"kube-proxy", "node-exporter"} <= {d.name for d in default_daemonsets("gke")}
    for provider in PROVIDERS:
        plain = default_daemonsets(provider)
        meshed = default_daemonsets(provider, mesh="istio")
        assert "istio-cni-node" not in {d.name for d in plain}
        assert meshed[:-1] == plain and meshed[-1].name == "istio-cni-node"
        assert all(d.basis for d in meshed)


def test_mesh_adds_istio_cni_to_allocatable(types: dict[str, NodeType]) -> None:
    plain = allocatable(types["n2-standard-8"], provider="gke")
    meshed = allocatable(types["n2-standard-8"], provider="gke", mesh="istio")
    assert plain.workload_cpu_m - meshed.workload_cpu_m == 100
    assert plain.workload_memory_bytes - meshed.workload_memory_bytes == 100 * MIB
    assert plain.workload_pods - meshed.workload_pods == 1


# ------------------------------------------------------------------ bad inputs


def test_unknown_provider() -> None:
    with pytest.raises(InputError) as e:
        parse_provider("openshift")
    assert "openshift" in str(e.value) and "gke" in str(e.value)
    with pytest.raises(InputError):
        parse_provider("k3s")


def test_unparsed_provider_is_never_taken_for_generic(types: dict[str, NodeType]) -> None:
    # the formulas take a parsed Provider; a raw spelling must not fall through to generic
    with pytest.raises(AssertionError):
        reservation(types["m5.large"], provider="EKS", max_pods=29)  # type: ignore[arg-type]
    assert reservation(types["m5.large"], provider=parse_provider("EKS"), max_pods=29) == \
        reservation(types["m5.large"], provider="eks", max_pods=29)


@pytest.mark.parametrize(("name", "provider"), [("m5.large", "gke"), ("e2-standard-4", "aks"), ("Standard_D4s_v5", "eks")])
def test_provider_cloud_mismatch(types: dict[str, NodeType], name: str, provider: str) -> None:
    with pytest.raises(InputError) as e:
        allocatable(types[name], provider=provider)
    assert name in str(e.value) and provider in str(e.value)


def test_generic_accepts_any_cloud(types: dict[str, NodeType]) -> None:
    for name in ("m5.large", "e2-standard-4", "Standard_D4s_v5"):
        assert allocatable(types[name], provider="generic").provider == "generic"


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "110"])
def test_bad_max_pods(types: dict[str, NodeType], bad: object) -> None:
    with pytest.raises(InputError) as e:
        allocatable(types["m5.large"], provider="eks", max_pods=bad)  # type: ignore[arg-type]
    assert "max_pods" in str(e.value)


def test_unknown_mesh(types: dict[str, NodeType]) -> None:
    with pytest.raises(InputError) as e:
        allocatable(types["m5.large"], provider="eks", mesh=parse_mesh("linkerd"))
    assert "linkerd" in str(e.value) and "istio" in str(e.value)


def test_daemonsets_too_big_for_node(types: dict[str, NodeType]) -> None:
    with pytest.raises(InputError) as e:
        allocatable(types["m5.large"], provider="eks", daemonsets=(DaemonSet("hog", 1931, 0),))
    assert "CPU" in str(e.value) and "m5.large" in str(e.value)
    with pytest.raises(InputError, match="memory"):
        allocatable(types["m5.large"], provider="eks", daemonsets=(DaemonSet("hog", 0, 8 * GIB),))
    with pytest.raises(InputError, match="pod slots"):
        allocatable(types["m5.large"], provider="eks", max_pods=1, daemonsets=(DaemonSet("a", 0, 0), DaemonSet("b", 0, 0)))
    with pytest.raises(InputError):
        allocatable(types["m5.large"], provider="eks", daemonsets=(DaemonSet("neg", -1, 0),))


def test_node_too_small_for_reservation() -> None:
    tiny = NodeType("tiny", "aws", "general", 1, 384 * MIB, 4, None, "")  # 384 - 299 - 100 < 0
    with pytest.raises(InputError, match="too small"):
        allocatable(tiny, provider="eks")


def test_csv_good_file(tmp_path: Path) -> None:
    types = load_node_types(write_csv(tmp_path, GOOD_ROW, "c5n.large,aws,compute,2,5.25,29,,"))
    assert types["c5n.large"].memory_bytes == int(Decimal("5.25") * GIB)
    assert types["c5n.large"].price_usd_per_hour is None


@pytest.mark.parametrize(
    ("row", "field", "value"),
    [
        ("m5.large,aws,general,two,8,29,,", "vcpus", "two"),
        ("m5.large,aws,general,2.5,8,29,,", "vcpus", "2.5"),
        ("m5.large,aws,general,-2,8,29,,", "vcpus", "-2"),
        ("m5.large,aws,general,0,8,29,,", "vcpus", "0"),
        ("m5.large,aws,general,2,-8,29,,", "memory_gib", "-8"),
        ("m5.large,aws,general,2,lots,29,,", "memory_gib", "lots"),
        ("m5.large,aws,general,2,8,,,", "max_pods", ""),
        ("m5.large,ibm,general,2,8,29,,", "provider", "ibm"),
        ("m5.large,eks,general,2,8,29,,", "provider", "eks"),
        ("m5.large,aws,gpu,2,8,29,,", "family", "gpu"),
        ("m5.large,aws,general,2,8,29,-0.1,somewhere 2024", "price_usd_per_hour", "-0.1"),
        ("m5.large,aws,general,2,8,29,cheap,somewhere 2024", "price_usd_per_hour", "cheap"),
        ("m5.large,aws,general,2,8,29,0.096,", "price_source", ""),
        (",aws,general,2,8,29,,", "name", ""),
    ],
)
def test_csv_bad_rows(tmp_path: Path, row: str, field: str, value: str) -> None:
    path = write_csv(tmp_path, "c5.large,aws,compute,2,4,29,,", row)
    with pytest.raises(InputError) as e:
        load_node_types(path)
    err = e.value
    assert err.file == str(path)
    assert err.field == field
    assert err.value == value
    assert err.obj is not None and err.obj.startswith("line 3")
    assert err.valid


def test_csv_duplicate_name(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_node_types(write_csv(tmp_path, GOOD_ROW, GOOD_ROW))
    assert e.value.field == "name" and e.value.value == "m5.large" and "line 2" in str(e.value)


def test_csv_missing_column(tmp_path: Path) -> None:
    header = HEADER.replace(",max_pods", "")
    with pytest.raises(InputError) as e:
        load_node_types(write_csv(tmp_path, "m5.large,aws,general,2,8,,", header=header))
    assert e.value.field == "max_pods" and "missing column" in str(e.value)


def test_csv_unknown_column_and_extra_fields(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown column"):
        load_node_types(write_csv(tmp_path, GOOD_ROW + ",x", header=HEADER + ",gpus"))
    with pytest.raises(InputError, match="more fields"):
        load_node_types(write_csv(tmp_path, "m5.large,aws,general,2,8,29,,,extra"))


def test_csv_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        load_node_types(empty)
    with pytest.raises(InputError, match="no node types"):
        load_node_types(write_csv(tmp_path))
    with pytest.raises(InputError) as e:
        load_node_types(tmp_path / "absent.csv")
    assert e.value.file == str(tmp_path / "absent.csv")


def test_daemonsets_that_fill_the_node_exactly_are_rejected(types: dict[str, NodeType]) -> None:
    """Zero room left is as useless as negative room (and divided by, it crashed the plan)."""
    node = types["m5.large"]
    room = allocatable(node, provider="eks", daemonsets=())
    for ds, what in (((DaemonSet("hog", room.cpu_m, 0),), "CPU"),
                     ((DaemonSet("hog", 0, room.memory_bytes),), "memory")):
        with pytest.raises(InputError, match=f"leave no {what}"):
            allocatable(node, provider="eks", daemonsets=ds)
    with pytest.raises(InputError, match="leave no pod slots.*max pods above 1"):
        allocatable(node, provider="eks", max_pods=1, daemonsets=(DaemonSet("a", 0, 0),))
    # one millicore, one byte and one slot left is a (tiny) node (EKS memory depends on max pods)
    room = allocatable(node, provider="eks", max_pods=2, daemonsets=())
    left = allocatable(node, provider="eks", max_pods=2,
                       daemonsets=(DaemonSet("a", room.cpu_m - 1, room.memory_bytes - 1),))
    assert (left.workload_cpu_m, left.workload_memory_bytes, left.workload_pods) == (1, 1, 1)


@pytest.mark.parametrize("mesh", [None, "", "none", "None"])
def test_no_mesh_is_spelled_as_everywhere_else(types: dict[str, NodeType], mesh) -> None:
    """``allocatable`` once rejected "none", the spelling the CLI, notebook and plan use."""
    a = allocatable(types["m5.large"], provider="eks", mesh=parse_mesh(mesh))
    assert "istio-cni-node" not in [d.name for d in a.daemonsets]
    assert default_daemonsets("eks", mesh=parse_mesh(mesh)) == a.daemonsets
    assert "istio-cni-node" in [d.name for d in default_daemonsets("eks", mesh=parse_mesh("Istio"))]
