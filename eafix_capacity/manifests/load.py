"""Reading manifests someone wrote: files or directories, multi-document YAML, Lists.

Every path under a directory is either read or reported, so a plan is never made on part
of a set without saying so. Like ``kubectl apply -f DIR`` (whose file visitor reads
``.json``, ``.yaml`` and ``.yml`` and stops at the first directory it cannot read), files
with those suffixes are read and an unreadable directory or file is an error naming it.
Passed over, each with a note: ``kustomization.yaml`` files and ``helm/`` directories
(not cluster objects), hidden entries, files with other suffixes and symbolic links to
directories (not followed, as kubectl's walk does not follow them). Directories are read
recursively in name order.

Documents that are not Kubernetes objects at all (empty documents, a leading metadata
document without ``apiVersion``/``kind``/``spec``) are skipped with a warning naming the
file and document index; a document that is half an object (a ``kind`` without an
``apiVersion``, a ``spec`` without either) is an error, as is unparseable YAML (file and
line), the same object defined twice, and a path that holds no object at all.
"""
from __future__ import annotations

import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

import yaml

from ..errors import ManifestError
from ..yamlio import LimitedSafeLoader
from .layout import object_ref

YAML_SUFFIXES = (".yml", ".yaml", ".json")
SKIPPED_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIPPED_DIRS = ("helm",)
_VALID_PATH = "a manifest file (.json, .yaml, .yml) or a directory of them"


class ManifestWarning(UserWarning):
    """A document or object was skipped: it is not (or not known as) a Kubernetes object."""


class ManifestNote(ManifestWarning):
    """A path under a manifests directory was passed over on purpose (kustomize or Helm
    configuration, a hidden entry, a file kubectl would not read either)."""


@dataclass(frozen=True)
class LoadedObject:
    obj: dict
    file: str
    document: int   # index of the YAML document in its file (0-based)
    line: int       # 1-based line where the document starts


@dataclass(frozen=True)
class Skipped:
    """A path that was not read, and why."""

    path: str
    reason: str

    def message(self) -> str:
        return f"{self.path}: passed over, {self.reason}"


@dataclass
class LoadResult:
    objects: list[LoadedObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files_read: list[str] = field(default_factory=list)

    @property
    def dicts(self) -> list[dict]:
        return [o.obj for o in self.objects]

    @property
    def files(self) -> list[str]:
        return [o.file for o in self.objects]


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _scan_dir(directory: Path, files: list[Path], skipped: list[Skipped]) -> None:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise ManifestError(f"cannot read directory ({_reason(e)})", file=str(directory),
                            valid="every directory under a manifests path must be readable; "
                                  "fix its permissions or pass the readable parts") from e
    for entry in entries:
        path = directory / entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()     # both follow a symbolic link
            is_file = entry.is_file()
        except OSError as e:
            raise ManifestError(f"cannot read ({_reason(e)})", file=str(path), valid=_VALID_PATH) from e
        if entry.name.startswith("."):
            skipped.append(Skipped(str(path) + ("/" if is_dir else ""), "a hidden entry"))
        elif is_dir and is_link:
            skipped.append(Skipped(f"{path}/", "a symbolic link to a directory (not followed)"))
        elif is_dir and entry.name in SKIPPED_DIRS:
            skipped.append(Skipped(f"{path}/", "Helm values, not cluster objects"))
        elif is_dir:
            _scan_dir(path, files, skipped)
        elif entry.name in SKIPPED_FILES:
            skipped.append(Skipped(str(path), "kustomize configuration, not a cluster object"))
        elif path.suffix in YAML_SUFFIXES:
            if not is_file:
                raise ManifestError("cannot read file (a broken symbolic link, a FIFO or a device, "
                                    "not a regular file)", file=str(path), valid=_VALID_PATH)
            files.append(path)
        else:
            skipped.append(Skipped(str(path), "not a manifest file (kubectl reads .json, .yaml and .yml)"))


def scan(path: str | Path) -> tuple[list[Path], list[Skipped]]:
    """The manifest files under ``path`` and the paths passed over. A file given directly
    is read whatever its suffix (as kubectl reads ``-f FILE``)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError as e:
        raise ManifestError("no such file or directory", file=str(p), valid=_VALID_PATH) from e
    except OSError as e:
        raise ManifestError(f"cannot read ({_reason(e)})", file=str(p), valid=_VALID_PATH) from e
    if stat.S_ISREG(mode):
        return [p], []
    if not stat.S_ISDIR(mode):
        raise ManifestError("not a regular file or directory", file=str(p), valid=_VALID_PATH)
    files: list[Path] = []
    skipped: list[Skipped] = []
    _scan_dir(p, files, skipped)
    return files, skipped


def manifest_files(path: str | Path) -> list[Path]:
    return scan(path)[0]


_MERGE = "tag:yaml.org,2002:merge"


class _SafeLoader(LimitedSafeLoader):
    """yaml.safe_load's documents on libyaml's parser (several times faster on large
    manifest sets), with the kit's alias and depth limits (a billion-laughs manifest is
    refused, as the API server refuses it since CVE-2019-11253), and a key defined twice
    in one mapping is an error, as kubectl's strict decoding makes it (PyYAML would
    silently keep the last value)."""

    # CRD schemas nest deeper than the kit's own data files
    max_depth = 1000

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
    raw = obj.get("metadata")
    meta: dict = raw if isinstance(raw, dict) else {}
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
    meta = doc.get("metadata")
    for key, present in (("apiVersion", has_api), ("kind", has_kind)):
        if not present or not isinstance(doc.get(key), str) or not doc.get(key):
            name = meta.get("name") if isinstance(meta, dict) else None
            raise ManifestError(f"object without {key}", file=file, obj=name or where, field=key,
                                value=doc.get(key), valid=f"a non-empty {key} string such as "
                                + ("apps/v1" if key == "apiVersion" else "Deployment"))
    if not doc["kind"].endswith("List") and (not isinstance(meta, dict) or not meta.get("name")):
        raise ManifestError("object without metadata.name", file=file, obj=f"{doc['kind']} at {where}",
                            field="metadata.name", valid="every object has a name")
    return doc


def _warn(message: str, category: type[ManifestWarning]) -> None:
    warnings.warn(message, category, stacklevel=3)


def load_manifests(*paths: str | Path, allow_empty: bool = False) -> LoadResult:
    """Every Kubernetes object in the given files and directories. A path that holds no
    object at all is an error unless ``allow_empty``: a plan or a check of nothing is not
    a result."""
    result = LoadResult()
    seen: dict[tuple[str, str, str, str], str] = {}
    for path in paths:
        files, skipped = scan(path)
        for s in skipped:
            _warn(s.message(), ManifestNote)
        result.skipped += skipped
        before = len(result.objects)
        for f in files:
            file = str(f)
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = _reason(e) if isinstance(e, OSError) else str(e)
                raise ManifestError(f"cannot read file ({reason})", file=file, valid=_VALID_PATH) from e
            result.files_read.append(file)
            in_file, warned = len(result.objects), len(result.warnings)
            for index, (line, doc) in enumerate(_documents(text, file)):
                where = f"document {index} (line {line})"
                if doc is None:
                    continue
                obj = _object_or_none(doc, file=file, index=index, where=where)
                if obj is None:
                    msg = f"{file}: {where}: skipped, not a Kubernetes object (no apiVersion/kind)"
                    result.warnings.append(msg)
                    _warn(msg, ManifestWarning)
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
            if len(result.objects) == in_file and len(result.warnings) == warned:
                msg = f"{file}: skipped, holds no Kubernetes object (empty, or only comments)"
                result.warnings.append(msg)
                _warn(msg, ManifestWarning)
        if len(result.objects) == before and not allow_empty:
            if not files:
                raise ManifestError(f"no manifest files ({len(skipped)} path(s) passed over)",
                                    file=str(path), valid=_VALID_PATH + " holding Kubernetes objects")
            raise ManifestError(f"no Kubernetes objects in {len(files)} manifest file(s)", file=str(path),
                                valid="at least one document with apiVersion, kind and metadata.name")
    return result


@contextmanager
def printed_warnings(stream: TextIO) -> Iterator[None]:
    """Print the ManifestWarnings raised inside the block on ``stream``, once each, as
    ``warning: ...`` lines (``note: ...`` for ManifestNotes) when the block succeeds
    (an error stays the one line the CLI prints). Other warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ManifestWarning)
        yield
    printed: set[str] = set()
    for w in caught:
        if not issubclass(w.category, ManifestWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        text = f"{'note' if issubclass(w.category, ManifestNote) else 'warning'}: {w.message}"
        if text not in printed:
            printed.add(text)
            print(text, file=stream)
