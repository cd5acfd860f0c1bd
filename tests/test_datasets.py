"""Datasets, transforms and the `ganedit data prepare/info` commands: layouts, determinism, shared pair
parameters, the bad-file policy, DataLoader workers, and the official pix2pix transform numbers."""
from __future__ import annotations

import io
import json
import pickle
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch.utils.data import DataLoader

from ganedit.data.datasets import (
    AlignedDataset,
    ImageFolderDataset,
    PairedFolderDataset,
    UnalignedDataset,
    ZipDataset,
    open_image_dataset,
    split_aligned,
)
from ganedit.data.io import load_rgb, pil_to_tensor, read_image
from ganedit.data.prepare import dataset_info, prepare_zip
from ganedit.data.transforms import Params, Transform, pix2pix_transform
from ganedit.errors import ConfigError, DataError, ImageError


def _img(seed: int, h: int = 20, w: int = 24, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def _folder(root: Path, names, h: int = 20, w: int = 24) -> Path:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _img(i, h, w).save(path)
    return root


# ------------------------------------------------------------------------------------ pix2pix conformance


def test_pix2pix_transforms_match_the_official_numbers(conformance: Path, tmp_path: Path, monkeypatch) -> None:
    ex = conformance / "translation" / "dataset_example"
    expected = torch.load(ex / "expected.pt", weights_only=True)
    a, b = split_aligned(load_rgb(ex / "AB_24x10.png"))
    assert torch.equal(pil_to_tensor(a), expected["raw_A"]) and torch.equal(pil_to_tensor(b), expected["raw_B"])
    odd_a, odd_b = split_aligned(load_rgb(ex / "AB_odd_7x4.png"))
    assert odd_a.size[0] == expected["odd_width_split"]["A_width"] and odd_b.size[0] == expected["odd_width_split"]["B_width"]
    assert torch.equal(pil_to_tensor(odd_a), expected["odd_raw_A"]) and torch.equal(pil_to_tensor(odd_b), expected["odd_raw_B"])

    # Test time through the dataset: load = crop = 8, no flip.
    (tmp_path / "test").mkdir()
    shutil.copy(ex / "AB_24x10.png", tmp_path / "test" / "AB_24x10.png")
    ds = AlignedDataset(tmp_path, phase="test", transform=pix2pix_transform(286, 8, train=False))
    item = ds[0]
    assert torch.equal(item["A"], expected["test_A_load8_crop8"]) and torch.equal(item["B"], expected["test_B_load8_crop8"])
    assert item["A_path"].endswith("AB_24x10.png")
    swapped = AlignedDataset(tmp_path, phase="test", direction="BtoA", transform=pix2pix_transform(286, 8, train=False))[0]
    assert torch.equal(swapped["A"], expected["test_B_load8_crop8"]) and torch.equal(swapped["B"], expected["test_A_load8_crop8"])

    # Training: the recorded params, and the same params drawn through Python's random in the official order
    # (crop x, crop y, flip) and shared by both halves.
    p = expected["train_params"]
    t = pix2pix_transform(p["load_size"], p["crop_size"])
    params = Params(tuple(p["crop_pos"]), p["flip"])
    assert torch.equal(t.apply(a, params), expected["train_A_load12_crop8_pos3_1_flip"])
    assert torch.equal(t.apply(b, params), expected["train_B_load12_crop8_pos3_1_flip"])
    draws = iter(p["crop_pos"])
    monkeypatch.setattr(random, "randint", lambda lo, hi: next(draws))
    monkeypatch.setattr(random, "random", lambda: 0.9 if p["flip"] else 0.1)
    item = AlignedDataset(tmp_path, phase="test", transform=t)[0]
    assert torch.equal(item["A"], expected["train_A_load12_crop8_pos3_1_flip"])
    assert torch.equal(item["B"], expected["train_B_load12_crop8_pos3_1_flip"])


# -------------------------------------------------------------------------------------------- transforms


def test_transform_pieces() -> None:
    im = _img(0, 30, 40)
    arr = np.asarray(im)
    centre = Transform(crop=(10, 20)).apply(im, Transform(crop=(10, 20)).draw(40, 30))
    assert torch.equal(centre, pil_to_tensor(Image.fromarray(arr[10:20, 10:30])))
    flip = Transform(flip=True).apply(im, Params(None, True))
    assert torch.equal(flip, pil_to_tensor(im).flip(-1))
    t = Transform(crop=8, random_crop=True, flip=True)
    rng = random.Random(0)
    positions = {t.draw(40, 30, rng).crop_pos for _ in range(200)}
    assert all(0 <= x <= 32 and 0 <= y <= 22 for x, y in positions) and len(positions) > 50
    flips = [t.draw(40, 30, rng).flip for _ in range(200)]
    assert 50 < sum(flips) < 150
    shorter = Transform(resize=15, resize_kind="shorter", resize_filter="lanczos").apply(im, Params())
    assert shorter.shape == (3, 15, 20)
    assert torch.equal(shorter, pil_to_tensor(im.resize((20, 15), Image.Resampling.LANCZOS)))
    cover = Transform(resize=12, resize_kind="cover").apply(im, Params())
    assert torch.equal(cover, pil_to_tensor(Image.fromarray(arr[:, 5:35]).resize((12, 12), Image.Resampling.BICUBIC)))
    with pytest.raises(ImageError, match="smaller than the crop"):
        Transform(crop=50).apply(im, Params(), name="x.png")
    with pytest.raises(ImageError, match="smaller than the requested"):
        Transform(resize=64, resize_kind="cover", allow_upscale=False).apply(im, Params())
    none = pix2pix_transform(preprocess="none").apply(_img(0, 30, 41), Params())
    assert none.shape == (3, 32, 40)  # rounded to multiples of 4
    sw = pix2pix_transform(16, 12, "scale_width_and_crop", flip=False)
    assert sw.resized_size(40, 30) == (16, 12) and sw.apply(im, sw.draw(40, 30)).shape == (3, 12, 12)
    gray = pix2pix_transform(8, 8, train=False, grayscale=True).apply(im, Params())
    assert gray.shape == (1, 8, 8)


# ------------------------------------------------------------------------------------ folder / zip datasets


def test_folder_dataset_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    _folder(tmp_path, ["b.png", "a/z.jpg", "a/c.png", "A.bmp", ".hidden/x.png", "._y.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(tmp_path)
    assert ds.names == ["A.bmp", "a/c.png", "a/z.jpg", "b.png"]
    item = ds[1]
    assert item["image"].shape == (3, 20, 24) and item["path"] == str(tmp_path / "a/c.png") and item["skipped"] == 0
    assert torch.equal(item["image"], read_image(tmp_path / "a/c.png")[0])
    assert "label" not in item
    sized = ImageFolderDataset(tmp_path, size=16)
    assert sized[0]["image"].shape == (3, 16, 16)
    with pytest.raises(ImageError, match="smaller than the requested"):
        ImageFolderDataset(tmp_path, size=32)[0]
    assert ImageFolderDataset(tmp_path, size=32, allow_upscale=True)[0]["image"].shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="either size or transform"):
        ImageFolderDataset(tmp_path, size=16, transform=Transform())
    with pytest.raises(DataError, match="no image files"):
        ImageFolderDataset(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    d = tmp_path.parent / (tmp_path.name + "-empty")
    d.mkdir(exist_ok=True)
    return d


def test_bad_files_stop_or_are_skipped_and_counted(tmp_path: Path) -> None:
    _folder(tmp_path, [f"{i}.png" for i in range(5)])
    (tmp_path / "2.png").write_bytes((tmp_path / "2.png").read_bytes()[:60])  # truncated
    (tmp_path / "3.png").write_bytes(b"")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(ImageError, match="2.png: truncated or corrupt PNG"):
        [ds[i] for i in range(len(ds))]
    ds = ImageFolderDataset(tmp_path, skip_bad=True)
    items = [ds[i] for i in range(len(ds))]
    assert [Path(it["path"]).name for it in items] == ["0.png", "1.png", "4.png", "4.png", "4.png"]
    assert sum(it["skipped"] for it in items) == 2 + 1  # item 2 passes over 2 bad files, item 3 over one
    assert sorted(Path(p).name for p in ds.bad_files) == ["2.png", "3.png"]
    loader = DataLoader(ImageFolderDataset(tmp_path, skip_bad=True), batch_size=5, num_workers=1)
    batch = next(iter(loader))
    assert int(batch["skipped"].sum()) == 3  # the count survives worker processes through the batch


def test_worker_errors_stay_image_errors(tmp_path: Path) -> None:
    # A DataLoader worker's exception reaches the main process as type(exc)(text of the worker traceback), via
    # torch's ExceptionWrapper. Replay exactly that (a real failing worker costs torch ~5 s of shutdown).
    from torch._utils import ExceptionWrapper

    _folder(tmp_path, ["0.png"])
    (tmp_path / "1.png").write_bytes(b"garbage")
    ds = ImageFolderDataset(tmp_path)
    try:
        ds[1]
    except ImageError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(ImageError) as info:
        pickle.loads(pickle.dumps(wrapped)).reraise()
    assert str(info.value).endswith("1.png: not an image, or a format ganedit does not read (PNG, JPEG, WebP, BMP, TIFF, GIF, PPM)")
    assert "Traceback" not in str(info.value)


def _nvlabs_zip(path: Path, n: int, labels) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            buf = io.BytesIO()
            _img(i, 16, 16).save(buf, "PNG")
            z.writestr(f"{i // 3:05d}/img{i:08d}.png", buf.getvalue())
        if labels is not None:
            z.writestr("dataset.json", json.dumps({"labels": [[f"{i // 3:05d}/img{i:08d}.png", labels(i)] for i in range(n)]}))
    return path


def test_zip_dataset_labels_pickling_and_workers(tmp_path: Path) -> None:
    ds = ZipDataset(_nvlabs_zip(tmp_path / "d.zip", 7, lambda i: i % 3))
    assert len(ds) == 7 and ds.names[3] == "00001/img00000003.png"
    item = ds[3]
    assert item["label"].dtype == torch.int64 and int(item["label"]) == 0
    assert item["path"] == f"{tmp_path / 'd.zip'}/00001/img00000003.png"
    clone = pickle.loads(pickle.dumps(ds))  # after the handle was opened: it is not pickled
    assert clone.source._zip is None and torch.equal(clone[3]["image"], item["image"])
    serial = torch.stack([ds[i]["image"] for i in range(7)])
    for workers in (0, 2):
        batches = list(DataLoader(ds, batch_size=4, num_workers=workers))
        assert torch.equal(torch.cat([b["image"] for b in batches]), serial)
        assert torch.cat([b["label"] for b in batches]).tolist() == [i % 3 for i in range(7)]
    vec = open_image_dataset(_nvlabs_zip(tmp_path / "v.zip", 2, lambda i: [i, 0.5]))
    assert vec[1]["label"].dtype == torch.float32 and vec[1]["label"].tolist() == [1.0, 0.5]
    assert "label" not in open_image_dataset(_nvlabs_zip(tmp_path / "n.zip", 2, None))[0]
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as z:
        z.writestr("a.png", b"x")
        z.writestr("dataset.json", json.dumps({"labels": [["b.png", 1]]}))
    with pytest.raises(DataError, match="no label for 1 image"):
        ZipDataset(tmp_path / "m.zip")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError):
        ZipDataset(tmp_path / "broken.zip")
    # A damaged member (bad CRC) is that image's error, and can be skipped like a bad file.
    raw = bytearray((tmp_path / "d.zip").read_bytes())
    first = raw.index(b"IDAT") + 20
    raw[first] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(raw))
    with pytest.raises(ImageError, match="img00000000.png: cannot read from the zip"):
        ZipDataset(tmp_path / "crc.zip")[0]
    assert ZipDataset(tmp_path / "crc.zip", skip_bad=True)[0]["skipped"] == 1


def test_seeded_augmentation_is_independent_of_workers(tmp_path: Path) -> None:
    _folder(tmp_path, [f"{i}.png" for i in range(6)])
    ds = ImageFolderDataset(tmp_path, transform=Transform(crop=12, random_crop=True, flip=True), seed=7)
    first = [ds[i]["image"] for i in range(6)]
    again = torch.cat([b["image"] for b in DataLoader(ds, batch_size=3, num_workers=2)])
    assert torch.equal(torch.stack(first), again)
    ds.set_epoch(1)
    assert not all(torch.equal(first[i], ds[i]["image"]) for i in range(6))


# ----------------------------------------------------------------------------------- paired / unaligned


def test_aligned_pairs_share_crop_and_flip(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    for i in range(4):
        half = np.asarray(_img(i, 20, 21))
        Image.fromarray(np.concatenate([half, half], 1)).save(tmp_path / "train" / f"{i}.png")  # A == B
    ds = AlignedDataset(tmp_path, transform=pix2pix_transform(24, 16), seed=3)
    for i in range(4):
        item = ds[i]
        assert item["A"].shape == (3, 16, 16) and torch.equal(item["A"], item["B"])
    Image.new("RGB", (1, 5)).save(tmp_path / "train" / "9.png")
    with pytest.raises(ImageError, match="9.png: .*too narrow"):
        ds.__class__(tmp_path, transform=pix2pix_transform(24, 16))[4]


def test_paired_folders(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "A" / "s").mkdir(parents=True, exist_ok=True)
        (tmp_path / "B" / "s").mkdir(parents=True, exist_ok=True)
        _img(i).save(tmp_path / "A" / "s" / f"{i}.png")
        _img(i).save(tmp_path / "B" / "s" / f"{i}.bmp")  # same pixels, another extension
    ds = PairedFolderDataset(tmp_path, transform=pix2pix_transform(24, 16), seed=0)
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert torch.equal(item["A"], item["B"]) and item["A_path"].endswith(f"A/s/{i}.png") and item["B_path"].endswith(f"B/s/{i}.bmp")
    back = PairedFolderDataset(tmp_path, direction="BtoA", transform=pix2pix_transform(16, 16, train=False))[0]
    assert back["A_path"].endswith("B/s/0.bmp")
    _img(9).save(tmp_path / "A" / "extra.png")
    with pytest.raises(DataError, match="1 in .*A without a partner \\(e.g. extra.png\\)"):
        PairedFolderDataset(tmp_path)
    with pytest.raises(DataError, match="direction"):
        PairedFolderDataset(tmp_path / "A", tmp_path / "B", direction="sideways")


def test_unaligned_domains(tmp_path: Path) -> None:
    _folder(tmp_path / "trainA", [f"a{i}.png" for i in range(3)])
    _folder(tmp_path / "trainB", [f"b{i}.png" for i in range(5)])
    plain = Transform()
    serial = UnalignedDataset(tmp_path, serial=True, transform=plain)
    assert len(serial) == 5
    names = [(Path(serial[i]["A_path"]).name, Path(serial[i]["B_path"]).name) for i in range(5)]
    assert names == [("a0.png", "b0.png"), ("a1.png", "b1.png"), ("a2.png", "b2.png"), ("a0.png", "b3.png"), ("a1.png", "b4.png")]
    rand = UnalignedDataset(tmp_path, transform=plain, seed=11)
    picks = [Path(rand[i]["B_path"]).name for i in range(5)]
    assert picks == [Path(rand[i]["B_path"]).name for i in range(5)]  # seeded: repeatable
    many = set()
    for epoch in range(8):
        rand.set_epoch(epoch)
        many.update(Path(rand[i]["B_path"]).name for i in range(5))
    assert len(many) >= 4  # but random across items and epochs
    back = UnalignedDataset(tmp_path, serial=True, direction="BtoA", transform=plain)[1]
    assert back["A_path"].endswith("b1.png") and back["B_path"].endswith("a1.png")
    # Independent augmentation: the same image in both domains is flipped independently.
    shutil.rmtree(tmp_path / "trainB")
    shutil.copytree(tmp_path / "trainA", tmp_path / "trainB")
    ind = UnalignedDataset(tmp_path, serial=True, transform=Transform(flip=True), seed=0)
    differs = []
    for epoch in range(4):
        ind.set_epoch(epoch)
        differs += [not torch.equal(ind[i]["A"], ind[i]["B"]) for i in range(3)]
    assert any(differs) and not all(differs)


# ------------------------------------------------------------------------------------- prepare and info


def test_prepare_writes_an_nvlabs_zip_atomically(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", ["x/1.png", "0.jpg", "2.png"], h=30, w=40)
    (src / "dataset.json").write_text(json.dumps({"labels": [["0.jpg", 5], ["2.png", 6], ["x/1.png", 7]]}))
    res = prepare_zip(src, tmp_path / "out" / "d.zip", 16, progress=False)
    assert res.written == 3 and res.labels and not res.bad_files
    with zipfile.ZipFile(tmp_path / "out" / "d.zip") as z:
        assert sorted(z.namelist()) == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png", "dataset.json"]
        labels = json.loads(z.read("dataset.json"))["labels"]
    assert labels == [["00000/img00000000.png", 5], ["00000/img00000001.png", 6], ["00000/img00000002.png", 7]]
    ds = ZipDataset(tmp_path / "out" / "d.zip")
    expect = read_image(src / "2.png", 16)[0]  # centre crop + bicubic resize, then PNG: lossless
    assert torch.equal(ds[1]["image"], expect) and int(ds[1]["label"]) == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d.zip"]

    (src / "0.jpg").write_bytes(b"\xff\xd8\xff broken")
    with pytest.raises(ImageError, match="0.jpg"):
        prepare_zip(src, tmp_path / "out" / "e.zip", 16, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d.zip"]  # nothing half-written
    res = prepare_zip(src, tmp_path / "out" / "e.zip", 16, skip_bad=True, progress=False)
    assert res.written == 2 and list(res.bad_files) == [str(src / "0.jpg")]
    with zipfile.ZipFile(tmp_path / "out" / "e.zip") as z:
        assert [lab for _, lab in json.loads(z.read("dataset.json"))["labels"]] == [6, 7]


def test_cli_prepare_and_info(tmp_path: Path) -> None:
    from ganedit.cli.main import cli

    src = _folder(tmp_path / "src", ["a.png", "b.png", "c.png"], h=24, w=24)
    Image.open(src / "c.png").convert("L").save(src / "c.png")
    (src / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    runner = CliRunner()
    out = runner.invoke(cli, ["data", "prepare", str(src), str(tmp_path / "p.zip"), "--size", "8"])
    assert out.exit_code != 0 and isinstance(out.exception, ImageError)
    out = runner.invoke(cli, ["data", "prepare", str(src), str(tmp_path / "p.zip"), "--size", "8", "--skip-bad"])
    assert out.exit_code == 0, out.output
    assert "wrote 3 images of 8x8" in out.output and "skipped 1 bad file" in out.output and "d.png" in out.output
    out = runner.invoke(cli, ["data", "info", str(tmp_path / "p.zip")])
    assert out.exit_code == 0 and "images: 3 (3 readable)" in out.output and "8x8 (3)" in out.output
    out = runner.invoke(cli, ["data", "info", str(src)])
    assert out.exit_code == 1
    assert "images: 4 (3 readable)" in out.output and "RGB (2), L (1)" in out.output and "d.png" in out.output
    for cmd in (["data", "--help"], ["data", "prepare", "--help"], ["data", "info", "--help"]):
        assert "Example" in runner.invoke(cli, cmd).output


def test_info_on_paired_and_unaligned_layouts(tmp_path: Path) -> None:
    _folder(tmp_path / "u" / "trainA", ["1.png", "2.png"])
    _folder(tmp_path / "u" / "trainB", ["1.png"], h=10, w=10)
    info = dataset_info(tmp_path / "u", progress=False)
    assert info.layout == "unaligned domains" and [(p.name, p.count) for p in info.parts] == [("trainA", 2), ("trainB", 1)]
    assert info.parts[1].size_summary()[0] == (10, 10)
    _folder(tmp_path / "p" / "A", ["1.png", "2.png"])
    _folder(tmp_path / "p" / "B", ["1.png", "3.png"])
    info = dataset_info(tmp_path / "p", progress=False, decode=False)
    assert info.layout == "paired folders" and any("unmatched names: 1 only in" in n for n in info.notes)
    _folder(tmp_path / "ab", ["1.png", "2.png"], h=10, w=20)
    assert any("A|B" in n for n in dataset_info(tmp_path / "ab", progress=False).notes)
