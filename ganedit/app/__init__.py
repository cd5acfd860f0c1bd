"""The web UI (`ganedit serve`): a Gradio app with one tab per task, each tab one module of ``ganedit.app.tabs``.

The app calls only the public API, the way the CLI does: model loading through the CLI's public loaders,
``ganedit.edit`` / the model objects' methods for the work, and ``ganedit.data.io`` for every image read.
Gradio is the optional ``web`` extra and is imported only when the app is built.
"""
from __future__ import annotations

__all__ = ["build_app", "serve"]


def build_app(models_dir=None, device: str = "auto"):
    """The Gradio Blocks app (not started). See :func:`ganedit.app.server.build_app`."""
    from ganedit.app.server import build_app as build

    return build(models_dir, device)


def serve(models_dir=None, host: str = "127.0.0.1", port: int = 7860, device: str = "auto") -> None:
    """Build and run the app until interrupted."""
    from ganedit.app.server import serve as run

    run(models_dir, host, port, device)
