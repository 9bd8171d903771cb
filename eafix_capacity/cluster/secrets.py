"""Secret values at apply time: fill the template's placeholders, or choose the External Secrets variant.

The kit never knows a secret (:mod:`eafix_capacity.manifests.secrets`): it renders a Secret whose
values are ``REPLACE_ME`` placeholders, and beside it the External Secrets Operator objects (a
``SecretStore`` and an ``ExternalSecret`` that fill the same Secret from a vault). Applying the
placeholders to a real cluster would start every service with the password ``REPLACE_ME``, so
before anything is sent :func:`prepare` keeps one of the two variants (:func:`select_variant`),
fills the placeholders from values the user supplies (:func:`read_secret_values`: a dotenv or
YAML file, or the environment; :func:`fill`), and refuses any placeholder left on a cluster that
is not the sim (:class:`SecretsNotSupplied`, naming each Secret, key and file).

A secret value never reaches a message, a ``repr`` or a record: errors name files, lines, keys
and environment variables only, and :class:`SecretValues` shows where its values came from,
never what they are.
"""
from __future__ import annotations

import base64
import binascii
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NoReturn

import yaml

from eafix_capacity.cluster.order import SourcedObject, sourced
from eafix_capacity.errors import MAX_MESSAGE_CHARS, MAX_PART_CHARS, ClusterError, clip
from eafix_capacity.manifests.secrets import is_placeholder
from eafix_capacity.yamlio import MAX_DEPTH, PyLimitedSafeLoader, yaml_error_text

ESO_GROUP = "external-secrets.io"
SECRET_FIELDS = ("stringData", "data")
MAX_FILE_BYTES = 1024 * 1024
"""Largest secrets file read: a Secret holds at most 1 MiB (the API server's MaxSecretSize)."""
YAML_SUFFIXES = (".yaml", ".yml", ".json")
WHAT_TO_DO = ("pass --secrets-from FILE|env[:PREFIX] with these keys, or --external-secrets with the "
              "External Secrets Operator installed")

# as k8s.io/apimachinery/pkg/util/validation IsConfigMapKey (Secret keys are validated with it)
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_KEY_MAX_CHARS = 253  # DNS1123SubdomainMaxLength
VALID_KEY = ("a valid Secret key consists of alphanumeric characters, '-', '_' or '.' (at most 253, "
             "not '.', '..' or starting with '..')")
_VALID_DOTENV = ("valid: KEY=VALUE lines (optionally 'export KEY=VALUE', the value optionally in matching "
                 "single or double quotes, taken as written), '#' comment lines and blank lines")
_VALID_YAML = "valid: a YAML mapping of KEY: \"value\" strings"
_EXPORT = re.compile(r"export\s+")
_DOTENV_FIRST = re.compile(r"(?:export\s+)?[^\s=:#]+\s*=")
_STR_TAG = "tag:yaml.org,2002:str"
_QUOTED = re.compile(r"'([^']*)'")


class SecretsSourceError(ClusterError, ValueError):
    """The secret values cannot be read or used: a bad ``--secrets-from`` file or spec, an empty
    value, or ``--external-secrets`` without External Secrets objects. The message is one line
    and never holds a value."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(message, MAX_MESSAGE_CHARS))


class NoExternalSecrets(SecretsSourceError):
    """``--external-secrets`` was asked for but the objects hold no ExternalSecret."""


class SecretsNotSupplied(ClusterError):
    """Placeholders left in Secrets bound for a cluster that is not the sim. ``missing`` holds
    every one (the message lists as many as fit, one line per key)."""

    def __init__(self, message: str, *, missing: tuple[Placeholder, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


# --- records -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placeholder:
    """A key of a Secret whose value is a placeholder (``REPLACE_ME``, ``CHANGE_ME``, ``<...>``,
    ``$VAR``, empty)."""

    source: str
    """Where the Secret came from: file and document (``str`` of its :class:`~eafix_capacity.cluster.order.Source`)."""
    secret: str
    """``namespace/name`` (``name`` for a Secret without a namespace)."""
    key: str
    field: str
    """``stringData`` or ``data``."""

    def __str__(self) -> str:
        return f"Secret {self.secret} key {self.key} ({self.field}) in {self.source}"


class _Hidden:
    """Secret values that never show: no value in a repr, no pickling, shared by copies."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = mapping

    def get(self, key: str) -> str | None:
        value = self._mapping.get(key)
        return value if isinstance(value, str) else None

    def keys(self) -> tuple[str, ...]:
        return tuple(self._mapping)

    def __repr__(self) -> str:
        return "<hidden>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret values cannot be pickled")

    def __copy__(self) -> _Hidden:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Hidden:
        return self


@dataclass(frozen=True)
class SecretValues:
    """Secret values supplied by the user, by key, and where they came from (``origin``:
    ``file /path/x.env``, ``environment``). The environment is not copied: each key is read
    from ``PREFIX + KEY`` when it is needed. Neither ``repr`` nor ``str`` shows a value, and it
    cannot be pickled."""

    origin: str
    supplied: _Hidden = field(repr=False)
    env_prefix: str | None = None
    """The prefix of the environment variables (``""`` for ``env``), ``None`` for a file."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], *, origin: str) -> SecretValues:
        return cls(origin, _Hidden(dict(values)))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *, prefix: str = "") -> SecretValues:
        origin = f"environment (variables {prefix}KEY)" if prefix else "environment"
        return cls(origin, _Hidden(environ), prefix)

    def get(self, key: str) -> str | None:
        """The value supplied for ``key``, or ``None``."""
        return self.supplied.get(key if self.env_prefix is None else self.env_prefix + key)

    def where(self, key: str) -> str:
        """Where the value of ``key`` is looked for: ``environment variable X`` or ``file F``."""
        return self.origin if self.env_prefix is None else f"environment variable {self.env_prefix}{key}"

    def keys(self) -> tuple[str, ...] | None:
        """The keys a file supplies (``None`` for the environment: they are not listed)."""
        return self.supplied.keys() if self.env_prefix is None else None

    def __repr__(self) -> str:
        return f"SecretValues(origin={self.origin!r})"

    def __str__(self) -> str:
        return self.origin

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretValues cannot be pickled: it holds secret values")

    def __copy__(self) -> SecretValues:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValues:
        return self


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` keeps for the apply and what it leaves out."""

    objects: list[SourcedObject]
    """The objects to apply, in the order given (filled Secrets are new objects)."""
    skipped: list[tuple[SourcedObject, str]]
    """The variant not applied, each with a one-line reason."""
    filled: list[Placeholder]
    """The keys filled from the supplied values."""
    placeholders: list[Placeholder]
    """The keys still placeholders (only ever non-empty on the sim)."""
    unused_keys: tuple[str, ...] = ()
    """Keys a file supplies that no placeholder asked for (a misspelt key?)."""


# --- finding placeholders ----------------------------------------------------------------------------

def _is_secret(item: SourcedObject) -> bool:
    return item.kind == "Secret" and item.api_version == "v1"


def _secret_ref(item: SourcedObject) -> str:
    return f"{item.namespace}/{item.name}" if item.namespace else item.name


def _decoded(value: Any) -> str | None:
    """The text of a ``data`` value, or None when it is not base64 of UTF-8 text."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _placeholder_keys(item: SourcedObject) -> Iterator[tuple[str, str]]:
    """``(field, key)`` of each placeholder value of a v1 Secret."""
    if not _is_secret(item):
        return
    string_data = item.obj.get("stringData")
    string_data = string_data if isinstance(string_data, Mapping) else {}
    for key, value in string_data.items():
        text = "" if value is None else value
        if isinstance(text, str) and is_placeholder(text):
            yield "stringData", str(key)
    data = item.obj.get("data")
    for key, value in (data.items() if isinstance(data, Mapping) else ()):
        if key in string_data:
            continue  # the API server writes stringData over data (core/v1 Secret.stringData)
        text = "" if value is None else _decoded(value)
        if text is not None and is_placeholder(text):
            yield "data", str(key)


def placeholders(items: Iterable[Any]) -> list[Placeholder]:
    """Every key of every Secret (``v1``) in ``items`` (mappings, ``LoadedObject`` s or
    :class:`SourcedObject` s) whose value is a placeholder; a ``data`` value counts by its
    base64-decoded text (one that does not decode is not a placeholder)."""
    out = []
    for item in map(sourced, items):
        for field_name, key in _placeholder_keys(item):
            out.append(Placeholder(str(item.source), _secret_ref(item), key, field_name))
    return out


# --- reading the values ------------------------------------------------------------------------------

def _fail(where: str, problem: str, valid: str = "") -> NoReturn:
    text = f"{clip(where, MAX_PART_CHARS)}: {problem}"
    raise SecretsSourceError(f"{text}; {valid}" if valid else text)


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid Secret key (without repeating it), or None (pure; as
    apimachinery's IsConfigMapKey)."""
    if len(key) > _KEY_MAX_CHARS:
        return f"the key is longer than {_KEY_MAX_CHARS} characters"
    if not _KEY.fullmatch(key):
        return "the key is empty" if not key else "the key holds a character other than alphanumerics, '-', '_', '.'"
    if key in (".", ".."):
        return f"the key must not be '{key}'"
    if key.startswith(".."):
        return "the key must not start with '..'"
    return None


def _parse_dotenv(text: str, where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), 1):  # lines as editors count them (not at \u2028)
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = _EXPORT.sub("", line, count=1) if _EXPORT.match(line) else line
        # never quote the line: it may be a value pasted without its key
        if "=" not in line:
            _fail(where, f"line {number}: not KEY=VALUE (no '=')", _VALID_DOTENV)
        key, value = line.split("=", 1)
        key = key.strip()
        problem = key_problem(key)
        if problem:
            _fail(where, f"line {number}: {problem}", VALID_KEY)
        if key in values:
            _fail(where, f"line {number}: duplicate key {key} (first on line {first_line[key]})",
                  "each key once")
        value = value.strip()
        if value[:1] in ("'", '"'):
            if len(value) < 2 or value[-1] != value[0]:
                _fail(where, f"line {number}: the value of {key} opens a quote it does not close on that line",
                      "values on one line, in matching quotes or none (no multi-line values)")
            value = value[1:-1]
        values[key] = value
        first_line[key] = number
    return values


def _redacted(problem: str) -> str:
    """PyYAML's ``problem`` without the file's text it quotes (an undefined alias, a duplicate anchor,
    a tag handle: a value that starts with ``*``, ``&`` or ``!``); one character, an escape and
    PyYAML's token names (``'<stream end>'``) are kept."""
    return _QUOTED.sub(lambda m: m.group(0) if len(m.group(1)) <= 2 or m.group(1).startswith("<") else "'...'",
                       problem)


def _parse_yaml(text: str, where: str) -> dict[str, str]:
    try:
        root = yaml.compose(text, Loader=PyLimitedSafeLoader)  # noqa: S506 (a safe loader; composed only)
    except yaml.YAMLError as e:
        _fail(where, _redacted(yaml_error_text(e)), _VALID_YAML)
    except RecursionError:
        _fail(where, "invalid YAML (nested too deeply to read)", f"at most {MAX_DEPTH} levels")
    if root is None:
        _fail(where, "the file holds no keys", _VALID_YAML)
    if not isinstance(root, yaml.MappingNode):
        _fail(where, f"line {root.start_mark.line + 1}: the document is not a mapping", _VALID_YAML)
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for key_node, value_node in root.value:
        number = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
            _fail(where, f"line {number}: a key that is not a string", VALID_KEY)
        key = str(key_node.value)
        problem = key_problem(key)
        if problem:
            _fail(where, f"line {number}: {problem}", VALID_KEY)
        if key in values:
            _fail(where, f"line {number}: duplicate key {key} (first on line {first_line[key]})", "each key once")
        if not isinstance(value_node, yaml.ScalarNode) or value_node.tag != _STR_TAG:
            _fail(where, f"line {value_node.start_mark.line + 1}: the value of {key} is not a string",
                  f'quote it ({key}: "...")')
        values[key] = str(value_node.value)
        first_line[key] = number
    return values


def _read_text(path: Path, where: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        _fail(where, "file not found")
    except IsADirectoryError:
        _fail(where, "is a directory", "a dotenv (KEY=VALUE) or YAML file")
    except OSError as e:
        _fail(where, f"cannot read the file ({e.strerror or type(e).__name__})")
    if len(raw) > MAX_FILE_BYTES:
        _fail(where, f"larger than {MAX_FILE_BYTES // 1024} KiB", "a Secret holds at most 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        _fail(where, f"line {line}: not UTF-8 text", "a UTF-8 text file")
    return text.removeprefix("\ufeff")


def _looks_like_dotenv(text: str) -> bool:
    """Whether the first line that is not blank or a comment is ``[export ]KEY=...`` (a YAML
    mapping starts ``KEY: ...``, ``{`` or ``---``)."""
    for raw in text.split("\n"):
        line = raw.strip()
        if line and not line.startswith("#"):
            return bool(_DOTENV_FIRST.match(line)) or not re.match(r"---|\{|[^\s=]+\s*:", line)
    return True


def read_secret_values(spec: str, *, environ: Mapping[str, str]) -> SecretValues:
    """The values ``--secrets-from SPEC`` names: ``env`` (each key from the environment variable
    of its name, read from ``environ`` when needed), ``env:PREFIX`` (from ``PREFIX`` + key), or
    a file (``./env`` for a file called ``env``): dotenv lines ``KEY=VALUE`` (``#`` comments,
    blank lines, ``export KEY=VALUE``, the value optionally in matching quotes, taken as
    written: no escapes, no inline comments), or a YAML mapping of strings (a ``.yaml``,
    ``.yml`` or ``.json`` file, or one whose first line reads as YAML). Raises
    :class:`SecretsSourceError` naming the file and line, never a value."""
    if spec == "env" or spec.startswith("env:"):
        prefix = spec[len("env:"):] if spec.startswith("env:") else ""
        if "=" in prefix or "\0" in prefix:
            _fail("--secrets-from env:PREFIX", "the prefix holds '=' or a NUL byte",
                  "a prefix of an environment variable name, such as EAFIX_SECRET_")
        return SecretValues.from_environment(environ, prefix=prefix)
    if not spec.strip():
        _fail("--secrets-from", "no file named", "FILE, env or env:PREFIX")
    path = Path(spec)
    where = f"secrets file {spec}"
    text = _read_text(path, where)
    if not text.strip():
        _fail(where, "the file is empty", "KEY=VALUE lines or a YAML mapping of KEY: \"value\"")
    is_yaml = path.suffix.lower() in YAML_SUFFIXES or not _looks_like_dotenv(text)
    values = _parse_yaml(text, where) if is_yaml else _parse_dotenv(text, where)
    if not values:
        _fail(where, "the file holds no keys (only comments and blank lines)",
              "KEY=VALUE lines or a YAML mapping of KEY: \"value\"")
    return SecretValues.from_mapping(values, origin=f"file {spec}")


# --- filling -----------------------------------------------------------------------------------------

def fill(items: Iterable[Any], values: SecretValues) -> list[SourcedObject]:
    """``items`` with each placeholder key that ``values`` supplies replaced (``stringData``: the
    text; ``data``: its base64), as new objects (deep copies: the input is untouched) that keep
    their :class:`~eafix_capacity.cluster.order.Source`; objects without a supplied placeholder
    are returned as given. A supplied value that is empty (or white space) is refused with a
    :class:`SecretsSourceError` naming the key and where it came from."""
    out = []
    for item in map(sourced, items):
        supplied = [(f, k, v) for f, k in _placeholder_keys(item) if (v := values.get(k)) is not None]
        if not supplied:
            out.append(item)
            continue
        obj = copy.deepcopy(dict(item.obj))
        for field_name, key, value in supplied:
            if not value.strip():
                raise SecretsSourceError(
                    f"{values.where(key)}: the value for key {key} of Secret {_secret_ref(item)} is empty; "
                    "a Secret key needs its real value (a Secret with an empty password is never meant)")
            target = dict(obj[field_name])
            target[key] = value if field_name == "stringData" else base64.b64encode(value.encode()).decode("ascii")
            obj[field_name] = target
        out.append(SourcedObject(obj, item.source))
    return out


def _missing_key(p: Placeholder, values: SecretValues | None) -> str:
    """The key, and why it was not filled when values were given."""
    if values is None:
        return p.key
    if values.get(p.key) is None:
        return f"{p.key} (not in {values.where(p.key)})" if values.env_prefix is None else \
            f"{p.key} ({values.where(p.key)} is not set)"
    return f"{p.key} (the value in {values.where(p.key)} is itself a placeholder: REPLACE_ME, CHANGE_ME, <...>, $VAR)"


def not_supplied(missing: list[Placeholder], values: SecretValues | None) -> SecretsNotSupplied:
    """The one-line refusal for the placeholders ``missing`` (pure): per Secret and the file it
    came from, the keys (and why each was not filled), then what to do; Secrets that do not fit
    in ``MAX_MESSAGE_CHARS`` are counted."""
    head = (f"{len(missing)} Secret key(s) still hold placeholders, which are never applied to a cluster that is "
            "not the sim: ")
    by_secret: dict[tuple[str, str], list[str]] = {}
    for p in missing:
        by_secret.setdefault((p.secret, p.source), []).append(_missing_key(p, values))
    parts = [clip(f"Secret {secret} in {source}: {', '.join(keys)}", MAX_PART_CHARS)
             for (secret, source), keys in by_secret.items()]
    budget = MAX_MESSAGE_CHARS - len(head) - len(WHAT_TO_DO) - 40  # room for the "... and N more" part
    shown: list[str] = []
    for part in parts:
        if budget - len(part) - 2 < 0:
            break
        shown.append(part)
        budget -= len(part) + 2
    if len(shown) < len(parts):
        shown.append(f"... and {len(parts) - len(shown)} more Secret(s)")
    return SecretsNotSupplied(head + "; ".join(shown) + "; " + WHAT_TO_DO, missing=tuple(missing))


def check(items: Iterable[Any], *, is_sim: bool, values: SecretValues | None) -> list[Placeholder]:
    """The placeholders left in ``items``: returned on the sim, refused with
    :class:`SecretsNotSupplied` anywhere else (``values``, when given, says per key where the
    value was looked for)."""
    left = placeholders(items)
    if left and not is_sim:
        raise not_supplied(left, values)
    return left


# --- choosing the variant ----------------------------------------------------------------------------

def _is_eso(item: SourcedObject) -> bool:
    return item.api_version.split("/", 1)[0] == ESO_GROUP


def _spec(item: SourcedObject) -> Mapping[str, Any]:
    spec = item.obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _target_name(item: SourcedObject) -> str:
    """The Secret an ExternalSecret makes: ``spec.target.name``, by default its own name (ESO's rule)."""
    target = _spec(item).get("target")
    name = target.get("name") if isinstance(target, Mapping) else None
    return str(name) if name else item.name


def _store_ref(item: SourcedObject) -> tuple[str, str | None, str] | None:
    """``(kind, namespace, name)`` of the store an ExternalSecret reads (``kind`` defaults to SecretStore,
    which lives in the ExternalSecret's namespace; a ClusterSecretStore has none)."""
    ref = _spec(item).get("secretStoreRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    kind = str(ref.get("kind") or "SecretStore")
    return kind, (item.namespace if kind == "SecretStore" else None), str(ref["name"])


def select_variant(items: Iterable[Any], *, external: bool
                   ) -> tuple[list[SourcedObject], list[tuple[SourcedObject, str]]]:
    """Keep one of the two variants of each Secret that has both (pure): the placeholder template
    (a v1 Secret) or the External Secrets Operator objects (an ``ExternalSecret`` whose target is
    that Secret, and the store it reads unless a kept ExternalSecret reads it too). ``external``
    chooses the second. Returns the kept objects in the order given and the skipped ones with a
    one-line reason each. A Secret with one variant keeps it; ``external=True`` when there is no
    ExternalSecret at all raises :class:`NoExternalSecrets`."""
    all_items = [sourced(i) for i in items]
    templates = {(i.namespace, i.name): i for i in all_items if _is_secret(i)}
    externals = [i for i in all_items if _is_eso(i) and i.kind == "ExternalSecret"]
    if external and not externals:
        raise NoExternalSecrets(
            "--external-secrets: the objects hold no ExternalSecret (group external-secrets.io); render the "
            "manifests with their secrets/external-secrets/ directory, or supply the template's values with "
            "--secrets-from FILE|env[:PREFIX]")
    paired = {id(e): (e.namespace, _target_name(e)) for e in externals if (e.namespace, _target_name(e)) in templates}
    reasons: dict[int, str] = {}
    if external:
        for e in externals:
            if id(e) in paired:
                template = templates[paired[id(e)]]
                reasons.setdefault(id(template), f"the placeholder template of Secret {_secret_ref(template)}; "
                                                 f"--external-secrets applies {e.ref()} instead")
    else:
        kept_stores = {_store_ref(e) for e in externals if id(e) not in paired}
        skipped_stores: dict[tuple[str, str | None, str], str] = {}
        for e in externals:
            if id(e) not in paired:
                continue
            secret = _secret_ref(templates[paired[id(e)]])
            reasons[id(e)] = (f"the External Secrets variant of Secret {secret}; --external-secrets applies it "
                              "instead of the template")
            ref = _store_ref(e)
            if ref is not None and ref not in kept_stores:
                skipped_stores.setdefault(ref, secret)
        for i in all_items:
            key = (i.kind, i.namespace, i.name)
            if _is_eso(i) and key in skipped_stores:
                reasons[id(i)] = (f"the {i.kind} of the External Secrets variant of Secret {skipped_stores[key]}; "
                                  "--external-secrets applies it instead of the template")
    kept = [i for i in all_items if id(i) not in reasons]
    return kept, [(i, reasons[id(i)]) for i in all_items if id(i) in reasons]


# --- the entry point ---------------------------------------------------------------------------------

def prepare(items: Iterable[Any], *, is_sim: bool, values: SecretValues | None, external: bool) -> Prepared:
    """The objects an apply sends, as far as Secrets go: :func:`select_variant`, then :func:`fill`
    with ``values`` (when given), then :func:`check` (placeholders left are refused unless
    ``is_sim``). Raises :class:`SecretsSourceError` (an empty value, no ExternalSecret for
    ``external``) or :class:`SecretsNotSupplied`."""
    kept, skipped = select_variant(items, external=external)
    wanted = placeholders(kept)
    filled_items = fill(kept, values) if values is not None else kept
    left = check(filled_items, is_sim=is_sim, values=values)
    still = {(p.source, p.secret, p.key, p.field) for p in left}
    filled = [p for p in wanted if (p.source, p.secret, p.key, p.field) not in still]
    supplied = values.keys() if values is not None else None
    asked = {p.key for p in wanted}
    unused = tuple(k for k in supplied if k not in asked) if supplied is not None else ()
    return Prepared(filled_items, skipped, filled, left, unused)
