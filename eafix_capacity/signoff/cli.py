"""``eafix-capacity signoff``: run the sign-off notebook headless and write what a change request carries.

One command, one run directory ``<out>/<UTC stamp>-<n>/`` (reserved, assembled in a .partial
and renamed into place exactly as ``report`` does: :func:`eafix_capacity.report.execute_run`)
holding the executed notebook, its self-contained HTML report, the ``summary.json`` the
notebook wrote (``Signoff.as_dict()`` plus ``parameters``), ``junit.xml`` (one test case per
gate), ``SUMMARY.md`` (to paste into the change request) and ``policy.yaml`` (the policy as
given, so the run can be reproduced); then ``<out>/index.html``, the history of runs, is
rebuilt.

The params file takes the plan's parameters under the names ``report`` uses (profile,
provider, node_type, nodes, mesh, ...: :class:`~eafix_capacity.inputs.PlanParams`), plus
``policy`` (a policy file's path, relative to the params file, or the policy inline as a
mapping; either is read over ``data/signoff-policy.yaml`` by
:mod:`eafix_capacity.signoff.policy`) and ``context``, ``kubeconfig`` and ``usage`` (a
utilisation store directory), which the flags of the same names override. Every key and
value is checked before a kernel starts; a bad one is one line naming the file and the key.
Without a params file the defaults sign off the recommended plan on its twin, offline.

Exit codes: 0 PASS (and WARN, unless the policy is strict), 1 FAIL, 2 an error. A notebook
that fails in a cell exits 2 with the error's one line; the executed notebook (papermill
writes it even then, the failing cell tagged ``papermill-error-cell-tag``) is kept as evidence
in the run directory with ``error.txt``, the message says where, and the index lists the run
as failed.

The notebook is called with these parameters (its ``parameters`` cell must declare them):
every key of ``PlanParams.notebook_parameters()``, ``context``, ``kubeconfig`` and ``usage``
(``""`` for none), ``policy`` (the path of ``policy.yaml`` in the run directory) and
``output_dir``.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from ..errors import EafixCapacityError, InputError
from ..inputs import PlanParams, plan_from_params
from ..paths import NOTEBOOKS_DIR, data_file
from .notebook import REHEARSAL_FIELDS, NotebookParams
from .policy import POLICY_FILE, Policy, load_policy, policy_from_mapping

SIGNOFF_NOTEBOOK = NOTEBOOKS_DIR / "05_upgrade_signoff.ipynb"
SIGNOFF_TITLE = "EAFIX capacity sign-off"
POLICY_COPY = "policy.yaml"
JUNIT_FILE = "junit.xml"
MARKDOWN_FILE = "SUMMARY.md"
TARGET_KEYS = ("policy", "context", "kubeconfig", "usage")
EXTRA_KEYS = (*TARGET_KEYS, *REHEARSAL_FIELDS)
PATH_KEYS = ("release_catalog", "release_manifests")   # relative to the params file
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class SignoffParams:
    """What a sign-off run is asked: the plan, the policy (as given, over the defaults) and
    the target. ``context=""`` is the twin of the plan; ``usage=""`` no usage history."""

    plan: PlanParams = field(default_factory=PlanParams)
    policy_given: Mapping[str, Any] = field(default_factory=dict)
    policy: Policy = field(default_factory=load_policy)
    policy_source: str = "defaults (data/" + POLICY_FILE + ")"
    context: str = ""
    kubeconfig: str = ""
    usage: str = ""
    rehearsal: Mapping[str, Any] = field(default_factory=dict)
    """Notebook 05's rehearsal parameters given (namespace, upgrade_node_type, max_surge, ...)."""
    source: str = "parameters"
    """Where the parameters came from (the params file), for errors."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str, base_dir: str | Path | None = None) -> SignoffParams:
        """Checked parameters from a params file's mapping; errors name ``source`` and the key.
        Relative paths (catalog, manifests, policy, kubeconfig, usage) are relative to ``base_dir``."""
        plan_keys = {f.name for f in fields(PlanParams)}
        for key in raw:
            if key not in plan_keys and key not in EXTRA_KEYS:
                raise InputError("unknown parameter", file=source, field=str(key),
                                 valid="known parameters: " + ", ".join(sorted(plan_keys | set(EXTRA_KEYS))))
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        plan = PlanParams.from_mapping({k: v for k, v in raw.items() if k in plan_keys}, source=source,
                                       origin="file", base_dir=base)
        given, policy, policy_source = _read_policy(raw.get("policy"), source=source, base=base)
        values: dict[str, str] = {}
        for key in ("context", "kubeconfig", "usage"):
            v = raw.get(key)
            if v is not None and (not isinstance(v, str) or not v):
                raise InputError("not a non-empty string", file=source, field=key, value=v,
                                 valid="a name or path, or leave it out")
            values[key] = v or ""
        rehearsal = {k: (_path(raw[k], base) if k in PATH_KEYS and isinstance(raw[k], str) else raw[k])
                     for k in REHEARSAL_FIELDS if k in raw}
        params = cls(plan=plan, policy_given=given, policy=policy, policy_source=policy_source,
                     context=values["context"], rehearsal=rehearsal, source=source)
        return params.with_target(kubeconfig=_path(values["kubeconfig"], base), usage=_path(values["usage"], base),
                                  source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SignoffParams:
        from ..yamlio import load_yaml_file
        doc = load_yaml_file(path)
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise InputError("expected a mapping of parameter names to values", file=str(path),
                             value=type(doc).__name__)
        return cls.from_mapping(doc, source=str(path), base_dir=Path(os.path.abspath(path)).parent)

    def with_target(self, *, context: str | None = None, kubeconfig: str | None = None, usage: str | None = None,
                    source: str = "command line") -> SignoffParams:
        """These parameters with the given target fields replaced (the flags); a usage store or
        kubeconfig that is not there is an ``InputError``."""
        from dataclasses import replace
        new = replace(self, context=self.context if context is None else context,
                      kubeconfig=self.kubeconfig if kubeconfig is None else kubeconfig,
                      usage=self.usage if usage is None else usage)
        if new.usage and not Path(new.usage).is_dir():
            raise InputError("not a directory", file=source, field="usage", value=new.usage,
                             valid="a utilisation store directory (eafix-capacity usage sample --out DIR)")
        if new.kubeconfig and not Path(new.kubeconfig).is_file():
            raise InputError("no such file", file=source, field="kubeconfig", value=new.kubeconfig,
                             valid="a kubeconfig file")
        return new

    def notebook_parameters(self, policy_file: str) -> dict[str, Any]:
        return {**self.plan.notebook_parameters(), "context": self.context, "kubeconfig": self.kubeconfig,
                "usage": self.usage, "policy": policy_file, **self.rehearsal}

    def check(self, *, source: str = "parameters") -> None:
        """Every parameter as the notebook's validation cell checks it, before a kernel starts
        (the policy is checked where it is read)."""
        values = self.notebook_parameters("")
        try:
            NotebookParams.from_notebook(**values)
        except InputError as e:
            if e.file not in (None, "notebook parameters"):
                raise                       # names its own file (a catalogue, a policy)
            raise InputError(e.problem, file=source, obj=e.obj, field=e.field, value=e.value, valid=e.valid) from None


def _path(value: str, base: Path) -> str:
    if not value:
        return ""
    p = Path(value).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


def _read_policy(value: Any, *, source: str, base: Path) -> tuple[dict[str, Any], Policy, str]:
    """The policy as given (a mapping), checked over the defaults, and where it came from."""
    from ..yamlio import load_yaml_file
    if value is None:
        return {}, load_policy(), f"defaults (data/{POLICY_FILE})"
    if isinstance(value, str) and value:
        path = _path(value, base)
        policy = load_policy(path)          # its errors name the policy file and the key
        given = load_yaml_file(path) or {}
        return dict(given), policy, path
    if isinstance(value, Mapping):
        where = f"{source}: policy"
        policy = policy_from_mapping(value, source=where, defaults=load_yaml_file(data_file(POLICY_FILE)))
        return dict(value), policy, where
    raise InputError("not a policy", file=source, field="policy", value=value,
                     valid="the path of a policy file, or the policy's keys as a mapping")


# --- the run -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignoffResult:
    directory: Path
    notebook: Path
    html: Path
    summary: Path
    junit: Path
    markdown: Path
    verdict: str
    failing: tuple[str, ...]              # gates that are not a PASS, failing first
    strict: bool

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict, strict=self.strict)


def exit_code(verdict: str, *, strict: bool) -> int:
    """0 PASS, 0 WARN (1 when strict), 1 FAIL."""
    if verdict == "PASS" or (verdict == "WARN" and not strict):
        return EXIT_PASS
    return EXIT_FAIL


def run_signoff(params: SignoffParams, *, notebook: Path | None = None, out_root: str | Path = "reports",
                now: datetime | None = None, keep: int | None = None) -> SignoffResult:
    """Run the sign-off notebook into a new run directory under ``out_root``, write the
    report, ``junit.xml`` and ``SUMMARY.md`` beside its ``summary.json``, and rebuild
    ``<out_root>/index.html`` (with ``keep``: only the ``keep`` newest sign-off runs stay).
    ``notebook`` defaults to ``SIGNOFF_NOTEBOOK``."""
    import yaml

    from ..fsio import atomic_write_text
    from ..report import OUTPUT_MODE, NotebookFailed, ReportError, execute_run, export_html
    from .junit import junit_xml
    from .markdown import describe_inputs, markdown_summary
    from .runindex import signoff_from_dict, update_index

    if keep is not None and keep < 1:
        raise InputError("not a number of runs to keep", field="--keep", value=keep, valid="1 or more")
    notebook = Path(SIGNOFF_NOTEBOOK if notebook is None else notebook)
    if not notebook.is_file():
        raise InputError("no such notebook", field="notebook", value=str(notebook),
                         valid=f"the sign-off notebook, {SIGNOFF_NOTEBOOK.name}")
    plan_from_params(params.plan)  # bad parameters fail here, before anything is written
    params.check(source=params.source)
    strict = params.policy.strict
    html_name = notebook.stem + ".html"

    def prepare(work: Path) -> Mapping[str, Any]:
        text = f"# the sign-off policy as given ({params.policy_source}), read over data/{POLICY_FILE}\n"
        text += yaml.safe_dump(dict(params.policy_given), sort_keys=False) if params.policy_given else "{}\n"
        policy_file = atomic_write_text(work / POLICY_COPY, text, mode=OUTPUT_MODE)
        return params.notebook_parameters(str(policy_file.resolve()))

    outputs: dict[str, Any] = {}

    def finish(dirs: Any, executed: Path, data: dict[str, Any]) -> None:
        try:
            signoff = signoff_from_dict(data, source=f"{notebook.name}: summary.json")
        except InputError as e:
            raise ReportError(str(e)) from None
        title = f"{SIGNOFF_TITLE}: {signoff.verdict} ({describe_inputs(signoff.inputs)})"
        export_html(executed, dirs.work / html_name, title=title)
        atomic_write_text(dirs.work / JUNIT_FILE, junit_xml(signoff, strict=strict, hostname=socket.gethostname()),
                          mode=OUTPUT_MODE)
        atomic_write_text(dirs.work / MARKDOWN_FILE,
                          markdown_summary(signoff, report_link=str((dirs.final / html_name).resolve())),
                          mode=OUTPUT_MODE)
        outputs["signoff"] = signoff

    root = Path(out_root)
    try:
        final, _ = execute_run(notebook, {}, out_root=root, now=now, prepare=prepare, finish=finish,
                               keep_failed=True, failed_title=f"{SIGNOFF_TITLE}: ERROR")
    except NotebookFailed:
        _update_index_or_warn(update_index, root, keep=keep)
        raise
    _update_index_or_warn(update_index, root, keep=keep)
    signoff = outputs["signoff"]
    return SignoffResult(final, final / notebook.name, final / html_name, final / "summary.json",
                         final / JUNIT_FILE, final / MARKDOWN_FILE, signoff.verdict,
                         tuple(g.name for g in signoff.failing_first() if g.verdict != "PASS"), strict)


def _update_index_or_warn(update: Any, root: Path, *, keep: int | None) -> None:
    """The index is a convenience: failing to rebuild it never changes the run's verdict."""
    try:
        update(root, keep=keep)
    except (EafixCapacityError, OSError) as e:
        print(f"eafix-capacity: warning: {root / 'index.html'} not updated: {e}", file=sys.stderr)


# --- the command ---------------------------------------------------------------------------------

def params_from_args(args: argparse.Namespace) -> SignoffParams:
    base = SignoffParams.from_yaml(args.params) if args.params else SignoffParams()
    return base.with_target(context=args.context,
                            kubeconfig=os.path.abspath(args.kubeconfig) if args.kubeconfig else None,
                            usage=os.path.abspath(args.usage) if args.usage else None)


def _cmd_signoff(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    result = run_signoff(params, out_root=args.out, keep=args.keep)
    print(result.html)
    line = f"sign-off: {result.verdict}"
    if result.failing:
        line += " (not passing: " + ", ".join(result.failing) + ")"
    print(line, file=sys.stderr)
    return result.exit_code


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "signoff", help="sign off the capacity before an upgrade: one report, PASS or FAIL per gate",
        description="Run notebooks/05_upgrade_signoff.ipynb with papermill (the plan rehearsed on its twin, or on "
                    "the cluster of --context read-only) into <out>/<UTC timestamp>-<n>/: the HTML report, "
                    "summary.json, junit.xml, SUMMARY.md; then rebuild <out>/index.html. Exit 0 PASS (and "
                    "WARN unless the policy is strict), 1 FAIL, 2 error.")
    p.add_argument("--params", help="YAML file: the plan's parameters (as `report` takes them), policy (a file or "
                                    "a mapping), context, kubeconfig, usage; paths relative to the file")
    p.add_argument("--context", default=None, help="judge this kubeconfig context's cluster (read-only) "
                                                   "instead of the plan's twin")
    p.add_argument("--kubeconfig", default=None, help="the kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    p.add_argument("--usage", default=None, metavar="DIR", help="a utilisation store directory for the usage gates")
    p.add_argument("--out", default="reports", metavar="DIR", help="root directory for runs (default reports)")
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="keep only the N newest sign-off runs under --out (default: keep every run)")
    p.set_defaults(func=_cmd_signoff)
