"""Where the kit's embedded data and notebooks live.

The kit is installed editable from its checkout (``make install``), so the embedded
data files sit beside the package rather than inside it; this module is the one place
that knows that.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
NOTEBOOKS_DIR = ROOT / "notebooks"
MANIFESTS_DIR = ROOT / "manifests"


def data_file(name: str) -> Path:
    """Path of an embedded data file such as ``services.yaml``."""
    return DATA_DIR / name
