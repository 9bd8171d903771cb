"""The pure pieces of the sim's decoding and validation, against the real server's rules: quantity text
as ParseQuantity reads it, Go's base64, field selectors, QoS classes, and the rules table itself."""
from __future__ import annotations

import pytest

from eafix_capacity import quantity
from eafix_capacity.sim import defaults, rules
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.selectors import parse_field_selector
from eafix_capacity.sim.validation import go_base64_decode


@pytest.mark.parametrize(("sent", "stored"), [
    ("0.5", "500m"), ("1000m", "1"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("250m", "250m"), ("2", "2"),
    (0.5, "500m"), (2, "2"), ("1e3", "1e3"), ("2048Ki", "2Mi"), ("1536Mi", "1536Mi"), (" 1 ", "1"), ("m", "0"),
    ("0.1m", "100u"), ("-1", "-1"), ("1000000", "1M"), ("128974848", "128974848"),
])
def test_quantity_text_is_stored_as_the_api_server_serialises_it(sent: object, stored: str) -> None:
    assert quantity.server_error(sent) is None  # type: ignore[arg-type]
    assert quantity.server_text(sent) == stored  # type: ignore[arg-type]


@pytest.mark.parametrize(("sent", "error"), [
    ("2 cores", quantity.SERVER_FORMAT_ERROR), ("2Gb", quantity.SERVER_FORMAT_ERROR),
    ("", quantity.SERVER_FORMAT_ERROR),
    ("abc", quantity.SERVER_FORMAT_ERROR), ("1K", quantity.SERVER_SUFFIX_ERROR), ("1iM", quantity.SERVER_SUFFIX_ERROR),
])
def test_malformed_quantity_text_gets_the_parse_quantity_error(sent: str, error: str) -> None:
    assert quantity.server_error(sent) == error


def test_the_format_error_is_apimachinery_s_text() -> None:
    assert quantity.SERVER_FORMAT_ERROR == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize(("text", "decoded"), [
    ("aGVsbG8=", b"hello"), ("aGVs\nbG8=", b"hello"), ("aGVs\r\nbG8=\n", b"hello"), ("YQ=\n=", b"a"), ("", b""),
])
def test_base64_is_decoded_as_go_decodes_it(text: str, decoded: bytes) -> None:
    assert go_base64_decode(text) == (decoded, None)


@pytest.mark.parametrize(("text", "offset"), [
    ("aGVs*G8=", 4), ("aGVsbG8", 4), ("aGVsbG8=x", 8), ("a===", 1), ("aGk", 0),
])
def test_bad_base64_names_the_byte_go_names(text: str, offset: int) -> None:
    assert go_base64_decode(text) == (b"", offset)


def test_empty_field_selector_terms_are_skipped_as_fields_parse_selector_does() -> None:
    assert parse_field_selector("metadata.name=a,", "ConfigMap") == parse_field_selector("metadata.name=a", "ConfigMap")
    assert len(parse_field_selector("metadata.name=a,,metadata.namespace=b", "ConfigMap")) == 2
    with pytest.raises(ApiError) as e:
        parse_field_selector("metadata.name", "ConfigMap")
    assert e.value.code == 400


def _pod(*resources: dict) -> dict:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}


@pytest.mark.parametrize(("pod", "qos"), [
    (_pod({}), "BestEffort"),
    (_pod({"requests": {"cpu": "0"}}), "BestEffort"),
    (_pod({"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}}), "Burstable"),
    (_pod({"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed"),
    (_pod({"limits": {"cpu": "1", "memory": "1Gi"}}, {"requests": {"cpu": "1"}}), "Burstable"),
])
def test_qos_class_as_get_pod_qos_computes_it(pod: dict, qos: str) -> None:
    assert defaults.pod_qos_class(pod) == qos


def test_generation_only_on_the_kinds_whose_strategy_sets_it() -> None:
    assert defaults.tracks_generation("apps", "Deployment", builtin=True)
    assert defaults.tracks_generation("policy", "PodDisruptionBudget", builtin=True)
    assert defaults.tracks_generation("example.com", "Widget", builtin=False)
    for group, kind in (("", "Pod"), ("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "Namespace"),
                        ("autoscaling", "HorizontalPodAutoscaler")):
        assert not defaults.tracks_generation(group, kind, builtin=True), kind


def test_every_rule_names_its_real_source_and_known_kinds() -> None:
    known = set(rules.POD_SPEC_PATHS) | {k for r in rules.RULES for k in r.kinds}
    for rule in rules.RULES:
        assert rule.source.startswith("pkg/"), rule.name
        assert rule.scope in ("object", "podspec") and rule.field, rule.name
        assert all(kind in known for kind in rule.kinds)
        if rule.scope == "podspec":
            assert all(kind in rules.POD_SPEC_PATHS for kind in rule.kinds), rule.name
    assert len({r.name for r in rules.RULES}) == len(rules.RULES)


def _deployment(**pod_spec: object) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}], **pod_spec}}}}


def test_a_missing_restart_policy_is_the_default_always() -> None:
    assert rules.check(_deployment(), "apps", "Deployment") == []
    assert rules.check(_deployment(restartPolicy="Always"), "apps", "Deployment") == []
    (cause,) = rules.check(_deployment(restartPolicy="Never"), "apps", "DaemonSet")
    assert cause == {"reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
                     "message": 'Unsupported value: "Never": supported values: "Always"'}


def test_extended_resources_need_equal_requests_and_limits() -> None:
    gpu = _deployment()
    gpu["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}
    (cause,) = rules.check(gpu, "apps", "Deployment")
    assert cause["message"] == 'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'
    typo = _deployment()
    typo["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpus": "1"}}
    (cause,) = rules.check(typo, "apps", "Deployment")
    assert cause == {"reason": "FieldValueInvalid",
                     "field": "spec.template.spec.containers[0].resources.requests[cpus]",
                     "message": 'Invalid value: "cpus": must be a standard resource for containers'}


def test_an_unchanged_selector_passes_on_update() -> None:
    old = _deployment()
    assert rules.check(_deployment(), "apps", "Deployment", old=old) == []
    moved = _deployment()
    moved["spec"]["selector"] = {"matchLabels": {"a": "b"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web"]}]}
    (cause,) = rules.check(moved, "apps", "ReplicaSet", old=old)
    assert cause["message"] == (
        'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"b"}, MatchExpressions:'
        '[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"tier", Operator:"In", '
        'Values:[]string{"web"}}}}: field is immutable')
