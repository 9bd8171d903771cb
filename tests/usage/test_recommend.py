"""Recommendations: krr's severity, the JSON, the session window, the recommended catalogue and the re-plan."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import yaml

from eafix_capacity.catalog import catalog_from_dict, load_catalog
from eafix_capacity.errors import InputError
from eafix_capacity.inputs import PlanParams
from eafix_capacity.manifests.diff import service_fields
from eafix_capacity.usage.recommend import (ALL_HOURS, CRITICAL, GOOD, OK, UNKNOWN, WARNING, Figures, as_frame,
                                            as_json, catalog_text, finish, parse_window, recommended_catalog,
                                            replan, severity)

MI = 2**20
SESSIONS = {"london": (8 * 60, 16 * 60 + 30), "new_york": (13 * 60 + 30, 20 * 60)}


def rec(workload: str, container: str | None = None, *, current: Figures = Figures(),
        recommended: Figures = Figures(), cpu_unknown: bool = False, memory_unknown: bool = False,
        samples: int = 1000, info: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return finish(namespace="eafix-trading", workload=workload, container=container or workload, current=current,
                  recommended=recommended, cpu_unknown=cpu_unknown, memory_unknown=memory_unknown, oom_kills=0,
                  samples=samples, cpu_samples=samples, memory_samples=samples, pods=2, strategy="simple",
                  window="all hours", info=info)


# ------------------------------------------------------------------ severity (krr)


@pytest.mark.parametrize("current, recommended, expected", [
    (1000, 500, CRITICAL), (1000, 501, WARNING), (500, 250, WARNING), (500, 251, OK), (200, 100, OK),
    (200, 101, GOOD), (100, 100, GOOD), (None, None, GOOD), (None, 100, WARNING), (100, None, WARNING)])
def test_cpu_severity_thresholds(current: int | None, recommended: int | None, expected: str) -> None:
    assert severity(current, recommended, resource="cpu") == expected


@pytest.mark.parametrize("diff_mi, expected", [(500, CRITICAL), (499, WARNING), (250, WARNING), (249, OK),
                                                (100, OK), (99, GOOD), (0, GOOD)])
def test_memory_severity_thresholds(diff_mi: int, expected: str) -> None:
    assert severity(1024 * MI, 1024 * MI - diff_mi * MI, resource="memory") == expected
    assert severity(1024 * MI, 1024 * MI + diff_mi * MI, resource="memory") == expected


def test_unknown_and_the_worst_of_request_and_limit() -> None:
    assert severity(100, 5000, resource="cpu", unknown=True) == UNKNOWN
    r = rec("svc", current=Figures(500, 1000, 256 * MI, 512 * MI), recommended=Figures(450, None, 256 * MI, 256 * MI))
    assert (r.cpu_severity, r.memory_severity, r.severity) == (WARNING, WARNING, WARNING)
    r = rec("svc", current=Figures(500, None, 256 * MI, 256 * MI), recommended=Figures(450, None, 260 * MI, 260 * MI))
    assert (r.cpu_severity, r.memory_severity) == (GOOD, GOOD)


# ------------------------------------------------------------------ JSON and table


def test_json_has_exactly_the_documented_fields_with_null_for_unset_and_unknown() -> None:
    a = rec("data-ingestor", current=Figures(200, 500, 256 * MI, 512 * MI), recommended=Figures(96, None, 230 * MI, 230 * MI))
    b = rec("signal-generator", current=Figures(200, 500, 256 * MI, 512 * MI),
            recommended=Figures(None, None, 230 * MI, 230 * MI), cpu_unknown=True, info=("HPA detected on cpu",))
    doc = json.loads(json.dumps(as_json([a, b])))
    assert list(doc) == ["recommendations"]
    rows = doc["recommendations"]
    assert [list(r) for r in rows] == [["namespace", "workload", "container", "cpu_request_m", "cpu_limit_m",
                                        "memory_request_bytes", "memory_limit_bytes", "severity", "samples",
                                        "info"]] * 2
    assert rows[0] == {"namespace": "eafix-trading", "workload": "data-ingestor", "container": "data-ingestor",
                       "cpu_request_m": 96, "cpu_limit_m": None, "memory_request_bytes": 230 * MI,
                       "memory_limit_bytes": 230 * MI, "severity": {"cpu": "WARNING", "memory": "WARNING"},
                       "samples": 1000, "info": None}
    assert rows[1]["cpu_request_m"] is None and rows[1]["severity"]["cpu"] == UNKNOWN
    assert rows[1]["info"] == "HPA detected on cpu"
    table = as_frame([a, b])
    assert list(table["recommended_cpu_request_m"]) == [96, "?"]
    assert list(table["change_cpu_request_m"]) == [-104, None]
    assert list(as_frame([]).columns) == list(table.columns)


# ------------------------------------------------------------------ session window


def test_window_from_session_names_is_their_union_on_weekdays() -> None:
    w = parse_window("london,new_york", sessions=SESSIONS)
    assert w.label == "london,new_york" and w.ranges == (SESSIONS["london"], SESSIONS["new_york"])
    ts = pd.Series(pd.to_datetime(["2026-11-02 07:59:00", "2026-11-02 08:00:00", "2026-11-02 16:45:00",
                                   "2026-11-02 19:59:59", "2026-11-02 20:00:00", "2026-11-07 12:00:00"], utc=True))
    assert list(w.mask(ts)) == [False, True, True, True, False, False]   # Saturday is out
    # the shipped usage model's sessions by default
    assert parse_window("new_york").ranges == (SESSIONS["new_york"],)


def test_window_from_hours() -> None:
    w = parse_window("08:00-20:00 UTC weekdays")
    assert (w.label, w.ranges, sorted(w.days)) == ("08:00-20:00 UTC weekdays", ((480, 1200),), [0, 1, 2, 3, 4])
    w = parse_window("  22:00-24:00,00:00-02:00   utc ")
    assert w.ranges == ((1320, 1440), (0, 120)) and len(w.days) == 7 and w.label == "22:00-24:00,00:00-02:00 UTC"
    ts = pd.Series(pd.to_datetime(["2026-11-07 23:30", "2026-11-08 01:59", "2026-11-08 02:00"], utc=True))
    assert list(w.mask(ts)) == [True, True, False]
    assert parse_window("09:00-17:00 weekends").days == frozenset({5, 6})
    assert parse_window("all") is ALL_HOURS and ALL_HOURS.everything


@pytest.mark.parametrize("text, message", [
    ("", "empty session window"), ("   ", "empty session window"),
    ("london,tokyo", "unknown session 'tokyo'; one of: london, new_york"),
    ("london, new_york", "unexpected text after the session names"),
    ("25:00-26:00 UTC", "not a time of day '25:00'"), ("08:60-09:00", "not a time of day '08:60'"),
    ("24:30-24:45", "not a time of day '24:30'"),
    ("20:00-08:00 UTC", "a session window closes before it opens '20:00-08:00'"),
    ("08:00 UTC", "not a time range '08:00'"), ("8-20 UTC", "not a time of day '8'"),
    ("08:00-20:00 EST", "only UTC session windows are supported 'EST'"),
    ("08:00-20:00 UTC fortnightly", "unknown days 'UTC fortnightly'"),
    ("08:00-20:00 UTC weekdays weekends", "unknown days"),
])
def test_bad_windows_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_window(text, sessions=SESSIONS)
    assert message in str(e.value) and str(e.value).startswith("--window: ") and "\n" not in str(e.value)


def test_recommend_through_this_module_refuses_an_unknown_strategy() -> None:
    from eafix_capacity.usage import recommend as module
    with pytest.raises(InputError, match=r"^--strategy: unknown strategy 'peak'; one of: simple, session-peak, vpa$"):
        module.recommend(pd.DataFrame(), strategy="peak")


def test_window_that_is_not_text_is_refused() -> None:
    with pytest.raises(InputError, match="empty session window"):
        parse_window(None)


# ------------------------------------------------------------------ the recommended catalogue


def test_catalog_text_round_trips_the_embedded_catalogue() -> None:
    catalog = load_catalog()
    again = catalog_from_dict(yaml.safe_load(catalog_text(catalog)), file="x")
    assert [service_fields(s) for s in again.services] == [service_fields(s) for s in catalog.services]
    assert [s.sources for s in again.services] == [s.sources for s in catalog.services]
    assert [s.description for s in again.services] == [s.description for s in catalog.services]


def test_recommended_catalog_changes_the_figures_and_says_where_they_came_from(tmp_path: object) -> None:
    catalog = load_catalog()
    recs = [
        rec("data-ingestor", current=Figures(200, 500, 256 * MI, 512 * MI),
            recommended=Figures(96, None, 230 * MI, 230 * MI), samples=4000),
        # cpu '?' (HPA detected): cpu stays; memory changes
        rec("signal-generator", recommended=Figures(None, None, 300 * MI, 300 * MI), cpu_unknown=True, samples=10),
        # everything '?': nothing changes
        rec("reporter", recommended=Figures(), cpu_unknown=True, memory_unknown=True),
        # above the current CPU limit with no CPU limit recommended: the limit is raised to the request
        rec("grafana", recommended=Figures(800, None, 256 * MI, 512 * MI), samples=7),
        rec("no-such-service"),
    ]
    out = recommended_catalog(catalog, recs, strategy="session-peak", window="london,new_york")
    doc = yaml.safe_load(out.text)
    by_name = {s["name"]: s for s in doc["services"]}
    di = by_name["data-ingestor"]
    assert di["containers"][0]["requests"] == {"cpu": "96m", "memory": "230Mi"}
    assert di["containers"][0]["limits"] == {"cpu": "500m", "memory": "230Mi"}   # no CPU limit: kept
    assert di["source"]["resources"] == "recommended: session-peak, london,new_york, 4000 samples"
    sg = by_name["signal-generator"]
    assert sg["containers"][0]["requests"] == {"cpu": "200m", "memory": "300Mi"}
    assert sg["source"]["resources"] == "recommended: session-peak, london,new_york, 10 samples"
    assert by_name["reporter"]["source"]["resources"].startswith("assumed:")
    assert by_name["grafana"]["containers"][0]["limits"]["cpu"] == "800m"
    assert by_name["postgres"]["source"]["resources"].startswith("assumed:")
    assert out.unmatched == ("no-such-service/no-such-service",)
    fields = {(c.service, c.field): (c.current, c.recommended) for c in out.changes}
    assert fields[("data-ingestor", "cpu_request_m")] == (200, 96)
    assert ("reporter", "cpu_request_m") not in fields and ("data-ingestor", "cpu_limit_m") not in fields
    diff = out.diff
    assert set(diff["service"]) == {"data-ingestor", "signal-generator", "grafana"}
    assert diff[(diff.service == "data-ingestor") & (diff.field == "cpu_request_m")][["left", "right"]].values.tolist() \
        == [[200, 96]]
    # the catalogue and its text agree, and the text loads as a services file
    assert out.catalog.get("data-ingestor").containers[0].resources.cpu_request_m == 96
    path = tmp_path / "services.yaml"  # type: ignore[operator]
    path.write_text(out.text)
    assert load_catalog(path).get("signal-generator").sources["resources"].startswith("recommended: ")


def test_recommended_catalog_needs_a_strategy_and_window() -> None:
    for kw in ({"strategy": "", "window": "all hours"}, {"strategy": "simple", "window": "a\nb"}):
        with pytest.raises(InputError, match="for the recommended figures' source"):
            recommended_catalog(load_catalog(), [], **kw)  # type: ignore[arg-type]


def test_catalogue_source_refuses_unknown_kinds_but_takes_recommended() -> None:
    doc = yaml.safe_load(catalog_text(load_catalog()))
    doc["services"][0]["source"]["resources"] = "recommended: simple, all hours, 20160 samples"
    assert catalog_from_dict(doc).services[0].sources["resources"].startswith("recommended:")
    doc["services"][0]["source"]["resources"] = "guessed: by eye"
    with pytest.raises(InputError, match="invalid source.*recommended: <strategy>, <window>, <n> samples"):
        catalog_from_dict(doc)


# ------------------------------------------------------------------ re-plan


def test_replan_gives_the_node_count_on_both_catalogues() -> None:
    catalog = load_catalog()
    params = PlanParams()
    big = [rec(s.name, c.name, recommended=Figures(4000, 4000, 8 * 2**30, 8 * 2**30))
           for s in catalog.services for c in s.containers]
    heavy = recommended_catalog(catalog, big, strategy="simple", window="all hours").catalog
    r = replan(params, heavy)
    assert r.current_nodes is not None and r.recommended_nodes is not None
    assert r.recommended_nodes > r.current_nodes
    assert f"{r.current_nodes} with the current catalogue, {r.recommended_nodes} with the recommended one" in r.line()
    assert r.to_dict()["node_type"] == "n2-standard-8"
    same = replan(params, catalog)
    assert same.recommended_nodes == same.current_nodes


def test_end_to_end_simple_on_samples_to_catalogue() -> None:
    from eafix_capacity.usage.strategies import Settings, hpa_from_catalog, recommend
    from eafix_capacity.usage.samples import FRAME_COLUMNS
    catalog = load_catalog()
    t0 = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    rows = []
    for name in ("data-ingestor", "signal-generator"):
        for i in range(120):
            rows.append({"timestamp": t0 + timedelta(minutes=i), "context": "sim", "namespace": "eafix-trading",
                         "pod": f"{name}-0", "container": name, "service": name, "node": "n", "cpu_m": 150.0,
                         "memory_bytes": 300 * MI, "cpu_request_m": 200, "cpu_limit_m": 500,
                         "memory_request_bytes": 256 * MI, "memory_limit_bytes": 512 * MI, "source": "test"})
    df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    for c in ("memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes"):
        df[c] = df[c].astype("Int64")
    recs = recommend(df, strategy="simple", settings=Settings(hpa=hpa_from_catalog(catalog)))
    out = recommended_catalog(catalog, recs, strategy="simple", window="all hours")
    assert out.catalog.get("data-ingestor").containers[0].resources.cpu_request_m == 150
    assert out.catalog.get("signal-generator").containers[0].resources.cpu_request_m == 200   # HPA detected
    assert out.catalog.get("signal-generator").containers[0].resources.memory_request_bytes == 345 * MI
    assert out.catalog.get("data-ingestor").sources["resources"] == "recommended: simple, all hours, 120 samples"
