"""Parse ``kubectl top pod --containers`` and ``kubectl top node`` output, by column position and unit.

``kubectl top`` prints a table for people: tab-aligned columns whose header spelling changed
between kubectl versions (``CPU%`` before, ``CPU(%)`` in 1.32; ``SWAP(bytes)`` with
``--show-swap`` since 1.33), CPU as millicores (``%vm`` of ``MilliValue``, rounded up), memory
as whole mebibytes (``%vMi`` of ``Value / 2**20``, rounded down) and ``<unknown>`` for a node
metrics-server has no figures for (kubectl's pkg/metricsutil/metrics_printer.go). Reading it by
header names would break on the next rename, so the columns are read by position (the layout
follows from the flags the sampler passed) and each figure by its unit; a header line is
recognised (pod, namespace and container names are lowercase DNS-1123 names, so an upper-case
``NAME``/``NAMESPACE``/``POD`` first column can only be a header), checked against the layout
and skipped. Anything else that does not fit is a :class:`TopParseError`: one line naming the
source, the line number, the column, the value and what would be valid, never a silently wrong
figure. Pure: text in, records out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from eafix_capacity.errors import InputError, QuantityError
from eafix_capacity.quantity import parse as parse_quantity

UNKNOWN = "<unknown>"
"""What kubectl prints for a figure metrics-server does not have (``printMissingMetricsNodeLine``)."""

NODE_PERCENT_HEADERS = {"cpu": ("CPU%", "CPU(%)"), "memory": ("MEMORY%", "MEMORY(%)"), "swap": ("SWAP%", "SWAP(%)")}
"""The spellings of the percentage columns: ``CPU%``/``MEMORY%`` up to kubectl 1.2x, ``CPU(%)``/
``MEMORY(%)`` in 1.32 (recorded from the real binary) and later (``SWAP(%)`` with ``--show-swap``)."""

_NANO_PER_MILLI = 10**6
_MIB = 2**20
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_CPU_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[num]?")
_MEMORY_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|[kKMGT])?")
_PERCENT_TEXT = re.compile(r"[0-9]+%")

VALID_CPU = ("a CPU figure is a number with an optional unit: m (millicores, as kubectl prints it), u, n, "
             f"or none (cores), e.g. 250m, 0.5 or 123456789n; or {UNKNOWN}")
VALID_MEMORY = ("a memory figure is a number with an optional unit: Ki Mi Gi Ti (kubectl prints Mi), K M G T, "
                f"or none (bytes), e.g. 149Mi or 12345Ki; or {UNKNOWN}")
VALID_PERCENT = f"a percentage is digits and %, e.g. 3%; or {UNKNOWN}"
VALID_LABEL = "a lowercase DNS-1123 label: a-z, 0-9 and '-', at most 63 characters, starting and ending alphanumeric"
VALID_SUBDOMAIN = ("a lowercase DNS-1123 subdomain: a-z, 0-9, '-' and '.', at most 253 characters, "
                   "each part starting and ending alphanumeric")


class TopParseError(InputError):
    """A ``kubectl top`` line (or a metrics figure) that does not read as the layout says."""


@dataclass(slots=True)
class PodUsage:
    """One line of ``kubectl top pod``. Not frozen: a frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__``, several times slower, and a parse builds thousands."""

    namespace: str | None
    """None when the output has no NAMESPACE column (``-n NS`` rather than ``-A``)."""
    pod: str
    container: str | None
    """None without ``--containers`` (then the figures are the pod's sums)."""
    cpu_nanocores: int | None
    memory_bytes: int | None


@dataclass(slots=True)
class NodeUsage:
    """One line of ``kubectl top node``."""

    node: str
    cpu_nanocores: int | None
    memory_bytes: int | None
    cpu_percent: int | None
    """Of the node's allocatable, as kubectl computes it (truncated)."""
    memory_percent: int | None


# --- units (pure) ---------------------------------------------------------------------------------

def cpu_nanocores(text: str) -> int | None:
    """A CPU figure in nanocores (``250m`` -> 250000000, ``0.5`` -> 500000000, ``123n`` -> 123),
    None for ``<unknown>``; ``ValueError`` (a :class:`QuantityError`) for anything else."""
    if text[-1:] == "m":
        digits = text[:-1]
        if digits.isascii() and digits.isdigit():
            return int(digits) * _NANO_PER_MILLI
    if text == UNKNOWN:
        return None
    if _CPU_TEXT.fullmatch(text) is None:
        raise QuantityError("not a CPU figure", value=text, valid=VALID_CPU)
    return int(parse_quantity(text).value * 10**9)


def memory_bytes(text: str) -> int | None:
    """A memory figure in bytes (``149Mi``, ``12345Ki``, ``1G``, ``1024``), rounded up to a whole
    byte; None for ``<unknown>``; ``ValueError`` (a :class:`QuantityError`) for anything else."""
    if text[-2:] == "Mi":
        digits = text[:-2]
        if digits.isascii() and digits.isdigit():
            return int(digits) * _MIB
    if text == UNKNOWN:
        return None
    if _MEMORY_TEXT.fullmatch(text) is None:
        raise QuantityError("not a memory figure", value=text, valid=VALID_MEMORY)
    # apimachinery spells kilo "k"; "K" is the unit people (and the issue) write
    return parse_quantity(text[:-1] + "k" if text[-1] == "K" else text).int_value()


def _percent(text: str) -> int | None:
    if text == UNKNOWN:
        return None
    if _PERCENT_TEXT.fullmatch(text) is None:
        raise QuantityError("not a percentage", value=text, valid=VALID_PERCENT)
    return int(text[:-1])


# --- layouts (pure) -------------------------------------------------------------------------------

def pod_columns(*, containers: bool, all_namespaces: bool, swap: bool = False) -> tuple[str, ...]:
    """The column names of ``kubectl top pod`` with these flags (metrics_printer's PrintPodMetrics:
    NAMESPACE with ``-A``, POD with ``--containers``, then NAME CPU(cores) MEMORY(bytes))."""
    return ((("NAMESPACE",) if all_namespaces else ()) + (("POD",) if containers else ())
            + ("NAME", "CPU(cores)", "MEMORY(bytes)") + (("SWAP(bytes)",) if swap else ()))


def node_columns(*, swap: bool = False) -> tuple[str, ...]:
    """The column names of ``kubectl top node`` as kubectl 1.32 spells them (the older ``CPU%`` and
    ``MEMORY%`` are accepted in a header too: :data:`NODE_PERCENT_HEADERS`)."""
    return ("NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)") + (
        ("SWAP(bytes)", "SWAP(%)") if swap else ())


def _fast_pod_line(*, containers: bool, all_namespaces: bool) -> re.Pattern[str]:
    """A pattern for a whole line in kubectl's own units whose five groups are namespace, pod,
    container, millicores and MiB (a column the layout lacks: an empty group, read as None)."""
    label, subdomain, gap, absent = _DNS_LABEL.pattern, _DNS_SUBDOMAIN.pattern, r"[ \t]+", "()?"
    names = (f"({label}){gap}" if all_namespaces else absent) + f"({subdomain})" + (
        f"{gap}({label})" if containers else absent)
    return re.compile(rf"[ \t]*{names}{gap}([0-9]+)m{gap}([0-9]+)Mi[ \t]*")


def _is_header(tokens: list[str]) -> bool:
    return bool(tokens) and tokens[0] in ("NAME", "NAMESPACE", "POD")


def _check_header(tokens: list[str], expected: tuple[str, ...], *, source: str, line: int,
                  alternatives: Mapping[int, tuple[str, ...]] | None = None) -> None:
    """A header must be the layout's (any known spelling of each percentage column)."""
    ok = len(tokens) == len(expected) and all(
        t == e or (alternatives is not None and t in alternatives.get(i, ())) for i, (t, e) in
        enumerate(zip(tokens, expected)))
    if not ok:
        raise TopParseError("the header does not match the columns expected for these flags", file=source,
                            obj=f"line {line}", value=" ".join(tokens), valid="expected " + " ".join(expected))


def _name(text: str, pattern: re.Pattern[str], limit: int, valid: str, *, source: str, line: int,
          column: int, header: str) -> str:
    if len(text) > limit or pattern.fullmatch(text) is None:
        raise TopParseError("not a Kubernetes name", file=source, obj=f"line {line}",
                            field=f"column {column} ({header})", value=text, valid=valid)
    return text


def _figure(reader: Callable[[str], int | None], text: str, *, source: str, line: int, column: int, header: str) -> int | None:
    try:
        return reader(text)
    except QuantityError as e:
        raise TopParseError(e.problem, file=source, obj=f"line {line}", field=f"column {column} ({header})",
                            value=text, valid=e.valid) from None


def _bad_width(tokens: list[str], expected: tuple[str, ...], *, source: str, line: int) -> TopParseError:
    return TopParseError(f"{len(tokens)} columns where {len(expected)} were expected", file=source,
                         obj=f"line {line}", value=" ".join(tokens), valid="expected " + " ".join(expected))


# --- the parsers (pure) ---------------------------------------------------------------------------

def parse_top_pods(text: str, *, containers: bool, all_namespaces: bool, source: str,
                   swap: bool = False) -> list[PodUsage]:
    """The lines of ``kubectl top pod`` output made with these flags (``--containers``, ``-A``,
    ``--show-swap``), with or without its header. ``source`` names the output in errors (the
    command, or a file). Blank lines are skipped; a swap figure is checked but not kept."""
    expected = pod_columns(containers=containers, all_namespaces=all_namespaces, swap=swap)
    width = len(expected)
    ns_col = 0 if all_namespaces else None
    pod_col = (1 if all_namespaces else 0) if containers else None
    name_col = width - (4 if swap else 3)
    cpu_col, mem_col = name_col + 1, name_col + 2
    out: list[PodUsage] = []
    append = out.append
    label, subdomain = _DNS_LABEL.fullmatch, _DNS_SUBDOMAIN.fullmatch
    # one match per line for kubectl's own spellings (``93m``, ``148Mi``); any other line takes
    # the column-by-column path below, which reads other units or names the bad column
    fast = None if swap else _fast_pod_line(containers=containers, all_namespaces=all_namespaces).fullmatch
    mib, milli = _MIB, _NANO_PER_MILLI
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        m = fast(raw) if fast is not None else None
        if m is not None:
            namespace, pod, container, cpu_text, mem_text = m.groups()
            if len(pod) <= 253:
                first = False
                append(PodUsage(namespace or None, pod, container or None, int(cpu_text) * milli,
                                int(mem_text) * mib))
                continue
        tokens = raw.split()
        if not tokens:
            continue
        if first:
            first = False
            if _is_header(tokens):
                _check_header(tokens, expected, source=source, line=number)
                continue
        if len(tokens) != width:
            raise _bad_width(tokens, expected, source=source, line=number)
        namespace = pod = container = None
        if ns_col is not None:
            namespace = tokens[0]
            if label(namespace) is None:
                _name(namespace, _DNS_LABEL, 63, VALID_LABEL, source=source, line=number, column=1,
                      header="NAMESPACE")
        name = tokens[name_col]
        if pod_col is not None:
            pod, container = tokens[pod_col], name
            if len(pod) > 253 or subdomain(pod) is None:
                _name(pod, _DNS_SUBDOMAIN, 253, VALID_SUBDOMAIN, source=source, line=number, column=pod_col + 1,
                      header="POD")
            if label(container) is None:
                _name(container, _DNS_LABEL, 63, VALID_LABEL, source=source, line=number, column=name_col + 1,
                      header="NAME")
        else:
            pod = name
            if len(pod) > 253 or subdomain(pod) is None:
                _name(pod, _DNS_SUBDOMAIN, 253, VALID_SUBDOMAIN, source=source, line=number, column=name_col + 1,
                      header="NAME")
        cpu_text, mem_text = tokens[cpu_col], tokens[mem_col]
        # the fast path of kubectl's own spellings; anything else goes through the checked readers
        if cpu_text[-1] == "m" and cpu_text[:-1].isascii() and cpu_text[:-1].isdigit():
            cpu: int | None = int(cpu_text[:-1]) * _NANO_PER_MILLI
        else:
            cpu = _figure(cpu_nanocores, cpu_text, source=source, line=number, column=cpu_col + 1,
                          header="CPU(cores)")
        if mem_text[-2:] == "Mi" and mem_text[:-2].isascii() and mem_text[:-2].isdigit():
            mem: int | None = int(mem_text[:-2]) * _MIB
        else:
            mem = _figure(memory_bytes, mem_text, source=source, line=number, column=mem_col + 1,
                          header="MEMORY(bytes)")
        if swap:
            _figure(memory_bytes, tokens[mem_col + 1], source=source, line=number, column=mem_col + 2,
                    header="SWAP(bytes)")
        append(PodUsage(namespace, pod, container, cpu, mem))
    return out


def parse_top_nodes(text: str, *, source: str, swap: bool = False) -> list[NodeUsage]:
    """The lines of ``kubectl top node`` output (``--show-swap`` adds two columns), with or without
    its header (either spelling of the percentage columns).

    kubectl prints a percentage only where it knows the node's allocatable (metrics_printer's
    printAllResourceUsages), so a node deleted between its two reads has no percentage columns
    (3 columns) and, with ``--show-swap``, a node without swap capacity has no ``SWAP(%)`` (6)."""
    expected = node_columns(swap=swap)
    alternatives = {2: NODE_PERCENT_HEADERS["cpu"], 4: NODE_PERCENT_HEADERS["memory"],
                    6: NODE_PERCENT_HEADERS["swap"]}
    # width -> the positions of (cpu, cpu %, memory, memory %, swap, swap %); None: not printed
    layouts: dict[int, tuple[int | None, ...]] = (
        {7: (1, 2, 3, 4, 5, 6), 6: (1, 2, 3, 4, 5, None), 4: (1, None, 2, None, 3, None)} if swap
        else {5: (1, 2, 3, 4, None, None), 3: (1, None, 2, None, None, None)})
    out: list[NodeUsage] = []
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        if first:
            first = False
            if _is_header(tokens):
                _check_header(tokens, expected, source=source, line=number, alternatives=alternatives)
                continue
        layout = layouts.get(len(tokens))
        if layout is None:
            raise _bad_width(tokens, expected, source=source, line=number)
        node = _name(tokens[0], _DNS_SUBDOMAIN, 253, VALID_SUBDOMAIN, source=source, line=number, column=1,
                     header="NAME")
        figures: list[int | None] = []
        for kind, position in enumerate(layout):
            if position is None:
                figures.append(None)
                continue
            reader = (cpu_nanocores, _percent, memory_bytes, _percent, memory_bytes, _percent)[kind]
            header = ("CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)", "SWAP(bytes)", "SWAP(%)")[kind]
            figures.append(_figure(reader, tokens[position], source=source, line=number, column=position + 1,
                                   header=header))
        out.append(NodeUsage(node, figures[0], figures[2], figures[1], figures[3]))
    return out
