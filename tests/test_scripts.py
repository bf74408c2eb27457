"""Each Lua script's arguments are defined once: its entry in edgeexec/store/scripts.py (pure: reads files).

Every script binds its ARGV to locals named as the entry's fields, in order, at its top, and reads
ARGV nowhere else; so an argument added, dropped or reordered on one side only fails here.
"""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from edgeexec.store import scripts

BINDING = re.compile(r"^local ([\w,\s]+?) = ((?:ARGV\[\d+\],?\s*)+)$", re.M)
VARIADIC = re.compile(r"^local (\w+)_from = (\d+)\b", re.M)
"""A variadic rest (``local refs_from = 4``), read in place by ``for i = refs_from, #ARGV do ... ARGV[i]``."""
VARIADIC_READ = re.compile(r"for (\w+) = \w+_from, #ARGV do\n(\s*local \w+ = ARGV\[\1\])")


def _code(name: str) -> str:
    return re.sub(r"--[^\n]*", "", scripts.script_text(name))


def _bound(name: str) -> list[tuple[str, int]]:
    """(local, ARGV index) in the order the script binds them."""
    out: list[tuple[str, int]] = []
    for m in BINDING.finditer(_code(name)):
        names = [n.strip() for n in m.group(1).split(",")]
        indexes = [int(i) for i in re.findall(r"ARGV\[(\d+)\]", m.group(2))]
        assert len(names) == len(indexes), f"{name}.lua binds {names} to {indexes}"
        out += list(zip(names, indexes, strict=True))
    out += [(m.group(1), int(m.group(2))) for m in VARIADIC.finditer(_code(name))]
    return out


def test_every_script_has_an_entry() -> None:
    assert set(scripts.ENTRIES) == set(scripts.SCRIPT_NAMES)


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_argv_locals_match_the_entry_fields(name: str) -> None:
    entry = scripts.ENTRIES[name]
    expected = [(f.name, scripts.FIRST_ARG + i) for i, f in enumerate(fields(entry))]
    assert _bound(name) == expected, f"{name}.lua's ARGV locals differ from {entry.__name__}'s fields"


@pytest.mark.parametrize("name", scripts.SCRIPT_NAMES)
def test_argv_is_read_only_where_it_is_bound(name: str) -> None:
    code = _code(name)
    for m in [*BINDING.finditer(code), *VARIADIC_READ.finditer(code)]:
        code = code.replace(m.group(0), "")
    assert "ARGV" not in code, f"{name}.lua reads ARGV outside its bindings at the top"


def test_entries_encode_arguments_as_the_scripts_read_them() -> None:
    reg = scripts.Register("a", "s", "gw", "i", ("q1", "q2"), 2, "idle", "", 30_000, {}, {"edgeexec": "1"}, 60_000, None)
    argv = reg.argv()
    assert argv[4] == b'["q1","q2"]' and argv[9] == b"{}" and argv[12] == ""
    beat = scripts.Heartbeat("a", "s", "idle", None, None).argv()
    assert beat[3:] == ["\0", ""]  # unchanged comments and metrics
    assert scripts.Disconnect("a", "s", True, 1, 2).argv()[2] == "1"
    assert scripts.Finish("", "j", "failed", "why", None, 60_000, 0).argv()[4] == ""
    assert scripts.Adopt("owner", (("r1", ""), ("r2", "j2"))).argv() == ["owner", "r1\t", "r2\tj2"]
