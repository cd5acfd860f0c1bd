"""`ganedit convert`: official checkpoints -> the native format, and StyleGAN2 back to rosinality's layout."""
from __future__ import annotations

import click

from ganedit.cli._options import MODEL_REF, HiddenArgument, one_output, out_option


def register(cli: click.Group) -> None:
    @cli.command("convert")
    @click.argument("src", type=MODEL_REF)
    @click.argument("dest", cls=HiddenArgument, required=False, type=click.Path())
    @out_option("Where to write: a folder (native) or a .pt file (rosinality).", type=click.Path(), default=None)
    @click.option("--to", "target", type=click.Choice(["native", "rosinality"]), default="native", show_default=True,
                  help="native: a ganedit folder (config.json + model.safetensors). rosinality: a stylegan2-pytorch .pt file "
                       "(StyleGAN2 models only; tensors are written back bit for bit).")
    def convert_cmd(src: str, dest: "str | None", out: "str | None", target: str) -> None:
        """Convert the checkpoint SRC and write it to OUT.

        SRC may be any official checkpoint ganedit recognises (rosinality StyleGAN2, Swapping Autoencoder,
        junyanz pix2pix/CycleGAN, NVlabs stylegan2-ada .pkl files, read without running the code they embed), a
        native folder or a shipped model's name. The layout is detected; no flags needed.

        
        Examples:
          ganedit convert stylegan2-ffhq-config-f.pt -o ffhq-native/
          ganedit convert ffhq-native/ -o stylegan2-ffhq.pt --to rosinality
          ganedit convert network-snapshot-025000.pkl -o afhq-native/
        """
        import ganedit
        from ganedit.formats.native import save_model

        dest = one_output(out, dest, "convert SRC -o DEST")
        model = ganedit.load(src)
        if target == "rosinality":
            from ganedit.formats.convert_stylegan2 import export_rosinality

            path = export_rosinality(model, dest)
        else:
            meta = dict(getattr(model, "checkpoint_meta", None) or {})
            meta.setdefault("converted_from_file", str(src))
            path = save_model(model, dest, meta=meta)
        click.echo(f"wrote {path} ({type(model).__name__}, {sum(t.numel() for t in model.state_dict().values()):,} values)")
