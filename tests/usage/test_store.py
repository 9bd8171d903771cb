"""The usage store (one SQLite file per run directory) and ``usage export``.

Driven in-process on small data; the two tests that need a second process (a writer killed
with SIGKILL mid-round, a reader while a writer appends) start one child that appends rounds
in a loop and reports each commit on stdout.
"""
from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from eafix_capacity.errors import InputError, OutputError
from eafix_capacity.usage import export as export_mod
from eafix_capacity.usage import store as store_mod
from eafix_capacity.usage.export import export_samples, export_store
from eafix_capacity.usage.samples import EXPORT_COLUMNS, FRAME_COLUMNS, NodeSample, Sample, Termination
from eafix_capacity.usage.store import FILENAME, UsageStore, UsageStoreError

T0 = datetime(2026, 12, 1, 14, 30, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


def sample(pod: str = "pricer-0", ts: datetime = T0, *, namespace: str = "eafix-trading", cpu: int | None = 250_000_000,
           mem: int | None = 300 << 20, container: str = "pricer", context: str = "eafix-sim",
           cpu_limit_m: int | None = None, node: str = "node-1", source: str = "metrics-api") -> Sample:
    return Sample(timestamp=ts, context=context, namespace=namespace, pod=pod, container=container, service="pricer",
                  node=node, cpu_nanocores=cpu, memory_bytes=mem, cpu_request_m=250, cpu_limit_m=cpu_limit_m,
                  memory_request_bytes=512 << 20, memory_limit_bytes=1 << 30, source=source)


def round_of(ts: datetime, pods: int = 3, **kw: object) -> list[Sample]:
    return [sample(f"pricer-{i}", ts, **kw) for i in range(pods)]  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path):
    with UsageStore.open(tmp_path / "run", create=True) as s:
        yield s


# ---------------------------------------------------------------------------- round trip

def test_a_round_loads_back_with_the_frame_columns_dtypes_and_exact_figures(store: UsageStore):
    result = store.append_round([sample("pricer-0", cpu=123_456_789, cpu_limit_m=1000),
                                 sample("pricer-1", cpu=None, mem=None)])
    assert (result.samples_added, result.samples_skipped) == (2, 0)
    df = store.frame()
    assert tuple(df.columns) == FRAME_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    for name in ("context", "namespace", "pod", "container", "service", "node", "source"):
        assert isinstance(df[name].dtype, pd.CategoricalDtype), name
    assert df["cpu_m"].dtype == "float64"
    for name in ("memory_bytes", "cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes"):
        assert df[name].dtype == "Int64", name
    first, second = df.iloc[0], df.iloc[1]
    assert first["timestamp"] == pd.Timestamp(T0)
    assert (first["pod"], first["namespace"], first["node"], first["source"]) == (
        "pricer-0", "eafix-trading", "node-1", "metrics-api")
    assert first["cpu_m"] == 123.456789 and first["memory_bytes"] == 300 << 20 and first["cpu_limit_m"] == 1000
    # a missing figure is missing, never a zero
    assert pd.isna(second["cpu_m"]) and second["memory_bytes"] is pd.NA
    assert store.counts().samples == 2 and store.counts().containers == 2


def test_a_store_reopens_with_what_was_committed(tmp_path: Path):
    with UsageStore.open(tmp_path, create=True) as s:
        s.append_round(round_of(T0))
    with UsageStore.open(tmp_path, create=False) as s:
        assert len(s.frame()) == 3
        assert s.time_range() == (T0, T0)


def test_rounds_larger_than_a_block_are_split_and_read_in_chunks(store: UsageStore, monkeypatch):
    monkeypatch.setattr(store_mod, "BLOCK_ROWS", 4)
    store.append_round(round_of(T0, pods=10) + round_of(T0 + MINUTE, pods=10))
    assert store._conn.execute("SELECT count(*) FROM sample_blocks").fetchone()[0] == 5
    chunks = [len(f) for f in store.iter_frames(chunk_rows=7)]
    assert sum(chunks) == 20 and max(chunks) <= 8 and len(chunks) >= 3
    df = store.frame()
    assert len(df) == 20 and df["timestamp"].is_monotonic_increasing


def test_frame_is_ordered_by_timestamp_whatever_the_append_order(store: UsageStore):
    store.append_round(round_of(T0 + 2 * MINUTE))
    store.append_round(round_of(T0))
    assert list(store.frame()["timestamp"].drop_duplicates()) == [pd.Timestamp(T0), pd.Timestamp(T0 + 2 * MINUTE)]


# ---------------------------------------------------------------------------- idempotence

def test_re_appending_a_round_adds_nothing_and_keeps_the_first_figures(store: UsageStore):
    store.append_round(round_of(T0))
    again = store.append_round(round_of(T0, cpu=999_000_000) + [sample("pricer-9")])
    assert (again.samples_added, again.samples_skipped) == (1, 3)
    df = store.frame()
    assert len(df) == 4
    assert set(df.loc[df["pod"] != "pricer-9", "cpu_m"]) == {250.0}  # kept, not replaced
    # a repeat inside one round counts once
    dup = store.append_round([sample("pricer-5", T0 + MINUTE), sample("pricer-5", T0 + MINUTE, cpu=1)])
    assert (dup.samples_added, dup.samples_skipped) == (1, 1)


def test_the_key_includes_context_namespace_and_container(store: UsageStore):
    result = store.append_round([sample(), sample(context="other"), sample(namespace="eafix-web"),
                                 sample(container="istio-proxy")])
    assert result.samples_added == 4


def test_a_failing_round_is_rolled_back_whole(store: UsageStore):
    store.append_round(round_of(T0))
    naive = NodeSample(timestamp=datetime(2026, 12, 1, 14, 31), context="eafix-sim", node="node-1",
                       cpu_nanocores=1, memory_bytes=1, source="kubectl-top")
    with pytest.raises(InputError, match="timezone-aware"):
        store.append_round(round_of(T0 + MINUTE), node_samples=[naive])
    assert store.counts().samples == 3 and len(store.frame()) == 3
    # the store goes on: the same round appends once it is valid
    assert store.append_round(round_of(T0 + MINUTE)).samples_added == 3


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True])
def test_a_figure_that_is_not_a_whole_number_is_refused_not_truncated(store: UsageStore, bad: object):
    with pytest.raises(InputError, match=r"eafix-trading/pricer-1 container pricer at 2026-12-01T14:30:00\+00:00: "
                                         r"memory_bytes: not a figure"):
        store.append_round([sample("pricer-0"), sample("pricer-1", mem=bad)])  # type: ignore[arg-type]
    assert store.counts().samples == 0


def test_node_samples_and_terminations_round_trip_and_deduplicate(store: UsageStore):
    node = NodeSample(timestamp=T0, context="eafix-sim", node="node-1", cpu_nanocores=1_500_000_000,
                      memory_bytes=4 << 30, source="kubectl-top")
    gap = NodeSample(timestamp=T0 + MINUTE, context="eafix-sim", node="node-1", cpu_nanocores=None,
                     memory_bytes=None, source="kubectl-top")
    oom = Termination(timestamp=T0, context="eafix-sim", namespace="eafix-trading", pod="pricer-0",
                      container="pricer", service="pricer", reason="OOMKilled", restart_count=1,
                      memory_limit_bytes=1 << 30, source="metrics-api")
    first = store.append_round([], node_samples=[node, gap], terminations=[oom])
    # the kubelet reports the same last termination every round until the next restart
    again = store.append_round([], node_samples=[node], terminations=[
        Termination(**{**{f: getattr(oom, f) for f in oom.__slots__}, "timestamp": T0 + MINUTE})])
    assert (first.node_samples_added, first.terminations_added) == (2, 1)
    assert (again.node_samples_skipped, again.terminations_skipped) == (1, 1)
    assert store.node_samples() == [node, gap]
    assert store.terminations() == [oom]
    nf = store.node_frame()
    assert tuple(nf.columns) == store_mod.NODE_FRAME_COLUMNS
    assert nf["cpu_m"].iloc[0] == 1500.0 and pd.isna(nf["cpu_m"].iloc[1]) and nf["memory_bytes"].iloc[1] is pd.NA
    assert store.counts().node_samples == 2 and store.counts().terminations == 1


# ---------------------------------------------------------------------------- windows

def test_frame_window_is_start_inclusive_end_exclusive_and_filters_namespaces(store: UsageStore):
    for i in range(4):
        store.append_round(round_of(T0 + i * MINUTE) + [sample("web-0", T0 + i * MINUTE, namespace="eafix-web")])
    df = store.frame(start=T0 + MINUTE, end=T0 + 3 * MINUTE)
    assert sorted(set(df["timestamp"])) == [pd.Timestamp(T0 + MINUTE), pd.Timestamp(T0 + 2 * MINUTE)]
    assert len(df) == 8
    web = store.frame(namespaces=["eafix-web"])
    assert list(web["pod"].unique()) == ["web-0"] and len(web) == 4
    assert len(store.frame(namespaces="eafix-web")) == 4  # one name, not its characters


def test_an_empty_window_is_an_empty_frame_with_the_same_columns_and_dtypes(store: UsageStore):
    assert len(store.frame()) == 0 and tuple(store.frame().columns) == FRAME_COLUMNS  # an empty store
    store.append_round(round_of(T0))
    full = store.frame()
    for empty in (store.frame(start=T0 + MINUTE), store.frame(end=T0), store.frame(namespaces=["nowhere"])):
        assert len(empty) == 0
        assert tuple(empty.columns) == FRAME_COLUMNS
        assert list(empty.dtypes.astype(str)) == list(full.dtypes.astype(str))


def test_bad_windows_are_refused_with_one_line(store: UsageStore):
    with pytest.raises(InputError, match=r"start: not a timezone-aware datetime: .*2026.*timezone-aware UTC"):
        store.frame(start=datetime(2026, 12, 1))
    with pytest.raises(InputError, match="start is after its end") as e:
        store.frame(start=T0 + MINUTE, end=T0)
    assert "\n" not in str(e.value)


def test_an_empty_store_has_no_time_range(store: UsageStore):
    assert store.time_range() is None
    assert store.counts() == store_mod.StoreCounts(samples=0, node_samples=0, terminations=0, containers=0)


# ---------------------------------------------------------------------------- refusals

def test_a_directory_without_a_store_is_refused_unless_created(tmp_path: Path):
    with pytest.raises(UsageStoreError, match=f"{tmp_path / FILENAME}: no usage store in .*usage sample"):
        UsageStore.open(tmp_path, create=False)
    with pytest.raises(UsageStoreError, match="no such run directory"):
        UsageStore.open(tmp_path / "missing", create=False)
    assert not (tmp_path / FILENAME).exists()


def _refusal(directory: Path) -> str:
    with pytest.raises(UsageStoreError) as e:
        with UsageStore.open(directory, create=True) as s:
            s.frame()
    message = str(e.value)
    assert "\n" not in message and str(directory / FILENAME) in message and "usage sample" in message
    return message


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path):
    (tmp_path / FILENAME).write_bytes(b"timestamp,pod\n2026-12-01T00:00:00Z,a\n" * 10)
    assert "not a SQLite database" in _refusal(tmp_path)
    (tmp_path / FILENAME).write_bytes(b"")
    assert "not a SQLite database" in _refusal(tmp_path)
    assert (tmp_path / FILENAME).read_bytes() == b""  # never overwritten


def test_another_applications_sqlite_file_is_refused(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("CREATE TABLE metrics (ts INTEGER, value REAL)")
    conn.commit()
    conn.close()
    assert "a SQLite database of another application (application_id 0x00000000)" in _refusal(tmp_path)


def test_a_newer_store_format_is_refused(tmp_path: Path):
    UsageStore.open(tmp_path, create=True).close()
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute(f"PRAGMA user_version = {store_mod.FORMAT_VERSION + 1}")
    conn.close()
    with pytest.raises(UsageStoreError, match=r"usage.sqlite: written by a newer eafix-capacity \(store format 2; "
                                              r"this one reads format 1\); upgrade eafix-capacity"):
        UsageStore.open(tmp_path, create=False)


def test_a_store_without_its_format_marker_is_refused(tmp_path: Path):
    UsageStore.open(tmp_path, create=True).close()
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("UPDATE meta SET value = 'something else' WHERE key = 'format'")
    conn.commit()
    conn.close()
    assert "format marker 'something else'" in _refusal(tmp_path)


def test_a_corrupt_store_is_refused_when_read(tmp_path: Path):
    with UsageStore.open(tmp_path, create=True) as s:
        for i in range(30):
            s.append_round(round_of(T0 + i * MINUTE, pods=50))
    path = tmp_path / FILENAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[2 * page:len(data) - page] = b"\xa5" * (len(data) - 3 * page)  # keep page 1 (header, schema)
    path.write_bytes(bytes(data))
    assert "corrupt or unreadable (database disk image is malformed)" in _refusal(tmp_path)


# ---------------------------------------------------------------------------- processes

WRITER = textwrap.dedent("""
    import os, signal, sys, zlib
    from datetime import datetime, timedelta, timezone
    from eafix_capacity.usage import store as store_mod
    from eafix_capacity.usage.samples import Sample
    store_mod.BLOCK_ROWS = 50          # a round is several blocks, each written inside the round's transaction
    directory, PODS, mode, K, J = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    state = {"round": 0, "block": 0}
    compress = zlib.compress

    def hooked(data, level=-1):
        # called for each block just before it is inserted: blocks 1 .. J-1 of round K are written
        if state["round"] == K:
            state["block"] += 1
            if state["block"] == J and mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if state["block"] == J and mode == "pause":
                print("mid", flush=True)
                sys.stdin.readline()
        return compress(data, level)

    zlib.compress = hooked
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    with store_mod.UsageStore.open(directory, create=True) as store:
        while True:
            r = state["round"]
            ts = t0 + timedelta(minutes=r)
            store.append_round([Sample(timestamp=ts, context="c", namespace="ns", pod=f"p{i}", container="c",
                                       service="s", node="n", cpu_nanocores=r, memory_bytes=i, cpu_request_m=1,
                                       cpu_limit_m=None, memory_request_bytes=None, memory_limit_bytes=None,
                                       source="metrics-api") for i in range(PODS)])
            print(r, flush=True)
            state["round"] += 1
            if mode == "pause" and r >= K:   # after the paused round, one round per line read
                sys.stdin.readline()
""")
PODS = 400


class Writer:
    """The child above: ``mode`` "run" appends rounds until killed; "kill" sends itself SIGKILL
    inside round ``k`` just before block ``j``; "pause" waits there for a line on stdin."""

    def __init__(self, directory: Path, mode: str = "run", k: int = -1, j: int = 0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(PODS), mode, str(k), str(j)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def line(self) -> str:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out = self.proc.stdout.readline()
        assert out, self.proc.stderr.read()
        return out.strip()

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.communicate()


def _complete_rounds(df: pd.DataFrame) -> int:
    """The number of rounds in ``df``, asserting each is complete and they are 0, 1, 2, ..."""
    per_round = df.groupby(df["cpu_m"] * 10**6, observed=True).size()
    rounds = sorted(int(r) for r in per_round.index)
    assert rounds == list(range(len(rounds)))
    assert set(per_round) <= {PODS}, f"a partial round is visible: {per_round.to_dict()}"
    return len(rounds)


def test_a_writer_killed_inside_a_round_leaves_only_the_committed_rounds(tmp_path: Path):
    with Writer(tmp_path, "kill", k=5, j=4) as w:  # SIGKILL after 3 of round 5's 8 blocks were written
        assert [w.line() for _ in range(5)] == ["0", "1", "2", "3", "4"]
        assert w.proc.wait(timeout=60) == -signal.SIGKILL
    with UsageStore.open(tmp_path, create=False) as s:
        assert _complete_rounds(s.frame()) == 5
        assert s.counts().samples == 5 * PODS
        # a restarted sampler appends round 4 again without duplicating it, then round 5 whole
        again = s.append_round([sample(f"p{i}", T0.replace(hour=0, minute=4), context="c", namespace="ns",
                                       container="c", cpu=4) for i in range(PODS)])
        assert (again.samples_added, again.samples_skipped) == (0, PODS)
        assert s.append_round([sample(f"p{i}", T0.replace(hour=0, minute=5), context="c", namespace="ns",
                                      container="c", cpu=5) for i in range(PODS)]).samples_added == PODS
        assert _complete_rounds(s.frame()) == 6


def test_a_writer_killed_at_any_moment_keeps_every_committed_round(tmp_path: Path):
    with Writer(tmp_path) as w:
        committed = max(int(w.line()) for _ in range(12))
        os.kill(w.proc.pid, signal.SIGKILL)
        assert w.proc.wait(timeout=60) == -signal.SIGKILL
    with UsageStore.open(tmp_path, create=False) as s:
        assert _complete_rounds(s.frame()) >= committed + 1


def test_a_reader_sees_whole_rounds_while_a_writer_is_inside_one(tmp_path: Path):
    with Writer(tmp_path, "pause", k=3, j=5) as w:
        assert [w.line() for _ in range(3)] + [w.line()] == ["0", "1", "2", "mid"]  # 4 blocks of round 3 written
        with UsageStore.open(tmp_path, create=False) as reader:
            assert reader._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert _complete_rounds(reader.frame()) == 3  # not blocked, and none of round 3
            w.tell("go")
            assert w.line() == "3"
            assert _complete_rounds(reader.frame()) == 4
            w.tell("go")
            assert w.line() == "4"
            assert _complete_rounds(reader.frame()) == 5 and reader.counts().samples == 5 * PODS


# ---------------------------------------------------------------------------- export

@pytest.fixture
def filled(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    with UsageStore.open(run, create=True) as s:
        s.append_round([sample("pricer-0", cpu=123_456_789, cpu_limit_m=1000),
                        sample("pricer-1", cpu=None, mem=None),
                        sample("pricer-2", cpu=1, node="")])
        s.append_round([sample("pricer-0", T0 + timedelta(seconds=60.25), cpu=250_000_000)])
    return run


def test_csv_export_has_exactly_the_columns_exact_figures_and_empty_cells(filled: Path, tmp_path: Path):
    out = tmp_path / "out" / "usage.csv"
    result = export_store(filled, out, format="csv")
    assert result.rows == 4 and result.path == out
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(EXPORT_COLUMNS)
    assert lines[1] == ("2026-12-01T14:30:00Z,eafix-trading,pricer-0,pricer,pricer,node-1,123.456789,314572800,250,"
                        "1000,536870912,1073741824")
    assert lines[2] == "2026-12-01T14:30:00Z,eafix-trading,pricer-1,pricer,pricer,node-1,,,250,,536870912,1073741824"
    assert lines[3].split(",")[5:7] == ["", "0.000001"]
    assert lines[4].split(",")[0] == "2026-12-01T14:31:00.250000Z" and lines[4].split(",")[6] == "250"
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_csv_export_in_chunks_is_the_same_file(filled: Path, tmp_path: Path):
    with UsageStore.open(filled, create=False) as s:
        export_samples(s, tmp_path / "one.csv", format="csv")
        export_samples(s, tmp_path / "many.csv", format="csv", chunk_rows=1)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "many.csv").read_bytes()


def test_csv_export_quotes_a_name_that_needs_it(tmp_path: Path):
    with UsageStore.open(tmp_path, create=True) as s:
        s.append_round([sample(node='node "a", zone 1')])
        export_samples(s, tmp_path / "u.csv", format="csv")
    (row,) = list(csv.DictReader((tmp_path / "u.csv").open()))
    assert row["node"] == 'node "a", zone 1' and row["cpu_m"] == "250"


def test_parquet_export_has_the_columns_types_and_nulls(filled: Path, tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "usage.parquet"
    assert export_store(filled, out, format="parquet", chunk_rows=2).rows == 4
    table = pq.read_table(out)
    assert tuple(table.column_names) == EXPORT_COLUMNS
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("cpu_m").type == pa.float64()
    assert table.schema.field("memory_bytes").type == pa.int64()
    rows = table.to_pylist()
    assert rows[0]["timestamp"] == T0 and rows[0]["cpu_m"] == 123.456789 and rows[0]["cpu_limit_m"] == 1000
    assert rows[1]["cpu_m"] is None and rows[1]["memory_bytes"] is None and rows[1]["cpu_limit_m"] is None
    assert rows[3]["timestamp"] == T0 + timedelta(seconds=60.25)


def test_export_filters_by_window_and_namespace(filled: Path, tmp_path: Path):
    result = export_store(filled, tmp_path / "u.csv", start=T0 + timedelta(seconds=1))
    assert result.rows == 1
    assert len((tmp_path / "u.csv").read_text().splitlines()) == 2
    assert export_store(filled, tmp_path / "u.csv", namespaces=["eafix-trading"]).rows == 4
    with pytest.raises(InputError, match=r"no samples to export in namespaces \['eafix-web'\]"):
        export_store(filled, tmp_path / "u.csv", namespaces="eafix-web")
    assert len((tmp_path / "u.csv").read_text().splitlines()) == 5  # the last good export stays


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(filled: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "usage.csv"
    out.write_text("previous\n")

    def boom(f: object, chunks: object) -> int:
        f.write(b"timestamp,half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_mod, "_write_csv", boom)
    with pytest.raises(OutputError, match=f"{out}: cannot write \\(No space left on device\\)"):
        export_store(filled, out, format="csv")
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "usage.csv"]


def test_bad_exports_are_refused_and_write_nothing(filled: Path, tmp_path: Path):
    with pytest.raises(InputError, match=r"--format: unknown export format 'xlsx'; csv or parquet"):
        export_store(filled, tmp_path / "u.xlsx", format="xlsx")
    with pytest.raises(InputError, match=r"no samples to export from 2027.*; the store holds samples from "
                                         r"2026-12-01T14:30:00\+00:00 to 2026-12-01T14:31:00.250000\+00:00"):
        export_store(filled, tmp_path / "u.csv", start=datetime(2027, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(OutputError, match="a directory; give a file name"):
        export_store(filled, tmp_path, format="csv")
    with pytest.raises(UsageStoreError, match="no usage store"):
        export_store(tmp_path, tmp_path / "u.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
