"""Parsing ``kubectl top`` output: every recorded kubectl printer, units, headers and every malformed column.

``tests/data/kubectl-top/v1.32.4`` is what the real kubectl 1.32.4 on this machine printed
against the sim (with the PodMetrics JSON read at the same sim time); ``legacy``,
``cpu-percent`` and ``show-swap`` are the same figures in the layouts of older and newer
printers (see ``render_printers.py`` there for each revision).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eafix_capacity.usage.metricsapi import parse_pod_metrics
from eafix_capacity.usage.topparse import (NodeUsage, PodUsage, TopParseError, cpu_nanocores, memory_bytes,
                                           parse_top_nodes, parse_top_pods)

DATA = Path(__file__).resolve().parent.parent / "data" / "kubectl-top"
MI = 2**20


def _read(rel: str) -> str:
    return (DATA / rel).read_text()


def _pods(rel: str, *, all_namespaces: bool = True, swap: bool = False) -> list[PodUsage]:
    return parse_top_pods(_read(rel), containers=True, all_namespaces=all_namespaces, source=rel, swap=swap)


# --- the recorded versions ------------------------------------------------------------------------

def test_kubectl_1_32_pod_containers_reads_every_line_with_its_units() -> None:
    lines = _pods("v1.32.4/pod-containers-A.txt")
    assert len(lines) == len(_read("v1.32.4/pod-containers-A.txt").splitlines()) - 1   # the header is skipped
    first = lines[0]
    assert first == PodUsage("eafix-trading", first.pod, "data-ingestor", 229 * 10**6, 591 * MI)
    assert first.pod.startswith("data-ingestor-")
    assert {u.namespace for u in lines} == {"eafix-trading", "kube-system"}
    assert all(u.cpu_nanocores is not None and u.memory_bytes is not None for u in lines)


@pytest.mark.parametrize("rel", ["v1.32.4/pod-containers-A.no-headers.txt", "legacy/pod-containers-A.txt",
                                 "cpu-percent/pod-containers-A.txt", "cpu-percent/pod-containers-A.no-headers.txt"])
def test_every_recorded_printer_gives_the_same_pod_figures(rel: str) -> None:
    assert _pods(rel) == _pods("v1.32.4/pod-containers-A.txt")


def test_show_swap_pod_output_reads_with_its_extra_column() -> None:
    assert _pods("show-swap/pod-containers-A.show-swap.txt", swap=True) == _pods("v1.32.4/pod-containers-A.txt")


@pytest.mark.parametrize("rel", ["v1.32.4/pod-containers-n.txt", "v1.32.4/pod-containers-n.no-headers.txt",
                                 "legacy/pod-containers-n.txt"])
def test_without_the_namespace_column(rel: str) -> None:
    lines = _pods(rel, all_namespaces=False)
    assert len(lines) == 5 and all(u.namespace is None for u in lines)
    trading = [(u.pod, u.container, u.cpu_nanocores, u.memory_bytes) for u in _pods("v1.32.4/pod-containers-A.txt")
               if u.namespace == "eafix-trading"]
    assert [(u.pod, u.container, u.cpu_nanocores, u.memory_bytes) for u in lines] == trading


def test_pod_sums_without_containers() -> None:
    lines = parse_top_pods(_read("v1.32.4/pod-A.txt"), containers=False, all_namespaces=True, source="pod-A.txt")
    by_container: dict[tuple[str | None, str], tuple[int, int]] = {}
    for u in _pods("v1.32.4/pod-containers-A.txt"):
        cpu, mem = by_container.get((u.namespace, u.pod), (0, 0))
        by_container[(u.namespace, u.pod)] = (cpu + (u.cpu_nanocores or 0), mem + (u.memory_bytes or 0))
    assert all(u.container is None for u in lines)
    assert {(u.namespace, u.pod) for u in lines} == set(by_container)
    for u in lines:   # kubectl sums the exact figures, then rounds: within one unit of the rounded sum
        cpu, mem = by_container[(u.namespace, u.pod)]
        assert u.cpu_nanocores is not None and u.memory_bytes is not None
        assert abs(u.cpu_nanocores - cpu) <= 2 * 10**6 and abs(u.memory_bytes - mem) <= 2 * MI
    no_ns = parse_top_pods(_read("v1.32.4/pod-n.no-headers.txt"), containers=False, all_namespaces=False,
                           source="pod-n")
    assert [u.pod for u in no_ns] == [u.pod for u in lines if u.namespace == "eafix-trading"]


def test_kubectl_rounds_the_metrics_api_figures_as_its_printer_does() -> None:
    """The PodMetrics read at the same sim time: CPU is MilliValue (rounded up), memory Value / 2**20."""
    api, _ = parse_pod_metrics(json.loads(_read("v1.32.4/podmetrics-eafix-trading.json")), source="podmetrics")
    top = {(u.pod, u.container): u for u in _pods("v1.32.4/pod-containers-n.txt", all_namespaces=False)}
    assert len(api) == len(top) == 5
    for u in api:
        assert u.cpu_nanocores is not None and u.memory_bytes is not None
        shown = top[(u.pod, u.container)]
        assert shown.cpu_nanocores == math.ceil(u.cpu_nanocores / 10**6) * 10**6
        assert shown.memory_bytes == u.memory_bytes // MI * MI


@pytest.mark.parametrize("rel,swap", [("v1.32.4/node.txt", False), ("v1.32.4/node.no-headers.txt", False),
                                      ("legacy/node.txt", False)])
def test_node_output_of_each_printer(rel: str, swap: bool) -> None:
    nodes = parse_top_nodes(_read(rel), source=rel, swap=swap)
    assert nodes[0] == NodeUsage("sim-n2-standard-8-0", 463 * 10**6, 1656 * MI, 5, 5)
    assert len(nodes) == (2 if rel.startswith("legacy") else 3)


@pytest.mark.parametrize("rel,swap", [("v1.32.4/node.unreachable.txt", False),
                                      ("cpu-percent/node.unreachable.txt", False),
                                      ("cpu-percent/node.unreachable.no-headers.txt", False),
                                      ("show-swap/node.unreachable.show-swap.txt", True),
                                      ("show-swap/node.unreachable.show-swap.no-headers.txt", True)])
def test_a_node_without_metrics_is_unknown_not_zero(rel: str, swap: bool) -> None:
    nodes = parse_top_nodes(_read(rel), source=rel, swap=swap)
    assert nodes[1] == NodeUsage("sim-n2-standard-8-1", 342 * 10**6, 1180 * MI, 4, 4)
    assert nodes[2] == NodeUsage("sim-n2-standard-8-2", None, None, None, None)


def test_node_lines_without_percentages() -> None:
    # a node deleted between kubectl's two reads: no allocatable, so no percentage cells
    assert parse_top_nodes("gone-node   12m   34Mi\n", source="x") == [NodeUsage("gone-node", 12 * 10**6, 34 * MI,
                                                                                   None, None)]


def test_unknown_pod_figures_are_missing_not_zero() -> None:
    assert parse_top_pods("shop   web-1   app   <unknown>   <unknown>\n", containers=True, all_namespaces=True,
                          source="x") == [PodUsage("shop", "web-1", "app", None, None)]


def test_header_only_and_blank_lines() -> None:
    assert parse_top_pods("NAME   CPU(cores)   MEMORY(bytes)\n\n", containers=False, all_namespaces=False,
                          source="x") == []
    assert parse_top_nodes("\n\n", source="x") == []


def test_a_header_that_does_not_match_the_flags_is_refused() -> None:
    with pytest.raises(TopParseError) as e:
        _pods("v1.32.4/pod-containers-A.txt", all_namespaces=False)
    assert str(e.value) == ("v1.32.4/pod-containers-A.txt: line 1: the header does not match the columns expected "
                            "for these flags 'NAMESPACE POD NAME CPU(cores) MEMORY(bytes)'; expected POD NAME "
                            "CPU(cores) MEMORY(bytes)")
    with pytest.raises(TopParseError, match="expected NAME CPU.cores. CPU.%. MEMORY.bytes. MEMORY.%. SWAP"):
        parse_top_nodes(_read("v1.32.4/node.txt"), source="node", swap=True)


# --- units ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,nanocores", [("250m", 250 * 10**6), ("0m", 0), ("1", 10**9), ("0.5", 5 * 10**8),
                                            ("2.25", 2_250_000_000), ("1500u", 1_500_000), ("123456789n", 123456789),
                                            ("1.5m", 1_500_000), ("<unknown>", None)])
def test_cpu_units(text: str, nanocores: int | None) -> None:
    assert cpu_nanocores(text) == nanocores


@pytest.mark.parametrize("text,nbytes", [("149Mi", 149 * MI), ("12345Ki", 12345 * 1024), ("2Gi", 2 * 2**30),
                                         ("1Ti", 2**40), ("1K", 1000), ("1k", 1000), ("3M", 3 * 10**6),
                                         ("4G", 4 * 10**9), ("1T", 10**12), ("1024", 1024), ("1.5Ki", 1536),
                                         ("0.5", 1), ("<unknown>", None)])
def test_memory_units(text: str, nbytes: int | None) -> None:
    assert memory_bytes(text) == nbytes


# --- malformed lines: each column ---------------------------------------------------------------

GOOD_A = "eafix-trading   risk-manager-6bffc5666-5djxk   risk-manager   93m   148Mi"


@pytest.mark.parametrize("column,bad,problem", [
    (1, "Eafix_Trading", "not a Kubernetes name"),
    (2, "risk-manager-", "not a Kubernetes name"),
    (3, "risk.manager", "not a Kubernetes name"),
    (4, "93x", "not a CPU figure"),
    (4, "m", "not a CPU figure"),
    (4, "-5m", "not a CPU figure"),
    (4, "1e3", "not a CPU figure"),
    (4, "93Mi", "not a CPU figure"),
    (5, "148MB", "not a memory figure"),
    (5, "Mi", "not a memory figure"),
    (5, "12%", "not a memory figure"),
    (5, "-1Mi", "not a memory figure"),
])
def test_each_malformed_pod_column_names_line_column_value_and_what_is_valid(column: int, bad: str,
                                                                              problem: str) -> None:
    cells = GOOD_A.split()
    cells[column - 1] = bad
    text = GOOD_A + "\n" + "   ".join(cells) + "\n"
    headers = ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    with pytest.raises(TopParseError) as e:
        parse_top_pods(text, containers=True, all_namespaces=True, source="kubectl top pod --containers -A")
    message = str(e.value)
    assert message.startswith(f"kubectl top pod --containers -A: line 2: column {column} ({headers[column - 1]}): "
                              f"{problem} {bad!r}; ")
    assert "\n" not in message
    valid = {1: "DNS-1123 label", 2: "DNS-1123 subdomain", 3: "DNS-1123 label", 4: "m (millicores",
             5: "Ki Mi Gi Ti"}[column]
    assert valid in message


@pytest.mark.parametrize("line,count", [("eafix-trading   pod-a   app   93m", 4),
                                        ("eafix-trading   pod-a   app   93m   148Mi   extra", 6)])
def test_a_line_with_too_few_or_too_many_columns(line: str, count: int) -> None:
    with pytest.raises(TopParseError) as e:
        parse_top_pods(GOOD_A + "\n\n" + line, containers=True, all_namespaces=True, source="top.txt")
    assert str(e.value) == (f"top.txt: line 3: {count} columns where 5 were expected {' '.join(line.split())!r}; "
                            "expected NAMESPACE POD NAME CPU(cores) MEMORY(bytes)")


GOOD_NODE = "sim-n2-standard-8-0   463m   5%   1656Mi   5%"


@pytest.mark.parametrize("column,bad,header,problem", [
    (1, "Node_0", "NAME", "not a Kubernetes name"),
    (2, "463", None, None),   # plain cores are valid: 463 cores
    (2, "4.6.3", "CPU(cores)", "not a CPU figure"),
    (3, "5", "CPU(%)", "not a percentage"),
    (3, "five%", "CPU(%)", "not a percentage"),
    (4, "1656MiB", "MEMORY(bytes)", "not a memory figure"),
    (5, "5.5%", "MEMORY(%)", "not a percentage"),
])
def test_each_malformed_node_column(column: int, bad: str, header: str | None, problem: str | None) -> None:
    cells = GOOD_NODE.split()
    cells[column - 1] = bad
    text = "   ".join(cells)
    if header is None:
        assert parse_top_nodes(text, source="x")[0].cpu_nanocores == 463 * 10**9
        return
    with pytest.raises(TopParseError) as e:
        parse_top_nodes(text, source="kubectl top node")
    assert str(e.value).startswith(f"kubectl top node: line 1: column {column} ({header}): {problem} {bad!r}; ")


def test_a_swap_figure_is_checked_too() -> None:
    with pytest.raises(TopParseError, match=r"line 1: column 6 \(SWAP\(bytes\)\): not a memory figure 'lots'"):
        parse_top_pods("ns   pod   app   1m   1Mi   lots", containers=True, all_namespaces=True, source="s", swap=True)


# --- volume ---------------------------------------------------------------------------------------

def test_ten_thousand_lines_parse_to_ten_thousand_records() -> None:
    lines = [f"ns-{i % 7}   pod-{i}   app-{i % 3}   {i % 997}m   {i % 4093}Mi" for i in range(10_000)]
    parsed = parse_top_pods("\n".join(lines), containers=True, all_namespaces=True, source="bulk")
    assert len(parsed) == 10_000
    assert sum(u.cpu_nanocores or 0 for u in parsed) == sum(i % 997 for i in range(10_000)) * 10**6
    assert sum(u.memory_bytes or 0 for u in parsed) == sum(i % 4093 for i in range(10_000)) * MI
    assert parsed[9_999] == PodUsage("ns-3", "pod-9999", "app-0", 9999 % 997 * 10**6, 9999 % 4093 * MI)
