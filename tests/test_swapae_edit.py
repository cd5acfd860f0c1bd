"""Swapping Autoencoder editing tools (ganedit.edit.swapae and the `swap`, `swap-grid`, `swapae ...` commands):
the code-level maths on plain tensors, the model wrappers against explicit encode/decode, the official
interpolation vectors, and the CLI outputs read back from disk."""
from __future__ import annotations

import pytest
import torch

import ganedit
from ganedit.data.io import read_image, write_image
from ganedit.edit import swapae as E
from ganedit.errors import CheckpointError, ConfigError
from ganedit.models.swapae import SwappingAutoencoder
from ganedit.models.swapae.layers import normalize

TIGHT = dict(atol=1e-5, rtol=1e-4)




@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = SwappingAutoencoder.small(64, width=16, texture_channels=64, with_discriminators=False).eval()
    with torch.no_grad():  # non-trivial biases and noise strengths, so that noise and every code matter
        for name, p in m.named_parameters():
            if name.endswith("bias") or name.endswith("noise.weight"):
                p.add_(0.2 * torch.randn_like(p))
    return m


def images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)))


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


# ------------------------------------------------------------------------------------------- texture code maths


def test_lerp_textures_is_a_normalised_lerp():
    a, b = unit(3, 16, 0), unit(3, 16, 1)
    out = E.lerp_textures(a, b, [0, 0.5, 1, 1.5])
    assert out.shape == (3, 4, 16)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 4))
    torch.testing.assert_close(out[:, 0], a, **TIGHT)
    torch.testing.assert_close(out[:, 2], b, **TIGHT)
    mid = out[:, 1]
    torch.testing.assert_close((mid * a).sum(-1), (mid * b).sum(-1), **TIGHT)  # halfway in angle
    torch.testing.assert_close(out[:, 3], normalize(b + 0.5 * (b - a)), **TIGHT)  # extrapolation


def test_shift_textures_adds_and_renormalises():
    t, d = unit(2, 16, 2), torch.randn(16)
    out = E.shift_textures(t, d, [0.0, 0.3, -2.0])
    torch.testing.assert_close(out[:, 0], t, **TIGHT)
    torch.testing.assert_close(out[:, 1], normalize(t + 0.3 * d), **TIGHT)
    torch.testing.assert_close(out[:, 2], normalize(t - 2.0 * d), **TIGHT)
    with pytest.raises(ConfigError, match="16"):
        E.shift_textures(t, torch.randn(8), [1.0])


def test_pca_components_orthonormal_sorted_and_reconstructing():
    g = torch.Generator().manual_seed(3)
    scales = torch.linspace(3.0, 0.1, 12)
    codes = normalize(torch.randn(300, 12, generator=g) * scales + torch.randn(12, generator=g))
    full = E.pca_of_codes(codes)
    assert full.components.shape == (12, 12) and full.n_samples == 300
    torch.testing.assert_close(full.components @ full.components.T, torch.eye(12), **TIGHT)
    ev = full.explained_variance
    assert torch.all(ev[:-1] >= ev[1:]) and ev[0] > 2 * ev[-1]
    # eigenvalues = squared singular values of the centred data / (N - 1)
    s = torch.linalg.svdvals((codes - codes.mean(0)).double())
    torch.testing.assert_close(ev.double(), s ** 2 / 299, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(full.explained_variance_ratio.sum(), torch.tensor(1.0), **TIGHT)
    torch.testing.assert_close(full.reconstruct(full.project(codes)), codes, **TIGHT)
    # truncation keeps the leading directions, and streaming over batches gives the same result
    m = E.TextureMoments()
    for chunk in codes.split(37):
        m.add(chunk)
    top = E.pca_from_moments(m, 4)
    torch.testing.assert_close(top.components, full.components[:4], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(top.mean, codes.mean(0), **TIGHT)
    # at most N - 1 components: beyond that there is no variance to explain
    assert E.pca_of_codes(codes[:5]).components.shape[0] == 4
    torch.testing.assert_close(top.direction(1, sigma=True), top.components[1] * ev[1].sqrt(), **TIGHT)
    with pytest.raises(ConfigError, match="component 9"):
        top.direction(9)


def test_mean_difference_moves_set_a_towards_set_b():
    g = torch.Generator().manual_seed(4)
    mu_a, mu_b = torch.randn(32, generator=g), torch.randn(32, generator=g)
    a = normalize(mu_a + 0.8 * torch.randn(50, 32, generator=g))
    b = normalize(mu_b + 0.8 * torch.randn(70, 32, generator=g))
    md = E.mean_difference_of_codes(a, b)
    torch.testing.assert_close(md.direction, b.mean(0) - a.mean(0), **TIGHT)
    assert (md.n_a, md.n_b) == (50, 70)
    moved = E.shift_textures(a, md.direction, [1.0])[:, 0]
    before, after = cos(a.mean(0), b.mean(0)), cos(moved.mean(0), b.mean(0))
    assert after > before and after > 0.95


def test_direction_files_round_trip(tmp_path):
    pca = E.pca_of_codes(unit(20, 8, 5), 3)
    md = E.mean_difference_of_codes(unit(5, 8, 6), unit(6, 8, 7))
    for ext in ("pt", "safetensors"):
        back = E.read_direction_file(E.save_directions(pca, tmp_path / f"pca.{ext}"))
        assert isinstance(back, E.PCAResult) and back.n_samples == 20
        torch.testing.assert_close(back.components, pca.components)
        torch.testing.assert_close(back.explained_variance, pca.explained_variance)
        torch.testing.assert_close(E.direction_vector(back, 2), pca.components[2])
        back = E.read_direction_file(E.save_directions(md, tmp_path / f"md.{ext}"))
        assert isinstance(back, E.MeanDifference) and (back.n_a, back.n_b) == (5, 6)
        torch.testing.assert_close(E.direction_vector(back), md.direction)
    torch.save(torch.arange(8.0), tmp_path / "plain.pt")
    torch.testing.assert_close(E.direction_vector(E.read_direction_file(tmp_path / "plain.pt")), torch.arange(8.0))
    with pytest.raises(ConfigError, match="PCA"):
        E.direction_vector(md, component=1)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt"):
        E.read_direction_file(tmp_path / "other.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        E.read_direction_file(tmp_path / "bad.safetensors")


# ----------------------------------------------------------------------------------------- structure code maths


def test_mask_to_code_averages_areas():
    m = E.rect_mask(64, 64, (0, 0, 12, 16))  # 8 px cells: column 0 full, column 1 half, rows 0-1
    c = E.mask_to_code(m, (8, 8))
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., :2, 0] = 1.0
    expected[..., :2, 1] = 0.5
    torch.testing.assert_close(c, expected)
    torch.testing.assert_close(E.mask_to_code(torch.rand(1, 3, 40, 40) * 0 + 0.25, (5, 5)), torch.full((1, 1, 5, 5), 0.25))
    with pytest.raises(ConfigError, match="empty"):
        E.rect_mask(64, 64, (10, 10, 10, 20))
    torch.testing.assert_close(E.image_to_mask(torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)), torch.tensor([[[[0.0, 0.5, 1.0]]]]))


def test_blend_structure_codes_changes_only_under_the_mask():
    t = normalize(torch.randn(2, 8, 6, 6))
    s = normalize(torch.randn(2, 8, 6, 6))
    m = torch.zeros(1, 1, 6, 6)
    m[..., 1:3, 2:5] = 1.0
    m[..., 4, 0] = 0.5
    out = E.blend_structure_codes(t, s, m)
    inside, soft = m[0, 0] == 1, m[0, 0] == 0.5
    outside = m[0, 0] == 0
    assert torch.equal(out[..., outside], t[..., outside])  # bit-exact outside the mask
    torch.testing.assert_close(out[..., inside], s[..., inside], **TIGHT)
    torch.testing.assert_close(out[..., soft], normalize(t + s)[..., soft], **TIGHT)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 6, 6), **TIGHT)
    # an offset moves the source region with its mask
    moved = E.blend_structure_codes(t, s, m, offset=(1, 2))
    torch.testing.assert_close(moved[..., 3:5, 3:6], s[..., 1:3, 2:5], **TIGHT)
    assert torch.equal(moved[..., 1:3, 2:3], t[..., 1:3, 2:3])


def test_copy_structure_codes_with_offset_and_clipping():
    t = normalize(torch.randn(1, 8, 6, 6))
    s = normalize(torch.randn(1, 8, 6, 6))
    m = torch.zeros(1, 1, 6, 6)
    m[..., 0:2, 0:2] = 0.75
    m[..., 5, 5] = 0.4  # below the threshold: not copied
    out = E.copy_structure_codes(t, s, m, offset=(3, 4))
    expected = t.clone()
    expected[..., 4:6, 3:5] = s[..., 0:2, 0:2]
    assert torch.equal(out, expected)
    off = E.copy_structure_codes(t, s, m, offset=(5, 5))  # only cell (0, 0) lands on the canvas
    expected = t.clone()
    expected[..., 5, 5] = s[..., 0, 0]
    assert torch.equal(off, expected)
    # moving a region within one image
    same = E.copy_structure_codes(t, t, m, offset=(-1, 0))
    assert torch.equal(same[..., 0:2, 0], t[..., 0:2, 1]) and torch.equal(same[..., 2:, :], t[..., 2:, :])


# ---------------------------------------------------------------------------------------------- model wrappers


def test_swap_endpoints_and_noise_fixed_per_structure(model):
    a, b, c = images(2, seed=10), images(1, seed=11), images(2, seed=12)
    out = E.swap(model, a, b, [0.0, 0.5, 1.0])
    assert out.shape == (2, 3, 3, 64, 64)
    with torch.no_grad():
        sp_a, gl_a = model.encode(a)
        _, gl_b = model.encode(b)
        noise = E.structure_noise(model, sp_a, seed=0)
        torch.testing.assert_close(out[:, 0], model.decode(sp_a, gl_a, noise), **TIGHT)  # reconstruction
        torch.testing.assert_close(out[:, 2], model.decode(sp_a, gl_b.expand(2, -1), noise), **TIGHT)  # full swap
        torch.testing.assert_close(out[:, 1], model.decode(sp_a, E.lerp_textures(gl_a, gl_b.expand(2, -1), [0.5])[:, 0], noise), **TIGHT)
    assert (out[:, 2] - out[:, 0]).abs().mean() > 1e-3  # the texture matters
    # the same structure gets the same noise in another call, whatever the texture
    again = E.swap(model, a, c, [0.0])
    torch.testing.assert_close(again[:, 0], out[:, 0], **TIGHT)
    # ... and the noise matters, so the check above can fail
    other = E.swap(model, a, c, [0.0], seed=1)
    assert (other[:, 0] - out[:, 0]).abs().amax() > 1e-3
    assert (E.swap(model, a, c, [0.0], noise="zero")[:, 0] - out[:, 0]).abs().amax() > 1e-3
    # explicit per-structure noise follows its structure through the repeats and the decode chunks
    per = {k: torch.cat([v, torch.randn_like(v)]) for k, v in noise.items()}
    out2 = E.swap(model, a, b, [0.0, 1.0], noise=per, batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(out2[1, 1], model.decode(sp_a[1:], gl_b, {k: v[1:] for k, v in per.items()})[0], **TIGHT)
        torch.testing.assert_close(out2[0, 1], out[0, 2], **TIGHT)


def test_swap_matches_official_interpolation(conformance, tmp_path):
    root = conformance / "swapae" / "official_small"
    if not root.is_dir():
        pytest.skip(f"no Swapping Autoencoder vectors at {root}")
    m = ganedit.load(root / "checkpoints" / "sae_small" / "latest_checkpoint.pth")
    inp = torch.load(root / "inputs.pt", weights_only=True)
    interp = torch.load(root / "interp.pt", weights_only=True)
    noise = {k: v[:1] for k, v in inp["noise"].items()}  # batch-1 calls use noise index 0 (README §6)
    out = E.swap(m, inp["x1"][:1], inp["x2"][:1], interp["alphas"].tolist(), noise=noise)
    torch.testing.assert_close(out[0], interp["images"], atol=1e-4, rtol=1e-4)
    # the CLI takes the official run folder and defaults to the checkpoint's training size (128 px)
    write_image(inp["x1"][:1], tmp_path / "x1.png")
    write_image(inp["x2"][:1], tmp_path / "x2.png")
    cli("swap", "--model", root / "checkpoints" / "sae_small", "--structure", tmp_path / "x1.png", "--texture", tmp_path / "x2.png",
        "--alpha", "0", "1", "-o", tmp_path / "strip.png")
    assert read_image(tmp_path / "strip.png").shape == (1, 3, 128, 256)


def test_swap_grid_is_every_pair(model):
    s, t = images(2, seed=20), images(3, seed=21)
    grid = E.swap_grid(model, s, t)
    assert grid.shape == (2, 3, 3, 64, 64)
    for i in range(2):
        row = E.swap(model, s[i : i + 1].expand(3, -1, -1, -1), t, [1.0])[:, 0]
        torch.testing.assert_close(grid[i], row, **TIGHT)
    diag = E.swap_grid(model, s, s)  # own texture: the reconstruction
    torch.testing.assert_close(diag[1, 1], E.swap(model, s[1:2], s[1:2], [0.0])[0, 0], **TIGHT)


def test_texture_pca_and_mean_difference_on_model_codes(model, tmp_path):
    x = images(12, seed=30)
    codes = E.encode_textures(model, x, batch_size=5)
    assert codes.shape == (12, 64)
    pca = E.texture_pca(model, x, 6, batch_size=5)
    ref = E.pca_of_codes(codes, 6)
    torch.testing.assert_close(pca.components, ref.components, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(pca.mean, codes.mean(0), **TIGHT)
    # a folder dataset goes through the same path
    for i in range(4):
        write_image(x[i], tmp_path / f"{i}.png")
    from ganedit.data.datasets import open_image_dataset

    ds = open_image_dataset(tmp_path)
    assert E.texture_pca(model, ds, batch_size=3).n_samples == 4
    # two appearance groups: darker and brighter images
    dark, bright = (images(6, seed=31) - 1) / 2, (images(6, seed=32) + 1) / 2
    md = E.mean_difference(model, dark, bright, batch_size=4)
    ca, cb = E.encode_textures(model, dark), E.encode_textures(model, bright)
    torch.testing.assert_close(md.direction, cb.mean(0) - ca.mean(0), **TIGHT)
    moved = E.shift_textures(ca, md.direction, [1.0])[:, 0]
    assert cos(moved.mean(0), cb.mean(0)) > cos(ca.mean(0), cb.mean(0))


def test_edit_texture_decodes_the_moved_code(model):
    x = images(2, seed=40)
    d = torch.randn(64, generator=torch.Generator().manual_seed(41))
    out = E.edit_texture(model, x, d, [0.0, 0.7])
    with torch.no_grad():
        sp, gl = model.encode(x)
        noise = E.structure_noise(model, sp)
        torch.testing.assert_close(out[:, 0], model.decode(sp, gl, noise), **TIGHT)
        torch.testing.assert_close(out[:, 1], model.decode(sp, normalize(gl + 0.7 * d), noise), **TIGHT)
    assert (out[:, 1] - out[:, 0]).abs().mean() > 1e-3
    with pytest.raises(ConfigError):
        E.edit_texture(model, x, torch.randn(10), [1.0])


def test_blend_structure_limits_and_locality(model):
    x = images(2, size=128, seed=50)
    target, source = x[:1], x[1:]
    with torch.no_grad():
        sp_t, gl_t = model.encode(target)
        sp_s, _ = model.encode(source)
        noise = E.structure_noise(model, sp_t)
        rec = model.decode(sp_t, gl_t, noise)
        src_structure = model.decode(sp_s, gl_t, noise)
    zeros, ones = torch.zeros(1, 1, 128, 128), torch.ones(1, 1, 128, 128)
    torch.testing.assert_close(E.blend_structure(model, target, source, zeros), rec, **TIGHT)
    torch.testing.assert_close(E.blend_structure(model, target, source, ones), src_structure, **TIGHT)
    # a corner region: the generator is convolutional, so pixels farther than its receptive field from the
    # region are untouched. Radius in code cells (8 px): 4 for the two head blocks' 3x3 convs + < 4 for the
    # upsampling blocks (each adds ~2 cells at its own, doubling, resolution); 8 cells is a safe bound.
    corner = E.rect_mask(128, 128, (0, 0, 24, 24))
    y = E.blend_structure(model, target, source, corner)
    far = (24 + 8 * 8)
    assert (y - rec)[..., :24, :24].abs().mean() > 1e-3
    torch.testing.assert_close(y[..., far:, :], rec[..., far:, :], atol=1e-6, rtol=0)
    torch.testing.assert_close(y[..., :, far:], rec[..., :, far:], atol=1e-6, rtol=0)


def test_copy_structure_region_matches_code_copy(model):
    x = images(2, seed=60)
    target, source = x[:1], x[1:]
    out = E.copy_structure_region(model, target, source, (0, 0, 16, 24), offset=(32, 8))
    moved = E.copy_structure_region(model, target, None, (0, 0, 16, 24), offset=(32, 8))
    with torch.no_grad():
        sp_t, gl_t = model.encode(target)
        sp_s, _ = model.encode(source)
        noise = E.structure_noise(model, sp_t)
        code = sp_t.clone()
        code[..., 1:4, 4:6] = sp_s[..., 0:3, 0:2]  # 8 px cells: 2x3 cells moved by (4, 1) cells
        torch.testing.assert_close(out, model.decode(code, gl_t, noise), **TIGHT)
        code = sp_t.clone()
        code[..., 1:4, 4:6] = sp_t[..., 0:3, 0:2]
        torch.testing.assert_close(moved, model.decode(code, gl_t, noise), **TIGHT)


# --------------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("swapae_cli")
    ganedit.save(model, root / "model")
    for i in range(3):
        write_image(images(1, seed=70 + i), root / "structures" / f"s{i}.png")
    for i in range(2):
        write_image(images(1, size=80, seed=80 + i), root / "textures" / f"t{i}.png")  # resized to 64 by --size default
    return root


def cli(*args: str) -> str:
    from click.testing import CliRunner

    from ganedit.cli.main import cli as group

    result = CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_swap_writes_strip_and_files(model, files, tmp_path):
    m, s0, t1 = files / "model", files / "structures" / "s0.png", files / "textures" / "t1.png"
    cli("swap", "--model", m, "--structure", s0, "--texture", t1, "--alpha", "0", "0.5", "1", "-o", tmp_path / "strip.png")
    strip = read_image(tmp_path / "strip.png")
    assert strip.shape == (1, 3, 64, 192)
    expected = E.swap(model, read_image(s0), read_image(t1, 64), [0.0, 0.5, 1.0])[0]
    assert (strip[0, :, :, 128:] - expected[2].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit rounding
    assert (strip[0, :, :, :64] - expected[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6
    cli("swap", "--model", m, "--structure", s0, "--texture", t1, "--alpha", "0.25", "--alpha", "1", "-o", tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["s0_t1_0.25.png", "s0_t1_1.00.png"]
    assert read_image(tmp_path / "out" / "s0_t1_1.00.png").shape == (1, 3, 64, 64)


def test_cli_swap_grid_layout(files, tmp_path):
    cli("swap-grid", "--model", files / "model", files / "structures", files / "textures", "-o", tmp_path / "grid.png")
    grid = read_image(tmp_path / "grid.png")
    pad = 2
    assert grid.shape == (1, 3, 4 * (64 + pad) + pad, 3 * (64 + pad) + pad)  # header row + 3 structures, header column + 2 textures
    header_texture = grid[0, :, pad : pad + 64, 2 * pad + 64 : 2 * pad + 128]
    assert (header_texture - read_image(files / "textures" / "t0.png", 64)[0]).abs().max() < 1e-6
    first_structure = grid[0, :, 2 * pad + 64 : 2 * pad + 128, pad : pad + 64]
    assert (first_structure - read_image(files / "structures" / "s0.png")[0]).abs().max() < 1e-6


def test_cli_pca_direction_and_edit_texture(model, files, tmp_path):
    m = files / "model"
    s0 = files / "structures" / "s0.png"
    cli("swapae", "pca", "--model", m, files / "structures", "-o", tmp_path / "pca.safetensors", "--components", "5", "--preview", s0)
    pca = E.read_direction_file(tmp_path / "pca.safetensors")
    assert isinstance(pca, E.PCAResult) and pca.components.shape == (2, 64) and pca.n_samples == 3  # capped at N - 1
    torch.testing.assert_close(pca.components @ pca.components.T, torch.eye(2), **TIGHT)
    preview = read_image(tmp_path / "pca_preview.png")[0]
    assert preview.shape == (3, 2 * 66 + 2, 5 * 66 + 2)  # 2 components x 5 strengths, 2 px gaps
    cell = lambda r, c: preview[:, 2 + 66 * r : 66 * (r + 1), 2 + 66 * c : 66 * (c + 1)]  # noqa: E731
    assert torch.equal(cell(0, 2), cell(1, 2))  # strength 0 is the reconstruction on every row
    assert (cell(0, 0) - cell(0, 2)).abs().mean() > 1e-3
    cli("swapae", "direction", "--model", m, files / "structures", files / "textures", "-o", tmp_path / "dir.pt")
    md = E.read_direction_file(tmp_path / "dir.pt")
    assert isinstance(md, E.MeanDifference) and (md.n_a, md.n_b) == (3, 2)
    cli("swapae", "edit-texture", "--model", m, s0, "--direction", tmp_path / "pca.safetensors", "--component", "1", "--sigma",
        "--strength", "-2", "0", "2", "-o", tmp_path / "edit.png")
    strip = read_image(tmp_path / "edit.png")
    assert strip.shape == (1, 3, 64, 192)
    expected = E.edit_texture(model, read_image(s0), pca.direction(1, sigma=True), [-2.0, 0.0, 2.0])[0]
    assert (strip[0, :, :, :64] - expected[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6
    cli("swapae", "edit-texture", "--model", m, s0, "--direction", tmp_path / "dir.pt", "--strength", "1", "-o", tmp_path / "edits")
    assert [p.name for p in (tmp_path / "edits").iterdir()] == ["s0_+1.00.png"]


def test_cli_region_modes_and_errors(model, files, tmp_path, capsys):
    m, s0, s1 = files / "model", files / "structures" / "s0.png", files / "structures" / "s1.png"
    write_image(torch.ones(1, 3, 64, 64), tmp_path / "white.png")
    cli("swapae", "region", "--model", m, "--target", s0, "--source", s1, "--mask", tmp_path / "white.png", "-o", tmp_path / "blend.png")
    out = read_image(tmp_path / "blend.png")
    assert out.shape == (1, 3, 64, 64)
    with torch.no_grad():
        sp_t, gl_t = model.encode(read_image(s0))
        sp_s, _ = model.encode(read_image(s1))
        expected = model.decode(sp_s, gl_t, E.structure_noise(model, sp_t)).clamp(-1, 1)
    assert (out - expected).abs().max() <= 1 / 127.5 + 1e-6  # all-white mask: the source's structure
    cli("swapae", "region", "--model", m, "--target", s0, "--rect", "0", "0", "16", "16", "--mode", "copy", "--offset", "32", "32", "-o", tmp_path / "copy.png")
    expected = E.copy_structure_region(model, read_image(s0), None, (0, 0, 16, 16), offset=(32, 32))
    assert (read_image(tmp_path / "copy.png") - expected.clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6
    from ganedit.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["swapae", "region", "--model", str(m), "--target", str(s0), "-o", str(tmp_path / "x.png")])
    assert exc.value.code == 2 and "exactly one of --mask or --rect" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["swap", "--model", str(m), "--structure", str(s0), "--texture", str(s1), "--size", "60", "-o", str(tmp_path / "x.png")])
    assert exc.value.code == 2 and "multiple of 8" in capsys.readouterr().err
