"""``python -m eafix_capacity.sim sim up ...`` (also accepts ``up ...`` directly)."""
from __future__ import annotations

import sys

try:
    from eafix_capacity.sim.cli import main
except KeyboardInterrupt:  # Ctrl-C while the imports run: the same quiet exit as during start-up
    sys.exit(130)

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv if argv[:1] == ["sim"] else ["sim", *argv]))
