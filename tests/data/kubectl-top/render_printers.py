"""Re-render the figures kubectl 1.32.4 printed (v1.32.4/) in the layouts of the other printers.

Only kubectl 1.32.4 runs on this machine; the other directories hold the same figures as the
printer of each revision writes them (column names, the cells of a node without metrics, the
tabwriter's minimum width and padding), transcribed from its metrics_printer.go:

- legacy/: kubernetes/kubernetes pkg/kubectl/metricsutil/metrics_printer.go at 0fe831c3
  (metrics v1alpha1): the header is always printed (no --no-headers yet), NodeColumns
  ``CPU%``/``MEMORY%``, pkg/printers' tabwriter (min width 10, padding 3).
- cpu-percent/: kubernetes/kubectl pkg/metricsutil/metrics_printer.go (the Angus-F/kubectl
  mirror, 1c7b709f): --no-headers and --sort-by, ``CPU%``/``MEMORY%``, a node without metrics
  printed as ``<unknown>\\t\\t\\t<unknown>\\t\\t\\t`` per resource (empty cells between),
  cli-runtime's tabwriter (min width 6, padding 3).
- show-swap/: kubernetes/kubernetes staging/src/k8s.io/kubectl/pkg/metricsutil/metrics_printer.go
  at 008b3652 (after PR #129458, kubectl --show-swap): ``CPU(%)``/``MEMORY(%)`` plus
  ``SWAP(bytes)`` (pods and nodes) and ``SWAP(%)`` (nodes; left out where the node reports no
  swap capacity).

Run from the checkout: ``.venv/bin/python tests/data/kubectl-top/render_printers.py``.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def tabwrite(rows: list[list[str]], *, minwidth: int, padding: int = 3) -> str:
    """Go's text/tabwriter for rows whose every cell ends in a tab (as printValue writes them)."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n" for row in rows)


def table(name: str) -> list[list[str]]:
    return [line.split() for line in (HERE / "v1.32.4" / name).read_text().splitlines() if line.strip()]


def render() -> None:
    pods_a, pods_n, nodes = table("pod-containers-A.txt"), table("pod-containers-n.txt"), table("node.unreachable.txt")
    old_node_header = ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]

    legacy = HERE / "legacy"
    legacy.mkdir(exist_ok=True)
    (legacy / "pod-containers-A.txt").write_text(tabwrite(pods_a, minwidth=10))
    (legacy / "pod-containers-n.txt").write_text(tabwrite(pods_n, minwidth=10))
    # that printer had no line for a node without metrics: the node is left out
    measured = [r for r in nodes[1:] if "<unknown>" not in r]
    (legacy / "node.txt").write_text(tabwrite([old_node_header] + measured, minwidth=10))

    cpu_percent = HERE / "cpu-percent"
    cpu_percent.mkdir(exist_ok=True)
    (cpu_percent / "pod-containers-A.txt").write_text(tabwrite(pods_a, minwidth=6))
    (cpu_percent / "pod-containers-A.no-headers.txt").write_text(tabwrite(pods_a[1:], minwidth=6))
    rows = [old_node_header] + [
        r if "<unknown>" not in r else [r[0], "<unknown>", "", "", "<unknown>", "", "", "<unknown>", "", "",
                                         "<unknown>", "", ""] for r in nodes[1:]]
    (cpu_percent / "node.unreachable.txt").write_text(tabwrite(rows, minwidth=6))
    (cpu_percent / "node.unreachable.no-headers.txt").write_text(tabwrite(rows[1:], minwidth=6))

    swap = HERE / "show-swap"
    swap.mkdir(exist_ok=True)
    (swap / "pod-containers-A.show-swap.txt").write_text(
        tabwrite([pods_a[0] + ["SWAP(bytes)"]] + [r + ["0Mi"] for r in pods_a[1:]], minwidth=6))
    rows = [nodes[0] + ["SWAP(bytes)", "SWAP(%)"]]
    for r in nodes[1:]:
        rows.append(r + ["<unknown>", "<unknown>"] if "<unknown>" in r else r + ["0Mi"])  # no swap capacity: no %
    (swap / "node.unreachable.show-swap.txt").write_text(tabwrite(rows, minwidth=6))
    (swap / "node.unreachable.show-swap.no-headers.txt").write_text(tabwrite(rows[1:], minwidth=6))


if __name__ == "__main__":
    render()
