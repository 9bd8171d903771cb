"""The store's compact object form: interned strings, parts shared between versions, the
encoding kept exact, one decoded copy per change for subscribers, and the controllers'
bounded event-aggregation cache."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eafix_capacity.sim import controllers as C
from eafix_capacity.sim.controllers import events
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import store as store_mod
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.store import INTERN_MAX_CHARS, Store, compact, encode


def _pod(name: str, **status) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                                     "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Pending", **status}}


def _stored(store: Store, rt: R.ResourceType, name: str) -> dict:
    objs, _, _ = store.list_objects(rt, "default", field_selector=f"metadata.name={name}")
    assert len(objs) == 1
    return objs[0]


def test_compact_is_equal_and_interns_keys_and_short_strings() -> None:
    a = json.loads('{"labels": {"app": "web"}, "n": [1, 2.5, true, null], "long": "' + "x" * 300 + '"}')
    b = json.loads('{"labels": {"app": "web"}, "n": [1, 2.5, true, null], "long": "' + "x" * 300 + '"}')
    ca, cb = compact(a), compact(b)
    assert ca == a and encode(ca) == encode(a)
    assert ca["labels"] is not a["labels"]  # a copy: the input stays the caller's
    key_a, key_b = next(iter(ca["labels"])), next(iter(cb["labels"]))
    assert key_a is key_b and ca["labels"]["app"] is cb["labels"]["app"]
    assert len(ca["long"]) > INTERN_MAX_CHARS


def test_compact_takes_equal_parts_from_the_previous_version() -> None:
    old = compact({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"},
                   "items": [{"x": 1}, {"y": 2}]})
    new = compact({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"},
                   "items": [{"x": 1}, {"y": 3}, {"z": 4}]}, old)
    assert new["spec"] is old["spec"]
    assert new["status"] is not old["status"] and new["status"] == {"phase": "Running"}
    assert new["items"][0] is old["items"][0] and new["items"][1] == {"y": 3} and new["items"][2] == {"z": 4}
    assert old["status"] == {"phase": "Pending"}  # the previous version is left as it was


def test_store_versions_share_unchanged_parts_and_objects_share_strings() -> None:
    store = Store()
    store.create(R.POD, _pod("a"))
    store.create(R.POD, _pod("b"))
    a, b = _stored(store, R.POD, "a"), _stored(store, R.POD, "b")
    assert a["metadata"]["labels"]["app"] is b["metadata"]["labels"]["app"]
    assert a["spec"]["containers"][0]["image"] is b["spec"]["containers"][0]["image"]
    body = store.get(R.POD, "default", "a")
    body["status"] = {"phase": "Running", "podIP": "10.0.0.2"}
    store.update(R.POD, body, subresource="status")
    after = _stored(store, R.POD, "a")
    assert after["spec"] is a["spec"] and after["metadata"]["labels"] is a["metadata"]["labels"]
    assert after["status"] == {"phase": "Running", "podIP": "10.0.0.2"}
    assert a["status"] == {"phase": "Pending"}  # a reader's older snapshot does not change
    raws, _ = store.list_raw(R.POD, "default")
    objs, _ = store.list(R.POD, "default")
    assert [encode(o) for o in objs] == raws


@pytest.mark.parametrize("before, after", [(1, True), (True, 1), (1, 1.0), (1.0, 1), (0, False),
                                           ([1, 2], [True, 2]), ({"n": 1}, {"n": 1.0})])
def test_store_keeps_the_exact_type_when_a_value_compares_equal(before: object, after: object) -> None:
    store = Store()  # a Deployment: a kind that carries metadata.generation (a ConfigMap has none)
    store.create(R.DEPLOYMENT, {"metadata": {"name": "c", "namespace": "default"}, "x": before, "same": {"k": "v"}})
    body = store.get(R.DEPLOYMENT, "default", "c")
    body["x"] = after
    raw = store.update_raw(R.DEPLOYMENT, body)
    stored = _stored(store, R.DEPLOYMENT, "c")
    assert encode(stored) == raw == store.get_raw(R.DEPLOYMENT, "default", "c")
    assert json.dumps(stored["x"]) == json.dumps(after)
    assert stored["metadata"]["generation"] == 2  # a change of JSON type is a change


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, -0.0, 2.5])
                     | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                                  max_size=3),
                     max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(first=_JSON, second=_JSON)
def test_stored_form_always_encodes_to_what_was_committed(first: object, second: object) -> None:
    store = Store()
    store.create(R.CONFIGMAP, {"metadata": {"name": "c", "namespace": "default"}, "v": first})
    body = store.get(R.CONFIGMAP, "default", "c")
    body["v"] = second
    raw = store.update_raw(R.CONFIGMAP, body)
    assert encode(_stored(store, R.CONFIGMAP, "c")) == raw


def test_an_object_too_deep_to_compact_is_kept_as_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_deep(value: object, like: object = None) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(store_mod, "compact", too_deep)
    store = Store()
    rv = store.resource_version
    store.create(R.CONFIGMAP, {"metadata": {"name": "deep", "namespace": "default"}, "data": {"a": "1"}})
    assert store.resource_version == rv + 1
    assert _stored(store, R.CONFIGMAP, "deep")["data"] == {"a": "1"}
    assert store.get(R.CONFIGMAP, "default", "deep")["data"] == {"a": "1"}


def test_subscribers_share_one_decoded_copy_that_is_not_the_stored_object() -> None:
    store = Store()
    got: list[dict] = []
    store.subscribe(lambda e, rt, o: got.append(o))
    store.subscribe(lambda e, rt, o: got.append(o))
    store.create(R.CONFIGMAP, {"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"}})
    assert len(got) == 2 and got[0] is got[1]
    assert got[0] is not _stored(store, R.CONFIGMAP, "c")
    assert got[0]["data"] == {"a": "1"}


def test_a_failing_subscriber_does_not_stop_the_others_or_the_write() -> None:
    store = Store()
    seen: list[str] = []

    def broken(etype: str, rt: object, obj: dict) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.subscribe(lambda e, rt, o: seen.append(o["metadata"]["name"]))
    store.create(R.CONFIGMAP, {"metadata": {"name": "c", "namespace": "default"}})
    assert seen == ["c"] and store.exists(R.CONFIGMAP, "default", "c")


def test_restore_stores_compact_objects() -> None:
    store = Store()
    store.create(R.POD, _pod("a"))
    store.create(R.POD, _pod("b"))
    copy = Store()
    copy.restore(json.loads(json.dumps(store.dump())))
    a, b = _stored(copy, R.POD, "a"), _stored(copy, R.POD, "b")
    assert a["metadata"]["labels"]["tier"] is b["metadata"]["labels"]["tier"]
    assert copy.list_raw(R.POD, "default")[0] == store.list_raw(R.POD, "default")[0]


def test_event_aggregation_cache_is_bounded_and_forgets_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "EVENT_CACHE_SIZE", 3)
    store = Store()
    cm = C.ControllerManager(store, store.registry, clock=SimClock(speed=0), seed=1)
    owners = [store.create(R.CONFIGMAP, {"metadata": {"name": f"o{i}", "namespace": "default"}}) for i in range(5)]
    for owner in owners:
        cm.event(owner, reason="Tested", message="m", component="test")
    assert len(cm.ctx.recorder._events) == 3
    assert {k[0] for k in cm.ctx.recorder._events} == {o["metadata"]["uid"] for o in owners[2:]}

    def tested_events() -> int:
        return len(store.list(R.EVENT, "default", field_selector="reason=Tested")[0])

    cm.event(owners[4], reason="Tested", message="m", component="test")  # remembered: aggregated
    assert tested_events() == 5
    cm.event(owners[0], reason="Tested", message="m", component="test")  # forgotten: a new Event
    assert tested_events() == 6 and len(cm.ctx.recorder._events) == 3
    assert owners[0]["metadata"]["uid"] in {k[0] for k in cm.ctx.recorder._events}


def test_pdb_sync_leaves_the_stored_conditions_unchanged() -> None:
    store = Store()
    cm = C.ControllerManager(store, store.registry, clock=SimClock(speed=0), seed=1)
    store.create(R.PDB, {"metadata": {"name": "p", "namespace": "default"},
                         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    body = store.get(R.PDB, "default", "p")
    other = {"type": "Other", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "R",
             "message": ""}
    body["status"] = {"conditions": [other]}
    store.update(R.PDB, body, subresource="status")
    before = _stored(store, R.PDB, "p")
    cm.run_once()
    assert before["status"]["conditions"] == [other]
    after = _stored(store, R.PDB, "p")
    assert [c["type"] for c in after["status"]["conditions"]] == ["Other", "DisruptionAllowed"]
    assert all(c["observedGeneration"] == 1 for c in after["status"]["conditions"])
