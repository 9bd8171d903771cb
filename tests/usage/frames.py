"""Small frames in the store's shape for the usage tests (FRAME_COLUMNS, UTC timestamps,
Int64 figures, category names), built from plain rows."""
from __future__ import annotations

from typing import Any

import pandas as pd

from eafix_capacity.usage.samples import FRAME_COLUMNS

NAMES = ("context", "namespace", "pod", "container", "service", "node", "source")
INTS = ("memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")


def typed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``rows`` (each with every column it needs) as the store's frame; None is a missing figure."""
    df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["cpu_m"] = pd.to_numeric(df["cpu_m"]).astype("float64")
    for c in INTS:
        df[c] = pd.array([None if v is None or v != v else int(v) for v in df[c]], dtype="Int64")
    for c in NAMES:
        df[c] = df[c].astype("category")
    return df
