"""A real Prometheus for the tests (the Debian package ``prometheus``): the binaries, or a skip
naming the package (a failure in CI, which installs it), and a server on a free loopback port."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import urllib3

SKIP_REASON = "needs the Debian package prometheus (apt-get install prometheus)"


def binaries() -> tuple[str, str]:
    """The prometheus and promtool binaries; a skip naming the package without them, or a failure
    when ``EAFIX_REQUIRE_PROMETHEUS`` is set (CI must run these tests)."""
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if prom and tool:
        return prom, tool
    if os.environ.get("EAFIX_REQUIRE_PROMETHEUS"):
        pytest.fail(f"{SKIP_REASON}; EAFIX_REQUIRE_PROMETHEUS is set, so this is a failure, not a skip")
    pytest.skip(SKIP_REASON)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealPrometheus:
    """``prometheus`` on a free loopback port over ``tsdb``; :meth:`stop` ends it."""

    def __init__(self, binary: str, where: Path, *, tsdb: Path, config: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (where / "prometheus.yml").write_text(config)
        self.log = where / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--storage.tsdb.path={tsdb}", f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--config.file={where / 'prometheus.yml'}", "--storage.tsdb.retention.time=30d"],
                stdout=log, stderr=subprocess.STDOUT, cwd=where)
        http = urllib3.PoolManager(retries=False, timeout=1.0)
        deadline = time.monotonic() + 20
        while True:  # an outside process: poll its readiness endpoint
            try:
                if http.request("GET", self.url + "/-/ready").status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus did not become ready:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def instant(self, query: str) -> list[dict]:
        r = urllib3.PoolManager().request("GET", self.url + "/api/v1/query", fields={"query": query})
        assert r.status == 200, r.data
        return list(json.loads(r.data)["data"]["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
