"""Builds the Gradio app from the tab modules and runs it with the safety settings: bounded queue, upload size
limit, no extra file paths served."""
from __future__ import annotations

import builtins
import importlib
import logging
import os
from pathlib import Path
from typing import Any, Optional

from ganedit.app.catalog import Catalog
from ganedit.app.context import AppContext
from ganedit.app.tabs import TABS
from ganedit.app.uploads import MAX_UPLOAD_BYTES
from ganedit.app.work import pick_device
from ganedit.errors import ConfigError

log = logging.getLogger(__name__)

# One model call at a time per event (CPU-bound work gains nothing from more), and a bounded waiting line:
# request 33 gets "queue full" instead of piling up memory.
CONCURRENCY = 1
QUEUE_SIZE = 32
# GAN outputs are small (64 px): show them filling their box with visible pixels instead of a blurry stamp
CSS = ".pixels img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }"


def _gradio() -> Any:
    # ganedit makes no network calls at run time: Gradio's usage analytics stay off unless the user asks
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ConfigError("the web UI needs Gradio: pip install 'ganedit[web]' (or pip install gradio)") from None
    return gradio


def build_app(models_dir: "str | Path | None" = None, device: str = "auto") -> Any:
    gr = _gradio()
    ctx = AppContext(Catalog(models_dir), pick_device(device))
    with gr.Blocks(title="ganedit") as app:
        gr.Markdown("# ganedit\nEdit images with GANs. Pick a tab, click an example (or upload images), press the "
                    f"button. Uploads: images up to {MAX_UPLOAD_BYTES // 2**20} MiB and 4096 x 4096 pixels. Device: `{ctx.device}`.")
        for name in TABS:
            tab = importlib.import_module(f"ganedit.app.tabs.{name}")
            with gr.Tab(tab.TITLE, elem_id=f"tab-{name}"):
                tab.build(ctx)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return app


def host_warning(host: str, port: int) -> Optional[str]:
    """The warning printed when the app listens beyond this machine (there is no login)."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"warning: serving on {host}: anyone who can reach this machine on port {port} can use the app and "
            "its CPU/GPU; there is no login. Use the default 127.0.0.1 unless you mean it.")


class ClientGoneFilter(logging.Filter):
    """A browser that closes or leaves the page in the middle of an upload ends that request with Starlette's
    ClientDisconnect, and uvicorn logs it as "Exception in ASGI application" with a full traceback. Nothing went
    wrong on the server, so the record becomes one line without the traceback; every other error keeps its own."""

    MESSAGE = "a browser went away in the middle of a request (an upload, most often); the request was dropped"

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _only_client_disconnects(exc):
            record.msg, record.args = self.MESSAGE, ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _only_client_disconnects(exc: BaseException) -> bool:
    group = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+
    if group is not None and isinstance(exc, group):  # anyio task groups wrap what a request raised
        return all(_only_client_disconnects(e) for e in exc.exceptions)
    return type(exc).__name__ == "ClientDisconnect"


def quiet_client_disconnects() -> None:
    """Install :class:`ClientGoneFilter` on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientGoneFilter) for f in logger.filters):
        logger.addFilter(ClientGoneFilter())


def serve(models_dir: "str | Path | None" = None, host: str = "127.0.0.1", port: int = 7860, device: str = "auto") -> None:
    warning = host_warning(host, port)
    if warning:
        log.warning(warning)
    app = build_app(models_dir, device)
    quiet_client_disconnects()
    app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, share=False, css=CSS,
               inbrowser=False, quiet=False)
