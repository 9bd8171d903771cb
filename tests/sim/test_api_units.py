"""Pure pieces of the sim API: selectors, patches, field sets, protobuf decoding, the store."""
from __future__ import annotations

import pytest

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.patch import (field_set, from_fields_v1, json_patch, merge_patch, server_side_apply,
                                      strategic_merge_patch, to_fields_v1)
from eafix_capacity.sim.proto import MAGIC, decode
from eafix_capacity.sim.schemas import builtin_node
from eafix_capacity.sim.selectors import matcher
from eafix_capacity.sim.store import Store

POD_NODE = builtin_node("v1", "Pod")


def test_label_selector_grammar() -> None:
    obj = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    assert matcher("app=web,tier in (front, back)", None, "Pod")(obj)
    assert not matcher("app notin (web)", None, "Pod")(obj)
    assert matcher("!missing,app", None, "Pod")(obj)
    assert not matcher("app==db", None, "Pod")(obj)
    with pytest.raises(ApiError) as err:
        matcher("app=(", None, "Pod")
    assert err.value.code == 400


def test_field_selector_per_kind() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "a"}, "status": {"phase": "Running"}}
    assert matcher(None, "spec.nodeName=a,status.phase!=Pending", "Pod")(pod)
    with pytest.raises(ApiError):
        matcher(None, "spec.nodeName=a", "ConfigMap")


def test_strategic_merge_patch_directives() -> None:
    assert POD_NODE is not None
    live = {"spec": {"containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
                                    {"name": "b", "image": "2"}]},
            "metadata": {"finalizers": ["f1", "f2"], "labels": {"k": "v", "drop": "me"}}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"], "labels": {"drop": None}}}
    out = strategic_merge_patch(live, patch, POD_NODE)
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "a"]
    assert out["spec"]["containers"][1]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert out["metadata"] == {"finalizers": ["f2"], "labels": {"k": "v"}}
    replaced = strategic_merge_patch(live, {"spec": {"containers": [{"name": "z", "image": "9"},
                                                                    {"$patch": "replace"}]}}, POD_NODE)
    assert replaced["spec"]["containers"] == [{"name": "z", "image": "9"}]
    retained = strategic_merge_patch({"spec": {"a": 1, "b": 2}}, {"spec": {"$retainKeys": ["b"], "b": 3}}, POD_NODE)
    assert retained == {"spec": {"b": 3}}
    with pytest.raises(ApiError):
        strategic_merge_patch(live, {"spec": {"containers": [{"image": "no-name"}]}}, POD_NODE)


def test_merge_patch_and_json_patch() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {"a": {"c": 2}, "l": [2]}
    doc = {"a": [1, 3]}
    assert json_patch(doc, [{"op": "add", "path": "/a/1", "value": 2}, {"op": "copy", "from": "/a", "path": "/b"},
                            {"op": "move", "from": "/b", "path": "/c"}]) == {"a": [1, 2, 3], "c": [1, 2, 3]}
    assert doc == {"a": [1, 3]}
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "explode", "path": "/a"}])
    with pytest.raises(ApiError):
        json_patch(doc, {"op": "add"})


def test_fields_v1_round_trip_and_list_keys() -> None:
    assert POD_NODE is not None
    pod = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i",
                                                                        "ports": [{"containerPort": 80}]}]}}
    paths = field_set(pod, POD_NODE)
    assert ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image") in paths
    assert ("f:spec", "f:containers", 'k:{"name":"c"}', "f:ports", 'k:{"containerPort":80}', ".") in paths
    assert from_fields_v1(to_fields_v1(paths)) == paths


def test_server_side_apply_shares_keyed_lists_between_managers() -> None:
    assert POD_NODE is not None
    mine = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "1"}]}}
    live = server_side_apply(None, mine, POD_NODE, manager="one", force=False)
    theirs = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"containers": [{"name": "b", "image": "2"}]}}
    both = server_side_apply(live, theirs, POD_NODE, manager="two", force=False)
    assert [c["name"] for c in both["spec"]["containers"]] == ["a", "b"]
    clash = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
             "spec": {"containers": [{"name": "a", "image": "9"}]}}
    with pytest.raises(ApiError) as err:
        server_side_apply(both, clash, POD_NODE, manager="two", force=False)
    assert err.value.code == 409 and err.value.details["causes"][0]["reason"] == "FieldManagerConflict"


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_namespace_and_unsupported_kind() -> None:
    meta = _field(1, b"team-a") + _field(11, _field(1, b"env") + _field(2, b"prod"))
    body = MAGIC + _field(1, _field(1, b"v1") + _field(2, b"Namespace")) + _field(2, _field(1, meta))
    assert decode(body) == {"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "team-a", "labels": {"env": "prod"}}}
    other = MAGIC + _field(1, _field(1, b"batch/v1") + _field(2, b"Job")) + _field(2, b"")
    with pytest.raises(ApiError) as err:
        decode(other)
    assert err.value.code == 415
    with pytest.raises(ApiError) as err:
        decode(MAGIC + b"\xff\xff\xff")
    assert err.value.code == 400


def test_store_conflict_subscribe_and_watch_log() -> None:
    store = Store()
    seen: list[tuple[str, str]] = []
    store.subscribe(lambda t, rt, o: seen.append((t, o["metadata"]["name"])))
    obj = store.create(R.CONFIGMAP, {"metadata": {"name": "x", "namespace": "default"}, "data": {"a": "1"}})
    rv = int(obj["metadata"]["resourceVersion"])
    obj["data"] = {"a": "2"}
    store.update(R.CONFIGMAP, obj)
    with pytest.raises(ApiError) as err:
        store.update(R.CONFIGMAP, obj)
    assert err.value.code == 409
    store.delete(R.CONFIGMAP, "default", "x")
    assert seen == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]
    assert [e.type for e in store.events_since(rv - 1, R.CONFIGMAP)] == ["ADDED", "MODIFIED", "DELETED"]
    with pytest.raises(ApiError) as err:
        store.get(R.CONFIGMAP, "default", "x")
    assert err.value.code == 404


def test_store_dump_and_restore() -> None:
    store = Store()
    store.create(R.CONFIGMAP, {"metadata": {"name": "keep", "namespace": "default"}})
    copy = Store()
    copy.restore(store.dump())
    assert copy.get(R.CONFIGMAP, "default", "keep")["metadata"]["uid"] == \
        store.get(R.CONFIGMAP, "default", "keep")["metadata"]["uid"]
    assert copy.resource_version == store.resource_version


def test_store_dump_raw_matches_dump() -> None:
    import json

    store = Store()
    store.create(R.CONFIGMAP, {"metadata": {"name": "a", "namespace": "default"}, "data": {"k": "ü"}})
    rv, raw = store.dump_raw()
    assert rv == store.resource_version and json.loads(raw) == store.dump()


def test_server_side_apply_matches_ports_by_defaulted_protocol() -> None:
    assert POD_NODE is not None
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
    applied = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80}]}]}}
    out = server_side_apply(live, applied, POD_NODE, manager="me", force=False)
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_watch_from_before_a_restore_is_410_not_silently_empty() -> None:
    store = Store()
    store.create(R.CONFIGMAP, {"metadata": {"name": "a", "namespace": "default"}})
    first = store.resource_version
    store.create(R.CONFIGMAP, {"metadata": {"name": "b", "namespace": "default"}})
    copy = Store()
    copy.restore(store.dump())
    with pytest.raises(ApiError) as err:
        copy.events_since(first, R.CONFIGMAP)  # "b" was created after it: the change cannot be replayed
    assert err.value.code == 410 and err.value.reason == "Expired"
    assert copy.events_since(copy.resource_version, R.CONFIGMAP) == []
    copy.create(R.CONFIGMAP, {"metadata": {"name": "c", "namespace": "default"}})
    assert [e.name for e in copy.events_since(store.resource_version, R.CONFIGMAP)] == ["c"]
