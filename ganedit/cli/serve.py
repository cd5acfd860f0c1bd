"""`ganedit serve`: the web UI (Gradio; the `web` extra)."""
from __future__ import annotations

from typing import Optional

import click


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--models", "models_dir", type=click.Path(file_okay=False), default=None,
                  help="Folder of native model folders (config.json + model.safetensors) to offer beside the shipped ones.")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 opens the app to the network (prints a warning).")
    @click.option("--port", default=7860, show_default=True, type=int, help="Port to listen on.")
    @click.option("--device", default="auto", show_default=True, help="auto (CUDA when available), cpu, cuda or cuda:N.")
    def serve_cmd(models_dir: Optional[str], host: str, port: int, device: str) -> None:
        """Start the web UI (Swap, Invert & edit, Translate, Sample) on the shipped models and those under --models.

        \b
        Example:
          ganedit serve --models runs/ --port 7860     # then open http://127.0.0.1:7860
        """
        from ganedit.app import serve

        serve(models_dir, host, port, device)
