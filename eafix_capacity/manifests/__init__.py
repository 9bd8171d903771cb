"""The EAFIX deployment as Kubernetes manifests: render, write, load, import, check.

The catalogue (and the plan built on it) becomes a list of plain dict objects
(:mod:`.render`), which :mod:`.layout` writes into the seed's directory layout with a
``kustomization.yaml``. The way back, :mod:`.load` and :mod:`.importer`, turns manifests
(ours or anyone's) into a catalogue again; :mod:`.validate` and :mod:`.checks` say whether
a set of objects is something a platform team can merge.
"""
from __future__ import annotations

from .importer import import_catalog, import_manifests, import_objects, import_summary
from .render import KUBERNETES_VERSION, RenderOptions, render

__all__ = ["KUBERNETES_VERSION", "RenderOptions", "render", "import_catalog", "import_manifests",
           "import_objects", "import_summary"]
