"""Secret values at apply time (pure): placeholders found, values read from a file or the
environment, filled, the template or the External Secrets variant chosen, and the refusal of
placeholders on a cluster that is not the sim. No value ever appears in a message or a repr."""
from __future__ import annotations

import base64
import copy
import dataclasses
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

from eafix_capacity.cluster.order import Source, SourcedObject
from eafix_capacity.cluster.secrets import (WHAT_TO_DO, NoExternalSecrets, Placeholder, Prepared, SecretsNotSupplied,
                                            SecretsSourceError, SecretValues, check, fill, key_problem, placeholders,
                                            prepare, read_secret_values, select_variant)
from eafix_capacity.errors import MAX_MESSAGE_CHARS, ClusterError
from eafix_capacity.manifests.load import LoadedObject, load_manifests
from eafix_capacity.manifests.secrets import SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
NS = "eafix-trading"
TEMPLATE_FILE = str(ROOT / "manifests/recommended/secrets/trading-secrets.yml")
ESO_FILE = str(ROOT / "manifests/recommended/secrets/external-secrets/external-secret-store.yml")
V1, V2, V3 = "s3cr3t-test-value-1", "s3cr3t-test-value-2", "s3cr3t-test-value-3"
TEST_VALUES = (V1, V2, V3, "s3cr3t")  # "s3cr3t" catches any part of a value too


def _clean(text: str) -> str:
    for value in TEST_VALUES:
        assert value not in text, f"a secret value leaked into: {text}"
    return text


def _msg(e: pytest.ExceptionInfo[BaseException]) -> str:
    return _clean(str(e.value))


@pytest.fixture(scope="module")
def recommended() -> list[LoadedObject]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_manifests(ROOT / "manifests" / "recommended").objects


def _secret(name: str = "s", *, namespace: str | None = NS, string_data: dict[str, Any] | None = None,
            data: dict[str, Any] | None = None, api_version: str = "v1") -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": "Secret",
                           "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
    if string_data is not None:
        obj["stringData"] = string_data
    if data is not None:
        obj["data"] = data
    return obj


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _eso(kind: str, name: str, *, namespace: str | None = NS, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "external-secrets.io/v1beta1", "kind": kind, "metadata": meta, "spec": spec or {}}


def _values(**kv: str) -> SecretValues:
    return SecretValues.from_mapping(kv, origin="file /tmp/x.env")


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return str(p)


# --- placeholders ------------------------------------------------------------------------------------

def test_placeholders_of_the_recommended_template(recommended: list[LoadedObject]) -> None:
    found = placeholders(recommended)
    assert [p.key for p in found] == list(SECRET_KEYS)
    assert {p.secret for p in found} == {f"{NS}/trading-secrets"}
    assert {p.field for p in found} == {"stringData"}
    assert {p.source for p in found} == {f"{TEMPLATE_FILE} (document 0)"}
    assert str(found[0]) == (f"Secret {NS}/trading-secrets key REDIS_PASSWORD (stringData) in "
                             f"{TEMPLATE_FILE} (document 0)")


def test_placeholders_in_data_by_decoded_text_and_every_input_shape() -> None:
    obj = _secret(data={"a": _b64("REPLACE_ME"), "b": _b64(V1), "c": "!!not base64!!", "d": _b64("<password>"),
                        "e": ""})
    found = placeholders([obj])
    assert [(p.key, p.field, p.source, p.secret) for p in found] == [
        ("a", "data", "(rendered in memory)", f"{NS}/s"), ("d", "data", "(rendered in memory)", f"{NS}/s"),
        ("e", "data", "(rendered in memory)", f"{NS}/s")]
    loaded = LoadedObject(obj, "x.yml", 2, 5)
    assert {p.source for p in placeholders([loaded])} == {"x.yml (document 2)"}
    wrapped = SourcedObject(obj, Source("y.yml", 1))
    assert {p.source for p in placeholders([wrapped])} == {"y.yml (document 1)"}


def test_placeholders_only_in_v1_secrets_and_stringdata_overrides_data() -> None:
    assert placeholders([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                          "data": {"k": "REPLACE_ME"}}]) == []
    assert placeholders([_secret(string_data={"k": "REPLACE_ME"}, api_version="v2")]) == []
    # a null or empty stringData value is a placeholder; a key in both maps counts once, by stringData
    found = placeholders([_secret(namespace=None, string_data={"k": None, "j": V1},
                                  data={"k": _b64(V1), "j": _b64("REPLACE_ME")})])
    assert [(p.secret, p.key, p.field) for p in found] == [("s", "k", "stringData")]


# --- SecretValues never shows a value ----------------------------------------------------------------

def test_secret_values_never_show_a_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.env", f"REDIS_PASSWORD={V1}\nPOSTGRES_PASSWORD={V2}\n")
    for values in (read_secret_values(path, environ={}),
                   read_secret_values("env", environ={"REDIS_PASSWORD": V1}),
                   read_secret_values("env:P_", environ={"P_REDIS_PASSWORD": V1})):
        assert values.get("REDIS_PASSWORD") == V1
        for text in (repr(values), str(values), f"{values}", f"{values!r}", repr(dataclasses.asdict(values)),
                     repr(copy.deepcopy(values)), repr(values.supplied)):
            _clean(text)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(values)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(values.supplied)
    assert str(read_secret_values(path, environ={})) == f"file {path}"
    assert repr(read_secret_values(path, environ={})) == f"SecretValues(origin='file {path}')"


# --- reading a dotenv file ---------------------------------------------------------------------------

def test_dotenv_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "secrets.env", "\n".join([
        "# a comment", "", f"REDIS_PASSWORD={V1}", f"export POSTGRES_PASSWORD = '{V2} x'",
        f'BROKER_API_KEY="{V3}#=x"', "  GRAFANA_ADMIN_PASSWORD=a=b # not a comment  ", "EMPTY=", "k.e-y_1=''",
    ]) + "\n")
    values = read_secret_values(path, environ={"REDIS_PASSWORD": "from-env"})
    assert values.origin == f"file {path}"
    assert values.keys() == ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "BROKER_API_KEY", "GRAFANA_ADMIN_PASSWORD",
                             "EMPTY", "k.e-y_1")
    assert [values.get(k) for k in values.keys() or ()] == [V1, f"{V2} x", f"{V3}#=x", "a=b # not a comment", "",
                                                           ""]
    assert values.get("NOT_THERE") is None
    assert values.where("REDIS_PASSWORD") == f"file {path}"


@pytest.mark.parametrize("line, problem", [
    (V1, "line 2: not KEY=VALUE (no '=')"),
    (f"BAD KEY={V1}", "line 2: the key holds a character other than alphanumerics, '-', '_', '.'"),
    (f"K@Y={V1}", "line 2: the key holds a character other than alphanumerics, '-', '_', '.'"),
    (f"={V1}", "line 2: the key is empty"),
    (f"..K={V1}", "line 2: the key must not start with '..'"),
    (f".={V1}", "line 2: the key must not be '.'"),
    ("K" * 254 + f"={V1}", "line 2: the key is longer than 253 characters"),
    (f"OK={V2}", "line 2: duplicate key OK (first on line 1)"),
    (f'K="{V1}', "line 2: the value of K opens a quote it does not close on that line"),
    (f"K='{V1}\"", "line 2: the value of K opens a quote it does not close on that line"),
], ids=range(10))
def test_dotenv_bad_lines(tmp_path: Path, line: str, problem: str) -> None:
    path = _write(tmp_path, "bad.env", f"OK={V3}\n{line}\n")
    with pytest.raises(SecretsSourceError) as e:
        read_secret_values(path, environ={})
    message = _msg(e)
    assert message.startswith(f"secrets file {path}: {problem}; ")
    assert "\n" not in message
    assert isinstance(e.value, ClusterError) and isinstance(e.value, ValueError)


def test_key_problem_mirrors_is_config_map_key() -> None:
    assert [key_problem(k) for k in ("a", "A.b-c_9", ".a", "a..b", "K" * 253)] == [None] * 5
    assert key_problem("..") == "the key must not be '..'"
    assert key_problem("a/b") is not None and key_problem("ä") is not None


# --- reading a YAML file -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("s.yaml", f"REDIS_PASSWORD: {V1}\nPOSTGRES_PASSWORD: '{V2}'\n"),
    ("s.yml", f"---\nREDIS_PASSWORD: \"{V1}\"\nPOSTGRES_PASSWORD: |-\n  {V2}\n"),
    ("s.json", f'{{"REDIS_PASSWORD": "{V1}", "POSTGRES_PASSWORD": "{V2}"}}'),
    ("secrets", f"# yaml by its first line\nREDIS_PASSWORD: {V1}\nPOSTGRES_PASSWORD: {V2}\n"),
    ("secrets.txt", f'{{"REDIS_PASSWORD": "{V1}", "POSTGRES_PASSWORD": "{V2}"}}\n'),
], ids=["yaml", "yml", "json", "no-suffix", "txt-json"])
def test_yaml_file(tmp_path: Path, name: str, content: str) -> None:
    values = read_secret_values(_write(tmp_path, name, content), environ={})
    assert values.keys() == ("REDIS_PASSWORD", "POSTGRES_PASSWORD")
    assert (values.get("REDIS_PASSWORD"), values.get("POSTGRES_PASSWORD")) == (V1, V2)


@pytest.mark.parametrize("content, problem", [
    (f"A: {V1}\nB: 12\n", "line 2: the value of B is not a string; quote it"),
    (f"A: {V1}\nB: true\n", "line 2: the value of B is not a string"),
    (f"A: {V1}\nB:\n", "line 2: the value of B is not a string"),
    (f"A: {V1}\nB: [{V2}]\n", "line 2: the value of B is not a string"),
    (f"A: {V1}\n12: {V2}\n", "line 2: a key that is not a string"),
    (f"A: {V1}\nb/c: {V2}\n", "line 2: the key holds a character other than"),
    (f"A: {V1}\nA: {V2}\n", "line 2: duplicate key A (first on line 1)"),
    (f"- {V1}\n", "line 1: the document is not a mapping"),
    (f"{V1}\n", "line 1: the document is not a mapping"),
    (f"A: {V1}\n---\nB: {V2}\n", "invalid YAML"),
    (f"A: [{V1}\n", "invalid YAML"),
    ("# only a comment\n", "the file holds no keys"),
    ("{}\n", "the file holds no keys"),
    # PyYAML quotes an alias, an anchor or a tag handle: a value starting with *, & or ! is not repeated
    (f"A: *{V1}\n", "line 1, column 4: invalid YAML (found undefined alias '...')"),
    (f"A: &{V1} x\nB: &{V1} y\n", "invalid YAML (second occurrence; found duplicate anchor '...'"),
    (f"A: !{V1}!x y\n", "invalid YAML (found undefined tag handle '...')"),
    (f"A: {{{V1}\n", "invalid YAML (expected ',' or '}', but got '<stream end>'"),
    (f'A: "{V1}\\q"\n', "invalid YAML (found unknown escape character 'q')"),
], ids=range(18))
def test_yaml_bad_content(tmp_path: Path, content: str, problem: str) -> None:
    path = _write(tmp_path, "bad.yaml", content)
    with pytest.raises(SecretsSourceError) as e:
        read_secret_values(path, environ={})
    message = _msg(e)
    assert message.startswith(f"secrets file {path}: ") and problem in message, message
    assert "\n" not in message


# --- reading: files that cannot be read --------------------------------------------------------------

@pytest.mark.parametrize("make, problem", [
    (lambda p: str(p / "missing.env"), "file not found"),
    (lambda p: str(p), "is a directory"),
    (lambda p: _write(p, "f", "A=b\n") + "/below", "cannot read the file (Not a directory)"),
    (lambda p: _write(p, "empty.env", ""), "the file is empty"),
    (lambda p: _write(p, "blank.env", "  \n\n"), "the file is empty"),
    (lambda p: _write(p, "comments.env", "# A=b\n#\n"), "the file holds no keys (only comments and blank lines)"),
    (lambda p: _write(p, "latin1.env", f"A={V1}\nB=caf\xe9\n".encode("latin-1")), "line 2: not UTF-8 text"),
    (lambda p: _write(p, "big.env", "A=" + "x" * (1024 * 1024)), "larger than 1024 KiB"),
])
def test_unreadable_files(tmp_path: Path, make: Any, problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(SecretsSourceError) as e:
        read_secret_values(path, environ={})
    assert _msg(e).startswith(f"secrets file {path}: {problem}")


def test_bad_specs() -> None:
    with pytest.raises(SecretsSourceError, match="no file named; FILE, env or env:PREFIX"):
        read_secret_values(" ", environ={})
    with pytest.raises(SecretsSourceError, match="the prefix holds '='"):
        read_secret_values("env:A=B", environ={})


def test_bom_ignored_and_lines_split_at_newlines_only(tmp_path: Path) -> None:
    values = read_secret_values(_write(tmp_path, "x.env", f"\ufeffA={V1}\r\nB={V2}\u2028{V3}\x0c\n"), environ={})
    assert (values.get("A"), values.get("B")) == (V1, f"{V2}\u2028{V3}")


# --- the environment ---------------------------------------------------------------------------------

def test_environment_is_read_lazily_and_not_copied() -> None:
    environ: dict[str, str] = {"OTHER": V2}
    plain = read_secret_values("env", environ=environ)
    prefixed = read_secret_values("env:EAFIX_SECRET_", environ=environ)
    assert (plain.origin, prefixed.origin) == ("environment", "environment (variables EAFIX_SECRET_KEY)")
    assert plain.keys() is None
    environ["REDIS_PASSWORD"] = V1  # set after reading: found when filling
    environ["EAFIX_SECRET_REDIS_PASSWORD"] = V3
    assert plain.get("REDIS_PASSWORD") == V1 and prefixed.get("REDIS_PASSWORD") == V3
    assert prefixed.get("OTHER") is None
    assert prefixed.where("REDIS_PASSWORD") == "environment variable EAFIX_SECRET_REDIS_PASSWORD"
    assert read_secret_values("env:", environ=environ).get("REDIS_PASSWORD") == V1


# --- fill --------------------------------------------------------------------------------------------

def test_fill_replaces_supplied_placeholders_only() -> None:
    secret = _secret(string_data={"A": "REPLACE_ME", "B": "REPLACE_ME", "C": V3},
                     data={"D": _b64("CHANGE_ME"), "E": "@@"})
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"A": "REPLACE_ME"}}
    original = copy.deepcopy(secret)
    items = [SourcedObject(secret, Source("s.yml", 3)), config]
    out = fill(items, _values(A=V1, C=V2, D=V2, E=V2))
    assert secret == original  # the input is untouched
    assert out[0].source == Source("s.yml", 3) and out[0].obj is not secret
    assert out[0].obj["stringData"] == {"A": V1, "B": "REPLACE_ME", "C": V3}  # C was not a placeholder
    assert out[0].obj["data"] == {"D": _b64(V2), "E": "@@"}  # E does not decode: not a placeholder
    assert out[1].obj is config  # nothing to fill: as given
    assert [p.key for p in placeholders(out)] == ["B"]


@pytest.mark.parametrize("empty", ["", "   "])
def test_fill_refuses_an_empty_value(empty: str) -> None:
    with pytest.raises(SecretsSourceError) as e:
        fill([_secret(string_data={"A": "REPLACE_ME", "B": "REPLACE_ME"})], _values(A=V1, B=empty))
    assert _msg(e) == (f"file /tmp/x.env: the value for key B of Secret {NS}/s is empty; a Secret key needs its "
                       "real value (a Secret with an empty password is never meant)")
    with pytest.raises(SecretsSourceError, match="environment variable P_B: the value for key B"):
        fill([_secret(string_data={"B": "REPLACE_ME"})], read_secret_values("env:P_", environ={"P_B": empty}))


# --- select_variant ----------------------------------------------------------------------------------

def test_select_template_on_recommended(recommended: list[LoadedObject]) -> None:
    kept, skipped = select_variant(recommended, external=False)
    assert [(i.ref(), i.source.file) for i, _ in skipped] == [
        (f"SecretStore {NS}/eafix-vault", ESO_FILE), (f"ExternalSecret {NS}/trading-secrets", ESO_FILE)]
    assert [r for _, r in skipped] == [
        f"the SecretStore of the External Secrets variant of Secret {NS}/trading-secrets; --external-secrets "
        "applies it instead of the template",
        f"the External Secrets variant of Secret {NS}/trading-secrets; --external-secrets applies it instead of "
        "the template"]
    assert [i.obj for i in kept] == [o.obj for o in recommended if "external-secrets" not in o.file]


def test_select_external_on_recommended(recommended: list[LoadedObject]) -> None:
    kept, skipped = select_variant(recommended, external=True)
    assert [(i.ref(), i.source.file, r) for i, r in skipped] == [
        (f"Secret {NS}/trading-secrets", TEMPLATE_FILE,
         f"the placeholder template of Secret {NS}/trading-secrets; --external-secrets applies ExternalSecret "
         f"{NS}/trading-secrets instead")]
    assert [i.obj for i in kept] == [o.obj for o in recommended if o.file != TEMPLATE_FILE]
    assert placeholders(kept) == []


def test_one_variant_only_is_kept(recommended: list[LoadedObject]) -> None:
    only_template = [o for o in recommended if "external-secrets" not in o.file]
    kept, skipped = select_variant(only_template, external=False)
    assert len(kept) == len(only_template) and skipped == []
    with pytest.raises(NoExternalSecrets) as e:
        select_variant(only_template, external=True)
    assert "--external-secrets: the objects hold no ExternalSecret (group external-secrets.io)" in _msg(e)
    assert isinstance(e.value, SecretsSourceError)
    only_eso = [o for o in recommended if o.file != TEMPLATE_FILE]
    for external in (False, True):
        kept, skipped = select_variant(only_eso, external=external)
        assert len(kept) == len(only_eso) and skipped == []


def test_select_matches_by_target_name_namespace_and_shared_stores() -> None:
    template = _secret("app", string_data={"K": "REPLACE_ME"})
    other_ns = _secret("app", namespace="elsewhere", string_data={"K": "REPLACE_ME"})
    # no spec.target: the ExternalSecret makes the Secret of its own name
    paired = _eso("ExternalSecret", "app", spec={"secretStoreRef": {"name": "shared"}})
    unpaired = _eso("ExternalSecret", "db", spec={"secretStoreRef": {"name": "shared"}, "target": {"name": "db"}})
    shared = _eso("SecretStore", "shared")
    cluster_store = _eso("ClusterSecretStore", "vault", namespace=None)
    named = _eso("ExternalSecret", "x", spec={"secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
                                              "target": {"name": "app"}})
    items = [template, other_ns, paired, unpaired, shared, cluster_store, named]
    kept, skipped = select_variant(items, external=False)
    # the store a kept ExternalSecret reads stays; the cluster store only the paired one reads goes
    assert [i.ref() for i, _ in skipped] == [f"ExternalSecret {NS}/app", "ClusterSecretStore vault",
                                             f"ExternalSecret {NS}/x"]
    assert [i.obj for i in kept] == [template, other_ns, unpaired, shared]
    kept, skipped = select_variant(items, external=True)
    assert [(i.ref(), i.source) for i, _ in skipped] == [(f"Secret {NS}/app", Source())]
    assert [i.obj for i in kept] == [other_ns, paired, unpaired, shared, cluster_store, named]


# --- check and prepare -------------------------------------------------------------------------------

def test_check_refuses_placeholders_off_the_sim(recommended: list[LoadedObject]) -> None:
    kept, _ = select_variant(recommended, external=False)
    assert [p.key for p in check(kept, is_sim=True, values=None)] == list(SECRET_KEYS)
    with pytest.raises(SecretsNotSupplied) as e:
        check(kept, is_sim=False, values=None)
    assert _msg(e) == ("5 Secret key(s) still hold placeholders, which are never applied to a cluster that is "
                       f"not the sim: Secret {NS}/trading-secrets in {TEMPLATE_FILE} (document 0): "
                       + ", ".join(SECRET_KEYS) + "; " + WHAT_TO_DO)
    assert WHAT_TO_DO == ("pass --secrets-from FILE|env[:PREFIX] with these keys, or "
                          "--external-secrets with the External Secrets Operator installed")
    assert [p.key for p in e.value.missing] == list(SECRET_KEYS)
    again = pickle.loads(pickle.dumps(e.value))
    assert str(again) == str(e.value) and again.missing == e.value.missing


def test_prepare_off_the_sim_names_where_each_missing_key_was_looked_for(recommended: list[LoadedObject],
                                                                         tmp_path: Path) -> None:
    environ = {"EAFIX_SECRET_REDIS_PASSWORD": V1, "EAFIX_SECRET_POSTGRES_USER": "REPLACE_ME"}
    with pytest.raises(SecretsNotSupplied) as e:
        prepare(recommended, is_sim=False, values=read_secret_values("env:EAFIX_SECRET_", environ=environ),
                external=False)
    message = _msg(e)
    assert message.startswith("4 Secret key(s)") and "\n" not in message
    assert (f"Secret {NS}/trading-secrets in {TEMPLATE_FILE} (document 0): POSTGRES_USER (the value in environment "
            "variable EAFIX_SECRET_POSTGRES_USER is itself a placeholder: REPLACE_ME, CHANGE_ME, <...>, $VAR), "
            "POSTGRES_PASSWORD (environment variable EAFIX_SECRET_POSTGRES_PASSWORD is not set), ") in message
    path = _write(tmp_path, "x.env", f"REDIS_PASSWORD={V1}\n")
    with pytest.raises(SecretsNotSupplied) as e:
        prepare(recommended, is_sim=False, values=read_secret_values(path, environ={}), external=False)
    assert f"(document 0): POSTGRES_USER (not in file {path}), " in _msg(e)


def test_prepare_with_every_value_off_the_sim(recommended: list[LoadedObject], tmp_path: Path) -> None:
    lines = [f"{k}={V1}-{i}" for i, k in enumerate(SECRET_KEYS)] + [f"REDIS_PASWORD={V2}"]
    values = read_secret_values(_write(tmp_path, "all.env", "\n".join(lines)), environ={})
    prepared = prepare(recommended, is_sim=False, values=values, external=False)
    assert isinstance(prepared, Prepared)
    assert [p.key for p in prepared.filled] == list(SECRET_KEYS) and prepared.placeholders == []
    assert prepared.unused_keys == ("REDIS_PASWORD",)
    assert [i.ref() for i, _ in prepared.skipped] == [f"SecretStore {NS}/eafix-vault",
                                                      f"ExternalSecret {NS}/trading-secrets"]
    secret = next(i for i in prepared.objects if i.kind == "Secret")
    assert secret.obj["stringData"] == {k: f"{V1}-{i}" for i, k in enumerate(SECRET_KEYS)}
    assert secret.source == Source(TEMPLATE_FILE, 0)
    assert len(prepared.objects) == len(recommended) - 2
    template = next(o for o in recommended if o.file == TEMPLATE_FILE)
    assert set(template.obj["stringData"].values()) == {"REPLACE_ME"}  # the loaded object is untouched
    _clean(repr(prepared.filled) + repr(prepared.skipped) + repr(prepared.unused_keys))


def test_prepare_on_the_sim_and_with_external_secrets(recommended: list[LoadedObject]) -> None:
    on_sim = prepare(recommended, is_sim=True, values=None, external=False)
    assert [p.key for p in on_sim.placeholders] == list(SECRET_KEYS) and on_sim.filled == []
    assert on_sim.unused_keys == ()
    partly = prepare(recommended, is_sim=True, values=read_secret_values("env", environ={"REDIS_PASSWORD": V1}),
                     external=False)
    assert [p.key for p in partly.filled] == ["REDIS_PASSWORD"]
    assert [p.key for p in partly.placeholders] == list(SECRET_KEYS)[1:]
    external = prepare(recommended, is_sim=False, values=None, external=True)
    assert external.placeholders == [] and [i.ref() for i, _ in external.skipped] == [f"Secret {NS}/trading-secrets"]


def test_refusal_stays_within_the_message_limit() -> None:
    many = [SourcedObject(_secret(f"s{n}", string_data={f"KEY_{k}": "REPLACE_ME" for k in range(10)}),
                          Source("/a/very/long/path/" + "d" * 80 + f"/secrets-{n}.yml", 0)) for n in range(10)]
    with pytest.raises(SecretsNotSupplied) as e:
        check(many, is_sim=False, values=None)
    message = str(e.value)
    assert len(message) <= MAX_MESSAGE_CHARS
    assert "\n" not in message
    parts = message.split("; ")
    assert parts[0].startswith("100 Secret key(s)") and parts[-1] == WHAT_TO_DO
    shown = len(parts) - 2
    assert 1 <= shown < 10 and parts[-2] == f"... and {10 - shown} more Secret(s)"
    assert len(e.value.missing) == 100


def test_errors_pickle_and_placeholder_is_a_record() -> None:
    err = SecretsSourceError("x.env: line 2: not KEY=VALUE (no '=')")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)
    assert Placeholder("f (document 0)", "ns/s", "K", "data") == Placeholder("f (document 0)", "ns/s", "K", "data")
