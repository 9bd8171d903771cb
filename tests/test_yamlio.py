"""The kit's YAML reader: billion laughs, recursive aliases and deep nesting are one-line
``InputError``s naming the file, with libyaml's loader and with PyYAML's pure-Python one."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eafix_capacity.errors import InputError
from eafix_capacity.yamlio import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    AliasExpansionError,
    LimitedSafeLoader,
    PyLimitedSafeLoader,
    check_alias_expansion,
    load_yaml_file,
    load_yaml_text,
)

LOADERS = [pytest.param(LimitedSafeLoader, id="libyaml"), pytest.param(PyLimitedSafeLoader, id="python")]


def laughs(levels: int = 9, fanout: int = 9) -> str:
    """The billion laughs: each level lists ``fanout`` aliases of the level below."""
    text = "a0: &a0 [" + ", ".join(["lol"] * fanout) + "]\n"
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]\n"
    return text


def one_line(e: pytest.ExceptionInfo[InputError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("loader", LOADERS)
def test_billion_laughs_is_refused_with_a_short_message(tmp_path: Path, loader: type) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(laughs(), encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_yaml_text(path.read_text(encoding="utf-8"), file=str(path), loader=loader)
    msg = one_line(e)
    # level 0 is a list of 9 scalars, level i a list of 9 copies of level i-1; the root
    # mapping holds the 9 keys and the 9 levels
    sizes = [1 + 9]
    for _ in range(8):
        sizes.append(1 + 9 * sizes[-1])
    expanded = 1 + sum(1 + s for s in sizes)
    assert msg.startswith(f"{path}: invalid YAML (aliases expand the document to {expanded:,} nodes "
                          f"from 28 written;"), msg
    assert f"at most {MAX_ALIAS_NODES:,} nodes may come from aliases" in msg
    assert len(msg) < 400
    assert isinstance(e.value.__cause__, AliasExpansionError)


def test_load_yaml_file_uses_the_limited_loader(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(laughs() + "services: *a8\n", encoding="utf-8")
    with pytest.raises(InputError, match="aliases expand the document") as e:
        load_yaml_file(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("loader", LOADERS)
def test_small_alias_use_is_still_accepted(loader: type) -> None:
    # a shared block used a few times, and a merge key: what a hand-written file does
    text = ("base: &b {cpu: 100m, memory: 128Mi}\n"
            "x: *b\n"
            "y: {<<: *b, memory: 256Mi}\n")
    assert load_yaml_text(text, file="f", loader=loader) == {
        "base": {"cpu": "100m", "memory": "128Mi"},
        "x": {"cpu": "100m", "memory": "128Mi"},
        "y": {"cpu": "100m", "memory": "256Mi"},
    }
    # 3 levels of 10 expand to ~1,100 nodes: under the limit
    assert load_yaml_text(laughs(3, 10), file="f", loader=loader)["a2"][9][9] == ["lol"] * 10


def test_the_limit_counts_nodes_added_by_aliases() -> None:
    node = yaml.compose(laughs(4, 10), Loader=LimitedSafeLoader)  # a3 expands to 11,111 nodes
    assert node is not None
    total = check_alias_expansion(node, limit=10**9)
    assert total > MAX_ALIAS_NODES
    with pytest.raises(AliasExpansionError):
        check_alias_expansion(node)
    # a document as large without aliases is no YAML bomb
    plain = yaml.compose("[" + ", ".join(["x"] * (MAX_ALIAS_NODES * 2)) + "]", Loader=LimitedSafeLoader)
    assert plain is not None
    assert check_alias_expansion(plain) == MAX_ALIAS_NODES * 2 + 1


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n"], ids=["sequence", "mapping"])
def test_recursive_alias_is_refused(loader: type, text: str) -> None:
    with pytest.raises(InputError, match=r"^f\.yaml: line 1, column 4: invalid YAML \(an alias refers "
                                         r"to a node that contains it"):
        load_yaml_text(text, file="f.yaml", loader=loader)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("shape", ["flow", "block"])
def test_5000_deep_nesting_is_one_line_naming_the_file(tmp_path: Path, loader: type, shape: str) -> None:
    depth = 5000
    text = ("[" * depth + "]" * depth) if shape == "flow" else \
        "".join(" " * i + "a:\n" for i in range(depth))
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_yaml_text(text, file=str(path), loader=loader)
    msg = one_line(e)
    assert msg.startswith(f"{path}: ")
    assert "invalid YAML" in msg and "nest" in msg, msg


@pytest.mark.parametrize("loader", LOADERS)
def test_nesting_just_past_the_limit_is_refused_and_at_it_accepted(loader: type) -> None:
    ok = "[" * (MAX_DEPTH - 1) + "x" + "]" * (MAX_DEPTH - 1)     # MAX_DEPTH nodes deep
    value = load_yaml_text(ok, file="f", loader=loader)
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == "x"
    deep = "[" + ok + "]"
    with pytest.raises(InputError, match=f"nested more than {MAX_DEPTH} levels deep"):
        load_yaml_text(deep, file="f", loader=loader)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="cannot read file"):
        load_yaml_file(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: \xe9\n")
    with pytest.raises(InputError, match="cannot read file"):
        load_yaml_file(bad)


def test_documents_are_the_ones_safe_load_gives() -> None:
    text = "a: 1\nb: [x, 2.5, null, true]\nc: {d: '256Mi'}\ne: .nan\n"
    got = load_yaml_text(text, file="f")
    want = yaml.safe_load(text)
    assert got.keys() == want.keys()
    assert got["b"] == want["b"] and got["c"] == want["c"]
    assert got["e"] != got["e"]  # nan
    with pytest.raises(InputError, match="could not determine a constructor"):
        load_yaml_text("a: !!python/object:os.system ls\n", file="f")
