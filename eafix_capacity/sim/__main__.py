"""``python -m eafix_capacity.sim sim up ...`` (also accepts ``up ...`` directly)."""
from __future__ import annotations

import sys

from eafix_capacity.sim.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv if argv[:1] == ["sim"] else ["sim", *argv]))
