"""Pure tests of the sim's usage model, clock and metrics.k8s.io bodies (no server)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from eafix_capacity.errors import InputError
from eafix_capacity.sim import metrics as M
from eafix_capacity.sim.clock import TRADING_DAY_START, SimClock, rfc3339
from eafix_capacity.sim.usage_model import (DEFAULT_MODEL_PATH, constant_model, load_usage_model,
                                            parse_usage_model, usage)

WED = datetime(2026, 1, 14, tzinfo=timezone.utc)  # a Wednesday
LABELS = {"app.kubernetes.io/name": "data-ingestor"}
REQ = {"cpu": "200m", "memory": "256Mi"}
LIM = {"cpu": "500m", "memory": "512Mi"}


def at(hour: int, minute: int = 0, day: datetime = WED) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


@pytest.fixture(scope="module")
def model():
    return load_usage_model()


# --- clock --------------------------------------------------------------------------------------


def test_clock_starts_at_the_trading_day_it_is_given_and_advances():
    clock = SimClock(speed=0, start=TRADING_DAY_START)
    assert clock.now() == TRADING_DAY_START
    assert clock.now().tzinfo is not None
    clock.advance(90)
    assert clock.now() == TRADING_DAY_START + timedelta(seconds=90)
    assert rfc3339(clock.now()) == "2026-01-14T06:01:30Z" == clock.now_text()


def test_clock_starts_at_wall_clock_now_by_default():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    clock = SimClock(speed=0)
    after = datetime.now(timezone.utc)
    assert before <= clock.now() <= after and clock.now().microsecond == 0


def test_clock_runs_faster_than_real_time():
    clock = SimClock(speed=1000)
    t0 = clock.now()
    import time
    time.sleep(0.05)
    assert clock.now() - t0 >= timedelta(seconds=40)


def test_clock_speed_change_keeps_time_continuous():
    clock = SimClock(speed=0, start=datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    clock.advance(10)
    before = clock.now()
    clock.set_speed(0)
    assert clock.now() == before


@pytest.mark.parametrize("kwargs", [{"speed": -1}, {"speed": float("inf")}, {"speed": float("nan")},
                                    {"start": datetime(2026, 1, 1)}])
def test_clock_rejects_bad_settings(kwargs):
    with pytest.raises(InputError):
        SimClock(**kwargs)


def test_clock_set_speed_rejects_infinite_speed():
    clock = SimClock(speed=0, start=TRADING_DAY_START)
    with pytest.raises(InputError, match="finite"):
        clock.set_speed(float("inf"))
    assert clock.speed == 0 and clock.now() == TRADING_DAY_START


def test_clock_speed_change_while_running_has_no_jump():
    clock = SimClock(speed=1000, start=datetime(2026, 3, 2, 12, tzinfo=timezone.utc))
    before = clock.now()
    clock.set_speed(0)
    frozen = clock.now()
    assert frozen >= before  # time run so far at speed 1000 is kept, not dropped
    assert clock.now() == frozen


def test_clock_cannot_go_back():
    with pytest.raises(InputError, match="backwards"):
        SimClock(speed=0).advance(-1)


# --- session curve ------------------------------------------------------------------------------


def test_session_curve_quiet_session_overlap(model):
    assert model.session_level(at(3)) == pytest.approx(0.3)        # night
    assert model.session_level(at(10)) == pytest.approx(1.0)       # London only
    assert model.session_level(at(15)) == pytest.approx(1.6)       # London + New York
    assert model.session_level(at(18)) == pytest.approx(1.0)       # New York only
    assert model.session_level(at(22)) == pytest.approx(0.3)


def test_session_curve_ramps_at_the_open(model):
    mid_ramp = model.session_level(at(8, 15))
    assert 0.3 < mid_ramp < 1.0
    assert model.session_level(at(8, 15)) == pytest.approx(0.3 + 0.7 * 0.5)


def test_weekend_is_quiet(model):
    saturday = datetime(2026, 1, 17, tzinfo=timezone.utc)
    assert model.session_level(at(15, day=saturday)) == pytest.approx(0.3)


def test_overlap_is_the_daily_peak(model):
    levels = [model.session_level(at(h, m)) for h in range(24) for m in (0, 30)]
    assert max(levels) == model.session_level(at(15))


# --- usage ---------------------------------------------------------------------------------------


def test_usage_is_deterministic_and_follows_the_session(model):
    a = usage(model, LABELS, "app", REQ, LIM, at(15), key="ns/p1")
    b = usage(model, LABELS, "app", REQ, LIM, at(15), key="ns/p1")
    assert a == b
    night = usage(model, LABELS, "app", REQ, LIM, at(3), key="ns/p1")
    assert a[0] > 2 * night[0]
    assert a[1] > night[1]


def test_usage_baseline_share_of_request(model):
    cpu, mem = usage(model, LABELS, "app", REQ, LIM, at(10), key="ns/p1")
    # data-ingestor: 55% of the 200m request during one session, noise within 8%.
    assert 0.55 * 0.92 * 200e6 <= cpu <= 0.55 * 1.08 * 200e6
    assert 0.6 * 0.97 * 256 * 2**20 <= mem <= 0.6 * 1.03 * 256 * 2**20


def test_usage_noise_differs_between_pods(model):
    values = {usage(model, LABELS, "app", REQ, LIM, at(10), key=f"ns/p{i}")[0] for i in range(10)}
    assert len(values) > 5


def test_usage_capped_at_limits():
    hot = constant_model(5.0, 5.0)
    cpu, mem = hot.usage(LABELS, "app", REQ, LIM, at(10))
    assert cpu == 500_000_000
    assert mem == 512 * 2**20


def test_unknown_service_uses_default_and_no_request_fallback(model):
    cpu, mem = model.usage({"app.kubernetes.io/name": "nope"}, "c", None, None, at(10))
    assert 0 < cpu < 20_000_000 and 0 < mem < 64 * 2**20
    default = model.services["default"]
    cpu2, _ = model.usage({}, "c", {"cpu": "1"}, None, at(10))
    assert cpu2 == pytest.approx(default.cpu * 1e9, rel=0.09)


# --- model file validation --------------------------------------------------------------------------


def good() -> dict:
    return yaml.safe_load(DEFAULT_MODEL_PATH.read_text())


@pytest.mark.parametrize("mutate, field, value", [
    (lambda d: d["services"]["redis"].__setitem__("cpu", "lots"), "cpu", "lots"),
    (lambda d: d["services"]["redis"].__setitem__("cpu", -1), "cpu", -1),
    (lambda d: d["services"]["redis"].__setitem__("cpu_session", 2), "cpu_session", 2),
    (lambda d: d["services"]["redis"].__setitem__("gpu", 1), "gpu", "gpu"),
    (lambda d: d["sessions"]["london"].__setitem__("open", "8am"), "open", "8am"),
    (lambda d: d["sessions"]["london"].__setitem__("close", "07:00"), "close", "07:00"),
    (lambda d: d["node_overhead"].__setitem__("memory", "lots"), "memory", "lots"),
    (lambda d: d.__setitem__("noise", 5), "noise", 5),
    (lambda d: d.__setitem__("colour", "red"), "colour", "colour"),
])
def test_bad_model_names_file_service_field_and_value(mutate, field, value):
    data = good()
    mutate(data)
    with pytest.raises(InputError) as e:
        parse_usage_model(data, source="usage-model.yaml")
    text = str(e.value)
    assert "usage-model.yaml" in text and field in text and repr(value) in text


def test_model_without_default_service_is_refused():
    data = good()
    del data["services"]["default"]
    with pytest.raises(InputError, match="default"):
        parse_usage_model(data, source="m.yaml")


def test_unreadable_and_invalid_yaml_files(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read"):
        load_usage_model(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [unclosed\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_usage_model(bad)


def test_shipped_model_covers_the_eafix_services(model):
    for svc in ("data-ingestor", "risk-manager", "gui-gateway", "redis", "postgres", "grafana"):
        assert svc in model.services


# --- metrics.k8s.io bodies ------------------------------------------------------------------------------


def pod(name: str, node: str | None = "n1", phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": "eafix", "labels": LABELS},
            "spec": {"nodeName": node, "containers": [
                {"name": "app", "resources": {"requests": REQ, "limits": LIM}},
                {"name": "proxy", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": phase}}


@pytest.mark.parametrize("n, text", [(0, "0"), (123_456_789, "123456789n"), (1_500_000, "1500u"),
                                     (250_000_000, "250m"), (2_000_000_000, "2")])
def test_cpu_format(n, text):
    assert M.format_cpu(n) == text


@pytest.mark.parametrize("n, text", [(0, "0"), (1, "4Ki"), (12_344 * 1024, "12344Ki"), (12_345 * 1024, "12348Ki"),
                                     (256 * 2**20, "256Mi"),
                                     (4097, "8Ki")])
def test_memory_format_whole_pages_binary(n, text):
    assert M.format_memory(n) == text


def test_pod_metrics_shape(model):
    t = at(15)
    body = M.pod_metrics(pod("p"), model, t)
    assert body["kind"] == "PodMetrics" and body["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert body["metadata"]["name"] == "p" and body["metadata"]["namespace"] == "eafix"
    assert body["timestamp"] == "2026-01-14T15:00:00Z" and body["window"] == "30s"
    assert [c["name"] for c in body["containers"]] == ["app", "proxy"]
    for c in body["containers"]:
        assert re.fullmatch(r"\d+(n|u|m)?", c["usage"]["cpu"])
        assert re.fullmatch(r"\d+(Ki|Mi|Gi)", c["usage"]["memory"])


def test_pod_metrics_list_skips_pods_not_running(model):
    body = M.pod_metrics_list([pod("a"), pod("b", node=None, phase="Pending"), pod("c", phase="Succeeded")],
                              model, at(10))
    assert body["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert [sorted(i) for i in body["items"]] == [["containers", "metadata", "timestamp", "window"]]


def test_node_metrics_sum_pods_plus_overhead():
    flat = constant_model(0.5, 0.5)
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}   # metrics-server scrapes Ready nodes only
    nodes = [{"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}, "status": ready},
             {"metadata": {"name": "n2"}, "status": ready}]
    body = M.node_metrics_list(nodes, [pod("a"), pod("b"), pod("c", node="n2")], flat, at(10))
    assert body["kind"] == "NodeMetricsList"
    n1, n2 = body["items"]
    # list items carry no kind or apiVersion (only the list does), as metrics-server's lists
    assert "kind" not in n1 and "apiVersion" not in n1 and n1["metadata"]["labels"] == {"kubernetes.io/hostname": "n1"}
    # per pod 0.5 x (200m + 100m) = 150m; two pods plus 120m overhead
    assert n1["usage"]["cpu"] == "420m"
    assert n2["usage"]["cpu"] == "270m"
    per_pod_mem = (128 + 64) * 2**20
    assert n1["usage"]["memory"] == M.format_memory(2 * per_pod_mem + 700 * 2**20)
