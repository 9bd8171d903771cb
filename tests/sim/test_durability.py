"""``sim up --state FILE``: a write answered 201 is on disk, whatever kills the sim after the answer.

The end-to-end test kills a real ``sim up`` process with SIGKILL under concurrent write load
and finds every acknowledged object after a restart on the same state. The others drive the
write-ahead log (``eafix_capacity.sim.wal``) directly: group commit, a torn final record, a
corrupt record in the middle, compaction.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest
import yaml

from eafix_capacity.errors import InputError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import wal as W
from eafix_capacity.sim.cluster import SimCluster
from eafix_capacity.sim.store import Store, encode

pytestmark = pytest.mark.sim

_GUARD = 60.0  # a hang guard, not a timing assertion


def _configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"k": name}}


# --- end to end: SIGKILL under write load ---------------------------------------------------------


def _read_banner(out: IO[str]) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + _GUARD
    while time.monotonic() < deadline:
        line = out.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            return lines
    raise AssertionError(f"sim up printed no banner: {lines!r}")


# the same as `sim up --state`, compacting the log every few KiB instead of every 8 MiB
_COMPACTING_SIM = ("import sys\n"
                   "from eafix_capacity.sim.cluster import SimCluster\n"
                   "sim = SimCluster(nodes=1, state_file=sys.argv[1], kubeconfig=sys.argv[2], wal_compact_bytes=4096)\n"
                   "sim.start()\n"
                   "sim.run_forever(ready=lambda: print('Press Ctrl-C to stop.', flush=True))\n")


def _sim_up(state: Path, kubeconfig: Path, *, compacting: bool = False) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-c", _COMPACTING_SIM, str(state), str(kubeconfig)] if compacting else \
        [sys.executable, "-m", "eafix_capacity.sim", "up", "--nodes", "1", "--state", str(state), "--kubeconfig",
         str(kubeconfig)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        _read_banner(proc.stdout)
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    doc = yaml.safe_load(kubeconfig.read_text())
    return proc, doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"]


def _writer(url: str, token: str, prefix: str, acked: list[str], lock: threading.Lock, stop: threading.Event) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    i = 0
    while not stop.is_set():
        name = f"{prefix}-{i}"
        i += 1
        try:
            conn.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(_configmap(name)),
                         headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            return  # the sim was killed: this write may or may not have been applied, it was not acknowledged
        if resp.status == 201:
            with lock:
                acked.append(name)


@pytest.mark.parametrize("compacting", [False, True], ids=["log", "compacting"])
def test_sigkill_under_write_load_loses_no_acknowledged_write(tmp_path: Path, compacting: bool) -> None:
    state, kubeconfig = tmp_path / "state.json", tmp_path / "kubeconfig"
    proc, url, token = _sim_up(state, kubeconfig, compacting=compacting)
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    writers = [threading.Thread(target=_writer, args=(url, token, f"w{n}", acked, lock, stop)) for n in range(6)]
    try:
        for t in writers:
            t.start()
        deadline = time.monotonic() + _GUARD
        while len(acked) < 600 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=_GUARD)
    finally:
        stop.set()
        for t in writers:
            t.join(_GUARD)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 600, "the writers did not get enough writes acknowledged"

    proc, url, token = _sim_up(state, kubeconfig, compacting=compacting)
    try:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        conn.request("GET", "/api/v1/namespaces/default/configmaps", headers={"Authorization": f"Bearer {token}"})
        stored = {o["metadata"]["name"] for o in json.loads(conn.getresponse().read())["items"]}
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=_GUARD)
    lost = sorted(set(acked) - stored)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost, e.g. {lost[:5]}"


# --- the log on disk: torn, corrupt, foreign ------------------------------------------------------


def _records(first_rv: int, names: list[str]) -> list[bytes]:
    out = []
    for i, name in enumerate(names):
        obj = _configmap(name)
        obj["metadata"]["resourceVersion"] = str(first_rv + i)
        out.append(W.encode_record(first_rv + i, "ADDED", R.CONFIGMAP.key, "default", name, encode(obj)))
    return out


def _crafted(tmp_path: Path, names: list[str], *, state_id: str | None = None) -> tuple[Path, Path, bytes, list[bytes]]:
    """A snapshot of an empty store and a log holding one ADDED record per name (as a crash leaves them)."""
    state = tmp_path / "state.json"
    sid = state_id or str(uuid.uuid4())
    rv, snapshot = Store().dump_raw(header=W.snapshot_header(sid))
    state.write_bytes(snapshot)
    records = _records(rv + 1, names)
    head = W.log_header(sid)
    log = W.log_path_for(state)
    log.write_bytes(head + b"".join(records))
    return state, log, head, records


@pytest.mark.parametrize("cut", [1, 4, 15, 16, 17, -1])
def test_a_torn_final_record_is_dropped_and_the_log_continues_after_the_last_intact_one(tmp_path: Path,
                                                                                         cut: int) -> None:
    state, log, head, records = _crafted(tmp_path, ["c0", "c1", "c2", "c3"])
    torn = records[3][:cut]
    log.write_bytes(head + b"".join(records[:3]) + torn)
    with SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        store, journal = sim.store, sim.journal
        assert store is not None and journal is not None and sim.loaded is not None
        assert [store.exists(R.CONFIGMAP, "default", n) for n in ("c0", "c1", "c2", "c3")] == [True] * 3 + [False]
        assert sim.loaded.torn_bytes == len(torn) and sim.loaded.replayed == 3
        # the torn bytes are cut off: the start-up's own writes (kube-system) follow the last intact record
        kept = W.parse_log(log.read_bytes(), file=str(log))
        assert kept.torn_bytes == 0 and log.read_bytes().startswith(head + b"".join(records[:3]))
        rv = int(store.create(R.CONFIGMAP, _configmap("after"))["metadata"]["resourceVersion"])
        journal.wait_durable(rv)
        parsed = W.parse_log(log.read_bytes(), file=str(log))
        names = [r.name for r in parsed.records]
        assert names[:3] == ["c0", "c1", "c2"] and names[-1] == "after" and parsed.torn_bytes == 0
    with SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.store is not None and sim.store.exists(R.CONFIGMAP, "default", "after")


def test_a_zero_filled_tail_is_a_torn_append() -> None:
    head = W.log_header(str(uuid.uuid4()))
    records = _records(5, ["a", "b"])
    parsed = W.parse_log(head + b"".join(records) + b"\0" * 4096, file="state.json.wal")
    assert [r.name for r in parsed.records] == ["a", "b"] and parsed.torn_bytes == 4096


@pytest.mark.parametrize("where", ["payload", "header"])
def test_a_damaged_record_in_the_middle_is_refused_with_a_clear_error(tmp_path: Path, where: str) -> None:
    state, log, head, records = _crafted(tmp_path, ["c0", "c1", "c2"])
    damaged = bytearray(records[1])
    damaged[-5 if where == "payload" else 6] ^= 0x40
    log.write_bytes(head + records[0] + bytes(damaged) + records[2])
    before = (state.read_bytes(), log.read_bytes())
    with pytest.raises(InputError) as err:
        SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False).start()
    message = str(err.value)
    assert message.startswith(f"{log}: damaged record at byte {len(head) + len(records[0])}") and "\n" not in message
    assert (state.read_bytes(), log.read_bytes()) == before  # nothing rewritten
    cli = subprocess.run([sys.executable, "-m", "eafix_capacity.sim", "up", "--state", str(state), "--kubeconfig",
                          str(tmp_path / "kc")], capture_output=True, text=True, timeout=_GUARD)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "damaged record" in cli.stderr
    assert "serving on" not in cli.stdout


def test_a_gap_in_the_log_is_refused(tmp_path: Path) -> None:
    state, log, head, records = _crafted(tmp_path, ["c0", "c1", "c2"])
    log.write_bytes(head + records[0] + records[2])
    with pytest.raises(InputError, match="jumps from resourceVersion"):
        SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False).start()


def test_a_log_of_another_state_or_without_its_state_is_refused(tmp_path: Path) -> None:
    state, log, _, records = _crafted(tmp_path, ["c0"])
    log.write_bytes(W.log_header(str(uuid.uuid4())) + records[0])
    with pytest.raises(InputError, match="belongs to another state"):
        SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False).start()
    state.unlink()
    with pytest.raises(InputError, match="its state file is missing"):
        SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False).start()
    log.write_bytes(b"something else entirely\n")
    with pytest.raises(InputError, match="not a sim write-ahead log"):
        SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False).start()


def test_a_log_whose_header_was_cut_short_holds_no_records(tmp_path: Path) -> None:
    state, log, head, _ = _crafted(tmp_path, [])
    log.write_bytes(head[:10])  # a crash while the log was being started
    with SimCluster(state_file=state, nodes=0, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.journal is not None
        # a fresh log: its header, then only what the start-up itself wrote (kube-system's objects)
        assert log.read_bytes().startswith(W.log_header(sim.journal.state_id))
        assert W.parse_log(log.read_bytes(), file=str(log)).torn_bytes == 0


def test_a_clean_restart_continues_the_log_without_rewriting_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False):
        pass
    written = state.stat().st_mtime_ns, state.stat().st_ino
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.journal is not None and (state.stat().st_mtime_ns, state.stat().st_ino) == written
        assert sim.store is not None
        sim.journal.wait_durable(int(sim.store.create(R.CONFIGMAP, _configmap("c"))["metadata"]["resourceVersion"]))
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        assert sim.store is not None and sim.store.exists(R.CONFIGMAP, "default", "c")


def test_a_log_that_cannot_be_written_fails_the_write_and_refuses_the_next(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from eafix_capacity.errors import OutputError

    state = tmp_path / "state.json"
    sim = SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False).start()
    try:
        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(W.os, "fdatasync", failing)
        parts = urlsplit(sim.url)
        statuses = []
        for name in ("first", "second"):
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=_GUARD)
            conn.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(_configmap(name)),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            statuses.append((resp.status, json.loads(resp.read())["message"]))
            conn.close()
        assert [code for code, _ in statuses] == [500, 500]
        assert all("Input/output error" in message for _, message in statuses)
        assert sim.store is not None and not sim.store.exists(R.CONFIGMAP, "default", "second")
    finally:
        with pytest.raises(OutputError, match="are not saved"):
            sim.stop()


# --- group commit and the answer waiting for it ---------------------------------------------------


class _GatedSync:
    """An fsync that, once armed, blocks in its next call until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.armed, self.entered, self.release = False, threading.Event(), threading.Event()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(_GUARD)


def test_writers_that_arrive_during_an_fsync_share_the_next_one(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    store = Store()
    sync = _GatedSync()
    with store.lock:
        journal = W.Journal.open(store=store, path=state, loaded=W.load_state(state), sync=sync)
        store.set_journal(journal.append)
    done: list[str] = []

    def write(name: str) -> None:
        rv = int(store.create(R.CONFIGMAP, _configmap(name))["metadata"]["resourceVersion"])
        journal.wait_durable(rv)
        done.append(name)

    try:
        before = sync.calls
        sync.armed = True
        first = threading.Thread(target=write, args=("first",))
        first.start()
        assert sync.entered.wait(_GUARD)  # the writer thread is inside the fsync covering "first"
        others = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(8)]
        for t in others:
            t.start()
        deadline = time.monotonic() + _GUARD
        while journal.queued < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert journal.queued == 8 and done == []  # all committed in memory, none acknowledged
        sync.release.set()
        for t in [first, *others]:
            t.join(_GUARD)
        assert sorted(done) == sorted(["first"] + [f"w{i}" for i in range(8)])
        assert sync.calls - before == 2 and journal.records == 9  # one fsync for "first", one for the eight
    finally:
        sync.release.set()
        journal.close(detach=lambda: store.set_journal(None))


def test_the_answer_to_a_write_waits_for_the_fsync_that_covers_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state.json"
    sync = _GatedSync()
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False) as sim:
        monkeypatch.setattr(W.os, "fdatasync", sync)
        sync.armed = True
        answers: list[int] = []

        def post() -> None:
            parts = urlsplit(sim.url)
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=_GUARD)
            conn.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(_configmap("slow")),
                         headers={"Content-Type": "application/json"})
            answers.append(conn.getresponse().status)
            conn.close()

        client = threading.Thread(target=post)
        client.start()
        assert sync.entered.wait(_GUARD)
        assert sim.store is not None and sim.store.exists(R.CONFIGMAP, "default", "slow")
        client.join(0.5)
        assert client.is_alive() and answers == []  # applied, written, not yet fsync'ed: not answered
        sync.release.set()
        client.join(_GUARD)
        assert answers == [201]
        log = W.log_path_for(state)
        assert "slow" in [r.name for r in W.parse_log(log.read_bytes(), file=str(log)).records]


# --- compaction -----------------------------------------------------------------------------------


def _on_disk(state: Path) -> dict:
    snapshot = W.parse_state(state.read_bytes(), file=str(state))
    log = W.log_path_for(state)
    parsed = W.parse_log(log.read_bytes(), file=str(log))
    return W.replay(snapshot, parsed.records, file=str(log))


def test_the_log_is_compacted_into_the_snapshot_and_stays_bounded(tmp_path: Path) -> None:
    state, limit = tmp_path / "state.json", 4096
    log = W.log_path_for(state)
    acked: dict[str, str] = {}
    with SimCluster(state_file=state, nodes=1, kubeconfig=tmp_path / "kc", controllers=False,
                    wal_compact_bytes=limit) as sim:
        store, journal = sim.store, sim.journal
        assert store is not None and journal is not None
        for i in range(300):
            obj = _configmap(f"cm-{i}")
            obj["data"] = {"v": "x" * (i % 50)}
            created = store.create(R.CONFIGMAP, obj)
            journal.wait_durable(int(created["metadata"]["resourceVersion"]))
            acked[f"cm-{i}"] = obj["data"]["v"]
            if i % 25 == 24:
                assert journal.wait_idle(_GUARD)
                # what a crash right now would find: every acknowledged write
                doc = _on_disk(state)
                found = {o["metadata"]["name"]: o["data"]["v"] for o in doc["objects"].get(R.CONFIGMAP.key, [])
                         if o["metadata"]["name"].startswith("cm-")}  # not kube-root-ca.crt
                assert found == acked
                assert log.stat().st_size <= max(limit, state.stat().st_size) + 1024
        assert journal.compactions >= 2
    # a clean stop compacts: the state file alone holds everything, the log only its header
    assert log.stat().st_size == W.LOG_HEADER_LEN
    final = W.parse_state(state.read_bytes(), file=str(state))
    assert {o["metadata"]["name"] for o in final.objects[R.CONFIGMAP.key]} - {"kube-root-ca.crt"} == set(acked)
