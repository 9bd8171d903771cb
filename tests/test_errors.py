"""``InputError`` messages stay one short line whatever the bad value is."""
from __future__ import annotations

from pathlib import Path

import pytest

from eafix_capacity import cli
from eafix_capacity.errors import MAX_MESSAGE_CHARS, MAX_VALUE_CHARS, InputError

TEN_MB = 10 * 2**20


def test_message_shape_is_unchanged_for_ordinary_values() -> None:
    e = InputError("invalid value", file="f.yaml", obj="reporter", field="tier", value="gold",
                   valid="one of: trading")
    assert str(e) == "f.yaml: reporter: tier: invalid value 'gold'; one of: trading"
    assert e.value == "gold"  # the value itself is kept whole for callers


def test_a_10_mb_value_is_cut_with_an_ellipsis() -> None:
    giant = "x" * TEN_MB
    msg = str(InputError("not a quantity", file="f.yaml", field="cpu", value=giant))
    assert msg.startswith("f.yaml: cpu: not a quantity 'xxx")
    assert msg.endswith("'...")
    assert len(msg) <= MAX_VALUE_CHARS + 50


def test_a_giant_structure_is_not_expanded() -> None:
    # a billion laughs built in Python: 9 levels of 9 references to the level below
    level: object = ["lol"] * 9
    for _ in range(8):
        level = [level] * 9
    msg = str(InputError("expected a mapping", value=level))
    assert len(msg) <= MAX_VALUE_CHARS + 50
    assert "..." in msg


def test_every_part_and_the_whole_are_capped_and_kept_on_one_line() -> None:
    e = InputError("bad\nvalue " + "p" * TEN_MB, file="f" * TEN_MB, obj="o" * TEN_MB,
                   field="x\ny", value={"k": "v" * TEN_MB}, valid="w" * TEN_MB)
    msg = str(e)
    assert "\n" not in msg
    assert len(msg) <= MAX_MESSAGE_CHARS
    assert msg.endswith("...")


def test_an_int_too_large_to_print_still_gets_a_message() -> None:
    msg = str(InputError("too many", field="nodes", value=10**5000))
    assert msg.startswith("nodes: too many ")
    assert len(msg) < 100


def test_cli_prints_a_bounded_line_for_a_giant_value_in_a_services_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "services.yaml"
    # 1 MiB, not 10: PyYAML's pure-Python reader takes seconds per 10 MiB, and the bound is the same
    path.write_text("services:\n  - name: " + "a" * 2**20 + "\n", encoding="utf-8")
    assert cli.main(["plan", "--catalog", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"eafix-capacity: error: {path}: ")
    assert "name" in lines[0] and "DNS" in lines[0]
    assert len(lines[0]) <= MAX_MESSAGE_CHARS + 100
