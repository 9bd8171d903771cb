"""Durable ``--state`` for the sim cluster: a snapshot plus a write-ahead log, with group commit.

A write the sim answers (201 Created, 200 OK) must survive any crash after the answer,
SIGKILL included, as a real API server's writes survive in etcd. Rewriting the whole state
file per write would cost the size of the cluster per request, so the state is two files:

- ``FILE`` (the snapshot): the whole store as one JSON document
  ``{"kind": "EafixSimState", "version": 1, "id": ..., "resourceVersion": N, "objects": {...}}``,
  replaced by an atomic rename;
- ``FILE.wal`` (the log): a header line naming the same ``id``, then one framed record per
  committed change after the snapshot's resourceVersion.

Every change the store commits is appended to an in-memory batch (``Journal.append``, called
by the store under its lock, so records are in commit order), and a request is answered only
once ``Journal.wait_durable`` has seen an fsync cover the store's resourceVersion. One flush
runs at a time and takes everything queued: writers that arrive while an fsync runs share the
next one (group commit) instead of each paying for its own. When the log outgrows the snapshot
(and at least ``COMPACT_MIN_BYTES``) the store is written as a new snapshot and the log
truncated, so the log, and the memory replaying it takes, stay bounded.

On start the snapshot is loaded and the log replayed over it. A record cut short at the end
of the log is what a crash in the middle of an append leaves: it was never acknowledged, and
it is dropped. A damaged record with intact records after it is corruption, and the sim
refuses to start rather than guess.

Record framing: ``magic (4) | payload length (4) | crc32 of payload (4) | crc32 of the first
12 bytes (4) | payload``, big-endian; the payload is JSON
``{"rv": N, "type": "ADDED|MODIFIED|DELETED", "key": ..., "ns": ..., "name": ..., "object": {...}}``
(no ``object`` for DELETED).
"""
from __future__ import annotations

import json
import os
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from eafix_capacity.errors import InputError, OutputError
from eafix_capacity.fsio import atomic_write_bytes, describe_os_error, fsync_directory
from eafix_capacity.sim.apierror import ApiError

__all__ = ["COMPACT_MIN_BYTES", "Journal", "LoadedState", "Record", "encode_record", "load_state", "log_path_for",
           "parse_log", "parse_state", "replay", "snapshot_header"]

STATE_KIND = "EafixSimState"
STATE_VERSION = 1
LOG_HEADER_PREFIX = b"EAFIX-SIM-WAL/1 "
_ID_LEN = 36  # str(uuid.uuid4())
LOG_HEADER_LEN = len(LOG_HEADER_PREFIX) + _ID_LEN + 1
RECORD_MAGIC = b"EWR1"
_HEAD = struct.Struct(">4sIII")
MAX_RECORD_BYTES = 256 * 1024 * 1024
COMPACT_MIN_BYTES = 8 * 1024 * 1024
"""The log is compacted once it is larger than this and than the last snapshot."""
_CLOSE_WAIT = 10.0
_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
_VALID_STATE = f"a state file written by `eafix-capacity sim up --state` (kind {STATE_KIND}, version {STATE_VERSION})"

Journaled = Callable[[int, str, str, str, str, bytes], None]
"""``append(rv, event_type, key, namespace, name, raw)``: what the store calls on every commit."""


def log_path_for(state: Path) -> Path:
    return state.with_name(state.name + ".wal")


# --- pure: encoding and parsing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One committed change as the log keeps it."""

    rv: int
    type: str
    key: str
    namespace: str
    name: str
    obj: dict | None


def encode_record(rv: int, etype: str, key: str, namespace: str, name: str, raw: bytes | None) -> bytes:
    """The framed bytes of one record; ``raw`` is the object's JSON (ignored for DELETED)."""
    payload = (b'{"rv":%d,"type":"%s","key":' % (rv, etype.encode()) + json.dumps(key).encode()
               + b',"ns":' + json.dumps(namespace).encode() + b',"name":' + json.dumps(name).encode())
    if etype != "DELETED" and raw is not None:
        payload += b',"object":' + raw
    payload += b"}"
    head = RECORD_MAGIC + struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def log_header(state_id: str) -> bytes:
    return LOG_HEADER_PREFIX + state_id.encode() + b"\n"


@dataclass(frozen=True, slots=True)
class ParsedLog:
    state_id: str
    records: list[Record]
    good_length: int
    """Bytes up to the end of the last intact record: the rest is a torn final record."""
    torn_bytes: int


def _frame_at(data: bytes, offset: int) -> tuple[int, bytes] | None:
    """(end offset, payload) of an intact record at ``offset``, or None."""
    if len(data) - offset < _HEAD.size:
        return None
    magic, length, crc, head_crc = _HEAD.unpack_from(data, offset)
    if magic != RECORD_MAGIC or zlib.crc32(data[offset:offset + 12]) != head_crc or length > MAX_RECORD_BYTES:
        return None
    end = offset + _HEAD.size + length
    if end > len(data):
        return None
    payload = data[offset + _HEAD.size:end]
    if zlib.crc32(payload) != crc:
        return None
    return end, payload


def _intact_record_after(data: bytes, offset: int) -> int | None:
    """Offset of the first intact record starting after ``offset``, if any."""
    at = data.find(RECORD_MAGIC, offset + 1)
    while at != -1:
        if _frame_at(data, at) is not None:
            return at
        at = data.find(RECORD_MAGIC, at + 1)
    return None


def _record(payload: bytes, *, file: str, offset: int) -> Record:
    def bad(problem: str) -> InputError:
        return InputError(f"record at byte {offset} {problem}", file=file,
                          valid="the log is damaged: restore FILE and FILE.wal from a backup, or move both away "
                                "to start afresh")
    try:
        doc = json.loads(payload)
    except ValueError as e:
        raise bad(f"is not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise bad("is not a JSON object")
    rv, etype, key, ns, name = (doc.get(k) for k in ("rv", "type", "key", "ns", "name"))
    if not isinstance(rv, int) or isinstance(rv, bool) or rv < 1:
        raise bad(f"has no valid resourceVersion ({rv!r})")
    if etype not in _EVENT_TYPES or not isinstance(key, str) or not isinstance(ns, str) \
            or not isinstance(name, str) or not name:
        raise bad("lacks its type, key, namespace or name")
    obj = doc.get("object")
    if etype != "DELETED" and not isinstance(obj, dict):
        raise bad(f"({etype}) carries no object")
    return Record(rv, str(etype), key, ns, name, obj if etype != "DELETED" else None)


def parse_log(data: bytes, *, file: str) -> ParsedLog:
    """The records of a log file's bytes (pure).

    A damaged or incomplete record with no intact record after it is a torn final append
    (never acknowledged: the fsync that would have covered it did not finish) and is left
    out; one with intact records after it is corruption: ``InputError``. A header cut short
    (a crash while a new log was being started) is a log without records."""
    if len(data) < LOG_HEADER_LEN and b"\n" not in data \
            and (LOG_HEADER_PREFIX.startswith(data) or data.startswith(LOG_HEADER_PREFIX)):
        return ParsedLog("", [], 0, len(data))
    if not data.startswith(LOG_HEADER_PREFIX) or len(data) < LOG_HEADER_LEN \
            or data[LOG_HEADER_LEN - 1:LOG_HEADER_LEN] != b"\n":
        raise InputError("not a sim write-ahead log (no EAFIX-SIM-WAL/1 header)", file=file,
                         valid="the FILE.wal that `eafix-capacity sim up --state FILE` writes; move it away "
                               "if it is not one")
    state_id = data[len(LOG_HEADER_PREFIX):LOG_HEADER_LEN - 1].decode("ascii", errors="replace")
    records: list[Record] = []
    offset = LOG_HEADER_LEN
    while offset < len(data):
        frame = _frame_at(data, offset)
        if frame is None:
            later = _intact_record_after(data, offset)
            if later is not None:
                raise InputError(f"damaged record at byte {offset}, followed by intact records at byte {later}",
                                 file=file, valid="the log is corrupt in the middle, not torn at its end: restore "
                                                  "the state from a backup, or move FILE and FILE.wal away to "
                                                  "start afresh")
            return ParsedLog(state_id, records, offset, len(data) - offset)
        end, payload = frame
        records.append(_record(payload, file=file, offset=offset))
        offset = end
    return ParsedLog(state_id, records, offset, 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    state_id: str | None
    """None for a state file of an earlier kit (version 0: no kind, version or id)."""
    resource_version: int
    objects: dict[str, list[dict]]


def parse_state(data: bytes, *, file: str) -> Snapshot:
    """Validate a snapshot file's bytes (pure): anything not written by the sim is refused."""
    def refuse(problem: str, value: object = None) -> InputError:
        return InputError(f"not a sim state file: {problem}", file=file, value=value, valid=_VALID_STATE)
    if not data.strip():
        raise refuse("the file is empty")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise refuse("nested too deeply") from None
    except ValueError as e:
        raise refuse(f"not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise refuse(f"a JSON {type(doc).__name__}, not an object")
    if "kind" in doc or "version" in doc:
        if doc.get("kind") != STATE_KIND:
            raise refuse("kind is", doc.get("kind"))
        if doc.get("version") != STATE_VERSION:
            raise InputError("sim state version not supported:", file=file, value=doc.get("version"),
                             valid=f"version {STATE_VERSION} (written by this kit)")
        state_id = doc.get("id")
        if not isinstance(state_id, str) or len(state_id) != _ID_LEN:
            raise refuse("its id is missing or malformed", state_id)
        unknown = sorted(set(doc) - {"kind", "version", "id", "resourceVersion", "objects"})
    else:  # an earlier kit's file: exactly these two keys
        state_id = None
        unknown = sorted(set(doc) - {"resourceVersion", "objects"})
        if "resourceVersion" not in doc or "objects" not in doc:
            raise refuse(f"no kind {STATE_KIND!r}; keys are", sorted(doc))
    if unknown:
        raise refuse("unknown keys", unknown)
    rv = doc.get("resourceVersion")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv < 0:
        raise refuse("resourceVersion is not a non-negative integer:", rv)
    objects = doc.get("objects")
    if not isinstance(objects, dict):
        raise refuse("objects is not an object of lists")
    for key, objs in objects.items():
        if not isinstance(objs, list):
            raise refuse(f"objects[{key!r}] is not a list")
        for obj in objs:
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"] \
                    or not isinstance(meta.get("namespace", ""), str):
                raise refuse(f"an entry of objects[{key!r}] is not an object with metadata.name")
    return Snapshot(state_id, rv, objects)


def replay(snapshot: Snapshot, records: list[Record], *, file: str) -> dict:
    """The store document (``Store.restore``'s input) of ``snapshot`` with ``records`` applied (pure).

    Records at or below the snapshot's resourceVersion are already in it (a crash between a
    compaction's rename and the log's truncation leaves them) and are skipped; the rest must
    follow one another without a gap, as the store numbers its commits."""
    tables: dict[str, dict[tuple[str, str], dict]] = {
        key: {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}
        for key, objs in snapshot.objects.items()}
    rv = snapshot.resource_version
    for rec in records:
        if rec.rv <= snapshot.resource_version:
            continue
        if rec.rv != rv + 1:
            raise InputError(f"the log jumps from resourceVersion {rv} to {rec.rv}: changes are missing", file=file,
                             valid="a log written for this state file; restore both from a backup, or move them "
                                   "away to start afresh")
        table = tables.setdefault(rec.key, {})
        if rec.obj is None:
            table.pop((rec.namespace, rec.name), None)
        else:
            table[(rec.namespace, rec.name)] = rec.obj
        rv = rec.rv
    return {"resourceVersion": rv, "objects": {key: list(t.values()) for key, t in tables.items() if t}}


def snapshot_header(state_id: str) -> dict:
    return {"kind": STATE_KIND, "version": STATE_VERSION, "id": state_id}


# --- start-up: read what is on disk ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What ``load_state`` found: the store document to restore (None: start empty) and the log."""

    document: dict | None
    state_id: str | None
    log_good_length: int | None
    """None when there is no log to continue (none on disk, or one without records)."""
    torn_bytes: int
    replayed: int


def load_state(path: Path) -> LoadedState:
    """Read the snapshot at ``path`` and its log; ``InputError`` for anything not the sim's,
    ``OutputError`` for a path under a regular file."""
    log = log_path_for(path)
    snapshot: Snapshot | None = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except NotADirectoryError as e:  # a parent is a regular file: the state could never be saved there
        raise OutputError(f"cannot save the sim state: {describe_os_error(path, e)}") from e
    except OSError as e:
        raise InputError(f"cannot read the sim state ({e.strerror or e})", file=str(path),
                         valid=_VALID_STATE) from e
    if data is not None:
        snapshot = parse_state(data, file=str(path))
    try:
        log_data = log.read_bytes()
    except FileNotFoundError:
        log_data = None
    except OSError as e:
        raise InputError(f"cannot read the sim write-ahead log ({e.strerror or e})", file=str(log)) from e
    parsed = parse_log(log_data, file=str(log)) if log_data is not None else None
    if parsed is None or (not parsed.records and (snapshot is None or snapshot.state_id != parsed.state_id)):
        # nothing to replay and no log of this snapshot to continue: both are written afresh
        doc = None if snapshot is None else {"resourceVersion": snapshot.resource_version,
                                             "objects": snapshot.objects}
        return LoadedState(doc, snapshot.state_id if snapshot else None, None, 0, 0)
    if snapshot is None:
        raise InputError(f"the write-ahead log {log} holds changes but its state file is missing", file=str(path),
                         valid="restore the state file, or move the .wal away to start afresh")
    if snapshot.state_id != parsed.state_id:
        raise InputError(f"the write-ahead log {log} belongs to another state (id {parsed.state_id}, the state "
                         f"file's is {snapshot.state_id})", file=str(path),
                         valid="the .wal written with this state file; move the other one away")
    doc = replay(snapshot, parsed.records, file=str(log))
    return LoadedState(doc, snapshot.state_id, parsed.good_length, parsed.torn_bytes,
                       sum(1 for r in parsed.records if r.rv > snapshot.resource_version))


# --- the journal: group commit, compaction ------------------------------------------------------


class _Dumpable(Protocol):
    """What the journal needs of the store (``eafix_capacity.sim.store.Store``)."""

    @property
    def lock(self) -> Any: ...

    @property
    def resource_version(self) -> int: ...

    def dump_raw(self, *, header: dict | None = None) -> tuple[int, bytes]: ...


def _sync(fd: int) -> None:
    os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)


class Journal:
    """The write-ahead log of one running sim; ``open`` it, ``append`` from the store, ``close`` it.

    Thread-safe: ``append`` runs in the committing thread under the store's lock; any number
    of request threads ``wait_durable``. One flush runs at a time (``_flushing``): a waiting
    request thread whose record is not yet on disk takes everything queued, writes and fsyncs
    it, and so covers every writer queued behind it (they wait for its fsync instead of doing
    their own); the writer thread flushes what nobody waits for (the controllers' changes) and
    compacts. A request thread leads rather than handing the batch to the writer thread
    because it already runs: a hand-off to another Python thread costs a GIL switch each way."""

    def __init__(self, *, store: _Dumpable, path: Path, state_id: str, fd: int, log_bytes: int, durable_rv: int,
                 snapshot_bytes: int, compact_min_bytes: int, sync: Callable[[int], None]) -> None:
        self.store, self.path, self.log_path = store, path, log_path_for(path)
        self.state_id = state_id
        self._fd = fd
        self._log_bytes = log_bytes
        self._snapshot_bytes = snapshot_bytes
        self._compact_min = compact_min_bytes
        self._compact_failed_at = 0
        self._sync = sync
        self._cond = threading.Condition()
        self._pending: list[tuple[int, bytes]] = []
        self._durable_rv = durable_rv
        self._failure: str | None = None
        self._closing = False
        self._flushing = False
        self._compact_wanted = False
        self.fsyncs = 0
        self.records = 0
        self.compactions = 0
        self._thread = threading.Thread(target=self._run, name="eafix-sim-wal", daemon=True)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, *, store: _Dumpable, path: Path, loaded: LoadedState, compact_min_bytes: int = COMPACT_MIN_BYTES,
             sync: Callable[[int], None] = _sync) -> "Journal":
        """Make ``path`` ready to take writes before the sim serves any: write the snapshot and a
        fresh log (new state, an earlier kit's file, or nothing to replay), or cut a torn record
        off the log to continue it. ``OutputError`` when the place cannot be written. Call with
        the store's lock held, after restoring ``loaded``, so no commit slips in between."""
        log = log_path_for(path)
        try:
            if loaded.log_good_length is None:
                state_id = loaded.state_id or str(uuid.uuid4())
                _, data = store.dump_raw(header=snapshot_header(state_id))
                atomic_write_bytes(path, data)
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
                try:
                    os.write(fd, log_header(state_id))
                    sync(fd)
                    fsync_directory(path.parent)
                except BaseException:
                    os.close(fd)
                    raise
                log_bytes, snapshot_bytes = LOG_HEADER_LEN, len(data)
            else:
                assert loaded.state_id is not None
                state_id = loaded.state_id
                fd = os.open(log, os.O_WRONLY | os.O_APPEND)
                try:
                    if loaded.torn_bytes:
                        os.ftruncate(fd, loaded.log_good_length)
                        sync(fd)
                except BaseException:
                    os.close(fd)
                    raise
                log_bytes = loaded.log_good_length
                snapshot_bytes = path.stat().st_size
        except OutputError as e:
            raise OutputError(f"cannot save the sim state: {e}") from e
        except OSError as e:
            failed = Path(e.filename) if isinstance(e.filename, str) else log
            raise OutputError(f"cannot save the sim state: {describe_os_error(failed, e)}") from e
        journal = cls(store=store, path=path, state_id=state_id, fd=fd, log_bytes=log_bytes,
                      durable_rv=store.resource_version,
                      snapshot_bytes=snapshot_bytes, compact_min_bytes=compact_min_bytes, sync=sync)
        journal._thread.start()
        return journal

    # --- the store's side --------------------------------------------------------------------

    def append(self, rv: int, etype: str, key: str, namespace: str, name: str, raw: bytes) -> None:
        """Queue one commit's record; raises ``ApiError`` (500) once the log cannot be written,
        before the store applies the change."""
        record = encode_record(rv, etype, key, namespace, name, raw)
        with self._cond:
            if self._failure is not None:
                raise ApiError(500, "InternalError", f"Internal error occurred: {self._failure}; the sim refuses "
                                                     "writes it cannot save")
            self._pending.append((rv, record))
            self._cond.notify_all()

    # --- the request's side ------------------------------------------------------------------

    def wait_durable(self, rv: int) -> None:
        """Return once every change up to ``rv`` is on disk; ``OutputError`` if it never will be."""
        with self._cond:
            while self._durable_rv < rv:
                if self._failure is not None:
                    raise OutputError(self._failure)
                if not self._thread.is_alive():
                    raise OutputError(f"{self.log_path}: the sim's write-ahead log is closed")
                if not self._flushing and self._pending and not self._compact_wanted:
                    batch = self._take_batch()
                    self._cond.release()
                    try:
                        self._write(batch)
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(1.0)

    # --- flushing ----------------------------------------------------------------------------

    def _take_batch(self) -> list[tuple[int, bytes]]:
        """Everything queued, for the caller to write (call with ``_cond`` held)."""
        batch, self._pending = self._pending, []
        self._flushing = True
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._flushing or not (self._pending or self._compact_wanted or self._closing):
                    self._cond.notify_all()  # for wait_idle
                    self._cond.wait()
                if self._failure is not None:
                    return
                if self._compact_wanted:
                    self._compact_wanted, self._flushing = False, True
                    batch = None
                elif self._pending:
                    batch = self._take_batch()
                else:
                    return  # closing, and everything is written
            if batch is None:
                self._compact()
            else:
                self._write(batch)

    def _write(self, batch: list[tuple[int, bytes]]) -> None:
        """Write and fsync ``batch`` (the caller set ``_flushing``, which this clears)."""
        data = b"".join(rec for _, rec in batch)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._sync(self._fd)
        except OSError as e:
            self._fail(f"{self.log_path}: cannot write the sim's write-ahead log ({e.strerror or e})")
            return
        with self._cond:
            self._log_bytes += len(data)
            self._durable_rv = max(self._durable_rv, batch[-1][0])
            self.fsyncs += 1
            self.records += len(batch)
            if self._log_bytes > max(self._compact_min, self._snapshot_bytes, self._compact_failed_at):
                self._compact_wanted = True
            self._flushing = False
            self._cond.notify_all()

    def _fail(self, message: str) -> None:
        with self._cond:
            self._failure = message
            self._flushing = False
            self._cond.notify_all()

    def _compact(self) -> bool:
        """Write the whole store as the new snapshot, then empty the log (the caller set
        ``_flushing``, which this clears: no record is written meanwhile). Records queued that
        the snapshot covers are dropped once it is on disk."""
        with self.store.lock:
            rv, data = self.store.dump_raw(header=snapshot_header(self.state_id))
        try:
            atomic_write_bytes(self.path, data)
        except (OutputError, OSError):
            # the log still holds everything: keep appending, and try again once it has grown as much again
            with self._cond:
                self._compact_failed_at = self._log_bytes * 2
                self._flushing = False
                self._cond.notify_all()
            return False
        try:
            os.ftruncate(self._fd, LOG_HEADER_LEN)
            self._sync(self._fd)
        except OSError as e:
            self._fail(f"{self.log_path}: cannot truncate the sim's write-ahead log ({e.strerror or e})")
            return False
        with self._cond:
            self._pending = [(r, rec) for r, rec in self._pending if r > rv]
            self._log_bytes, self._snapshot_bytes, self._compact_failed_at = LOG_HEADER_LEN, len(data), 0
            self._durable_rv = max(self._durable_rv, rv)
            self.compactions += 1
            self._flushing = False
            self._cond.notify_all()
        return True

    # --- state ---------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Records appended and not yet written."""
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything appended is written and no flush or compaction runs (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._flushing or self._compact_wanted)
                                       or self._failure is not None or not self._thread.is_alive(), timeout)

    @property
    def failure(self) -> str | None:
        with self._cond:
            return self._failure

    # --- closing -----------------------------------------------------------------------------

    def close(self, *, detach: Callable[[], None]) -> None:
        """Write what is queued, stop the writer, then compact once more (``detach`` unhooks the
        journal from the store under its lock first, so no change slips past the last snapshot).
        ``OutputError`` if changes could not be saved; the log keeps what was made durable."""
        with self.store.lock:
            detach()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        try:
            with self._cond:
                self._cond.wait_for(lambda: not self._flushing, _CLOSE_WAIT)  # a request thread's flush
                final = self._failure is None and not self._flushing
                if final:
                    self._flushing = True
            if final:
                self._compact()
        finally:
            os.close(self._fd)
        if self._failure is not None:
            raise OutputError(f"{self._failure}; changes after resourceVersion {self._durable_rv} are not saved")
