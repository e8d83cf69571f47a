"""Any Pillow image -> 8-bit RGB pixels, by one documented rule per pixel mode (never a silent clip).

Rules (the reference conversions of ``tests/bench/datasets/test_bad_data.py``):

* ``RGB``, ``L``, ``1``, ``P`` (no transparency), ``CMYK``, ``YCbCr``, ``RGBX``: Pillow's own conversion to RGB.
* 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) and 32-bit ``I`` (how 16-bit PNG/TIFF decode):
  values on 0..65535, scaled by 255/65535 and rounded to nearest. Pillow's ``convert("RGB")`` clips
  them to 255 instead, which turns a 16-bit photo white. ``I`` values outside 0..65535 are refused.
* 32-bit float ``F``: Pillow's scale (0..255, as its ``convert("L")`` reads float images), rounded to
  nearest; values outside [0, 255] or not finite are refused (no guessing of a [0, 1] scale).
* Transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, and ``P``/``L``/``RGB`` with a transparency key):
  composited over **white**, ``round(c * a/255 + 255 * (1 - a/255))``, what a person sees of the image
  on a white page. Dropping alpha would show colours hidden under fully transparent pixels.

Any other mode (``LAB``, ``HSV``, multi-band 16-bit...) is refused with the mode named.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
PLAIN_MODES = ("RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBX")


class UnsupportedImage(ValueError):
    """The pixels cannot be read as RGB by the rules above; the message says why."""


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)


def _wide_grey(img: Image.Image) -> np.ndarray:
    """16-bit (or 32-bit int on a 16-bit scale) grey, scaled to 8 bits."""
    values = np.asarray(img).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise UnsupportedImage(f"32-bit integer pixels outside 0..65535 (found {values.min()}..{values.max()})")
    return _grey_to_rgb((values * 255 + 32767) // 65535)  # round to nearest; never exactly half


def _float_grey(img: Image.Image) -> np.ndarray:
    """Float grey on Pillow's 0..255 scale."""
    values = np.asarray(img).astype(np.float64)
    if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 255)):
        raise UnsupportedImage("float pixels outside [0, 255] (or not finite); save the image as 8- or 16-bit")
    return _grey_to_rgb(np.rint(values))


def _over_white(img: Image.Image) -> np.ndarray:
    """RGBA composited over white, in integers: ``(c*a + 255*(255-a) + 127) // 255`` (never exactly half)."""
    rgba = np.asarray(img.convert("RGBA")).astype(np.int64)
    colour, alpha = rgba[..., :3], rgba[..., 3:]
    return ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """The image's pixels as uint8 ``(H, W, 3)`` by the module's rules."""
    mode = img.mode
    if mode in WIDE_GREY:
        return _wide_grey(img)
    if mode == "F":
        return _float_grey(img)
    if mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        return _over_white(img)
    if mode in PLAIN_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    raise UnsupportedImage(f"pixel mode {mode} is not supported; save the image as 8-bit RGB (or 16-bit grey) PNG")
