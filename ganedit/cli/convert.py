"""`ganedit convert`: official checkpoints -> the native format, and StyleGAN2 back to rosinality's layout."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command("convert")
    @click.argument("src", type=click.Path(exists=True))
    @click.argument("dest", type=click.Path())
    @click.option("--to", "target", type=click.Choice(["native", "rosinality"]), default="native", show_default=True,
                  help="native: a ganedit folder (config.json + model.safetensors). rosinality: a stylegan2-pytorch .pt file "
                       "(StyleGAN2 models only; tensors are written back bit for bit).")
    def convert_cmd(src: str, dest: str, target: str) -> None:
        """Convert the checkpoint SRC and write it to DEST.

        SRC may be any official checkpoint ganedit recognises (rosinality StyleGAN2, pSp, e4e, Swapping
        Autoencoder, junyanz pix2pix/CycleGAN) or a native folder. The layout is detected; no flags needed.
        NVlabs stylegan2-ada .pkl files are read without running the code they embed.

        \b
        Examples:
          ganedit convert stylegan2-ffhq-config-f.pt ffhq-native/
          ganedit convert ffhq-native/ stylegan2-ffhq.pt --to rosinality
          ganedit convert network-snapshot-025000.pkl afhq-native/
        """
        import ganedit
        from ganedit.formats.native import save_model

        model = ganedit.load(src)
        if target == "rosinality":
            from ganedit.formats.convert_stylegan2 import export_rosinality

            path = export_rosinality(model, dest)
        else:
            meta = dict(getattr(model, "checkpoint_meta", None) or {})
            meta.setdefault("converted_from_file", str(src))
            path = save_model(model, dest, meta=meta)
        click.echo(f"wrote {path} ({type(model).__name__}, {sum(t.numel() for t in model.state_dict().values()):,} values)")
