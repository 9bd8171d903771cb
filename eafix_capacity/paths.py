"""Where the kit's embedded data, notebooks and reference manifests live.

The kit runs in two layouts, and this module is the one place that knows them:

- a checkout (``make install`` installs it editable): ``data/``, ``notebooks/`` and
  ``manifests/`` sit beside the package, and they are what a developer edits;
- an installed wheel (``pip install .``): setuptools maps the same ``data/`` files and the
  notebooks into the package as ``eafix_capacity/data`` and ``eafix_capacity/notebooks``
  (``package-dir`` in pyproject.toml), found through ``importlib.resources``.

So git holds one copy of each file, and editing ``data/`` in a checkout takes effect at
once. Installed, the reference manifests are the user's own ``manifests/`` directory,
relative to the working directory, like ``reports/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    checkout: Path | None  # the source tree, or None when installed from a wheel
    data: Path
    notebooks: Path
    manifests: Path


def is_checkout(root: Path) -> bool:
    """A source tree of the kit: its pyproject.toml with the data beside it (an installed
    package's parent is site-packages, which has neither)."""
    return (root / "pyproject.toml").is_file() and (root / "data").is_dir()


def locate(package_dir: Path) -> Layout:
    """The layout of the kit whose package directory is ``package_dir``."""
    root = package_dir.parent
    if is_checkout(root):
        return Layout(checkout=root, data=root / "data", notebooks=root / "notebooks",
                      manifests=root / "manifests")
    return Layout(checkout=None, data=package_dir / "data", notebooks=package_dir / "notebooks",
                  manifests=Path("manifests"))


def _package_dir() -> Path:
    # A wheel installs into a directory, where a package's resources are plain paths;
    # papermill and the error messages need real paths.
    return Path(str(files(__name__.rpartition(".")[0]))).resolve()


PACKAGE_DIR = _package_dir()
LAYOUT = locate(PACKAGE_DIR)
CHECKOUT = LAYOUT.checkout
ROOT = CHECKOUT or PACKAGE_DIR.parent  # the checkout's top level when running from one
DATA_DIR = LAYOUT.data
NOTEBOOKS_DIR = LAYOUT.notebooks
MANIFESTS_DIR = LAYOUT.manifests


def data_file(name: str) -> Path:
    """Path of an embedded data file such as ``services.yaml``."""
    return DATA_DIR / name
