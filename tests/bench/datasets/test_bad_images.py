"""Issue 12, class 2: every pixel mode decodes by its documented rule, and oversized or mixed images are one clear error.

The reference conversions here are written from the rules in ``bench/datasets/decode.py`` in plain numpy
(floats, not the module's integer arithmetic): 16-bit scaled by 255/65535, float on 0..255, alpha over white.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lipsim_bench.cli import main
from lipsim_bench.datasets import create_dataset
from lipsim_bench.datasets.decode import UnsupportedImage, to_rgb_array
from lipsim_bench.datasets.images import load_image_uint8
from lipsim_bench.errors import DatasetError
from tests.bench.datasets.test_bapps import make_bapps_subset

RNG = np.random.default_rng(12)
H, W = 5, 7


def grey3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=2).astype(np.uint8)


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    return np.round(rgb.astype(np.float64) * a + 255 * (1 - a)).astype(np.uint8)


def case_i16(fmt_mode: str) -> tuple[Image.Image, np.ndarray]:
    values = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
    values[0, :3] = (0, 65535, 257 * 100 + 128)  # black, white, and just above a half-step
    dtype = ">u2" if fmt_mode == "I;16B" else "<u2"
    img = Image.frombytes(fmt_mode, (W, H), values.astype(dtype).tobytes())
    return img, grey3(np.round(values / 65535 * 255))


def case_i32() -> tuple[Image.Image, np.ndarray]:
    values = RNG.integers(0, 65536, (H, W)).astype(np.int32)
    return Image.fromarray(values, "I"), grey3(np.round(values / 65535 * 255))


def case_f() -> tuple[Image.Image, np.ndarray]:
    values = RNG.uniform(0, 255, (H, W)).astype(np.float32)
    return Image.fromarray(values, "F"), grey3(np.round(values.astype(np.float64)))


def case_alpha(mode: str) -> tuple[Image.Image, np.ndarray]:
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    alpha[0, :2] = (0, 255)
    if mode == "LA":
        rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
        return Image.fromarray(np.stack([rgb[..., 0], alpha], axis=2), "LA"), over_white(rgb, alpha)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), over_white(rgb, alpha)


def case_palette(with_alpha: str) -> tuple[Image.Image, np.ndarray]:
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    index[0, 0] = 3
    img = Image.fromarray(index, "P")
    img.putpalette(palette.reshape(-1).tolist())
    rgb, alpha = palette[index], np.full((H, W), 255, dtype=np.uint8)
    if with_alpha == "key":
        img.info["transparency"] = 3
        alpha[index == 3] = 0
    elif with_alpha == "PA":
        alpha = RNG.integers(0, 256, (H, W), dtype=np.uint8)
        img = img.convert("PA")
        img.putalpha(Image.fromarray(alpha, "L"))
    return img, (over_white(rgb, alpha) if with_alpha else rgb)


def case_cmyk() -> tuple[Image.Image, np.ndarray]:
    cmyk = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8).astype(np.float64)
    rgb = (255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255  # Pillow's (and the usual naive) CMYK -> RGB
    return Image.fromarray(cmyk.astype(np.uint8), "CMYK"), np.round(rgb).astype(np.uint8)


def case_bilevel() -> tuple[Image.Image, np.ndarray]:
    bits = RNG.integers(0, 2, (H, W)).astype(bool)
    return Image.fromarray(bits).convert("1"), grey3(bits * 255)


def case_plain(mode: str) -> tuple[Image.Image, np.ndarray]:
    shape = (H, W, 3) if mode == "RGB" else (H, W)
    values = RNG.integers(0, 256, shape, dtype=np.uint8)
    return Image.fromarray(values, mode), (values if mode == "RGB" else grey3(values))


CASES = {
    "I;16": lambda: case_i16("I;16"),
    "I;16B": lambda: case_i16("I;16B"),
    "I": case_i32,
    "F": case_f,
    "LA": lambda: case_alpha("LA"),
    "RGBA": lambda: case_alpha("RGBA"),
    "P": lambda: case_palette(""),
    "P+transparency": lambda: case_palette("key"),
    "PA": lambda: case_palette("PA"),
    "CMYK": case_cmyk,
    "1": case_bilevel,
    "L": lambda: case_plain("L"),
    "RGB": lambda: case_plain("RGB"),
}
#: the file format each mode is saved in for the end-to-end check (PA has none: checked in memory only)
FORMATS = {
    "I;16": "png",
    "I;16B": "tiff",
    "I": "tiff",
    "F": "tiff",
    "LA": "png",
    "RGBA": "png",
    "P": "png",
    "P+transparency": "png",
    "CMYK": "tiff",
    "1": "png",
    "L": "png",
    "RGB": "png",
}


@pytest.mark.parametrize("mode", sorted(CASES))
def test_every_mode_matches_its_reference(mode: str) -> None:
    img, expected = CASES[mode]()
    np.testing.assert_array_equal(to_rgb_array(img), expected)


@pytest.mark.parametrize("mode", sorted(FORMATS))
def test_every_mode_read_from_a_file_matches_its_reference(tmp_path: Path, mode: str) -> None:
    img, expected = CASES[mode]()
    path = tmp_path / f"image.{FORMATS[mode]}"
    img.save(path, transparency=img.info["transparency"]) if "transparency" in img.info else img.save(path)
    with Image.open(path) as reread:
        assert reread.mode == img.mode  # the file really holds that mode
    got = load_image_uint8(path, None).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)


def test_sixteen_bit_png_is_not_white(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(tmp_path / "grey.png")
    assert load_image_uint8(tmp_path / "grey.png", None).unique().tolist() == [128]


@pytest.mark.parametrize(
    ("img", "why"),
    [
        (Image.fromarray(np.array([[70000, 1]], dtype=np.int32), "I"), "outside 0..65535"),
        (Image.fromarray(np.array([[np.nan, 1]], dtype=np.float32), "F"), "outside \\[0, 255\\]"),
        (Image.fromarray(np.array([[256.0, 1]], dtype=np.float32), "F"), "outside \\[0, 255\\]"),
        (Image.new("HSV", (2, 2)), "pixel mode HSV is not supported"),
    ],
)
def test_pixels_without_a_rule_are_refused(img: Image.Image, why: str) -> None:
    with pytest.raises(UnsupportedImage, match=why):
        to_rgb_array(img)


def test_unsupported_file_is_one_dataset_error_naming_it(tmp_path: Path) -> None:
    Image.fromarray(np.array([[70000, 1]], dtype=np.int32), "I").save(tmp_path / "wide.tiff")
    with pytest.raises(DatasetError, match="image unsupported: .*wide.tiff .*outside 0..65535"):
        load_image_uint8(tmp_path / "wide.tiff", 224)


@pytest.mark.parametrize(
    ("limit", "size"), [(100, 12), (100, 16)]
)  # 144 px: Pillow's warning; 256 px (> 2x): its error
def test_decompression_bomb_is_one_dataset_error_naming_the_file(
    tmp_path: Path, monkeypatch, limit: int, size: int
) -> None:
    Image.fromarray(np.zeros((size, size, 3), dtype=np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DatasetError, match="image too large: .*bomb.png") as info:
        load_image_uint8(tmp_path / "bomb.png", None)
    assert "\n" not in str(info.value)


def test_mixed_sizes_without_resizing_name_the_odd_file(tmp_path: Path) -> None:
    root = make_bapps_subset(tmp_path / "cnn", [0.5, 0.5, 0.5])
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(root / "p1" / "000002.png")
    dataset = create_dataset(f"bapps:{root}")
    assert dataset[0]["ref"].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="image .*p1/000002.png is 32x32 but .*ref/000000.png is 64x64"):
        dataset[2]
    fresh = create_dataset(f"bapps:{root}")  # the reference size is the first triplet's, whatever is read first
    with pytest.raises(DatasetError, match="000002.png is 32x32"):
        fresh[2]


def test_mixed_sizes_through_the_cli_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_bapps_subset(tmp_path / "cnn", [0.5, 0.5, 0.5])
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(root / "ref" / "000001.png")
    code = main(
        [
            "--metrics",
            "pixel-l2",
            "--dataset",
            f"bapps:{root}",
            "--out",
            str(tmp_path / "run"),
            "--attacks",
            "none",
            "--no-certify",
            "--batch-size",
            "3",
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "triplet/s" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "000001.png is 32x32" in lines[0], err


def test_resized_datasets_still_match_pil_bicubic(tmp_path: Path) -> None:
    img, _ = case_plain("RGB")
    img.save(tmp_path / "x.png")
    expected = np.array(img.resize((224, 224), Image.BICUBIC))
    assert torch.equal(load_image_uint8(tmp_path / "x.png", 224), torch.from_numpy(expected).permute(2, 0, 1))
