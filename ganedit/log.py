"""How ganedit talks: library code never prints diagnostics. It logs to ``logging.getLogger(__name__)`` (children
of the ``"ganedit"`` logger) and uses :mod:`warnings` for API misuse; the application decides what is shown.

The ``ganedit`` command calls :func:`configure` once (``-v`` / ``-q`` on the top-level command): info lines plain,
warnings prefixed with ``warning:``, all on stderr and written through tqdm so progress bars stay intact.
A Python program that configures nothing sees ganedit's warnings and errors on stderr (Python's last-resort
handler) and no info lines; ``logging.basicConfig(level=logging.INFO)`` shows those too.
"""
from __future__ import annotations

import logging
import sys

ROOT = "ganedit"

# -q: warnings and errors only; -qq: errors only; -v: debug details.
LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class _ConsoleHandler(logging.Handler):
    """One line per record on stderr, printed around any active tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                text = f"error: {text}"
            elif record.levelno >= logging.WARNING:
                text = f"warning: {text}"
            try:
                from tqdm import tqdm

                tqdm.write(text, file=sys.stderr)
            except ImportError:  # tqdm is a dependency, but a broken install must not hide messages
                print(text, file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure(verbosity: int = 0) -> None:
    """Show ganedit's log on stderr at a level chosen by ``verbosity`` (-2 .. 1, clamped); idempotent.
    Python warnings (``warnings.warn``) are routed to the same output. Records still propagate to the root
    logger, which the CLI leaves without handlers, so an embedding program's own handlers keep working."""
    level = LEVELS[max(-2, min(1, verbosity))]
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(handler)
    handler = _ConsoleHandler()
    logger.addHandler(handler)
    logger.setLevel(level)
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")
    for old in [h for h in py_warnings.handlers if isinstance(h, _ConsoleHandler)]:
        py_warnings.removeHandler(old)
    py_warnings.addHandler(_WarningsHandler(level))


class _WarningsHandler(_ConsoleHandler):
    """``warnings.warn`` records arrive as "file:line: Category: message\\n  source"; keep "Category: message"."""

    def __init__(self, level: int) -> None:
        super().__init__(level=logging.WARNING if level <= logging.WARNING else level)

    def emit(self, record: logging.LogRecord) -> None:
        text = str(record.getMessage()).strip().splitlines()[0] if record.getMessage() else ""
        parts = text.split(": ", 1)
        record.msg, record.args = (parts[1] if len(parts) == 2 else text), None
        super().emit(record)
