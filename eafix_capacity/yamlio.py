"""Reading the kit's YAML data files with errors that name the file and line.

Every YAML file the kit reads for itself (services, profiles, plan parameters) goes
through ``load_yaml_file`` or ``load_yaml_text``, which parse with ``PyLimitedSafeLoader``
(``LimitedSafeLoader`` is the same on libyaml's parser, for large manifest sets):
``yaml.safe_load``'s documents with two limits PyYAML does not have.

- Alias expansion. An alias is a reference, so a "billion laughs" file of a few hundred
  bytes is a small graph that expands to 10^9 nodes the moment anything walks it (a
  validator, ``repr`` in an error message, ``json.dumps``). Before a document is
  constructed its node graph is measured without expanding it, and a document whose
  aliases add more than ``MAX_ALIAS_NODES`` nodes (or whose alias refers to a node that
  contains it) is refused. Kubernetes met the same attack as CVE-2019-11253 and relies
  on go-yaml's check (decode.go ``unmarshal``: "document contains excessive aliasing");
  the kit's data files need no more than a few shared blocks, so the bound here is a
  plain count, smaller than go-yaml's ratio allows.
- Nesting. libyaml refuses more than 1000 levels; PyYAML's pure-Python parser and
  constructor recurse instead, so a deep file raised ``RecursionError``, and even a
  document libyaml accepts can be too deep for code that walks it recursively. A
  document nested more than ``MAX_DEPTH`` levels is refused, and a ``RecursionError``
  while parsing becomes the same one-line ``InputError`` naming the file.

``LimitedSafeLoader`` (and ``check_alias_expansion`` for a loader with its own
``construct_document``) is meant for every YAML read of the kit, manifests included.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

MAX_ALIAS_NODES = 10_000
"""Most nodes the aliases of one document may add when expanded."""
MAX_DEPTH = 100
"""Deepest nesting a document may have (the kit's data files nest about 6 levels;
Python code that walks a value recursively needs it far below the recursion limit)."""

_CBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AliasExpansionError(yaml.YAMLError):
    """A document whose aliases expand too far (or into themselves)."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def check_alias_expansion(root: yaml.Node, *, limit: int = MAX_ALIAS_NODES,
                          max_depth: int = MAX_DEPTH) -> int:
    """The number of nodes ``root`` expands to, counting each alias as the whole node
    it refers to. Raises ``AliasExpansionError`` when aliases add more than ``limit``
    nodes, when an alias refers to a node that contains it, or when the expanded
    document nests more than ``max_depth`` levels.

    Walks the graph once, iteratively (no recursion, whatever the depth), with each
    node's expanded size and height remembered, so a billion-laughs document costs its
    own size, not its expansion.
    """
    sizes: dict[int, tuple[int, int]] = {}   # id(node) -> (expanded nodes, height)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            below = [sizes[id(c)] for c in children]
            height = 1 + max((h for _, h in below), default=0)
            if height > max_depth:
                raise AliasExpansionError(f"nested more than {max_depth} levels deep", node.start_mark)
            sizes[key] = (1 + sum(n for n, _ in below), height)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise AliasExpansionError("an alias refers to a node that contains it "
                                      "(a recursive structure)", node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    total, distinct = sizes[id(root)][0], len(sizes)
    if total - distinct > limit:
        raise AliasExpansionError(
            f"aliases expand the document to {_count(total)} nodes from {distinct:,} written; "
            f"at most {limit:,} nodes may come from aliases (a YAML bomb?)", None)
    return total


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


class LimitedSafeLoader(_CBase):
    """``yaml.safe_load``'s loader (libyaml's when available) that refuses documents whose
    aliases expand beyond ``max_alias_nodes``. Subclass it to change the limit or to add
    checks of your own in ``construct_mapping``."""

    max_alias_nodes: int = MAX_ALIAS_NODES
    max_depth: int = MAX_DEPTH

    def construct_document(self, node: yaml.Node) -> Any:
        check_alias_expansion(node, limit=self.max_alias_nodes, max_depth=self.max_depth)
        return super().construct_document(node)


class PyLimitedSafeLoader(yaml.SafeLoader):
    """The same limits on PyYAML's pure-Python loader (used when libyaml is missing).
    Its composer recurses once per level, so the depth is counted there too: a deep file
    is refused at ``max_depth`` instead of at Python's recursion limit."""

    max_alias_nodes: int = MAX_ALIAS_NODES
    max_depth: int = MAX_DEPTH

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise AliasExpansionError(f"nested more than {self.max_depth} levels deep",
                                          self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        check_alias_expansion(node, limit=self.max_alias_nodes, max_depth=self.max_depth)
        return super().construct_document(node)


def yaml_error_text(e: yaml.YAMLError) -> str:
    """``line L, column C: invalid YAML (<problem>)`` for a PyYAML error."""
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e)
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and start and (not mark or start.line != mark.line):
        # an unclosed bracket or quote is found at the end; say where it was opened
        problem += f"; {context} at line {start.line + 1}, column {start.column + 1}"
    return f"{where}invalid YAML ({problem})"


def load_yaml_text(text: str, *, file: str, loader: type | None = None) -> Any:
    """Parse one YAML document (``yaml.safe_load``'s result) with the kit's limits;
    every failure is an ``InputError`` naming ``file``. The default loader is PyYAML's
    pure-Python one, as ``yaml.safe_load`` uses: its messages are more precise than
    libyaml's, and the kit's data files are small; pass ``LimitedSafeLoader`` for speed."""
    try:
        return yaml.load(text, Loader=loader or PyLimitedSafeLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        raise InputError(yaml_error_text(e), file=file) from e
    except RecursionError as e:
        # PyYAML's pure-Python parser and constructor recurse once per level
        raise InputError("invalid YAML (nested too deeply to read)", file=file,
                         valid=f"a document nested at most {MAX_DEPTH} levels deep") from e


def load_yaml_file(path: str | Path) -> Any:
    """Parse one YAML file (see ``load_yaml_text``); errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError("file not found", file=str(p)) from e
    except IsADirectoryError as e:
        raise InputError("cannot read file (it is a directory)", file=str(p)) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read file ({e})", file=str(p)) from e
    return load_yaml_text(text, file=str(p))
