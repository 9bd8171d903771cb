"""Reading the kit's YAML data files with errors that name the file and line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


def load_yaml_file(path: str | Path) -> Any:
    """Parse one YAML document with ``yaml.safe_load``; errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError("file not found", file=str(p)) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read file ({e})", file=str(p)) from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start and (not mark or start.line != mark.line):
            # an unclosed bracket or quote is found at the end; say where it was opened
            problem += f"; {context} at line {start.line + 1}, column {start.column + 1}"
        raise InputError(f"{where}invalid YAML ({problem})", file=str(p)) from e
