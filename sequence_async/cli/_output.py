"""
Where results go, and how they look.

Owns the rendering of results on stdout: with ``--json`` one JSON value per
line (numbers stay numbers); otherwise one object as aligned key/value
lines and a list as a table. Notes, progress and human summaries go to
stderr (see ``_progress``), so stdout can be piped. Nothing here wraps a
value: a resume token must paste back whole.
"""

from __future__ import annotations

import enum
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs

from ._base import UsageError


def jsonable(value: Any) -> Any:
    """
    *value* as plain JSON data: attrs models become dicts, times ISO strings.
    """
    if attrs.has(type(value)):
        return {k: jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def printable(value: str) -> str:
    """
    *value* with line breaks and control characters shown escaped.

    Text from a server may hold them (terminal escape sequences too): shown
    escaped, it can neither break a line, nor forge one, nor drive the
    terminal.
    """
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def text(value: Any) -> str:
    """
    One plain value as people read it (``-`` for none), escaped as needed.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return printable(str(value))


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """
    Yield ``(dotted.key, text)`` pairs of JSON data, depth first.
    """
    if isinstance(value, dict):
        if not value and prefix:
            yield prefix, "-"
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            yield prefix, ", ".join(text(item) for item in value) or "-"
        else:
            for n, item in enumerate(value):
                yield from flatten(item, f"{prefix}.{n}")
    else:
        yield prefix, text(value)


def rich() -> Any:
    """
    The rich package (the ``cli`` extra).

    Raises:
        UsageError: rich is not installed.
    """
    try:
        import rich.console  # noqa: PLC0415
        import rich.live  # noqa: PLC0415
        import rich.table  # noqa: PLC0415
        import rich.text  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "the command line needs the cli extra: pip install 'sequence-async[cli]'"
            " ('.[cli]' in a clone of the repository)"
        ) from None
    return rich


class Output:
    """
    Where results go: JSON lines for programs, key/value lines and tables for people.

    Once the reader of stdout goes away, lines go to stderr (``closed``).
    """

    def __init__(
        self, *, as_json: bool, program: Sequence[str] = ("sequence-async",)
    ) -> None:
        self.as_json = as_json
        # The program and the global options it was given (--api, --base-url):
        # a command printed to run later must reach the same server.
        self.program = list(program)
        self._stdout: Any = None
        self._stderr: Any = None
        self.closed = False  # stdout's reader went away: lines go to stderr

    @property
    def stdout(self) -> Any:
        """
        The rich console on stdout (tables).
        """
        if self._stdout is None:
            self._stdout = rich().console.Console()
            # rich exits 1 on a closed stdout; here the table goes to stderr.
            self._stdout.on_broken_pipe = self.stdout_gone
        return self._stdout

    def stdout_gone(self) -> None:
        """
        The reader of stdout went away: from now on, results go to stderr.
        """
        self.closed = True
        # Nothing more to stdout, nor a second error when Python flushes it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    @property
    def stderr(self) -> Any:
        """
        The rich console on stderr (notes, progress, summaries).
        """
        if self._stderr is None:
            self._stderr = rich().console.Console(stderr=True)
        return self._stderr

    def json(self, value: Any) -> None:
        """
        Print *value* as one JSON line, at once (a reader may be waiting).
        """
        self.line(json.dumps(jsonable(value), separators=(",", ":")))

    def data(self, value: Any) -> None:
        """
        Print one result: a JSON line, or one ``key  value`` line per field.
        """
        if self.as_json:
            self.json(value)
        else:
            self.pairs(list(flatten(jsonable(value))))

    def command(self, *words: str) -> str:
        """
        A command line to run later, with this run's global options.
        """
        return shlex.join([*self.program, *words])

    def pairs(self, pairs: Sequence[tuple[str, str]]) -> None:
        """
        Print aligned ``key  value`` lines, never wrapped.
        """
        shown = [(printable(key), value) for key, value in pairs]
        width = max((len(key) for key, _ in shown), default=0)
        for key, value in shown:
            self.line(f"{key:<{width}}  {value}")

    def table(self, rows: Sequence[Any], columns: Sequence[str], title: str) -> None:
        """
        Print rows as a table (or as one JSON array).

        The first column (the id) is never wrapped or cut.
        """
        if self.as_json:
            self.json(list(rows))
            return
        data = [jsonable(row) for row in rows]
        table = rich().table.Table(title=title)
        for n, column in enumerate(columns):
            table.add_column(column, no_wrap=n == 0)
        cell = rich().text.Text  # plain text: a server's "[red]" is not markup
        for row in data:
            table.add_row(*(cell(_cell(row.get(column))) for column in columns))
        if not self.closed:
            self.stdout.print(table)
        if self.closed:  # the reader of stdout went away, now or before
            self.stderr.print(table)

    def line(self, text: str) -> None:
        """
        Print one line of results, at once (a reader may be waiting).

        Once the reader of stdout has gone away (``closed``), this line and
        the later ones go to stderr: no result, id or key is lost with it.
        """
        if not self.closed:
            try:
                print(text, flush=True)
            except BrokenPipeError:
                self.stdout_gone()
            else:
                return
        print(text, file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """
        Tell the person at the terminal something, on stderr.
        """
        print(message, file=sys.stderr, flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return text(value.get("name") or value.get("id") or value)
    return text(value)
