"""Every `edgeexec ...` and `agent ...` command the README and docs/ show parses with the real CLI.

Commands are taken from fenced shell blocks and from inline code spans; environment assignments,
`sudo`, comments and `$(...)` substitutions are stripped; placeholders in the docs' tables
(N, <...>) get example values. Nothing is executed: argparse is asked to parse the argv.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import parser as agent_parser
from edgeexec.cli import parser as edgeexec_parser

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = {"<the full new list>": "a,b", "<host>": "host-1", "<its queues>": "default",
                "<this host's name>": "host-1"}
WORD_PLACEHOLDERS = {"N": "8"}
SUBCOMMANDS = {"edgeexec": {"gateway", "token", "standalone", "demo"},
               "agent": {"start", "status", "maintenance", "stop", "shutdown", "set-queues", "set-concurrency"}}
FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
INLINE = re.compile(r"`((?:edgeexec|agent) [^`]+)`")


def _clean(line: str) -> list[str]:
    """The command(s) a doc line shows: `a|b` alternatives expanded, `[--opt]` taken as given."""
    line = re.sub(r"\$\([^)]*\)", "VALUE", line.split(" #", 1)[0]).strip().rstrip("\\").strip()
    words = line.split()
    while words and (re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]) or words[0] in ("sudo", "export")):
        words.pop(0)
    if len(words) < 2 or words[0] not in SUBCOMMANDS:
        return []
    if not set(words[1].split("|")) <= SUBCOMMANDS[words[0]]:
        return []  # prose that starts with the word "agent", not a command
    line = " ".join(w for w in words if w != "...").replace("[", "").replace("]", "")
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    variants = [[]]  # type: list[list[str]]
    for word in line.split(" "):
        options = word.split("|") if "|" in word and not word.startswith(("'", '"')) else [word]
        variants = [[*v, WORD_PLACEHOLDERS.get(o, o)] for v in variants for o in options]
    return [" ".join(v) for v in variants]


def _commands() -> Iterator[tuple[str, str]]:
    for doc in DOCS:
        text = doc.read_text()
        for block in FENCE.findall(text):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                for cmd in _clean(line):
                    yield doc.name, cmd
        for span in INLINE.findall(text):
            for cmd in _clean(span):
                yield doc.name, cmd


COMMANDS = sorted(set(_commands()))


def test_the_docs_show_commands_of_both_clis() -> None:
    names = {c.split()[0] for _, c in COMMANDS}
    assert names == {"edgeexec", "agent"} and len(COMMANDS) > 30, COMMANDS


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c}" for d, c in COMMANDS])
def test_documented_command_parses(doc: str, command: str) -> None:
    argv = shlex.split(command)
    parser = edgeexec_parser() if argv[0] == "edgeexec" else agent_parser()
    try:
        parser.parse_args(argv[1:])
    except SystemExit as exc:
        raise AssertionError(f"{doc}: `{command}` does not parse (exit {exc.code})") from None
