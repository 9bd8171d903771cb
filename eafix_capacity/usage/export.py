"""``usage export``: the stored samples as a CSV or Parquet file other tools can read.

The file has exactly EXPORT_COLUMNS, one row per sample in the order the rounds were
appended. CSV: a header row, timestamps ISO-8601 UTC with ``Z`` (``2026-12-01T14:30:00Z``,
with microseconds only when the instant has them), ``cpu_m`` the stored nanocores / 10**6
written from the integer (``123.456789``, ``250``: no float noise), an empty cell where the
source had no figure. Parquet: ``timestamp`` a UTC timestamp in microseconds, the names
strings, ``cpu_m`` float64 (nanocores / 10**6: every figure with at most 15 significant
digits reads back exactly), the other figures nullable int64.

The rows are read and written in chunks (``chunk_rows``), so a 2-million-row store never sits
in memory twice, and into a temporary file beside the output that is renamed into place only
when complete: an error or a kill leaves the previous output as it was. pyarrow does the
formatting and writing (imported here only, so the other commands do not pay for it).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError
from ..fsio import _create_temporary, describe_os_error, fsync_directory
from .samples import EXPORT_COLUMNS
from .store import MISSING, SampleChunk, UsageStore

FORMATS = ("csv", "parquet")
CHUNK_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    format: str
    rows: int


def export_store(directory: str | Path, out: str | Path, *, format: str = "csv", start: datetime | None = None,
                 end: datetime | None = None, namespaces: Iterable[str] | None = None,
                 chunk_rows: int = CHUNK_ROWS) -> ExportResult:
    """Export the store in run directory ``directory`` (see :func:`export_samples`)."""
    with UsageStore.open(directory, create=False) as store:
        return export_samples(store, out, format=format, start=start, end=end, namespaces=namespaces,
                              chunk_rows=chunk_rows)


def export_samples(store: UsageStore, out: str | Path, *, format: str = "csv", start: datetime | None = None,
                   end: datetime | None = None, namespaces: Iterable[str] | None = None,
                   chunk_rows: int = CHUNK_ROWS) -> ExportResult:
    """Write the samples of ``store`` with ``start <= timestamp < end`` in ``namespaces`` (all
    when None) to ``out`` as ``format`` (csv or parquet), atomically. A selection without
    samples is refused (nothing is written): an empty export would read as "no usage"."""
    if format not in FORMATS:
        raise InputError("unknown export format", field="--format", value=format,
                         valid=" or ".join(FORMATS))
    if isinstance(namespaces, str):
        namespaces = [namespaces]
    path = Path(out)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write (a directory; give a file name, e.g. {path / ('usage.' + format)})")
    chunks = store.iter_chunks(start=start, end=end, namespaces=namespaces, chunk_rows=chunk_rows)
    try:
        first = next(chunks)
        if not len(first):
            raise InputError(f"no samples to export {_window(start, end, namespaces)}", file=str(store.path),
                             valid=_held(store))

        def all_chunks() -> Iterable[SampleChunk]:
            yield first
            yield from chunks

        rows = _write_atomically(path, format, all_chunks())
    finally:
        chunks.close()
    return ExportResult(path=path, format=format, rows=rows)


def _window(start: datetime | None, end: datetime | None, namespaces: Iterable[str] | None) -> str:
    parts = [f"from {start.isoformat()}" if start else "", f"before {end.isoformat()}" if end else "",
             f"in namespaces {sorted(namespaces)}" if namespaces is not None else ""]
    return " ".join(p for p in parts if p) or "(the store is empty)"


def _held(store: UsageStore) -> str:
    span = store.time_range()
    if span is None:
        return "a run directory a sampler has written samples to"
    return f"the store holds samples from {span[0].isoformat()} to {span[1].isoformat()}"


def _write_atomically(path: Path, format: str, chunks: Iterable[SampleChunk]) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path, 0o666)
    except OSError as e:
        raise OutputError(describe_os_error(path, e)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            rows = _write_csv(f, chunks) if format == "csv" else _write_parquet(f, chunks)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
        raise
    return rows


def _figure(chunk: SampleChunk, name: str) -> Any:
    import pyarrow as pa

    values = chunk.figures[name]
    return pa.array(values, mask=values == MISSING, type=pa.int64())


def _names(chunk: SampleChunk, name: str) -> Any:
    import pyarrow as pa

    return pa.array(chunk.names[name]).cast(pa.string())


def _write_csv(f: Any, chunks: Iterable[SampleChunk]) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = 0
    f.write((",".join(EXPORT_COLUMNS) + "\n").encode())  # Arrow quotes every header name
    for chunk in chunks:
        if not len(chunk):
            continue
        stamps = _iso_utc(chunk.timestamp_us)
        columns = {"timestamp": stamps}
        for name in ("namespace", "pod", "container", "service", "node"):
            columns[name] = _names(chunk, name)
        columns["cpu_m"] = _millicores(_figure(chunk, "cpu_nanocores"))
        for name in EXPORT_COLUMNS[7:]:
            columns[name] = _figure(chunk, name)
        table = pa.table({name: columns[name] for name in EXPORT_COLUMNS})
        sink = pa.BufferOutputStream()
        try:  # Kubernetes names need no quotes; anything else (a comma, a quote) gets them
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        except pa.ArrowInvalid:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        f.write(sink.getvalue())
        rows += len(chunk)
    return rows


def _iso_utc(micros: np.ndarray) -> Any:
    """ISO-8601 UTC text of integer microseconds: ``2026-12-01T14:30:00Z``, and
    ``2026-12-01T14:30:00.250000Z`` only for an instant with a fraction. Each distinct instant
    is formatted once (a round's samples share one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    unique, index = np.unique(micros, return_inverse=True)
    instants = unique.view("datetime64[us]")
    text = np.datetime_as_string(instants, unit="s", timezone="UTC")
    fraction = unique % 10**6 != 0
    if fraction.any():
        text = text.astype(object)
        text[fraction] = np.datetime_as_string(instants[fraction], unit="us", timezone="UTC")
    return pc.take(pa.array(text.tolist(), type=pa.string()), pa.array(index.reshape(-1)))


def _millicores(nanocores: Any) -> Any:
    """Nanocores as exact decimal millicores: ``123456789`` -> ``"123.456789"``, ``250000000`` -> ``"250"``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    magnitude = pc.abs(nanocores)
    whole = pc.divide(magnitude, 10**6)
    frac = pc.subtract(magnitude, pc.multiply(whole, 10**6))
    whole_s = pc.cast(whole, pa.string())
    frac_s = pc.utf8_rtrim(pc.utf8_lpad(pc.cast(frac, pa.string()), 6, "0"), "0")
    text = pc.if_else(pc.equal(frac, 0), whole_s, pc.binary_join_element_wise(whole_s, frac_s, "."))
    return pc.if_else(pc.less(nanocores, 0), pc.binary_join_element_wise("-", text, ""), text)


def _write_parquet(f: Any, chunks: Iterable[SampleChunk]) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = pa.schema([("timestamp", pa.timestamp("us", tz="UTC"))]
                       + [(n, pa.string()) for n in ("namespace", "pod", "container", "service", "node")]
                       + [("cpu_m", pa.float64())] + [(n, pa.int64()) for n in EXPORT_COLUMNS[7:]])
    rows = 0
    with pq.ParquetWriter(f, schema) as writer:
        for chunk in chunks:
            if not len(chunk):
                continue
            columns = {"timestamp": pa.array(chunk.timestamp_us, type=pa.timestamp("us", tz="UTC"))}
            for name in ("namespace", "pod", "container", "service", "node"):
                columns[name] = _names(chunk, name)
            columns["cpu_m"] = pc.divide(pc.cast(_figure(chunk, "cpu_nanocores"), pa.float64()), 1e6)
            for name in EXPORT_COLUMNS[7:]:
                columns[name] = _figure(chunk, name)
            writer.write_table(pa.table([columns[n] for n in EXPORT_COLUMNS], schema=schema))
            rows += len(chunk)
    return rows
