"""Reading manifests someone wrote: files or directories, multi-document YAML, Lists.

Documents that are not Kubernetes objects at all (empty documents, a leading metadata
document without ``apiVersion``/``kind``/``spec``) are skipped with a warning naming the
file and document index; a document that is half an object (a ``kind`` without an
``apiVersion``, a ``spec`` without either) is an error, as is unparseable YAML (file and
line) and the same object defined twice. Directories are read recursively in name order;
``kustomization.yaml`` files and ``helm/`` directories are not cluster objects and are
passed over.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError
from .layout import object_ref

YAML_SUFFIXES = (".yml", ".yaml")
SKIPPED_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIPPED_DIRS = ("helm",)


class ManifestWarning(UserWarning):
    """A document was skipped because it is not a Kubernetes object."""


@dataclass(frozen=True)
class LoadedObject:
    obj: dict
    file: str
    document: int   # index of the YAML document in its file (0-based)
    line: int       # 1-based line where the document starts


@dataclass
class LoadResult:
    objects: list[LoadedObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def dicts(self) -> list[dict]:
        return [o.obj for o in self.objects]

    @property
    def files(self) -> list[str]:
        return [o.file for o in self.objects]


def manifest_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ManifestError("no such file or directory", file=str(p),
                            valid="a manifest file (.yml/.yaml) or a directory of them")
    out = []
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p).parts
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in rel[:-1]):
            continue
        if f.is_file() and f.suffix in YAML_SUFFIXES and f.name not in SKIPPED_FILES \
                and not f.name.startswith("."):
            out.append(f)
    return out


# libyaml's parser with PyYAML's safe constructor: the same documents as yaml.safe_load,
# several times faster on large manifest sets.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class _SafeLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """yaml.safe_load's documents, but a key defined twice in one mapping is an error, as
    kubectl's strict decoding makes it (PyYAML would silently keep the last value)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} already defined", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _documents(text: str, file: str) -> list[tuple[int, Any]]:
    loader = _SafeLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append((node.start_mark.line + 1, loader.construct_document(node)))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ManifestError(f"{where}invalid YAML ({problem})", file=file) from e
    finally:
        loader.dispose()
    return docs


def _group_kind_key(obj: dict) -> tuple[str, str, str, str]:
    group = str(obj.get("apiVersion", "")).rsplit("/", 1)[0] if "/" in str(obj.get("apiVersion", "")) else ""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return group, str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _object_or_none(doc: Any, *, file: str, index: int, where: str) -> dict | None:
    """The document as an object, None to skip it (with a warning), or an error."""
    if not isinstance(doc, dict):
        return None
    has_api, has_kind = "apiVersion" in doc, "kind" in doc
    if not has_api and not has_kind:
        if "spec" in doc:
            raise ManifestError("object without apiVersion and kind", file=file, obj=where,
                                field="apiVersion", valid="every Kubernetes object names its apiVersion and kind")
        return None
    for key, present in (("apiVersion", has_api), ("kind", has_kind)):
        if not present or not isinstance(doc.get(key), str) or not doc.get(key):
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            raise ManifestError(f"object without {key}", file=file, obj=name or where, field=key,
                                value=doc.get(key), valid=f"a non-empty {key} string such as "
                                + ("apps/v1" if key == "apiVersion" else "Deployment"))
    meta = doc.get("metadata")
    if not doc["kind"].endswith("List") and (not isinstance(meta, dict) or not meta.get("name")):
        raise ManifestError("object without metadata.name", file=file, obj=f"{doc['kind']} at {where}",
                            field="metadata.name", valid="every object has a name")
    return doc


def load_manifests(*paths: str | Path) -> LoadResult:
    """Every Kubernetes object in the given files and directories."""
    result = LoadResult()
    seen: dict[tuple[str, str, str, str], str] = {}
    for path in paths:
        for f in manifest_files(path):
            file = str(f)
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ManifestError(f"cannot read file ({e})", file=file) from e
            for index, (line, doc) in enumerate(_documents(text, file)):
                where = f"document {index} (line {line})"
                if doc is None:
                    continue
                obj = _object_or_none(doc, file=file, index=index, where=where)
                if obj is None:
                    msg = f"{file}: {where}: skipped, not a Kubernetes object (no apiVersion/kind)"
                    result.warnings.append(msg)
                    warnings.warn(msg, ManifestWarning, stacklevel=2)
                    continue
                items = [obj]
                if obj["kind"].endswith("List") and isinstance(obj.get("items"), list):
                    items = []
                    for j, item in enumerate(obj["items"]):
                        sub = _object_or_none(item, file=file, index=index, where=f"{where} items[{j}]")
                        if sub is None:
                            raise ManifestError("List item is not a Kubernetes object", file=file,
                                                obj=f"{where} items[{j}]", field="apiVersion",
                                                valid="every item names its apiVersion and kind")
                        items.append(sub)
                for item in items:
                    key = _group_kind_key(item)
                    if key in seen:
                        raise ManifestError("duplicate object", file=file, obj=object_ref(item),
                                            value=key[3], valid=f"defined once; also in {seen[key]}")
                    seen[key] = f"{file} {where}"
                    result.objects.append(LoadedObject(item, file, index, line))
    return result
