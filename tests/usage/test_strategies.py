"""The right-sizing strategies on hand-computed cases: krr's simple, session-peak, the VPA recommender."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from eafix_capacity.errors import InputError
from eafix_capacity.usage.recommend import CRITICAL, GOOD, UNKNOWN, WARNING, as_json, parse_window
from eafix_capacity.usage.samples import FRAME_COLUMNS, Termination
from eafix_capacity.usage.strategies import STRATEGIES, Settings, get_strategy, hpa_from_catalog, recommend
from eafix_capacity.usage.strategies.vpa import Buckets, percentile

MI = 2**20
MON = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)   # a Monday
FRI = datetime(2026, 11, 6, 0, 0, tzinfo=timezone.utc)
SAT = datetime(2026, 11, 7, 0, 0, tzinfo=timezone.utc)
INTS = ("memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")


def pod_rows(pod: str, cpu: Sequence[float | None], mem: Sequence[int | None] | None = None, *,
             start: datetime = MON, step: timedelta = timedelta(minutes=1), service: str = "svc",
             container: str = "app", cpu_request_m: int | None = 500, cpu_limit_m: int | None = 1000,
             memory_request_bytes: int | None = 256 * MI, memory_limit_bytes: int | None = 512 * MI,
             namespace: str = "eafix-trading") -> list[dict[str, object]]:
    mem = list(mem) if mem is not None else [200 * MI] * len(cpu)
    assert len(mem) == len(cpu)
    return [{"timestamp": start + i * step, "context": "sim", "namespace": namespace, "pod": pod,
             "container": container, "service": service, "node": "node-1", "cpu_m": c, "memory_bytes": m,
             "cpu_request_m": cpu_request_m, "cpu_limit_m": cpu_limit_m,
             "memory_request_bytes": memory_request_bytes, "memory_limit_bytes": memory_limit_bytes,
             "source": "test"} for i, (c, m) in enumerate(zip(cpu, mem))]


def frame(*parts: list[dict[str, object]]) -> pd.DataFrame:
    """A frame in the store's shape: UTC timestamps, float millicores, Int64 bytes, category names."""
    rows = [r for p in parts for r in p]
    df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["cpu_m"] = pd.to_numeric(df["cpu_m"]).astype("float64")
    for c in INTS:
        df[c] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                          for v in df[c]], dtype="Int64")
    for c in ("context", "namespace", "pod", "container", "service", "node", "source"):
        df[c] = df[c].astype("category")
    return df


def oom(pod: str, when: datetime, limit: int | None, *, service: str = "svc") -> Termination:
    return Termination(timestamp=when, context="sim", namespace="eafix-trading", pod=pod, container="app",
                       service=service, reason="OOMKilled", restart_count=1, memory_limit_bytes=limit,
                       source="test")


def one(recs: list) -> object:
    assert len(recs) == 1, recs
    return recs[0]


# ------------------------------------------------------------------ simple (krr)


def test_simple_cpu_is_the_max_over_pods_of_each_pods_p95_and_no_limit() -> None:
    # pod a: 1..100 m -> p95 = 1 + 0.95 x 99 = 95.05 -> 96m; pod b: 50m flat. Pooled, the
    # p95 of all 200 would be 1 + ... (90.05 -> 91m): krr takes each pod's own figure.
    r = one(recommend(frame(pod_rows("svc-a", list(range(1, 101))), pod_rows("svc-b", [50.0] * 100)),
                      strategy="simple"))
    assert (r.workload, r.container, r.pods) == ("svc", "app", 2)
    assert r.recommended.cpu_request_m == 96
    assert r.recommended.cpu_limit_m is None
    assert r.samples == 200 and r.cpu_samples == 200


def test_simple_memory_is_peak_plus_15_percent_rounded_up_to_a_mebibyte_request_equals_limit() -> None:
    # peaks 200Mi and 100Mi + 1 byte: max 200Mi x 1.15 = 230Mi exactly
    r = one(recommend(frame(pod_rows("svc-a", [100.0] * 100, [150 * MI] * 99 + [200 * MI]),
                            pod_rows("svc-b", [100.0] * 100, [100 * MI + 1] * 100)), strategy="simple"))
    assert r.recommended.memory_request_bytes == 230 * MI == r.recommended.memory_limit_bytes
    # (100Mi + 1) x 1.15 = 115Mi + 1.15 bytes: rounded up to 116Mi
    r = one(recommend(frame(pod_rows("svc-b", [100.0] * 100, [100 * MI + 1] * 100)), strategy="simple"))
    assert r.recommended.memory_request_bytes == 116 * MI


def test_simple_rounds_cpu_up_to_a_millicore_exactly() -> None:
    r = one(recommend(frame(pod_rows("p", [100.000001] * 100)), strategy="simple"))   # 100,000,001 n
    assert r.recommended.cpu_request_m == 101
    r = one(recommend(frame(pod_rows("p", [0.1 * 1000 + 0.2 * 1000 - 200] * 100)), strategy="simple"))
    assert r.recommended.cpu_request_m == 100   # 100.00000000000003 is 100m, not 101m


def test_simple_floors_10m_and_100mi() -> None:
    r = one(recommend(frame(pod_rows("p", [1.0] * 100, [10 * MI] * 100)), strategy="simple"))
    assert (r.recommended.cpu_request_m, r.recommended.memory_request_bytes) == (10, 100 * MI)
    r = one(recommend(frame(pod_rows("p", [11.0] * 100, [90 * MI] * 100)), strategy="simple"))
    assert (r.recommended.cpu_request_m, r.recommended.memory_request_bytes) == (11, 104 * MI)


def test_simple_99_samples_is_not_enough_100_are() -> None:
    r = one(recommend(frame(pod_rows("p", [100.0] * 99)), strategy="simple"))
    assert r.cpu_unknown and r.memory_unknown
    assert r.recommended.cpu_request_m is None and r.recommended.memory_request_bytes is None
    assert "not enough data (99 samples, 100 needed)" in r.info
    assert (r.cpu_severity, r.memory_severity) == (UNKNOWN, UNKNOWN)
    row = as_json([r])["recommendations"][0]
    assert row["cpu_request_m"] is None and row["memory_limit_bytes"] is None and "not enough data" in row["info"]
    r = one(recommend(frame(pod_rows("p", [100.0] * 100)), strategy="simple"))
    assert not r.cpu_unknown and r.recommended.cpu_request_m == 100 and r.info == ()
    # "under 100 points in all": 50 + 50 over two pods is enough
    r = one(recommend(frame(pod_rows("a", [100.0] * 50), pod_rows("b", [100.0] * 50)), strategy="simple"))
    assert r.recommended.cpu_request_m == 100


def test_missing_samples_are_gaps_not_zeros() -> None:
    # 99 real CPU figures and 10 gaps: still not enough (gaps are not samples)
    r = one(recommend(frame(pod_rows("p", [100.0] * 99 + [None] * 10)), strategy="simple"))
    assert r.cpu_unknown and r.cpu_samples == 99 and not r.memory_unknown and r.memory_samples == 109
    assert "not enough data for cpu (99 samples, 100 needed)" in r.info
    # 1..100 with 100 gaps: p95 96m; as zeros it would be 91m
    r = one(recommend(frame(pod_rows("p", [None] * 100 + list(range(1, 101)))), strategy="simple"))
    assert r.recommended.cpu_request_m == 96
    # a memory gap is not a 0 working set either; every gap: 0 samples, not a recommendation of 100Mi
    r = one(recommend(frame(pod_rows("p", [100.0] * 100, [None] * 100)), strategy="simple"))
    assert r.memory_unknown and r.memory_samples == 0 and r.samples == 100


def test_simple_oom_kill_raises_memory_to_1_25_x_the_limit_it_was_killed_at() -> None:
    rows = pod_rows("svc-a", [100.0] * 100, [300 * MI] * 100)
    r = one(recommend(frame(rows), [oom("svc-a", MON + timedelta(minutes=30), 512 * MI)], strategy="simple"))
    assert r.recommended.memory_request_bytes == 640 * MI == r.recommended.memory_limit_bytes
    assert r.oom_kills == 1 and r.memory_severity == CRITICAL   # krr: an OOM kill makes memory CRITICAL
    assert any(i.startswith("OOM kill: memory raised to 640Mi") for i in r.info)
    # the peak + 15% already above 1.25 x the kill limit: the peak rules, and the info says so
    r = one(recommend(frame(rows), [oom("svc-a", MON, 200 * MI)], strategy="simple"))
    assert r.recommended.memory_request_bytes == math.ceil(300 * 1.15) * MI
    assert any("already above" in i for i in r.info)
    # a kill without a known limit uses the container's current limit (512Mi)
    r = one(recommend(frame(rows), [oom("svc-a", MON, None)], strategy="simple"))
    assert r.recommended.memory_request_bytes == 640 * MI
    # other reasons are not OOM kills
    t = Termination(MON, "sim", "eafix-trading", "svc-a", "app", "svc", "Error", 1, 512 * MI, "test")
    r = one(recommend(frame(rows), [t], strategy="simple"))
    assert r.oom_kills == 0 and r.recommended.memory_request_bytes == 345 * MI


def test_simple_hpa_detected_leaves_cpu_unchanged_unless_allowed() -> None:
    df = frame(pod_rows("p", [100.0] * 100))
    r = one(recommend(df, strategy="simple", settings=Settings(hpa={"svc": frozenset({"cpu"})})))
    assert r.cpu_unknown and r.recommended.cpu_request_m is None and r.cpu_severity == UNKNOWN
    assert any(i.startswith("HPA detected on cpu") for i in r.info)
    assert r.recommended.memory_request_bytes == 230 * MI    # memory is not what the HPA scales on
    r = one(recommend(df, strategy="simple", settings=Settings(hpa={"svc": frozenset({"cpu"})}, allow_hpa=True)))
    assert r.recommended.cpu_request_m == 100 and not any("HPA" in i for i in r.info)
    # krr checks "not enough data" first
    r = one(recommend(frame(pod_rows("p", [100.0] * 50)), strategy="simple",
                      settings=Settings(hpa={"svc": frozenset({"cpu"})})))
    assert not any("HPA" in i for i in r.info) and any("not enough data" in i for i in r.info)


def test_hpa_from_catalog_flags_the_services_with_an_hpa() -> None:
    from eafix_capacity.catalog import load_catalog
    hpa = hpa_from_catalog(load_catalog())
    assert hpa["signal-generator"] == frozenset({"cpu"}) and "data-ingestor" not in hpa


def test_simple_current_figures_and_severity() -> None:
    # current: 500m / 1000m, 256Mi / 512Mi; recommended 100m / unset, 230Mi / 230Mi
    r = one(recommend(frame(pod_rows("p", [100.0] * 100)), strategy="simple"))
    assert r.current.cpu_request_m == 500 and r.current.memory_limit_bytes == 512 * MI
    assert r.change["cpu_request_m"] == -400 and r.change["cpu_limit_m"] is None
    # cpu: request off by 400m (WARNING), limit set -> unset (WARNING); memory: limit off by 282Mi
    assert (r.cpu_severity, r.memory_severity) == (WARNING, WARNING)
    r = one(recommend(frame(pod_rows("p", [480.0] * 100, [240 * MI] * 100, cpu_limit_m=None,
                                     memory_request_bytes=276 * MI, memory_limit_bytes=276 * MI)),
                      strategy="simple"))
    assert (r.cpu_severity, r.memory_severity) == (GOOD, GOOD)


def test_workload_is_the_service_and_a_pod_without_one_is_its_own() -> None:
    df = frame(pod_rows("a-1", [100.0] * 100, service="a"), pod_rows("lonely", [100.0] * 100, service=""),
               pod_rows("a-2", [200.0] * 100, service="a", container="sidecar"))
    recs = recommend(df, strategy="simple")
    assert [(r.workload, r.container) for r in recs] == [("a", "app"), ("a", "sidecar"), ("lonely", "app")]


@hsettings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.floats(0, 4000, allow_nan=False), min_size=1, max_size=60), min_size=1, max_size=4),
       st.randoms(use_true_random=False))
def test_simple_cpu_property_max_of_pod_percentiles_and_row_order_does_not_matter(pods: list[list[float]],
                                                                                   rnd: object) -> None:
    parts = [pod_rows(f"p{i}", [round(v, 6) for v in vals]) for i, vals in enumerate(pods)]
    df = frame(*parts)
    s = Settings(points_required=1)
    r = one(recommend(df, strategy="simple", settings=s))
    expected = max(np.percentile([round(v, 6) for v in vals], 95) for vals in pods)
    assert r.recommended.cpu_request_m == max(10, math.ceil(round(expected, 6)))
    shuffled = df.sample(frac=1.0, random_state=rnd.randint(0, 2**31))  # type: ignore[attr-defined]
    assert one(recommend(shuffled, strategy="simple", settings=s)) == r


# ------------------------------------------------------------------ session-peak


def test_session_peak_excludes_the_weekend_and_the_night() -> None:
    weekday = pod_rows("p", [400.0] * 120, start=FRI + timedelta(hours=10))          # in the session
    night = pod_rows("p", [5.0] * 400, start=FRI + timedelta(hours=21))               # Friday night
    weekend = pod_rows("p", [50.0] * 3000, start=SAT + timedelta(hours=8), step=timedelta(seconds=14))
    df = frame(weekday, night, weekend)
    assert one(recommend(df, strategy="simple")).recommended.cpu_request_m == 50
    s = Settings(window=parse_window("08:00-20:00 UTC weekdays"))
    r = one(recommend(df, strategy="session-peak", settings=s))
    assert r.recommended.cpu_request_m == 400 and r.cpu_samples == 120 and r.samples == 120
    assert r.strategy == "session-peak" and r.window.startswith("08:00-20:00 UTC weekdays")


def test_session_peak_london_new_york_edges() -> None:
    # 07:59 and 20:00 are outside; 08:00 and 19:59 inside (sessions 08:00-16:30 and 13:30-20:00)
    rows = (pod_rows("p", [900.0], start=MON + timedelta(hours=7, minutes=59))
            + pod_rows("p", [100.0] * 100, start=MON + timedelta(hours=8))
            + pod_rows("p", [200.0], start=MON + timedelta(hours=19, minutes=59))
            + pod_rows("p", [900.0], start=MON + timedelta(hours=20)))
    s = Settings(window=parse_window("london,new_york"), points_required=1)
    r = one(recommend(frame(rows), strategy="session-peak", settings=s))
    assert r.cpu_samples == 101 and r.recommended.cpu_request_m == 100
    assert r.current.cpu_request_m == 500   # the current figures read every sample


def test_session_peak_window_without_samples_is_an_error_and_a_container_outside_it_is_not_enough_data() -> None:
    df = frame(pod_rows("p", [100.0] * 200, start=SAT + timedelta(hours=9)))
    with pytest.raises(InputError, match="no samples in the session window") as e:
        recommend(df, strategy="session-peak", settings=Settings(window=parse_window("london,new_york")))
    assert "\n" not in str(e.value) and "london,new_york" in str(e.value)
    df = frame(pod_rows("busy", [100.0] * 200, start=MON + timedelta(hours=9), service="busy"),
               pod_rows("quiet", [100.0] * 200, start=SAT + timedelta(hours=9), service="quiet"))
    recs = recommend(df, strategy="session-peak", settings=Settings(window=parse_window("london")))
    quiet = next(r for r in recs if r.workload == "quiet")
    assert quiet.cpu_unknown and quiet.samples == 0 and any("not enough data" in i for i in quiet.info)


# ------------------------------------------------------------------ vpa

CPU_BUCKETS = Buckets.make(1000.0, 0.001)


def bucket_end(value: float, first: float, ratio: float = 1.05) -> float:
    """The end of the bucket ``value`` falls in, by the Go formulas (histogram_options.go)."""
    b = 0 if value < first else int(math.log(value * (ratio - 1) / first + 1) / math.log(ratio))
    return first * (ratio ** (b + 1) - 1) / (ratio - 1)


def test_vpa_buckets_match_the_recommender() -> None:
    # the 1m-first-bucket starts listed in kubernetes/autoscaler PR #7554: 1.0000, 2.0500, 12.5779 (m)
    assert CPU_BUCKETS.start(0) == 0.0
    assert [round(CPU_BUCKETS.start(b) * 1000, 4) for b in (1, 2, 10)] == [1.0, 2.05, 12.5779]
    assert list(CPU_BUCKETS.find(np.array([0.0005, 0.001, 0.0021, 1e9]))) == [0, 1, 2, CPU_BUCKETS.num - 1]
    # empty histogram: 0; one bucket: its end; the last bucket has no end: its start
    w = np.zeros(CPU_BUCKETS.num)
    assert percentile(w, 0.9, CPU_BUCKETS) == 0.0
    w[5] = 1.0
    assert percentile(w, 0.9, CPU_BUCKETS) == CPU_BUCKETS.start(6)
    w[:] = 0
    w[-1] = 1.0
    assert percentile(w, 0.5, CPU_BUCKETS) == CPU_BUCKETS.start(CPU_BUCKETS.num - 1)


def vpa(df: pd.DataFrame, terminations: Sequence[Termination] = (), **kw: object):  # type: ignore[no-untyped-def]
    return one(recommend(df, terminations, strategy="vpa", settings=Settings(**kw)))  # type: ignore[arg-type]


def test_vpa_target_is_p90_bucket_end_plus_15_percent() -> None:
    r = vpa(frame(pod_rows("p", [100.0] * 1440, [300_000_000] * 1440)))
    cpu = int(bucket_end(0.1, 0.001) * 1000)            # 101m
    assert r.recommended.cpu_request_m == cpu + int(cpu * 0.15) == 116
    mem = int(bucket_end(300_000_000, 1e7))
    assert r.recommended.memory_request_bytes == mem + int(mem * 0.15)
    # limits keep their ratio to the request (1000m / 500m, 512Mi / 256Mi)
    assert r.recommended.cpu_limit_m == 232 and r.recommended.memory_limit_bytes == 2 * r.recommended.memory_request_bytes
    assert r.lower is not None and r.upper is not None


def test_vpa_confidence_scales_the_bounds_with_short_history() -> None:
    base = 116   # constant 100m: p50, p90 and p95 share the bucket
    short = vpa(frame(pod_rows("p", [100.0] * 720)))    # 12 h at 1/min: confidence 719/1440 days
    c = 719 / 1440
    assert short.upper.cpu_request_m == int(base * (1 + 1 / c))           # ~3x
    assert short.lower.cpu_request_m == int(base * (1 + 0.001 / c) ** -2)  # 115
    week = vpa(frame(pod_rows("p", [100.0] * 10080)))   # 7 days
    c = 10079 / 1440
    assert week.upper.cpu_request_m == int(base * (1 + 1 / c)) == 132     # ~1.14x
    # samples / 1440 when sparser than one a minute: 100 samples over 7 days -> 100/1440 days
    sparse = vpa(frame(pod_rows("p", [100.0] * 100, step=timedelta(minutes=100))))
    assert sparse.upper.cpu_request_m == int(base * (1 + 1440 / 100))
    assert week.recommended.cpu_request_m == short.recommended.cpu_request_m == base


def test_vpa_cpu_samples_weigh_by_their_request() -> None:
    # 100 samples of 50m at a 1000m request (weight 1) and 100 of 400m without one (weight 0.1):
    # p90 of the weights stays in the 50m bucket; unweighted it would be 400m
    rows = (pod_rows("a", [50.0] * 100, cpu_request_m=1000) + pod_rows("b", [400.0] * 100, cpu_request_m=None))
    r = vpa(frame(rows))
    low = int(bucket_end(0.05, 0.001) * 1000)
    assert r.recommended.cpu_request_m == low + int(low * 0.15)
    high = int(bucket_end(0.4, 0.001) * 1000)
    assert r.upper.cpu_request_m > high   # p95 reaches the 400m bucket


def test_vpa_memory_peaks_per_day_decay_with_a_24h_half_life() -> None:
    # daily peaks 500 MB, 500 MB, 300 MB (oldest first): weights w, 2w, 4w; the p50 falls in the
    # 300 MB bucket (4w >= 3.5w); with equal weights it would be 500 MB
    mem = [500_000_000] * 1440 + [500_000_000] * 1440 + [300_000_000] * 1440
    r = vpa(frame(pod_rows("p", [100.0] * len(mem), mem)))
    low = int(bucket_end(300_000_000, 1e7))
    conf = (len(mem) - 1) / 1440
    assert r.lower.memory_request_bytes == int((low + int(low * 0.15)) * (1 + 0.001 / conf) ** -2)
    high = int(bucket_end(500_000_000, 1e7))
    assert r.recommended.memory_request_bytes == high + int(high * 0.15)


def test_vpa_oom_kill_bumps_memory_by_20_percent_at_least_100mi() -> None:
    rows = pod_rows("p", [100.0] * 600, [200 * MI] * 600)
    r = vpa(frame(rows), [oom("p", MON + timedelta(minutes=300), 512 * MI)])
    needed = max(256 * MI + 100 * MI, int(256 * MI * 1.2))   # max(request, peak) = the 256Mi request
    end = int(bucket_end(needed, 1e7))
    assert r.recommended.memory_request_bytes == end + int(end * 0.15)
    assert r.oom_kills == 1 and r.memory_severity == CRITICAL
    assert any(i.startswith("OOM kill: memory raised to 356Mi") for i in r.info)


def test_vpa_per_pod_minimum_is_split_over_the_containers() -> None:
    df = frame(pod_rows("p", [1.0] * 200, [1 * MI] * 200), pod_rows("p", [1.0] * 200, [1 * MI] * 200,
                                                                       container="sidecar"))
    recs = recommend(df, strategy="vpa")
    assert [(r.recommended.cpu_request_m, r.recommended.memory_request_bytes) for r in recs] == \
        [(12, 125 * MI), (12, 125 * MI)]
    alone = vpa(frame(pod_rows("p", [1.0] * 200, [1 * MI] * 200)))
    assert (alone.recommended.cpu_request_m, alone.recommended.memory_request_bytes) == (25, 250 * MI)


def test_vpa_reads_the_last_8_days() -> None:
    old = pod_rows("p", [900.0] * 100, start=MON - timedelta(days=9))
    new = pod_rows("p", [100.0] * 1440)
    r = vpa(frame(old, new))
    assert r.recommended.cpu_request_m == 116 and r.cpu_samples == 1440
    everything = vpa(frame(old, new), vpa_history_days=None)
    assert everything.cpu_samples == 1540


# ------------------------------------------------------------------ dispatch and bad input


def test_unknown_strategy_is_a_one_line_error_listing_the_valid_ones() -> None:
    with pytest.raises(InputError) as e:
        get_strategy("krr")
    assert str(e.value) == "--strategy: unknown strategy 'krr'; one of: simple, session-peak, vpa"
    assert list(STRATEGIES) == ["simple", "session-peak", "vpa"]


def test_no_samples_and_bad_frames_are_errors() -> None:
    empty = frame(pod_rows("p", []))
    for name in STRATEGIES:
        with pytest.raises(InputError, match="no samples to recommend from"):
            recommend(empty, strategy=name)
    with pytest.raises(InputError, match="no samples to recommend from"):
        recommend(frame(pod_rows("p", [None] * 5, [None] * 5)), strategy="simple")
    with pytest.raises(InputError, match="samples frame without column.*cpu_m"):
        recommend(frame(pod_rows("p", [1.0])).drop(columns=["cpu_m"]), strategy="simple")
    with pytest.raises(InputError, match="not a Termination"):
        recommend(frame(pod_rows("p", [1.0] * 100)), ["OOMKilled"], strategy="simple")  # type: ignore[list-item]


@pytest.mark.parametrize("kw, field", [({"cpu_percentile": 0}, "cpu_percentile"),
                                       ({"cpu_percentile": float("nan")}, "cpu_percentile"),
                                       ({"points_required": 0}, "points_required"),
                                       ({"vpa_half_life_hours": -1.0}, "vpa_half_life_hours"),
                                       ({"hpa": {"svc": frozenset({"gpu"})}}, "hpa")])
def test_bad_settings_are_refused(kw: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        Settings(**kw)
