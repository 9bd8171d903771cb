"""The history of sign-off runs: ``reports/index.html``, one row per run and the headroom trend.

Each ``eafix-capacity signoff`` run leaves a directory ``<reports>/<UTC stamp>-<n>/`` with its
``summary.json`` (``Signoff.as_dict()`` plus ``parameters``) and its HTML report. The index is
rebuilt from what is on disk after every run (:func:`update_index`), so it is never out of
step with the directories: a run the user deleted disappears from it, and a directory whose
``summary.json`` is missing, corrupt or someone else's (a ``report`` run shares the default
``reports/`` root) is still listed, saying so, rather than crashing the index or vanishing
from it. A run that failed with an error keeps its executed notebook and an ``error.txt``
(``cli.run_signoff``); it is listed as failed, with that line.

Nothing grows without bound: the index lists the runs on disk, and runs are the user's to
delete, or the kit's with ``keep`` (``--keep N``: the ``N`` newest sign-off runs stay, older
sign-off run directories are removed; directories that are not sign-off runs are never
touched). The trend chart plots at most the newest ``MAX_CHART_RUNS`` runs, so its size is
bounded whatever is kept.

Reading a summary back into a :class:`~.records.Signoff` (:func:`signoff_from_dict`) lives
here too: the index, the JUnit and Markdown outputs of the CLI all start from the
``summary.json`` a notebook wrote.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from ..errors import InputError
from ..fsio import atomic_write_text
from .markdown import describe_inputs
from .records import (VERDICTS, BlockedEviction, GateResult, Observation, PendingPod, Rehearsal, Signoff)

INDEX_NAME = "index.html"
SUMMARY_NAME = "summary.json"
ERROR_NAME = "error.txt"             # report.ERROR_FILE, written by execute_run(keep_failed=True)
MAX_CHART_RUNS = 100
RUN_NAME = re.compile(r"(\d{8}T\d{6}Z)-\d+")
OUTPUT_MODE = 0o666

# --- summary.json back into records (pure) --------------------------------------------------------


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InputError("not an ISO 8601 time", field=what, value=value)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError("not an ISO 8601 time", field=what, value=value) from None


def _map(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError("not a mapping", field=what, value=value)
    return dict(value)


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError("not a list", field=what, value=value)
    return value


def _gate(d: Any) -> GateResult:
    g = _map(d, "gates[]")
    try:
        return GateResult(name=str(g["name"]), group=g["group"], verdict=g["verdict"], reason=str(g["reason"]),
                          required=bool(g.get("required", True)), figures=_map(g.get("figures"), "figures"))
    except KeyError as e:
        raise InputError("a gate without", field=str(e.args[0]), value=g.get("name")) from None
    except ValueError as e:
        raise InputError(str(e), field="gates") from None


def _pending(d: Any) -> PendingPod:
    p = _map(d, "pending[]")
    return PendingPod(str(p.get("namespace", "")), str(p.get("name", "")), str(p.get("service", "")),
                      str(p.get("reason", "")))


def _blocked(d: Any) -> BlockedEviction:
    b = _map(d, "blocked[]")
    return BlockedEviction(str(b.get("namespace", "")), str(b.get("pod", "")), str(b.get("pdb", "")),
                           _time(b.get("first_refused"), "first_refused"), float(b.get("seconds", 0.0)),
                           str(b.get("message", "")))


def _observation(d: Any) -> Observation:
    o = _map(d, "observations[]")
    return Observation(at=_time(o.get("at"), "at"), step=int(o.get("step", 0)), action=str(o.get("action", "")),
                       nodes=int(o.get("nodes", 0)),
                       pending=tuple(_pending(p) for p in _list(o.get("pending"), "pending")),
                       blocked=tuple(_blocked(b) for b in _list(o.get("blocked"), "blocked")),
                       ready={str(k): int(v) for k, v in _map(o.get("ready"), "ready").items()})


def _rehearsal(d: Any) -> Rehearsal:
    r = _map(d, "rehearsals[]")
    ints = {k: {str(s): int(n) for s, n in _map(r.get(k), k).items()} for k in ("min_ready", "desired", "required_ready")}
    return Rehearsal(name=str(r.get("name", "")), kind=r.get("kind", "nodepool-upgrade"),
                     completed=bool(r.get("completed")), reason=str(r.get("reason", "")),
                     started=_time(r.get("started"), "started"), finished=_time(r.get("finished"), "finished"),
                     observations=tuple(_observation(o) for o in _list(r.get("observations"), "observations")),
                     min_ready=ints["min_ready"], desired=ints["desired"], required_ready=ints["required_ready"],
                     longest_block_seconds=float(r.get("longest_block_seconds", 0.0)),
                     pending_at_end=tuple(_pending(p) for p in _list(r.get("pending_at_end"), "pending_at_end")),
                     settings=_map(r.get("settings"), "settings"), details=_map(r.get("details"), "details"))


def is_signoff_summary(data: Any) -> bool:
    """Whether ``data`` has a sign-off summary's shape (a verdict and a list of gates)."""
    return isinstance(data, Mapping) and data.get("verdict") in VERDICTS and isinstance(data.get("gates"), list)


def signoff_from_dict(data: Mapping[str, Any], *, source: str = SUMMARY_NAME) -> Signoff:
    """The :class:`Signoff` a ``summary.json`` holds (``Signoff.as_dict()``; extra keys such as
    ``parameters`` are ignored). Anything else is an ``InputError`` naming ``source``."""
    if not is_signoff_summary(data):
        raise InputError("not a sign-off summary (no verdict and gates)", file=source)
    try:
        headroom = {str(k): float(v) for k, v in _map(data.get("headroom"), "headroom").items()}
        return Signoff(verdict=data["verdict"], gates=tuple(_gate(g) for g in data["gates"]),
                       rehearsals=tuple(_rehearsal(r) for r in _list(data.get("rehearsals"), "rehearsals")),
                       started=_time(data.get("started"), "started"), finished=_time(data.get("finished"), "finished"),
                       inputs=_map(data.get("inputs"), "inputs"), headroom=headroom)
    except InputError as e:
        raise InputError(e.problem, file=source, obj=e.obj, field=e.field, value=e.value, valid=e.valid) from None
    except (TypeError, ValueError) as e:
        raise InputError(f"malformed ({e})", file=source) from None


# --- one row per run directory -------------------------------------------------------------------

@dataclass(frozen=True)
class RunEntry:
    """One run directory as the index shows it. ``status`` is ``ok`` (a sign-off summary),
    ``failed`` (the run stopped with an error: ``problem`` is its line), ``missing``,
    ``corrupt`` or ``foreign`` (its summary.json is another tool's)."""

    name: str
    path: Path
    status: str
    when: datetime | None
    problem: str = ""
    signoff: Signoff | None = None
    report: str | None = None                 # link relative to the reports root
    parameters: Mapping[str, Any] = field(default_factory=dict)


def _stamp_time(name: str) -> datetime | None:
    m = RUN_NAME.fullmatch(name)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def read_run(directory: Path) -> RunEntry:
    """The index's row for one run directory (reads it; never raises for its contents)."""
    name = directory.name
    when = _stamp_time(name)
    htmls = sorted(p.name for p in directory.glob("*.html"))
    report = f"{quote(name)}/{quote(htmls[0])}" if htmls else None
    summary = directory / SUMMARY_NAME
    try:
        text = summary.read_text(encoding="utf-8")
    except FileNotFoundError:
        error = directory / ERROR_NAME
        if error.is_file():
            line = (error.read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["(empty)"])[0]
            return RunEntry(name, directory, "failed", when, line, report=report)
        return RunEntry(name, directory, "missing", when, "no summary.json", report=report)
    except (OSError, UnicodeDecodeError) as e:
        return RunEntry(name, directory, "corrupt", when, f"summary.json unreadable ({e})", report=report)
    try:
        data = json.loads(text)
    except ValueError as e:
        return RunEntry(name, directory, "corrupt", when, f"summary.json is not JSON ({e})", report=report)
    if not is_signoff_summary(data):
        what = ("a capacity report's summary (eafix-capacity report), not a sign-off"
                if isinstance(data, Mapping) and "passed" in data else "summary.json is not a sign-off summary")
        return RunEntry(name, directory, "foreign", when, what, report=report)
    try:
        signoff = signoff_from_dict(data, source=str(summary))
    except InputError as e:
        return RunEntry(name, directory, "corrupt", when, str(e), report=report)
    params = data.get("parameters") if isinstance(data.get("parameters"), Mapping) else {}
    return RunEntry(name, directory, "ok", _utc(signoff.started), signoff=signoff, report=report,
                    parameters=params or {})


def scan_runs(reports_root: Path) -> list[RunEntry]:
    """Every run directory under ``reports_root`` (hidden ones, i.e. runs still being written,
    skipped), newest first; a directory without a time in its name sorts last."""
    entries = [read_run(d) for d in sorted(reports_root.iterdir())
               if d.is_dir() and not d.name.startswith(".")] if reports_root.is_dir() else []
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(entries, key=lambda e: (_utc(e.when) if e.when else epoch, e.name), reverse=True)


def prune_runs(entries: Sequence[RunEntry], *, keep: int) -> list[RunEntry]:
    """Remove the sign-off runs (``ok`` and ``failed``) after the ``keep`` newest of them;
    returns those removed. Other directories are never removed."""
    if keep < 1:
        raise InputError("not a number of runs to keep", field="--keep", value=keep, valid="1 or more")
    ours = [e for e in entries if e.status in ("ok", "failed")]
    removed = ours[keep:]
    for e in removed:
        shutil.rmtree(e.path, ignore_errors=True)
    return removed


# --- the page ------------------------------------------------------------------------------------

_COLOURS = {"PASS": "#1b5e20", "WARN": "#e65100", "FAIL": "#b00020"}


def headroom_chart(entries: Sequence[RunEntry]) -> Any:
    """The headroom figures of the newest ``MAX_CHART_RUNS`` sign-off runs over time, one line
    per figure, WARN and FAIL runs shaded (a new matplotlib ``Figure``; None when no run has
    any figure)."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    runs = [e.signoff for e in entries if e.signoff is not None and e.signoff.headroom][:MAX_CHART_RUNS][::-1]
    if not runs:
        return None
    keys = sorted({k for s in runs for k in s.headroom})
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    x = [float(mdates.date2num(_utc(s.started))) for s in runs]
    for i, k in enumerate(keys):
        ax.plot(x, [s.headroom.get(k, float("nan")) for s in runs], marker="o", color=f"C{i % 10}", label=k)
    for xi, s in zip(x, runs):
        if s.verdict != "PASS":
            ax.axvline(xi, color=_COLOURS[s.verdict], alpha=0.25, lw=4)
    ax.axhline(0, color="black", lw=0.8)
    ax.xaxis_date("UTC")
    ax.set_ylabel("headroom")
    ax.set_title("Headroom per sign-off run (shaded: a WARN or FAIL run)")
    fig.autofmt_xdate()
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def index_html(entries: Sequence[RunEntry], *, generated: datetime | None = None) -> str:
    """The page (pure but for drawing the chart): self-contained, no script, no network."""
    esc = html.escape
    keys = sorted({k for e in entries if e.signoff for k in e.signoff.headroom})
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    rows = []
    for e in entries:
        when = _utc(e.when).strftime("%Y-%m-%d %H:%M:%S UTC") if e.when else "unknown"
        link = f'<a href="{esc(e.report)}">{esc(e.name)}</a>' if e.report else esc(e.name)
        if e.signoff is not None:
            s = e.signoff
            v = s.verdict
            failing = [g.name for g in s.failing_first() if g.verdict != "PASS"]
            verdict = (f'<td class="verdict" style="color:{_COLOURS[v]};font-weight:bold">{v}</td>')
            detail = esc(", ".join(failing)) if failing else "every gate passed"
            figures = "".join(f"<td>{s.headroom[k]:.1f}</td>" if k in s.headroom else "<td></td>" for k in keys)
            rows.append(f'<tr class="run ok"><td>{esc(when)}</td><td>{link}</td>{verdict}'
                        f"<td>{esc(describe_inputs(s.inputs))}</td>{figures}<td>{detail}</td></tr>")
        else:
            rows.append(f'<tr class="run {esc(e.status)}"><td>{esc(when)}</td><td>{link}</td>'
                        f'<td class="verdict">{esc(e.status)}</td><td></td>'
                        + "<td></td>" * len(keys) + f"<td>{esc(e.problem)}</td></tr>")
    fig = headroom_chart(entries)
    chart = (f'<img alt="headroom trend" src="data:image/png;base64,{_png(fig)}">' if fig is not None
             else "<p>No sign-off run has headroom figures yet.</p>")
    stamp = (generated or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "".join(rows) or f'<tr><td colspan="{5 + len(keys)}">no runs yet</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>EAFIX capacity sign-off runs</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
vertical-align: top; }} tr.missing td, tr.corrupt td, tr.foreign td, tr.failed td {{ color: #555; font-style: italic; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>EAFIX capacity sign-off runs</h1>
<p>{len(entries)} run directories, newest first; updated {esc(stamp)}.</p>
{chart}
<table class="runs"><thead><tr><th>time</th><th>run</th><th>verdict</th><th>inputs</th>{head}<th>not passing</th></tr></thead>
<tbody>{body}</tbody></table>
</body></html>
"""


def update_index(reports_root: str | Path, *, keep: int | None = None, now: datetime | None = None) -> Path:
    """Rebuild ``<reports_root>/index.html`` from the run directories on disk (atomically);
    with ``keep``, first remove the sign-off runs older than the ``keep`` newest."""
    root = Path(reports_root)
    entries = scan_runs(root)
    if keep is not None:
        removed = {e.path for e in prune_runs(entries, keep=keep)}
        entries = [e for e in entries if e.path not in removed]
    return atomic_write_text(root / INDEX_NAME, index_html(entries, generated=now), mode=OUTPUT_MODE)
