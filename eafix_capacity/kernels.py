"""How the kit starts notebook kernels: which kernel, and with an encrypted transport.

Which kernel: the ``eafix-capacity`` kernelspec that ``make install`` (and ``make
kernel-user``) registers, but only when it runs this interpreter; a kernelspec left by
another checkout's venv would run another copy of the kit, so then ipykernel's own
``python3`` (this interpreter) is used instead.

Encryption: ipykernel 7 logs "Kernel is running over TCP without encryption" at every start
unless the kernel manager provisioned CurveZMQ keys. jupyter_client 8.10 provisions them
only when asked (``KernelManager.transport_encryption``, default ``"disabled"``) and the
kernelspec declares ``supported_encryption: ["curve"]``, which ipykernel writes. So the kit
asks, through the traitlets config that papermill hands to nbclient and nbclient to the
kernel manager; older jupyter_client and ipykernel neither encrypt nor warn.
``make notebooks`` re-executes the committed notebooks through here too
(``python -m eafix_capacity.kernels NOTEBOOK...``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the notebooks extra: imported only when a kernel starts
    from traitlets.config import Config

KERNEL_NAME = "eafix-capacity"
FALLBACK_KERNEL = "python3"


def runs_interpreter(argv: list[str], executable: str) -> bool:
    """Whether a kernelspec's command line starts ``executable`` (paths compared unresolved:
    every venv's python is a link to the same base interpreter)."""
    return bool(argv) and os.path.abspath(argv[0]) == os.path.abspath(executable)


def kernel_name(executable: str = sys.executable) -> str:
    """The registered kernel when it runs ``executable``, else ipykernel's own."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        return FALLBACK_KERNEL
    return KERNEL_NAME if runs_interpreter(list(spec.argv), executable) else FALLBACK_KERNEL


def kernel_config() -> Config:
    """Traitlets config for nbclient's kernel manager: CurveZMQ keys when supported."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config
    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


def rerun_in_place(notebooks: list[Path], *, kernel: str = KERNEL_NAME) -> None:
    """Re-execute committed notebooks in place with their default parameters, each with its
    own directory as the working directory (what ``make notebooks`` does)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    for nb in notebooks:
        try:
            pm.execute_notebook(str(nb), str(nb), kernel_name=kernel, cwd=str(nb.parent),
                                progress_bar=False, config=kernel_config())
        except PapermillExecutionError as e:
            raise SystemExit(f"{nb}: cell {e.exec_count} failed: {e.ename}: {e.evalue}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m eafix_capacity.kernels NOTEBOOK...", file=sys.stderr)
        return 2
    rerun_in_place([Path(a) for a in args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
