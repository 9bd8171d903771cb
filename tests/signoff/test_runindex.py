"""The history of runs: reports/index.html lists every run directory, newest first, and charts headroom."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.signoff.records import GateResult
from eafix_capacity.signoff.runindex import (headroom_chart, read_run, scan_runs, signoff_from_dict,
                                             update_index)

from .outputs_helpers import T0, signoff


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "run" in (a.get("class") or "").split():
            self.rows.append({"class": a["class"], "cells": []})
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "a":
            self.links.append(a.get("href") or "")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _run(root: Path, name: str, data: object | str | None, *, html: bool = True, error: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    if isinstance(data, str):
        (d / "summary.json").write_text(data)
    elif data is not None:
        (d / "summary.json").write_text(json.dumps(data))
    if html:
        (d / "05_upgrade_signoff.html").write_text("<html></html>")
    if error:
        (d / "error.txt").write_text(error + "\n")
    return d


@pytest.fixture()
def history(tmp_path):
    root = tmp_path / "reports"
    older = signoff(started=T0, headroom={"cpu_n_plus_1_pct": 20.0, "memory_n_plus_1_pct": 35.0})
    passing = signoff((GateResult("n+1:cpu", "capacity", "PASS", "fits"),), started=T0 + timedelta(days=1),
                      headroom={"cpu_n_plus_1_pct": 25.0, "memory_n_plus_1_pct": 36.0}, context="prod")
    _run(root, "20261201T060000Z-1", {**older.as_dict(), "parameters": {"nodes": 3}})
    _run(root, "20261202T060000Z-1", {**passing.as_dict(), "parameters": {}})
    _run(root, "20261203T060000Z-1", None, html=False)                      # missing summary
    _run(root, "20261203T070000Z-1", "{not json")                           # corrupt
    _run(root, "20261204T060000Z-1", {"passed": True, "gates": [{"name": "x", "passed": True}]})  # a report run
    _run(root, "20261204T070000Z-1", None, error="05_upgrade_signoff.ipynb: cell 4 failed: RuntimeError: boom")
    _run(root, "20261205T060000Z-1", {"verdict": "PASS", "gates": [{"name": "n+1:cpu"}], "started": "x"})
    (root / ".20261206T000000Z-1.partial").mkdir()                          # a run being written
    return root


def test_every_run_directory_is_listed_newest_first_with_what_it_is(history):
    path = update_index(history)
    assert path == history / "index.html"
    page = _Rows()
    page.feed(path.read_text())
    got = [(r["cells"][1], r["cells"][2]) for r in page.rows]
    assert got == [("20261205T060000Z-1", "corrupt"), ("20261204T070000Z-1", "failed"),
                   ("20261204T060000Z-1", "foreign"), ("20261203T070000Z-1", "corrupt"),
                   ("20261203T060000Z-1", "missing"), ("20261202T060000Z-1", "PASS"),
                   ("20261201T060000Z-1", "FAIL")]
    problems = {r["cells"][1]: r["cells"][-1] for r in page.rows}
    assert "RuntimeError: boom" in problems["20261204T070000Z-1"]
    assert "capacity report" in problems["20261204T060000Z-1"]
    assert "not JSON" in problems["20261203T070000Z-1"]
    assert problems["20261203T060000Z-1"] == "no summary.json"
    assert "gates[]" in problems["20261205T060000Z-1"] or "a gate without" in problems["20261205T060000Z-1"]
    assert problems["20261201T060000Z-1"] == "n+1:cpu, usage:samples:risk-manager"
    ok = {r["cells"][1]: r["cells"] for r in page.rows if "ok" in r["class"]}
    assert ok["20261202T060000Z-1"][0] == "2026-12-02 06:00:00 UTC"
    assert ok["20261202T060000Z-1"][3] == "recommended profile, gke, 3 x n2-standard-8, context prod"
    assert ok["20261202T060000Z-1"][4:6] == ["25.0", "36.0"]       # the headroom figures, one column each
    assert "20261201T060000Z-1/05_upgrade_signoff.html" in page.links


def test_the_page_is_self_contained(history):
    text = update_index(history).read_text()
    page = _Rows()
    page.feed(text)
    assert page.scripts == 0
    assert len(page.imgs) == 1 and page.imgs[0].startswith("data:image/png;base64,")
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert sorted(p.name for p in history.iterdir() if p.is_file()) == ["index.html"]   # no temporary left


def test_the_chart_has_one_line_per_headroom_figure_in_time_order(history):
    fig = headroom_chart(scan_runs(history))
    ax = fig.axes[0]
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert lines == {"cpu_n_plus_1_pct": [20.0, 25.0], "memory_n_plus_1_pct": [35.0, 36.0]}


def test_no_runs_and_no_headroom_still_make_a_page(tmp_path):
    text = update_index(tmp_path / "fresh").read_text()
    assert "no runs yet" in text and "No sign-off run has headroom figures yet." in text
    assert headroom_chart([]) is None


def test_keep_removes_only_older_signoff_runs(history):
    update_index(history, keep=1)
    left = sorted(p.name for p in history.iterdir())
    # the newest sign-off run (the failed one) stays; the two ok runs go; other directories are never touched
    assert left == [".20261206T000000Z-1.partial", "20261203T060000Z-1", "20261203T070000Z-1",
                    "20261204T060000Z-1", "20261204T070000Z-1", "20261205T060000Z-1", "index.html"]
    with pytest.raises(InputError, match="--keep"):
        update_index(history, keep=0)


def test_a_summary_reads_back_into_the_same_signoff():
    s = signoff()
    assert signoff_from_dict(json.loads(json.dumps({**s.as_dict(), "parameters": {}}))) == \
        type(s)(s.verdict, tuple(s.failing_first()), s.rehearsals, s.started, s.finished, s.inputs, s.headroom)


@pytest.mark.parametrize("data,needle", [
    ({"passed": True}, "not a sign-off summary"),
    ({"verdict": "MAYBE", "gates": []}, "not a sign-off summary"),
    ({"verdict": "PASS", "gates": [{"name": "g", "group": "plan", "verdict": "OK", "reason": "r"}],
      "started": "2026-12-01T06:00:00+00:00", "finished": "2026-12-01T06:00:00+00:00"}, "verdict 'OK'"),
    ({"verdict": "PASS", "gates": [], "started": "yesterday", "finished": "2026-12-01T06:00:00+00:00"},
     "not an ISO 8601 time"),
])
def test_a_summary_of_the_wrong_shape_is_an_input_error_naming_the_file(data, needle):
    with pytest.raises(InputError, match=re.escape(needle)) as e:
        signoff_from_dict(data, source="run/summary.json")
    assert str(e.value).startswith("run/summary.json")


def test_an_unreadable_summary_is_corrupt(tmp_path):
    d = _run(tmp_path, "20261201T060000Z-1", None)
    (d / "summary.json").mkdir()           # a directory where the file should be
    assert read_run(d).status == "corrupt"
