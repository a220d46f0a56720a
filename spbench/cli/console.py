"""Where the command line prints: stdout for results, stderr for notes and errors."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def _console(stderr: bool = False) -> Console:
    """A terminal's own width; into a pipe or file (and COLUMNS unset) no wrapping at rich's
    default 80 columns, so logs and `| grep` see whole lines and tables."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    width = None if terminal or os.environ.get("COLUMNS") else 100_000
    return Console(stderr=stderr, width=width)


console = _console()
err_console = _console(stderr=True)
