"""Make tests/data/nvlabs/stylegan2ada_tiny.pkl and its reference outputs with the OFFICIAL stylegan2-ada-pytorch
code (NVlabs), the way its training loop writes a snapshot: a dict with G, D, G_ema, augment_pipe and
training_set_kwargs, pickled with plain ``pickle.dump`` through ``torch_utils.persistence`` (so the file embeds the
source of ``training/networks.py``).

    python tests/data/nvlabs/make_nvlabs_pickle.py /path/to/stylegan2-ada-pytorch tests/data/nvlabs

The official ops take their pure-PyTorch reference paths on the CPU. The network is tiny (16 px, W of 32 dims,
2 mapping layers, 16/16/8 channels) with its biases, noise strengths and w_avg randomised (a fresh network has them
at zero, which would hide mapping mistakes). ADA is off (augment_pipe None, as with ``--aug=noaug``), and
conv_clamp is 256 as in the official configs. This script is run by hand, never by the tests: the tests only read
its outputs with ganedit's restricted unpickler.
"""
import copy
import pickle
import sys
from pathlib import Path

import torch


def main(official: str, out_dir: str) -> None:
    sys.path.insert(0, str(Path(official).resolve()))
    import dnnlib
    from training import networks

    torch.manual_seed(123)
    G_kwargs = dnnlib.EasyDict(z_dim=32, w_dim=32, mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                               synthesis_kwargs=dnnlib.EasyDict(channel_base=128, channel_max=16, num_fp16_res=0,
                                                                conv_clamp=256))
    D_kwargs = dnnlib.EasyDict(block_kwargs=dnnlib.EasyDict(), mapping_kwargs=dnnlib.EasyDict(),
                               epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4), channel_base=128, channel_max=16,
                               num_fp16_res=0, conv_clamp=256)
    common_kwargs = dict(c_dim=0, img_resolution=16, img_channels=3)
    G = networks.Generator(**G_kwargs, **common_kwargs).train().requires_grad_(False)
    D = networks.Discriminator(**D_kwargs, **common_kwargs).train().requires_grad_(False)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(".bias") or name.endswith("noise_strength"):
                p.add_(0.2 * torch.randn_like(p))
        G.mapping.w_avg.copy_(0.5 * torch.randn_like(G.mapping.w_avg))
    G_ema = copy.deepcopy(G).eval()

    # as training/training_loop.py writes network-snapshot-*.pkl
    snapshot_data = dict(training_set_kwargs=dict(dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                                  path="synthetic", resolution=16, use_labels=False)))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", None)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot_data[name] = module
        del module
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stylegan2ada_tiny.pkl", "wb") as f:
        pickle.dump(snapshot_data, f)

    # reference outputs, computed from a fresh unpickling (as generate.py does) with constant noise
    with open(out / "stylegan2ada_tiny.pkl", "rb") as f:
        snapshot = pickle.load(f)
    G_ema, D = snapshot["G_ema"], snapshot["D"]
    z = torch.randn([4, G_ema.z_dim], generator=torch.Generator().manual_seed(7))
    c = torch.zeros([4, 0])
    with torch.no_grad():
        ws = G_ema.mapping(z, c)
        img = G_ema.synthesis(ws, noise_mode="const")
        ws07 = G_ema.mapping(z, c, truncation_psi=0.7)
        img07 = G_ema(z, c, truncation_psi=0.7, noise_mode="const")
        logits = D(img, c)
    from safetensors.torch import save_file

    save_file({"z": z, "ws": ws.contiguous(), "img": img.contiguous(), "ws_psi07": ws07.contiguous(),
               "img_psi07": img07.contiguous(), "d_logits": logits.contiguous(), "w_avg": G_ema.mapping.w_avg.clone()},
              str(out / "stylegan2ada_tiny_outputs.safetensors"),
              metadata={"made_by": "tests/data/nvlabs/make_nvlabs_pickle.py", "torch": torch.__version__,
                        "noise_mode": "const"})
    print("wrote", out / "stylegan2ada_tiny.pkl", (out / "stylegan2ada_tiny.pkl").stat().st_size, "bytes; images", tuple(img.shape),
          "range", float(img.min()), float(img.max()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
