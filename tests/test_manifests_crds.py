"""Stand-in CRDs: one per non-core kind the rendering writes, with the right names."""
from __future__ import annotations

from eafix_capacity.manifests.crds import stand_in_crds
from eafix_capacity.manifests.load import load_manifests
from eafix_capacity.paths import MANIFESTS_DIR


def test_every_istio_kind_in_the_rendering_has_a_crd():
    crds = stand_in_crds(groups=("networking.istio.io", "security.istio.io"))
    served = {(c["spec"]["group"], v["name"], c["spec"]["names"]["kind"])
              for c in crds for v in c["spec"]["versions"]}
    rendered = {tuple(o["apiVersion"].split("/")) + (o["kind"],)
                for o in load_manifests(MANIFESTS_DIR / "recommended-istio" / "istio").dicts}
    assert rendered and rendered <= served


def test_names_follow_plural_dot_group():
    names = {c["metadata"]["name"] for c in stand_in_crds()}
    assert {"gateways.networking.istio.io", "authorizationpolicies.security.istio.io",
            "virtualservices.networking.istio.io", "externalsecrets.external-secrets.io"} <= names
    for c in stand_in_crds():
        assert c["metadata"]["name"] == f'{c["spec"]["names"]["plural"]}.{c["spec"]["group"]}'


def test_group_filter():
    assert {c["spec"]["group"] for c in stand_in_crds(groups=("external-secrets.io",))} == {"external-secrets.io"}
