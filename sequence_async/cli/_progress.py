"""
The live progress line and the summary of a bulk run.

Owns how a bulk run looks to the operator: one progress line on stderr that
names the triggers in flight and the executions being waited on separately,
and keeps its counts whole at 60 to 80 columns (the bar only takes the room
left); and the summary, a table on stderr or one JSON line on stdout with
numbers as numbers.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

import sequence_async as sq

from ._output import Output, rich


# Dropped in this order while the line is too wide; the counts always stay.
_OPTIONAL = ("rate", "elapsed")
_BAR_MIN = 10
_BAR_MAX = 40


def progress_text(
    progress: sq.BulkProgress | None, total: int, elapsed: float, width: int
) -> tuple[str, int, int]:
    """
    The counts of a bulk run that fit in *width* columns, and room for a bar.

    Returns:
        ``(counts, bar_width, bar_filled)``: the bar is drawn after the
        counts when ``bar_width`` is not 0.
    """
    p = progress or sq.BulkProgress(
        started=0,
        triggering=0,
        waiting=0,
        succeeded=0,
        failed=0,
        not_started=0,
        elapsed=0.0,
    )
    rate = p.finished / elapsed if elapsed > 0 else 0.0
    fields = {
        "done": f"{p.finished}/{total}",
        "ok": f"{p.succeeded} ok",
        "failed": f"{p.failed} failed",
        "skipped": f"{p.not_started} not started" if p.not_started else "",
        "triggering": f"{p.triggering} triggering",
        "waiting": f"{p.waiting} waiting",
        "rate": f"{rate:.1f}/s" if rate < 10 else f"{rate:.0f}/s",
        "elapsed": f"{int(elapsed) // 60}:{int(elapsed) % 60:02d}",
    }
    line = ""
    for separator in ("  ", " "):
        for dropped in range(len(_OPTIONAL) + 1):
            kept = [
                value
                for name, value in fields.items()
                if value and name not in _OPTIONAL[:dropped]
            ]
            line = separator.join(kept)
            if len(line) <= width:
                break
        if len(line) <= width:
            break
    room = width - len(line) - 1
    bar = min(room, _BAR_MAX) if room >= _BAR_MIN else 0
    filled = round(bar * p.finished / total) if total else bar
    return line, bar, filled


class ProgressLine:
    """
    The live progress line of a bulk run, on stderr.

    In a terminal it is redrawn a few times a second; elsewhere (a pipe, a
    log file) it is drawn once, when the run stops. ``stop()`` draws the
    last state once, however often it is called (Ctrl-C included).
    """

    def __init__(self, out: Output, total: int, *, show: bool) -> None:
        self.total = total
        self.latest: sq.BulkProgress | None = None
        self._started = time.monotonic()
        console: Any = out.stderr if show else None
        self._console = console
        self._live: Any = None
        if console is not None and console.is_terminal:
            self._live = rich().live.Live(
                self,
                console=console,
                auto_refresh=True,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def update(self, progress: sq.BulkProgress) -> None:
        """
        Keep the latest counts (given to ``trigger_many(on_progress=)``).
        """
        self.latest = progress

    def above(self, text: str) -> bool:
        """
        Print *text* above the live line when stdout is the terminal too.

        Unwrapped (a resume token must copy whole), and in one piece with the
        line's redraw. ``False`` when not drawing live: print it as usual.
        """
        live = self._live
        if live is None or not sys.stdout.isatty():
            return False
        live.console.print(
            text, soft_wrap=True, markup=False, highlight=False, emoji=False
        )
        return True

    def stop(self) -> None:
        """
        Draw the last state once and stop redrawing.
        """
        console, self._console = self._console, None
        live, self._live = self._live, None
        if live is not None:
            live.stop()
        elif console is not None:
            console.print(self)

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        elapsed = time.monotonic() - self._started
        line, bar, filled = progress_text(
            self.latest, self.total, elapsed, options.max_width
        )
        rendered = rich().text.Text(line)
        if bar:
            rendered.append(" ")
            rendered.append("━" * filled, style="green")
            rendered.append("━" * (bar - filled), style="bright_black")
        yield rendered


def show_progress(out: Output) -> bool:
    """
    Whether to draw progress.

    Always for people; with ``--json`` only in a terminal, and only when
    stdout goes elsewhere (the lines would mix).
    """
    if not out.as_json:
        return True
    return sys.stderr.isatty() and not sys.stdout.isatty()


@attrs.define
class Summary:
    """
    What a bulk run came to.

    ``statuses`` counts the outcomes by status (``executed``, ``failed``,
    ``triggered``, ``not_started``, or the error's class name);
    ``interrupted`` tells whether SIGINT stopped the run, and ``in_flight``
    how many items had no outcome then.
    """

    total: int
    statuses: Counter[str] = attrs.Factory(Counter)
    interrupted: bool = False
    in_flight: int = 0
    seconds: float = 0.0
    extra: dict[str, int | float] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        """
        Whether every item succeeded.
        """
        good = ("executed", "partial", "triggered")
        return self.total == sum(self.statuses[status] for status in good)

    def as_dict(self) -> dict[str, int | float]:
        """
        The summary as numbers, by name.
        """
        finished = sum(self.statuses.values())
        statuses = self.statuses.copy()
        unstarted = self.total - finished - self.in_flight
        if unstarted > 0:
            statuses["not_started"] += unstarted
        return {
            **dict(sorted(statuses.items())),
            **({"in_flight": self.in_flight} if self.interrupted else {}),
            "total": self.total,
            "seconds": round(self.seconds, 3),
            "per_second": round(finished / self.seconds, 1) if self.seconds else 0.0,
            **self.extra,
        }


def print_summary(out: Output, summary: Summary) -> None:
    """
    Print the summary: one JSON line on stdout, or a table on stderr.
    """
    numbers = summary.as_dict()
    if out.as_json:
        out.json({"summary": numbers})
        return
    table = rich().table.Table(title="Summary")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, value in numbers.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        table.add_row(name.replace("_", " "), shown)
    out.stderr.print(table)
