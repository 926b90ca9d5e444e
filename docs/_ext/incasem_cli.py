"""A Sphinx directive that prints the ``--help`` of every ``incasem`` command.

``incasem-cli`` walks the parser of ``incasem.cli.main`` (sub-commands and their own
sub-commands, e.g. ``convert tiff-to-zarr``), so a command registered there appears in the
reference without an edit to the docs. ``command-help`` prints the help of one command line run
as a process (``python scripts/train.py --help``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

REPO = Path(__file__).resolve().parents[2]
WIDTH = "100"  # argparse wraps help at $COLUMNS


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-parsers of ``parser`` by name (no aliases), in registration order."""
    for action in parser._actions:  # argparse exposes sub-parsers only this way
        if isinstance(action, argparse._SubParsersAction):
            seen: dict[int, str] = {}
            for name, sub in action.choices.items():
                seen.setdefault(id(sub), name)
            return {name: action.choices[name] for name in seen.values()}
    return {}


def _walk(parser: argparse.ArgumentParser, words: tuple[str, ...]):
    """(command words, parser) for ``parser`` and every sub-command below it."""
    yield words, parser
    for name, sub in _subcommands(parser).items():
        yield from _walk(sub, (*words, name))


class IncasemCli(Directive):
    """One section per ``incasem`` command with its ``--help`` as a literal block."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        os.environ["COLUMNS"] = WIDTH
        from incasem.cli.main import build_parser

        result = []
        for words, parser in _walk(build_parser(), ("incasem",)):
            title = " ".join(words)
            section = nodes.section(
                ids=[nodes.make_id(f"cli {title}")], names=[nodes.fully_normalize_name(title)]
            )
            section += nodes.title(text=title)
            section += nodes.literal_block(text=parser.format_help())
            self.state.document.note_implicit_target(section)
            result.append(section)
        return result


class CommandHelp(Directive):
    """The output of one command line (run in the repository), as a literal block."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        words = self.arguments[0].split()
        if words[0] == "python":
            words[0] = sys.executable
        env = {**os.environ, "COLUMNS": WIDTH, "PYTHONPATH": str(REPO)}
        done = subprocess.run(words, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise self.error(f"{self.arguments[0]} failed: {done.stderr.strip()}")
        return [nodes.literal_block(text=done.stdout)]


def setup(app):
    """Register the directives."""
    app.add_directive("incasem-cli", IncasemCli)
    app.add_directive("command-help", CommandHelp)
    return {"parallel_read_safe": True, "version": "1"}
