"""Real image files (PNG, JPEG, any size) to MNIST-style 28x28 digits.

MNIST digits are white on black, fit into a 20x20 box and centred by their centre of mass in a
28x28 frame; a photo or a drawing is brought to the same form so that the models see what they
were trained on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError


MAX_PIXELS = 16_000_000  # a larger picture is not a digit, and decoding it would cost seconds


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file and return a (28, 28) uint8 MNIST-style digit."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return to_mnist(decode_gray(path, str(path)))


def decode_gray(source, name: str = "the image") -> np.ndarray:
    """An image file (a path or a binary file object) as a float32 grayscale array (H, W).

    ``name`` starts the one-line error for what Pillow cannot read or what is too large.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"{name}: {im.width}x{im.height} pixels, too large to be a digit")
            return np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: not a readable image ({exc.__class__.__name__})") from None


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """Grayscale array (H, W), any range of 0..255 -> (28, 28) uint8, white digit on black."""
    from PIL import Image

    gray = np.asarray(gray, dtype=np.float32)
    # A light background (most photos and scans) is inverted to MNIST's white-on-black.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray, border = 255.0 - gray, 255.0 - border
    gray = np.clip(gray - np.median(border), 0, 255)
    ys, xs = np.nonzero(gray > 0.1 * gray.max()) if gray.max() > 0 else (np.array([]), np.array([]))
    if len(ys) == 0:
        return np.zeros((28, 28), dtype=np.uint8)
    crop = gray[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop).resize(new, Image.Resampling.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, None)
    if small.max() > 0:
        small *= 255.0 / small.max()
    frame = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    # Shift so the centre of mass sits at the centre, as MNIST's preparation did.
    total = frame.sum()
    cy = (frame.sum(axis=1) * np.arange(28)).sum() / total
    cx = (frame.sum(axis=0) * np.arange(28)).sum() / total
    dy, dx = int(round(14.0 - cy)), int(round(14.0 - cx))
    box_top, box_left = top + dy, left + dx
    dy -= min(0, box_top) + max(0, box_top + small.shape[0] - 28)
    dx -= min(0, box_left) + max(0, box_left + small.shape[1] - 28)
    frame = np.roll(frame, (dy, dx), axis=(0, 1))
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def read_resized(path: str | os.PathLike, size: tuple[int, int], channels: int) -> np.ndarray:
    """An image file as (H, W, channels) uint8 pixels at ``size`` (height, width), for models of any
    image shape (``--inputs FOLDER``): EXIF orientation applied, alpha composited over white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"{path}: {im.width}x{im.height} pixels, too large")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            im = im.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if channels == 1:
        return array[..., None]
    if channels == 4:
        return np.concatenate([array, np.full((*array.shape[:2], 1), 255, np.uint8)], axis=-1)
    return array
