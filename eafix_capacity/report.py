"""Headless report runs: papermill executes a notebook, nbconvert exports it as HTML.

The report is evidence an SRE attaches to a change request, so it opens with the
verdict, the failing gates and every input that produced it (parameters, the data
files with their SHA-256, the kit's version and git commit, the UTC time, the command
that reproduces it), and the HTML needs no network to open.

A run writes ``<out_root>/<UTC timestamp>-<n>/`` with the executed notebook, an HTML
export without code cells and the ``summary.json`` the notebook wrote. The directory
name is reserved exclusively (``os.mkdir``, another ``n`` on a clash), so runs started in
the same second never share it. The run is assembled in a hidden sibling
``.<name>.partial`` that records its owner's pid and is renamed into place only when
complete: a failed run leaves nothing behind (a sign-off run keeps a notebook that failed,
with ``error.txt``, as evidence: ``execute_run(keep_failed=True)``), and the partial
directory of a run that was killed is removed by the next run once its pid is gone.
Parameters are checked (and the plan made once) before any kernel starts, so bad input
fails fast with the kit's own error.
"""
from __future__ import annotations

import errno
import hashlib
import html
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn

from .errors import EafixCapacityError, InputError, OutputError
from .fsio import atomic_write_text
from .inputs import PlanParams, plan_from_params
from .kernels import kernel_config, kernel_name
from .paths import NOTEBOOKS_DIR, ROOT, data_file
from .plan import Plan
from .tables import scrolling

KERNEL_NAME = "eafix-capacity"
CAPACITY_NOTEBOOK = NOTEBOOKS_DIR / "01_capacity_model.ipynb"
DISTRIBUTION = "eafix-capacity"
REPORT_TITLE = "EAFIX capacity report"
OWNER_FILE = ".owner"              # in a .partial directory: "<pid> <host>"
ORPHAN_AGE_S = 3600                # a .partial without an owner file this old is abandoned
OUTPUT_MODE = 0o666                # report files get what the umask allows, like any file

# nbconvert's lab template loads require.js, MathJax and mermaid from a CDN; a report
# must open offline, and its outputs need none of them (no widgets, math or diagrams).
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{% block extra_css %}
<style type="text/css">
/* tables wrap their text and scroll sideways rather than being cut at the page edge */
.eafix-table { overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon table.eafix { table-layout: auto; }
.jp-RenderedHTMLCommon table.eafix td, .jp-RenderedHTMLCommon table.eafix th {
  white-space: normal; overflow-wrap: break-word; vertical-align: top; }
.jp-RenderedHTMLCommon table.eafix caption { caption-side: bottom; text-align: left; }
.jp-OutputArea-output { overflow-x: auto; }
td.eafix-fail { color: #b00020; font-weight: bold; }
td.eafix-pass { color: #1b5e20; }
@media print { .eafix-table, .jp-OutputArea-output { overflow: visible; } }
</style>
{% endblock extra_css %}
"""


class ReportError(EafixCapacityError):
    """A notebook failed while running."""


@dataclass(frozen=True)
class ReportResult:
    directory: Path
    notebook: Path
    html: Path
    summary: Path
    passed: bool
    failed_gates: tuple[str, ...]


# ------------------------------------------------------------------ the evidence


@dataclass(frozen=True)
class InputFile:
    role: str
    path: str          # relative to the kit's checkout when inside it, else absolute
    sha256: str


@dataclass(frozen=True)
class Evidence:
    """What a reader needs to trust and reproduce a report."""

    title: str
    verdict: str                          # PASS or FAIL
    summary: str                          # one line: nodes, node type, provider, mesh, profile
    failed_gates: tuple[tuple[str, str], ...]   # (gate, detail), in the plan's order
    parameters: tuple[tuple[str, str], ...]     # (name, value as the plan used it)
    files: tuple[InputFile, ...]
    kit_version: str
    git_commit: str | None                # None outside a git checkout
    generated_utc: str
    command: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _repr_html_(self) -> str:
        return evidence_html(self)

    def __repr__(self) -> str:
        lines = [f"{self.title}", f"verdict: {self.verdict} ({self.summary})"]
        lines += [f"FAIL {g}: {d}" for g, d in self.failed_gates]
        lines += [f"{k}: {v}" for k, v in self.parameters]
        lines += [f"{f.role}: {f.path} sha256 {f.sha256}" for f in self.files]
        lines += [f"kit version: {self.kit_version}", f"git commit: {self.git_commit or 'not a git checkout'}",
                  f"generated: {self.generated_utc}", f"reproduce: {self.command}"]
        return "\n".join(lines)


def kit_version() -> str:
    """The installed distribution's version (``importlib.metadata``, i.e. pyproject's)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (the kit is not installed)"


def git_commit(root: Path = ROOT) -> str | None:
    """The commit of the kit's checkout, with a note when files differ from it; None
    when the kit does not run from a git checkout (an installed wheel) or git is absent."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"{head} (with uncommitted changes)" if dirty else head


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (each relative path and content,
    in sorted order)."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    else:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                h.update(block)
    return h.hexdigest()


def _shown_path(path: Path, root: Path) -> str:
    p = path.resolve()
    try:
        return p.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def reproduce_command(params: PlanParams) -> str:
    """The ``eafix-capacity report`` command with every parameter spelled out, so a later
    change of a default does not change what it plans."""
    args = ["eafix-capacity", "report", "--profile", params.profile, "--provider", params.provider,
            "--node-type", params.node_type]
    if params.nodes is not None:
        args += ["--nodes", str(params.nodes)]
    args += ["--mesh", params.mesh, "--headroom", f"{params.headroom_pct:g}",
             "--cpu-limit-ratio", f"{params.cpu_limit_ratio:g}",
             "--memory-limit-ratio", f"{params.memory_limit_ratio:g}"]
    if params.storage_gib is not None:
        args += ["--storage-gib", f"{params.storage_gib:g}"]
    if params.max_pods is not None:
        args += ["--max-pods", str(params.max_pods)]
    if params.catalog:
        args += ["--catalog", params.catalog]
    if params.manifests:
        args += ["--manifests", params.manifests]
    if params.ignore_unknown_kinds:
        args += ["--ignore-unknown-kinds"]
    if params.zones:
        args += ["--zones", params.zones] + (["--zonal-pool"] if params.zonal_pool else [])
    if params.exact is not None:
        args += ["--exact" if params.exact else "--no-exact"]
    if params.exact or (params.exact is None and params.pools):
        args += ["--exact-seconds", f"{params.exact_seconds:g}"]
    if params.growth_pct is not None:
        args += ["--growth", f"{params.growth_pct:g}"]
    if params.lead_time_days is not None:
        args += ["--lead-time-days", str(params.lead_time_days)]
    if params.pools:
        args += ["--pools", params.pools]
    for name, n in sorted(params.replicas.items()):
        args += ["--replicas", f"{name}={n}"]
    return shlex.join(args)


def report_title(verdict: str, summary: str) -> str:
    return f"{REPORT_TITLE}: {verdict} ({summary})"


def plan_summary(plan: Plan) -> str:
    fleet = (" + ".join(f"{p.plan.nodes} x {p.plan.node_type.name} ({p.name})" for p in plan.pools)
             if plan.pools else f"{plan.nodes} x {plan.node_type.name}")
    return f"{fleet} on {plan.options.provider}, mesh {plan.options.mesh}, {plan.profile.name} profile"


def collect_evidence(plan: Plan, params: PlanParams, *, scenario: str = "baseline",
                     now: datetime | None = None, root: Path = ROOT) -> Evidence:
    """The evidence block of a report (reads the input files to hash them, asks git)."""
    o = plan.options
    verdict = "PASS" if plan.passed else "FAIL"
    summary = plan_summary(plan)
    storage = (f"{params.storage_gib:g} GiB" if params.storage_gib is not None
               else f"not given: the {plan.profile.name} profile's {plan.profile.storage_bytes / 2**30:g} GiB assumed")
    parameters: tuple[tuple[str, str], ...] = (
        ("profile", plan.profile.name), ("provider", str(o.provider)),
        ("node_type", plan.node_type.name if not plan.pools
         else "per pool: " + ", ".join(f"{p.name} {p.plan.node_type.name}" for p in plan.pools)),
        ("nodes", f"{plan.nodes} (given)" if plan.nodes_given
         else f"{plan.nodes} (not given: the recommended count)"),
        ("mesh", str(o.mesh)), ("headroom_pct", f"{o.headroom_pct:g}% of each node kept free at baseline"),
        ("cpu_limit_ratio", f"{o.cpu_limit_ratio:g}"), ("memory_limit_ratio", f"{o.memory_limit_ratio:g}"),
        ("storage_gib", storage),
        ("max_pods", (", ".join(f"{p.name} {p.plan.node.max_pods}" for p in plan.pools) if plan.pools
                      else f"{plan.node.max_pods}") + (" (given)" if o.max_pods is not None
                                                       else " (not given: the provider's default)")),
        ("catalog", params.catalog or "not given: the embedded catalogue"),
        ("manifests", params.manifests or "not given"),
        ("replicas", ", ".join(f"{k}={v}" for k, v in sorted(params.replicas.items())) or "no overrides"),
        ("zones", f"{params.zones}: {', '.join(plan.zone_labels)}" if params.zones else "not given: no zones"),
        ("zonal_pool", "yes: counts may differ between zones" if params.zonal_pool
         else "no" + (": the same number of nodes in every zone" if params.zones else "")),
        ("exact", f"yes: CP-SAT, at most {params.exact_seconds:g} s per scenario" if params.exact
         else "no: First-Fit Decreasing counts" if params.exact is False
         else "auto: with pools, CP-SAT for each pool under 20 nodes; one pool: First-Fit Decreasing"),
        ("exact_seconds", f"{params.exact_seconds:g}"),
        ("growth_pct", f"{params.growth_pct:g}% per month" if params.growth_pct is not None
         else "not given: no growth runway"),
        ("lead_time_days", f"{params.lead_time_days}" if params.lead_time_days is not None else "not given"),
        ("pools", f"{params.pools}: " + ", ".join(f"{p.name} {p.plan.nodes} x {p.plan.node_type.name}"
                                                   for p in plan.pools) if params.pools else "not given: one pool"),
    )
    shown = {k for k, _ in parameters}
    # any parameter added to PlanParams later is listed too, as given
    parameters += tuple((f.name, str(getattr(params, f.name))) for f in fields(params) if f.name not in shown)
    parameters += (("scenario", f"{scenario} (the scenario whose placement is shown)"),)
    files = []
    source = Path(params.manifests) if params.manifests else Path(plan.catalog.source_file or data_file("services.yaml"))
    role = "manifests (every file)" if params.manifests else "catalogue"
    for r, path in ((role, source), ("profiles", data_file("profiles.yaml")), ("node types", data_file("node-types.csv"))):
        try:
            digest = sha256_of(path)
        except OSError as e:
            digest = f"unreadable ({e.strerror or e})"
        files.append(InputFile(r, _shown_path(path, root), digest))
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Evidence(
        title=report_title(verdict, summary), verdict=verdict, summary=summary,
        failed_gates=tuple((g.name, g.detail) for g in plan.gates if not g.passed),
        parameters=parameters, files=tuple(files), kit_version=kit_version(),
        git_commit=git_commit(root), generated_utc=stamp, command=reproduce_command(params))


def evidence_html(e: Evidence) -> str:
    """The top of the report: verdict, failing gates, inputs. Inline styles, so it looks
    the same in JupyterLab and in the exported HTML."""
    esc = html.escape
    colour = "#1b5e20" if e.verdict == "PASS" else "#b00020"
    out = ['<div class="eafix-evidence">',
           f'<p style="font-size:3em;font-weight:bold;margin:0.2em 0;color:{colour}" '
           f'class="eafix-verdict">{esc(e.verdict)}</p>',
           f'<p style="font-size:1.2em;margin:0 0 1em 0">{esc(e.title)}</p>']
    if e.failed_gates:
        rows = "".join(f'<tr><td class="eafix-fail" style="text-align:left">{esc(g)}</td>'
                       f'<td style="text-align:left">{esc(d)}</td></tr>' for g, d in e.failed_gates)
        out.append('<p style="font-weight:bold">Failing gates</p>' + scrolling(
                   '<table class="eafix eafix-failed"><thead><tr><th>gate</th><th>detail</th></tr></thead>'
                   f'<tbody>{rows}</tbody></table>'))
    else:
        out.append("<p>Every gate passes.</p>")
    cells = [(k, esc(v)) for k, v in e.parameters]
    cells += [(f"{f.role} file", esc(f"{f.path} (SHA-256 {f.sha256})")) for f in e.files]
    cells += [("kit version", esc(e.kit_version)), ("git commit", esc(e.git_commit or "not a git checkout")),
              ("generated (UTC)", esc(e.generated_utc)), ("reproduce with", f"<code>{esc(e.command)}</code>")]
    body = "".join(f'<tr><th style="text-align:left">{esc(k)}</th><td style="text-align:left">{v}</td></tr>'
                   for k, v in cells)
    out.append('<p style="font-weight:bold">Inputs</p>'
               + scrolling(f'<table class="eafix eafix-inputs"><tbody>{body}</tbody></table>') + '</div>')
    return "".join(out)


# ------------------------------------------------------------------ running a notebook


def execute_notebook(source: Path, target: Path, parameters: dict[str, Any], *, cwd: Path) -> None:
    """Run one notebook with papermill; a failing cell becomes a ``ReportError`` (or an
    ``InputError`` when the notebook rejected its parameters)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    try:
        pm.execute_notebook(str(source), str(target), parameters=parameters, kernel_name=kernel_name(),
                            cwd=str(cwd), progress_bar=False, log_output=False,
                            config=kernel_config())  # CurveZMQ: no "TCP without encryption" warning
    except PapermillExecutionError as e:
        if e.ename in ("InputError", "QuantityError", "ManifestError"):
            raise InputError(f"{source.name}: {e.evalue}") from None
        raise ReportError(f"{source.name}: cell {e.exec_count} failed: {e.ename}: {e.evalue}") from None


def export_html(notebook: Path, target: Path, *, title: str | None = None) -> Path:
    """Self-contained HTML of the executed notebook without code cells or prompts: no
    script from the network, figures inline as PNG data, the page titled ``title``."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(notebook), as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True,
                            extra_loaders=[DictLoader({"eafix_offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="eafix_offline.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    return atomic_write_text(target, body, mode=OUTPUT_MODE)


# ------------------------------------------------------------------ run directories


@dataclass(frozen=True)
class RunDirs:
    final: Path      # not yet existing: the name the finished run is renamed to
    work: Path       # the exclusively created .partial directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True       # another user's live process
    except OSError:
        return False
    return True


def remove_abandoned(root: Path, *, now: float | None = None) -> list[Path]:
    """Remove the ``.partial`` directories of runs that died: their owner file names a
    pid on this host that is gone, or they have no owner file and are older than
    ``ORPHAN_AGE_S``. Live runs, and runs of other hosts, are left alone."""
    removed = []
    host = socket.gethostname()
    t = time.time() if now is None else now
    for d in sorted(root.glob(".*.partial")):
        if not d.is_dir():
            continue
        try:
            pid_text, _, owner_host = (d / OWNER_FILE).read_text().strip().partition(" ")
            dead = owner_host == host and not _alive(int(pid_text))
        except FileNotFoundError:
            try:
                dead = t - d.stat().st_mtime > ORPHAN_AGE_S
            except OSError:
                continue
        except (OSError, ValueError):
            continue
        if dead:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def reserve_run_dirs(root: Path, stamp: str) -> RunDirs:
    """Exclusively create ``.<stamp>-<n>.partial`` for the smallest ``n`` whose finished
    directory does not exist yet, and record this process as its owner.

    ``os.mkdir`` fails with EEXIST when another run holds the name, so two runs never
    share one. A finished ``<stamp>-<n>`` appears by renaming its .partial, atomically:
    once our mkdir of the .partial succeeded, the other run's rename (if any) is done,
    so checking the final name after the mkdir cannot race with it."""
    for n in range(1, 10_000):
        name = f"{stamp}-{n}"
        work = root / f".{name}.partial"
        try:
            os.mkdir(work)
        except FileExistsError:
            continue
        if (root / name).exists():
            os.rmdir(work)
            continue
        try:
            (work / OWNER_FILE).write_text(f"{os.getpid()} {socket.gethostname()}\n")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return RunDirs(root / name, work)
    raise FileExistsError(errno.EEXIST, "no free report directory name", str(root / stamp))


ERROR_FILE = "error.txt"           # in a kept failed run: the error's one line


class NotebookFailed(ReportError):
    """The notebook of a run that keeps its evidence failed: ``directory`` holds the executed
    notebook (papermill writes it even on failure, the failing cell tagged
    ``papermill-error-cell-tag``), its HTML export and ``error.txt``."""

    def __init__(self, message: str, *, directory: Path) -> None:
        super().__init__(message)
        self.directory = directory


def _keep_failed(work: Path, final: Path, executed: Path, error: Exception, *, title: str) -> NoReturn:
    line = " ".join(str(error).splitlines())
    try:
        atomic_write_text(work / ERROR_FILE, line + "\n", mode=OUTPUT_MODE)
        try:
            export_html(executed, work / (executed.stem + ".html"), title=title)
        except Exception:  # noqa: BLE001 - the executed notebook itself is the evidence
            pass
        (work / OWNER_FILE).unlink(missing_ok=True)
        work.rename(final)
    except (OSError, EafixCapacityError):
        raise error from None          # nothing could be kept: the run is removed as any other
    raise NotebookFailed(f"{line} (the executed notebook is kept as evidence: {final / executed.name})",
                         directory=final) from None


def execute_run(notebook: Path, parameters: Mapping[str, Any], *, out_root: str | Path = "reports",
                now: datetime | None = None,
                prepare: Callable[[Path], Mapping[str, Any]] | None = None,
                finish: Callable[[RunDirs, Path, dict[str, Any]], None] | None = None,
                keep_failed: bool = False, failed_title: str = f"{REPORT_TITLE}: ERROR") -> tuple[Path, dict[str, Any]]:
    """Run ``notebook`` with ``parameters`` (plus ``output_dir``) into a new run directory under
    ``out_root`` and return it with the ``summary.json`` the notebook wrote. ``prepare(work)``
    writes inputs into the .partial directory and returns more parameters; ``finish(dirs,
    executed, summary)`` writes the run's other files (the HTML ...) into it before it is renamed
    into place. A failure removes the run, unless ``keep_failed``: then a notebook that failed
    (or wrote no summary) is kept, renamed into place with ``error.txt``, and the error is a
    :class:`NotebookFailed` that says where."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    root = Path(out_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_abandoned(root)
        dirs = reserve_run_dirs(root, stamp)
    except OSError as e:
        raise OutputError(f"{root}: cannot create the report directory ({e.strerror or e})") from e
    final, work = dirs.final, dirs.work
    executed = work / notebook.name
    try:
        if prepare is not None:
            parameters = {**parameters, **prepare(work)}
        try:
            execute_notebook(notebook, executed, {**parameters, "output_dir": str(work.resolve())},
                             cwd=notebook.parent)
            summary = work / "summary.json"
            if not summary.exists():
                raise ReportError(f"{notebook.name} did not write summary.json")
            try:
                data = json.loads(summary.read_text())
            except ValueError as e:
                raise ReportError(f"{notebook.name} wrote a summary.json that is not JSON ({e})") from None
        except (ReportError, InputError) as e:
            if keep_failed and executed.exists():
                _keep_failed(work, final, executed, e, title=failed_title)
            raise
        if finish is not None:
            finish(dirs, executed, data)
        (work / OWNER_FILE).unlink(missing_ok=True)
        try:
            work.rename(final)
        except OSError as e:
            raise OutputError(f"{final}: cannot move the finished report into place "
                              f"({e.strerror or e})") from e
    except NotebookFailed:
        raise                          # kept: its .partial is already renamed into place
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final, data


def run_report(params: PlanParams, *, out_root: str | Path = "reports",
               notebook: Path = CAPACITY_NOTEBOOK, now: datetime | None = None) -> ReportResult:
    plan_from_params(params)  # bad parameters fail here, before anything is written

    def finish(dirs: RunDirs, executed: Path, data: dict[str, Any]) -> None:
        title = data.get("evidence", {}).get("title") or REPORT_TITLE
        export_html(executed, dirs.work / (notebook.stem + ".html"), title=title)
    final, data = execute_run(notebook, params.notebook_parameters(), out_root=out_root, now=now, finish=finish)
    failed = tuple(g["name"] for g in data.get("gates", []) if not g["passed"])
    return ReportResult(final, final / notebook.name, final / (notebook.stem + ".html"),
                        final / "summary.json", not failed, failed)


def write_summary(output_dir: str | Path, data: dict[str, Any], *, name: str = "summary.json") -> Path:
    """Write a notebook's summary atomically into ``output_dir`` (created if needed)."""
    return atomic_write_text(Path(output_dir) / name, json.dumps(data, indent=2) + "\n", mode=OUTPUT_MODE)
