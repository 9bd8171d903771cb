"""The local store of usage samples: one SQLite file per run directory, ``<DIR>/usage.sqlite``.

A sampler appends a round of samples every few seconds for hours or days; ``usage report``,
``usage recommend`` and ``usage export`` read them back, possibly while the sampler is still
writing. SQLite in WAL mode rather than Parquet files, because:

- a round is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a sampler killed at any
  instant (``kill -9``, Ctrl-C, a lost terminal) loses at most the round in flight, never a
  committed one, and never leaves half a round; Parquet would need one file per round
  (thousands of small files) or rewriting a growing file;
- in WAL mode readers see the last committed round and never block the writer nor wait for it;
- the key (context, namespace, pod, container, timestamp) is a primary key, so a restarted
  sampler that appends a round again adds nothing twice (``INSERT OR IGNORE``);
- one file to copy, with a format marker (``PRAGMA application_id`` and ``user_version``,
  and a ``meta`` table) so a foreign, corrupt or newer file is refused with one line.

``synchronous=NORMAL``: in WAL mode a commit survives the writer process being killed (the WAL
is in the OS page cache); only a power loss may lose the last rounds, and the file stays
consistent even then.

The figures are not stored as one SQL row per sample: Python's ``sqlite3`` turns every value
into a Python object, and 2 million rows of 11 values took 6 s to fetch (measured), twice the
3 s the issue allows for loading. Each round is stored instead as blocks of columns (little-endian
int64 arrays, zlib-compressed) in ``sample_blocks``, which load with one ``numpy.frombuffer``
each, while ``sample_keys`` holds one row per sample with the primary key that deduplicates.
The repeated names (context, namespace, pod, container, service, node, source) are stored once
in ``containers`` and ``series`` and referenced by id, and load as pandas categoricals.
"""
from __future__ import annotations

import os
import sqlite3
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, OutputError
from ..fsio import describe_os_error, fsync_directory
from .samples import FRAME_COLUMNS, NodeSample, Sample, Termination

FILENAME = "usage.sqlite"
APPLICATION_ID = 0x45414658
"""``PRAGMA application_id`` of a usage store: ``EAFX`` in ASCII."""
FORMAT = "eafix-capacity usage store"
FORMAT_VERSION = 1
"""``PRAGMA user_version``; a file with a larger one was written by a newer kit and is refused."""
BLOCK_ROWS = 65_536
"""Most samples in one stored block (a round larger than this is several blocks, one transaction)."""
NODE_FRAME_COLUMNS = ("timestamp", "context", "node", "cpu_m", "memory_bytes", "source")
"""The columns of :meth:`UsageStore.node_frame`, with the dtypes of the same columns in FRAME_COLUMNS."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
MISSING = int(np.iinfo(np.int64).min)
"""A missing figure in a stored block and a :class:`SampleChunk` (no real figure is -2**63)."""
FIGURES = ("cpu_nanocores", "memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes",
            "memory_limit_bytes")
_BLOCK_COLUMNS = ("ts_us", "series_id") + FIGURES
"""A block's arrays, in the order they are laid out (each ``rows`` int64 values)."""
NAME_COLUMNS = ("context", "namespace", "pod", "container", "service", "node", "source")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_NAME_CACHE_MAX = 100_000
"""Name-to-id entries kept by a writer before the cache starts over (pods churn; memory must not grow)."""
_VALID = f"a {FILENAME} written by `eafix-capacity usage sample` (SQLite, format {FORMAT_VERSION})"

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE containers (
    id INTEGER PRIMARY KEY, context TEXT NOT NULL, namespace TEXT NOT NULL, pod TEXT NOT NULL,
    container TEXT NOT NULL, UNIQUE (context, namespace, pod, container));
CREATE TABLE series (
    id INTEGER PRIMARY KEY, container_id INTEGER NOT NULL REFERENCES containers (id),
    service TEXT NOT NULL, node TEXT NOT NULL, source TEXT NOT NULL,
    UNIQUE (container_id, service, node, source));
CREATE TABLE sample_keys (
    ts_us INTEGER NOT NULL, container_id INTEGER NOT NULL, PRIMARY KEY (ts_us, container_id)) WITHOUT ROWID;
CREATE TABLE sample_blocks (
    id INTEGER PRIMARY KEY, ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL, rows INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX sample_blocks_time ON sample_blocks (ts_min, ts_max);
CREATE TABLE node_samples (
    context TEXT NOT NULL, node TEXT NOT NULL, ts_us INTEGER NOT NULL, cpu_nanocores INTEGER,
    memory_bytes INTEGER, source TEXT NOT NULL, PRIMARY KEY (context, node, ts_us)) WITHOUT ROWID;
CREATE TABLE terminations (
    context TEXT NOT NULL, namespace TEXT NOT NULL, pod TEXT NOT NULL, container TEXT NOT NULL,
    restart_count INTEGER NOT NULL, ts_us INTEGER NOT NULL, service TEXT NOT NULL, reason TEXT NOT NULL,
    memory_limit_bytes INTEGER, source TEXT NOT NULL,
    PRIMARY KEY (context, namespace, pod, container, restart_count)) WITHOUT ROWID;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {FORMAT_VERSION};
"""


class UsageStoreError(InputError):
    """A usage store that cannot be opened or read: missing, foreign, corrupt or newer."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one :meth:`UsageStore.append_round` added; the ``*_skipped`` were already stored."""

    samples_added: int
    samples_skipped: int
    node_samples_added: int
    node_samples_skipped: int
    terminations_added: int
    terminations_skipped: int


@dataclass(frozen=True, slots=True)
class StoreCounts:
    samples: int
    node_samples: int
    terminations: int
    containers: int
    """Distinct (context, namespace, pod, container) with at least one sample."""


@dataclass(frozen=True, slots=True)
class SampleChunk:
    """Samples as arrays, for readers that need the stored integers (``usage export``) or
    want to avoid a DataFrame: ``timestamp_us`` and each of FIGURES int64 (MISSING where the
    source had no figure), each of NAME_COLUMNS a categorical."""

    timestamp_us: np.ndarray
    figures: Mapping[str, np.ndarray]
    names: Mapping[str, pd.Categorical]

    def __len__(self) -> int:
        return len(self.timestamp_us)

    def frame(self) -> pd.DataFrame:
        """The chunk as a DataFrame of FRAME_COLUMNS (the dtypes :meth:`UsageStore.frame` documents)."""
        cols: dict[str, Any] = {
            "timestamp": pd.DatetimeIndex(self.timestamp_us.view("datetime64[us]")).tz_localize("UTC")}
        cols.update(self.names)
        cpu = self.figures["cpu_nanocores"]
        cols["cpu_m"] = np.where(cpu == MISSING, np.nan, cpu / 10**6)
        for name in FIGURES[1:]:
            values = self.figures[name]
            cols[name] = pd.arrays.IntegerArray(values, values == MISSING)
        return pd.DataFrame(cols, columns=list(FRAME_COLUMNS), copy=False)


def to_us(ts: datetime, *, field: str = "timestamp", file: str | None = None) -> int:
    """A timezone-aware datetime as integer microseconds since the epoch (exact)."""
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError("not a timezone-aware datetime:", file=file, field=field, value=ts,
                         valid="a timezone-aware UTC datetime, e.g. datetime(2026, 12, 1, tzinfo=timezone.utc)")
    return (ts - _EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class UsageStore:
    """An open usage store. Use :meth:`open`; close it (or use it as a context manager)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._containers: dict[tuple[str, str, str, str], int] = {}
        self._series: dict[tuple[int, str, str, str], int] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: str | Path, *, create: bool) -> UsageStore:
        """The store in ``directory`` (``<directory>/usage.sqlite``). ``create=True`` makes the
        directory and an empty store when there is none; ``create=False`` refuses a directory
        without one. A file that is not a usage store of this format is refused either way."""
        d = Path(directory)
        path = d / FILENAME
        if not path.exists():
            if not create:
                what = "no usage store in" if d.is_dir() else "no such run directory"
                raise UsageStoreError(f"{what} {str(d)!r}", file=str(path), valid=_VALID)
            _create(path)
        elif not path.is_file():
            raise UsageStoreError("not a file", file=str(path), valid=_VALID)
        _check_header(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as e:
            raise UsageStoreError(f"cannot open ({e})", file=str(path), valid=_VALID) from e
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            _check_format(path, conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.DatabaseError):
                raise UsageStoreError(f"corrupt or not a database ({e})", file=str(path), valid=_VALID) from e
            raise
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _error(self, e: sqlite3.Error) -> UsageStoreError:
        return UsageStoreError(f"corrupt or unreadable ({e})", file=str(self.path), valid=_VALID)

    # ------------------------------------------------------------------ writing

    def append_round(self, samples: Iterable[Sample] = (), *, node_samples: Iterable[NodeSample] = (),
                     terminations: Iterable[Termination] = ()) -> AppendResult:
        """Append one sampling round in ONE transaction: all of it is stored, or (when the
        process dies or an error is raised) none of it.

        A sample whose key (context, namespace, pod, container, timestamp) is already stored
        is skipped, and so is a repeat within the round: the row first stored is kept, not
        replaced. A sampler restarted after a kill re-reads the same instants from the same
        source, so the figures agree; when they do not (another source, a re-scrape), the
        first record is what every earlier report and export already used, and keeping it
        makes re-appending idempotent instead of rewriting history. Node samples (key context,
        node, timestamp) and terminations (key context, namespace, pod, container, restart
        count: the kubelet reports a container's last termination every round until it
        restarts again) are kept the same way."""
        rows = list(samples)
        nodes = list(node_samples)
        terms = list(terminations)
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                added, skipped = self._append_samples(rows)
                n_nodes = self._insert_ignore(
                    "INSERT OR IGNORE INTO node_samples VALUES (?, ?, ?, ?, ?, ?)",
                    [(n.context, n.node, to_us(n.timestamp), n.cpu_nanocores, n.memory_bytes, n.source)
                     for n in nodes])
                n_terms = self._insert_ignore(
                    "INSERT OR IGNORE INTO terminations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(t.context, t.namespace, t.pod, t.container, t.restart_count, to_us(t.timestamp), t.service,
                      t.reason, t.memory_limit_bytes, t.source) for t in terms])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                # ids handed out inside the rolled-back transaction no longer exist
                self._containers.clear()
                self._series.clear()
                raise
        except sqlite3.Error as e:
            raise self._error(e) from e
        return AppendResult(added, skipped, n_nodes, len(nodes) - n_nodes, n_terms, len(terms) - n_terms)

    def _insert_ignore(self, sql: str, params: list[tuple[Any, ...]]) -> int:
        if not params:
            return 0
        before = self._conn.total_changes
        self._conn.executemany(sql, params)
        return self._conn.total_changes - before

    def _append_samples(self, rows: list[Sample]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        if len(self._containers) > _NAME_CACHE_MAX or len(self._series) > _NAME_CACHE_MAX:
            self._containers.clear()
            self._series.clear()
        micros: dict[int, int] = {}  # a round's samples mostly share one datetime object
        ts: list[int] = []
        cids: list[int] = []
        containers = self._containers
        for s in rows:
            us = micros.get(id(s.timestamp))
            if us is None:
                us = micros[id(s.timestamp)] = to_us(s.timestamp)
            ts.append(us)
            key = (s.context, s.namespace, s.pod, s.container)
            cid = containers.get(key)
            cids.append(cid if cid is not None else self._container_id(key))
        lo, hi = min(ts), max(ts)
        existing = set(self._conn.execute(
            "SELECT ts_us, container_id FROM sample_keys WHERE ts_us BETWEEN ? AND ?", (lo, hi)))
        keep: list[int] = []
        for i, key2 in enumerate(zip(ts, cids)):
            if key2 not in existing:
                existing.add(key2)
                keep.append(i)
        if not keep:
            return 0, len(rows)
        keys = [(ts[i], cids[i]) for i in keep]
        before = self._conn.total_changes
        self._conn.executemany("INSERT OR IGNORE INTO sample_keys VALUES (?, ?)", keys)
        if self._conn.total_changes - before != len(keys):  # BEGIN IMMEDIATE: no other writer in between
            raise RuntimeError(f"{self.path}: sample keys changed during a write transaction")
        figures = attrgetter(*FIGURES)
        for start in range(0, len(keep), BLOCK_ROWS):
            part = keep[start:start + BLOCK_ROWS]
            block = np.empty((len(_BLOCK_COLUMNS), len(part)), dtype="<i8")
            block[0] = [ts[i] for i in part]
            block[1] = [self._series_id(cids[i], rows[i]) for i in part]
            raw = [v for i in part for v in figures(rows[i])]
            missing = np.array([v is None for v in raw]).reshape(len(part), len(FIGURES))
            # a float, a bool or a number beyond int64 is refused below (-1), never truncated
            flat = [v if type(v) is int and -2**63 < v < 2**63 else -1 for v in raw]
            values = np.array(flat, dtype="<i8").reshape(len(part), len(FIGURES))
            bad = np.argwhere((values < 0) & ~missing)
            if len(bad):
                s = rows[part[bad[0][0]]]
                raise InputError("not a figure (a whole number from 0 to 2**63 - 1, or None when missing):",
                                 obj=f"{s.namespace}/{s.pod} container {s.container} at {s.timestamp.isoformat()}",
                                 field=FIGURES[bad[0][1]], value=getattr(s, FIGURES[bad[0][1]]),
                                 valid="the source's figure, or None for a missing sample")
            values[missing] = MISSING
            block[2:] = values.T
            self._conn.execute(
                "INSERT INTO sample_blocks (ts_min, ts_max, rows, data) VALUES (?, ?, ?, ?)",
                (int(block[0].min()), int(block[0].max()), len(part), zlib.compress(block.tobytes(), 1)))
        return len(keep), len(rows) - len(keep)

    def _container_id(self, key: tuple[str, str, str, str]) -> int:
        cid = self._containers.get(key)
        if cid is None:
            row = self._conn.execute(
                "SELECT id FROM containers WHERE context = ? AND namespace = ? AND pod = ? AND container = ?",
                key).fetchone()
            if row is None:
                cur = self._conn.execute(
                    "INSERT INTO containers (context, namespace, pod, container) VALUES (?, ?, ?, ?)", key)
                assert cur.lastrowid is not None
                cid = int(cur.lastrowid)
            else:
                cid = int(row[0])
            self._containers[key] = cid
        return cid

    def _series_id(self, cid: int, s: Sample) -> int:
        key = (cid, s.service, s.node, s.source)
        sid = self._series.get(key)
        if sid is None:
            row = self._conn.execute(
                "SELECT id FROM series WHERE container_id = ? AND service = ? AND node = ? AND source = ?",
                key).fetchone()
            if row is None:
                cur = self._conn.execute(
                    "INSERT INTO series (container_id, service, node, source) VALUES (?, ?, ?, ?)", key)
                assert cur.lastrowid is not None
                sid = int(cur.lastrowid)
            else:
                sid = int(row[0])
            self._series[key] = sid
        return sid

    # ------------------------------------------------------------------ reading

    def frame(self, *, start: datetime | None = None, end: datetime | None = None,
              namespaces: Iterable[str] | None = None) -> pd.DataFrame:
        """The samples with ``start <= timestamp < end`` (either open when None) in the given
        namespaces (all when None), as a DataFrame of exactly FRAME_COLUMNS ordered by
        timestamp (ties in the order they were appended). dtypes: ``timestamp``
        ``datetime64[us, UTC]``; the names ``category``; ``cpu_m`` float64 (NaN where missing);
        the other figures ``Int64`` (NA where missing). An empty window gives an empty frame
        with the same columns and dtypes."""
        parts = list(self.iter_frames(start=start, end=end, namespaces=namespaces, chunk_rows=None))
        df = parts[0] if len(parts) == 1 else _concat(parts)
        ts = df["timestamp"].to_numpy(dtype="datetime64[us]").view("i8") if len(df) else np.empty(0, "i8")
        if len(ts) > 1 and bool((np.diff(ts) < 0).any()):
            df = df.take(np.argsort(ts, kind="stable")).reset_index(drop=True)
        return df

    def iter_frames(self, *, start: datetime | None = None, end: datetime | None = None,
                    namespaces: Iterable[str] | None = None,
                    chunk_rows: int | None = 250_000) -> Iterator[pd.DataFrame]:
        """The same samples as :meth:`frame`, in frames of at most about ``chunk_rows`` rows
        (all in one when None) in the order they were appended, read in one snapshot: a round
        committed meanwhile is not half in it. Yields at least one (possibly empty) frame."""
        for chunk in self.iter_chunks(start=start, end=end, namespaces=namespaces, chunk_rows=chunk_rows):
            yield chunk.frame()

    def iter_chunks(self, *, start: datetime | None = None, end: datetime | None = None,
                    namespaces: Iterable[str] | None = None,
                    chunk_rows: int | None = 250_000) -> Generator[SampleChunk, None, None]:
        """As :meth:`iter_frames`, as :class:`SampleChunk` arrays (the integers as stored)."""
        lo = None if start is None else to_us(start, field="start")
        hi = None if end is None else to_us(end, field="end")
        if lo is not None and hi is not None and lo > hi:
            raise InputError("the window's start is after its end:", field="start", value=str(start),
                             valid=f"a start at or before the end {end!s}")
        wanted = None if namespaces is None else {str(n) for n in ([namespaces] if isinstance(namespaces, str)
                                                                   else namespaces)}
        conn = self._conn
        try:
            conn.execute("BEGIN")  # one read snapshot: the series and the blocks agree
            try:
                series = conn.execute(
                    "SELECT s.id, c.context, c.namespace, c.pod, c.container, s.service, s.node, s.source "
                    "FROM series s JOIN containers c ON c.id = s.container_id ORDER BY s.id").fetchall()
                where, params = _window_sql(lo, hi)
                total = conn.execute(f"SELECT coalesce(sum(rows), 0) FROM sample_blocks{where}", params).fetchone()[0]
                names = _Names(series)
                keep_series = None if wanted is None else names.in_namespaces(wanted)
                size = max(1, int(total) if chunk_rows is None else min(int(total), max(1, int(chunk_rows))))
                cursor = conn.execute(f"SELECT rows, data FROM sample_blocks{where} ORDER BY id", params)
                yielded = False
                for arrays in _chunks(_blocks(cursor, lo, hi, keep_series, self.path), size):
                    yielded = True
                    yield names.chunk(arrays)
                if not yielded:
                    yield names.chunk(np.empty((len(_BLOCK_COLUMNS), 0), dtype="<i8"))
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._error(e) from e

    def node_frame(self, *, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The node samples in the window, NODE_FRAME_COLUMNS, ordered by timestamp then node."""
        rows = self._node_rows(start, end)
        cols = list(zip(*rows)) if rows else [()] * 6
        ts = np.array(cols[0], dtype="i8").astype("datetime64[us]")
        cpu = np.array([np.nan if v is None else v / 10**6 for v in cols[3]], dtype="float64")
        return pd.DataFrame({
            "timestamp": pd.DatetimeIndex(ts).tz_localize("UTC"),
            "context": pd.Categorical(cols[1]),
            "node": pd.Categorical(cols[2]),
            "cpu_m": cpu,
            "memory_bytes": pd.array(cols[4], dtype="Int64"),
            "source": pd.Categorical(cols[5]),
        }, columns=list(NODE_FRAME_COLUMNS))

    def node_samples(self, *, start: datetime | None = None, end: datetime | None = None) -> list[NodeSample]:
        """The node samples in the window as records (ordered by timestamp then node)."""
        return [NodeSample(timestamp=from_us(t), context=c, node=n, cpu_nanocores=cpu, memory_bytes=mem, source=src)
                for t, c, n, cpu, mem, src in self._node_rows(start, end)]

    def _node_rows(self, start: datetime | None, end: datetime | None) -> list[tuple[Any, ...]]:
        where, params = _window_sql(None if start is None else to_us(start, field="start"),
                                    None if end is None else to_us(end, field="end"), lo_col="ts_us", hi_col="ts_us")
        try:
            return self._conn.execute(
                "SELECT ts_us, context, node, cpu_nanocores, memory_bytes, source FROM node_samples"
                f"{where} ORDER BY ts_us, context, node", params).fetchall()
        except sqlite3.Error as e:
            raise self._error(e) from e

    def terminations(self) -> list[Termination]:
        """Every recorded termination, ordered by timestamp."""
        try:
            rows = self._conn.execute(
                "SELECT ts_us, context, namespace, pod, container, service, reason, restart_count, "
                "memory_limit_bytes, source FROM terminations ORDER BY ts_us, context, namespace, pod, container, "
                "restart_count").fetchall()
        except sqlite3.Error as e:
            raise self._error(e) from e
        return [Termination(timestamp=from_us(r[0]), context=r[1], namespace=r[2], pod=r[3], container=r[4],
                            service=r[5], reason=r[6], restart_count=r[7], memory_limit_bytes=r[8], source=r[9])
                for r in rows]

    def counts(self) -> StoreCounts:
        try:
            (samples,) = self._conn.execute("SELECT coalesce(sum(rows), 0) FROM sample_blocks").fetchone()
            (nodes,) = self._conn.execute("SELECT count(*) FROM node_samples").fetchone()
            (terms,) = self._conn.execute("SELECT count(*) FROM terminations").fetchone()
            (containers,) = self._conn.execute(
                "SELECT count(*) FROM containers c WHERE EXISTS "
                "(SELECT 1 FROM series s WHERE s.container_id = c.id)").fetchone()
        except sqlite3.Error as e:
            raise self._error(e) from e
        return StoreCounts(samples=int(samples), node_samples=int(nodes), terminations=int(terms),
                           containers=int(containers))

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The first and last sample timestamps, or None when there are no samples."""
        try:
            lo, hi = self._conn.execute("SELECT min(ts_min), max(ts_max) FROM sample_blocks").fetchone()
        except sqlite3.Error as e:
            raise self._error(e) from e
        return None if lo is None else (from_us(int(lo)), from_us(int(hi)))


# ---------------------------------------------------------------------- helpers

def _create(path: Path) -> None:
    """Create an empty store atomically: the schema is built in a temporary file that is then
    renamed into place, so a crash during creation leaves no half-made store behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(f"BEGIN;{_SCHEMA}COMMIT;")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("format", FORMAT), ("version", str(FORMAT_VERSION)),
                ("created", datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"))])
        finally:
            conn.close()  # the last connection checkpoints and removes the -wal file
        try:
            os.link(tmp, path)  # never replaces a store another process created meanwhile: use theirs
        except FileExistsError:
            pass
        tmp.unlink()
        fsync_directory(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(describe_os_error(path, e)) from e
    except sqlite3.Error as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot create the usage store ({e})") from e
    finally:
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite at all before sqlite3 sees it (an empty file would
    otherwise open as an empty database)."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as e:
        raise UsageStoreError(f"cannot read ({e.strerror or e})", file=str(path), valid=_VALID) from e
    if not head.startswith(_SQLITE_MAGIC) or len(head) < 100:
        raise UsageStoreError("not a SQLite database (corrupt, or another kind of file)", file=str(path),
                              valid=_VALID)


def _check_format(path: Path, conn: sqlite3.Connection) -> None:
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if app_id != APPLICATION_ID:
        raise UsageStoreError(f"a SQLite database of another application (application_id {app_id:#010x}), "
                              "not a usage store", file=str(path), valid=_VALID)
    if version > FORMAT_VERSION:
        raise UsageStoreError(f"written by a newer eafix-capacity (store format {version}; this one reads "
                              f"format {FORMAT_VERSION})", file=str(path),
                              valid="upgrade eafix-capacity, or use a store this version wrote")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as e:
        raise UsageStoreError(f"no format marker ({e})", file=str(path), valid=_VALID) from e
    if meta.get("format") != FORMAT or meta.get("version") != str(version) or version < 1:
        raise UsageStoreError(f"format marker {meta.get('format')!r} version {meta.get('version')!r} "
                              f"(user_version {version}) is not a usage store's", file=str(path), valid=_VALID)


def _window_sql(lo: int | None, hi: int | None, *, lo_col: str = "ts_max",
                hi_col: str = "ts_min") -> tuple[str, tuple[int, ...]]:
    """``WHERE`` for blocks that may hold a timestamp in [lo, hi) (a block's ts_max >= lo and
    ts_min < hi), or for rows when both columns are the row's timestamp."""
    clauses, params = [], []
    if lo is not None:
        clauses.append(f"{lo_col} >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append(f"{hi_col} < ?")
        params.append(hi)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _blocks(cursor: sqlite3.Cursor, lo: int | None, hi: int | None, keep_series: np.ndarray | None,
            path: Path) -> Iterator[np.ndarray]:
    """The stored blocks, decoded and filtered to the window and series, each a
    (columns x rows) int64 array."""
    for rows, data in cursor:
        try:
            block = np.frombuffer(zlib.decompress(data), dtype="<i8").reshape(len(_BLOCK_COLUMNS), rows)
        except (zlib.error, ValueError) as e:
            raise UsageStoreError(f"corrupt sample block ({e})", file=str(path), valid=_VALID) from e
        mask = None
        if lo is not None:
            mask = block[0] >= lo
        if hi is not None:
            mask = block[0] < hi if mask is None else mask & (block[0] < hi)
        if keep_series is not None:
            m = np.isin(block[1], keep_series)
            mask = m if mask is None else mask & m
        yield block if mask is None else block[:, mask]


def _chunks(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The blocks gathered into arrays of at most ``size`` rows (a block larger than ``size``
    is one array of its own), each filled in place so the rows are never held twice."""
    buf = np.empty((len(_BLOCK_COLUMNS), size), dtype="<i8")
    n = 0
    for block in blocks:
        rows = block.shape[1]
        if n + rows > size:
            if n:
                yield buf[:, :n]
                buf, n = np.empty((len(_BLOCK_COLUMNS), size), dtype="<i8"), 0
            if rows > size:
                yield block
                continue
        buf[:, n:n + rows] = block
        n += rows
    if n:
        yield buf[:, :n].copy() if n < size // 2 else buf[:, :n]  # a filtered read: do not keep the spare


class _Names:
    """The names of every series, and per name column the categories and each series' code."""

    def __init__(self, series: Sequence[tuple[Any, ...]]) -> None:
        ids = np.array([r[0] for r in series], dtype="i8")
        size = int(ids.max()) + 1 if len(ids) else 1
        self.namespace_of: dict[int, str] = {int(r[0]): r[2] for r in series}
        self.codes: dict[str, np.ndarray] = {}
        self.categories: dict[str, list[str]] = {}
        for k, name in enumerate(NAME_COLUMNS, start=1):
            values = [r[k] for r in series]
            cats = sorted(set(values))
            index = {v: i for i, v in enumerate(cats)}
            codes = np.full(size, -1, dtype="i4")  # -1: an id in no series (cannot happen in one snapshot)
            codes[ids] = [index[v] for v in values]
            self.codes[name] = codes
            self.categories[name] = cats

    def in_namespaces(self, wanted: set[str]) -> np.ndarray:
        return np.array([i for i, ns in self.namespace_of.items() if ns in wanted], dtype="i8")

    def chunk(self, block: np.ndarray) -> SampleChunk:
        sid = block[1]
        names = {}
        for name in NAME_COLUMNS:
            cats = self.categories[name]
            codes = self.codes[name][sid] if len(cats) else np.empty(0, dtype="i4")
            names[name] = pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype="object"))
        return SampleChunk(timestamp_us=block[0], figures=dict(zip(FIGURES, block[2:])), names=names)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True)
