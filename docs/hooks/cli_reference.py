"""MkDocs hook: the command-line reference, generated from the argparse parser.

Replaces the marker below in ``cli.md`` with one section per command and sub-command, each the
``--help`` text of `bayestumor.cli.build_parser()`; the commands are found by walking the
parser's sub-parsers, so a new command appears without touching the docs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

MARKER = "<!-- bayestumor-cli-help -->"
HELP_WIDTH = 80  # columns argparse wraps the help to (what a page shows), whatever the terminal


@contextmanager
def _columns(width: int) -> Iterator[None]:
    # argparse sizes its help from shutil.get_terminal_size(), which reads COLUMNS first.
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width + 2)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser`, then every sub-command's parser below it, depth first, in --help order."""
    yield parser
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                if id(subparser) not in seen:  # an alias maps to the same parser
                    seen.add(id(subparser))
                    yield from _commands(subparser)


def cli_reference() -> str:
    """Markdown: a heading and the --help text of every command."""
    from bayestumor.cli import build_parser

    sections = []
    with _columns(HELP_WIDTH):
        for parser in _commands(build_parser()):
            level = "#" * min(2 + parser.prog.count(" "), 4)
            sections.append(f"{level} `{parser.prog}`\n\n```text\n{parser.format_help()}```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown
