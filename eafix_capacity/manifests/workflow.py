"""The manifest jobs end to end: generate a profile's tree, check a directory, import one.

Each job is a pure build step followed by at most one side effect (the atomic directory
write), so the CLI, the notebook and the tests run the same code. Nothing is written
unless the objects pass schema validation and the literal-secret detector.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..catalog import Catalog, load_catalog
from ..errors import ManifestError
from ..mesh import Mesh
from ..paths import MANIFESTS_DIR
from ..profiles import Profile, get_profile, load_profiles
from .checks import CheckReport, run_checks
from .helm import helm_values
from .importer import import_objects
from .layout import layout, object_ref, read_tree, relpath, tree_diff, write_tree
from .load import LoadedObject, load_manifests
from .render import KUBERNETES_VERSION, RenderOptions, check_options, render
from .secrets import find_literal_secrets
from .validate import SchemaSet, assert_valid


@dataclass(frozen=True)
class Generated:
    """A rendering in memory: the objects and the exact bytes of every file."""

    profile: str
    mesh: str
    objects: list[dict]
    files: dict[str, bytes]


def committed_dir(profile: str, mesh: str = "none") -> Path:
    """Where the committed reference rendering of a profile lives."""
    return MANIFESTS_DIR / (profile + ("-istio" if mesh == "istio" else ""))


def assert_no_secrets(objects: list[dict]) -> None:
    for obj in objects:
        findings = find_literal_secrets(obj)
        if findings:
            f = findings[0]
            raise ManifestError(f"refusing to write a value that looks like a real secret ({f.reason})",
                                obj=object_ref(obj), field=f.field,
                                valid="placeholders such as REPLACE_ME, or secretKeyRef/ExternalSecret")


def build(catalog: Catalog, profile: Profile, options: RenderOptions | None = None, *,
          schemas: SchemaSet | None = None) -> Generated:
    """Render, validate, screen for secrets and lay out; raises before anything is written.
    ``schemas`` lets several renderings share one set of schema validators."""
    options = check_options(options or RenderOptions())
    objects = render(catalog, profile, options)
    assert_valid(objects, files=[relpath(o) for o in objects], schemas=schemas)
    assert_no_secrets(objects)
    description = f"profile {profile.name}, mesh {options.mesh}, Kubernetes {KUBERNETES_VERSION}"
    if options.zone_spread:
        description += ", zone spread"
    files = layout(objects, description=description, helm_values=helm_values(catalog, options))
    return Generated(profile.name, options.mesh, objects, files)


def build_profile(profile: str, *, mesh: Mesh | None = None, catalog: Catalog | None = None,
                  options: RenderOptions | None = None) -> Generated:
    prof = get_profile(profile, load_profiles())
    opts = replace(options or RenderOptions(), mesh=mesh or (options.mesh if options else "none"))
    return build(catalog or load_catalog(), prof, opts)


def generate(*, profile: str, mesh: Mesh | None = None, out_dir: str | Path | None = None,
             catalog: Catalog | None = None, options: RenderOptions | None = None) -> tuple[Generated, Path]:
    """Build a profile and write it atomically (default: the committed ``manifests/`` tree)."""
    gen = build_profile(profile, mesh=mesh, catalog=catalog, options=options)
    out = Path(out_dir) if out_dir is not None else committed_dir(profile, gen.mesh)
    return gen, write_tree(gen.files, out_dir=out)


def check_paths(*paths: str | Path, kubernetes_version: str = KUBERNETES_VERSION,
                ignore_unknown_kinds: bool = False) -> CheckReport:
    """The check suite on files or directories (an error when they hold no object)."""
    loaded = load_manifests(*paths)
    return run_checks(loaded.dicts, files=loaded.files, kubernetes_version=kubernetes_version,
                      ignore_unknown_kinds=ignore_unknown_kinds)


def inventory(objects: list[dict]) -> pd.DataFrame:
    """One row per object: file, kind, name, namespace."""
    rows = [{"file": relpath(o), "kind": o.get("kind"), "name": (o.get("metadata") or {}).get("name"),
             "namespace": (o.get("metadata") or {}).get("namespace", "")} for o in objects]
    return pd.DataFrame(rows, columns=["file", "kind", "name", "namespace"])


def import_generated(gen: Generated) -> Catalog:
    """The catalogue the rendering describes (as ``manifests import`` would read it)."""
    loaded = [LoadedObject(o, relpath(o), 0, 1) for o in gen.objects]
    return import_objects(loaded, source=f"<rendering of {gen.profile}>")


def drift(gen: Generated, committed: str | Path) -> pd.DataFrame:
    """Files where the rendering and a committed tree differ (``added``: only generated)."""
    path = Path(committed)
    actual = read_tree(path) if path.is_dir() else {}
    return pd.DataFrame(tree_diff(gen.files, actual), columns=["file", "status"])
