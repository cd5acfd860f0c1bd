"""What every tab gets: the model catalog, the device, and the guard that turns errors into a status line."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List

from ganedit.app.catalog import Catalog
from ganedit.errors import GaneditError

EXAMPLES = Path(__file__).resolve().parent / "examples"
log = logging.getLogger("ganedit.app")


@dataclass
class AppContext:
    catalog: Catalog
    device: str

    def example(self, name: str) -> str:
        return str(EXAMPLES / name)


def guarded(fn: Callable[..., Any], n_outputs: int = 1) -> Callable[..., List[Any]]:
    """Wrap a handler so it returns its outputs plus a status line: "done" or one clear "error: ..." line.
    Bad input (GaneditError, e.g. the ImageError of a non-image upload) shows its message; anything else is
    logged with its traceback on the server and the user sees only the exception's type."""

    def run(*args: Any) -> List[Any]:
        try:
            return [fn(*args), "done"] if n_outputs == 1 else [*fn(*args), "done"]
        except GaneditError as exc:
            return [None] * n_outputs + [f"error: {exc}"]
        except Exception as exc:  # a bug, not bad input: no traceback to the browser
            log.exception("handler %s failed", getattr(fn, "__name__", fn))
            return [None] * n_outputs + [f"error: unexpected failure ({type(exc).__name__}); the server log has details"]

    run.__name__ = getattr(fn, "__name__", "handler")
    return run


def no_model_note(kind_label: str, how: str) -> str:
    return (f"No {kind_label} model is available: none is shipped yet and none was found under `--models`. "
            f"{how} Then restart with `ganedit serve --models DIR`.")
