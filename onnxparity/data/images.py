"""Real image files (PNG, JPEG, any size) to MNIST-style 28x28 digits.

MNIST digits are white on black, fit into a 20x20 box and centred by their centre of mass in a
28x28 frame; a photo, a scan or a drawing is brought to the same form so that the models see what
they were trained on. Finding the digit (:func:`to_mnist`), step by step:

1. The file is turned upright (EXIF orientation) and a transparent canvas is laid over paper of
   the colour that contrasts with its strokes (:func:`decode_gray`).
2. Ink is made bright on dark: a picture with a light margin, or with a light solid sheet (paper on
   a darker desk), is inverted.
3. Uneven lighting is taken out with a white top-hat (the picture minus its grey opening): what is
   left is what is thinner than a quarter of the picture, i.e. strokes, not shading or the desk.
4. Strokes are what stands out by at least half the brightest stroke (and by MIN_CONTRAST), with
   their fainter continuation down to a quarter of it (hysteresis, so faint joins do not split).
5. The digit is the largest connected component that does not run along the border (a scan's
   frame, a desk's edge; a digit drawn up to the edge touches it only briefly), with the components near it that are at least a fifth of its size (a 5's flag, a
   7's bar); specks and far-away marks are left out. No component: "no digit found".
6. That crop is fitted into 20x20 and centred by its centre of mass in 28x28.

scipy.ndimage does the morphology, labelling and centre of mass; Pillow decodes and resizes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError

MAX_PIXELS = 16_000_000  # a larger picture is not a digit, and decoding it would cost seconds
WORK_SIDE = 512  # larger pictures are shrunk to this longer side first: plenty for a digit
MIN_CONTRAST = 0.12  # strokes stand out from the paper by at least this share of black-to-white
PART_SHARE = 0.2  # a separate stroke counts as part of the digit from this share of the main one's area
EDGE_CONTACT = 0.5  # a digit drawn up to the edge touches at most this share of any one side
MIN_EXTENT = 0.04  # a digit spans at least this share of the picture's longer side


class NoDigit(InputError):
    """The picture holds nothing that looks like a digit (a blank page, only specks)."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file and return a (28, 28) uint8 MNIST-style digit."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        return to_mnist(decode_gray(path, str(path)))
    except NoDigit as exc:
        raise NoDigit(f"{path}: {exc}") from None


def load_images(paths) -> tuple[list[str], np.ndarray, list[InputError]]:
    """Every readable file's digit: (their paths, (N, 28, 28) uint8 digits, one error per other file)."""
    good, digits, errors = [], [], []
    for path in paths:
        try:
            digits.append(load_image(path))
            good.append(str(path))
        except InputError as exc:
            errors.append(exc)
    return good, np.stack(digits) if digits else np.zeros((0, 28, 28), np.uint8), errors


def load_resized(paths, size: tuple[int, int, int]) -> tuple[list[str], np.ndarray, list[InputError]]:
    """Every readable file resized as it is to ``size`` (height, width, channels), for an image model
    that is not a digit model: (their paths, (N, H, W[, C]) uint8 images, one error per other file)."""
    good, images, errors = [], [], []
    for path in paths:
        try:
            images.append(read_resized(path, size[:2], size[2]))
            good.append(str(path))
        except InputError as exc:
            errors.append(exc)
    stacked = np.stack(images) if images else np.zeros((0, *size), np.uint8)
    return good, stacked[..., 0] if size[2] == 1 else stacked, errors


def decode_gray(source, name: str = "the image") -> np.ndarray:
    """An image file (a path or a binary file object) as an upright float32 grayscale array (H, W).

    EXIF orientation is applied (phones store pictures sideways and say so), and transparency is
    composited over white, or over black when the visible strokes are light. ``name`` starts the
    one-line error for what Pillow cannot read or what is too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"{name}: {im.width}x{im.height} pixels, too large to be a digit")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                return _over_paper(np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0)
            return np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: not a readable image ({exc.__class__.__name__})") from None


def _over_paper(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA array (0..1) over white, or black if what is visible is light; gray 0..255."""
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    alpha = rgba[..., 3]
    visible = alpha.sum()
    paper = 1.0 if visible == 0 or (gray * alpha).sum() / visible < 0.5 else 0.0
    return 255.0 * (gray * alpha + paper * (1.0 - alpha))


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """Grayscale array (H, W), 0..255 -> (28, 28) uint8, white digit on black; :class:`NoDigit` if none."""
    strokes = _strokes(np.asarray(gray, dtype=np.float32))
    ys, xs = np.nonzero(strokes)
    crop = strokes[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return _centre(_fit(crop, 20))


def _shrunk(gray: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = gray.shape
    if max(h, w) <= WORK_SIDE:
        return gray
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX), dtype=np.float32)


def _strokes(gray: np.ndarray) -> np.ndarray:
    """The digit's ink, bright on black in 0..1, all else 0 (steps 2-5)."""
    from scipy import ndimage

    if gray.ndim != 2 or min(gray.shape) < 1:
        raise InputError(f"expected a 2-D grayscale picture, got shape {gray.shape}")
    x = np.clip(_shrunk(gray), 0, 255) / 255.0
    if _light_paper(x):
        x = 1.0 - x
    size = max(3, min(x.shape) // 2)
    ink = x - ndimage.grey_opening(x, size=(size, size))
    peak = float(ndimage.median_filter(ink, size=3).max()) if min(x.shape) >= 3 else float(ink.max())
    if peak < MIN_CONTRAST:
        raise NoDigit("no digit found")
    # Hysteresis: a stroke is what stands out by half the peak, with its fainter continuation.
    labels, count = ndimage.label(_unframed(ink > max(0.25 * peak, MIN_CONTRAST)), structure=np.ones((3, 3)))
    strong = np.unique(labels[ink > max(0.5 * peak, MIN_CONTRAST)])
    labels[~np.isin(labels, strong)] = 0
    mask = _digit_mask(labels, count)
    ys, xs = np.nonzero(mask)
    if max(np.ptp(ys), np.ptp(xs)) + 1 < MIN_EXTENT * max(x.shape):
        raise NoDigit("no digit found")
    mask = ndimage.binary_dilation(mask, iterations=2)  # the strokes' anti-aliased edges
    floor = 0.25 * peak  # the paper's grain under the strokes stays black
    strokes = np.clip((ink - floor) / max(np.percentile(ink[mask], 98) - floor, 1e-6), 0, 1)
    return np.where(mask, strokes, 0.0).astype(np.float32)


def _unframed(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the lines along its border that it mostly covers (a scan's frame, a desk's
    edge), so that a digit reaching into them is not joined to them."""
    mask = mask.copy()
    for view in (mask, mask[::-1], mask.T, mask.T[::-1]):  # top, bottom, left, right: views, cleared in place
        for line in view:
            if line.mean() <= 0.5:
                break
            line[:] = False
    return mask


def _light_paper(x: np.ndarray) -> bool:
    """Whether the digit is dark on light: a light margin, or a light sheet on a darker desk."""
    from scipy import ndimage

    h, w = x.shape
    band = max(1, min(h, w) // 10)  # deeper than a scan's dark frame
    margin = np.concatenate([x[:band].ravel(), x[-band:].ravel(), x[:, :band].ravel(), x[:, -band:].ravel()])
    if np.median(margin) > 0.5:
        return True
    low, high = np.percentile(x, [5, 95])
    labels, count = ndimage.label(x > low + 0.4 * (high - low))
    if count == 0:
        return False
    areas = ndimage.sum_labels(np.ones_like(labels), labels, np.arange(1, count + 1))
    biggest = int(np.argmax(areas)) + 1
    box = ndimage.find_objects(labels)[biggest - 1]
    sheet = ndimage.binary_fill_holes(labels[box] == biggest)  # the ink on it filled in
    bh, bw = sheet.shape
    return bh >= 0.3 * h and bw >= 0.3 * w and sheet.mean() >= 0.85


def _digit_mask(labels: np.ndarray, count: int) -> np.ndarray:
    """The largest component off the border, with the sizable parts near it (step 5)."""
    from scipy import ndimage

    if count == 0:
        raise NoDigit("no digit found")
    ids = np.arange(1, count + 1)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, ids)  # 0 for the faint-only ones dropped
    # What runs along the border (a scan's frame, a desk's edge, a shadow) is not the digit; a digit
    # drawn up to the edge touches it only briefly.
    along = np.zeros(count)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        along = np.maximum(along, ndimage.sum_labels(np.ones_like(side), side, ids) / side.size)
    inner = (areas > 0) & (along <= EDGE_CONTACT)
    if not inner.any():
        raise NoDigit("no digit found")
    boxes = ndimage.find_objects(labels)
    main = int(ids[inner][np.argmax(areas[inner])])
    box = boxes[main - 1]
    grow_y, grow_x = (box[0].stop - box[0].start) // 2, (box[1].stop - box[1].start) // 2
    keep = [main]
    for i in ids[inner]:
        b = boxes[i - 1]
        near = (b[0].start >= box[0].start - grow_y and b[0].stop <= box[0].stop + grow_y
                and b[1].start >= box[1].start - grow_x and b[1].stop <= box[1].stop + grow_x)
        if i != main and near and areas[i - 1] >= PART_SHARE * areas[main - 1]:
            keep.append(int(i))
    return np.isin(labels, keep)


def _fit(crop: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is ``box`` pixels (aspect kept), brightest stroke at 255."""
    from PIL import Image

    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, None)
    return small * (255.0 / small.max()) if small.max() > 0 else small


def _centre(small: np.ndarray) -> np.ndarray:
    """Place ``small`` in 28x28 with its centre of mass at the centre (as far as the frame allows)."""
    from scipy import ndimage

    cy, cx = ndimage.center_of_mass(small)
    h, w = small.shape
    top = int(np.clip(round(14.0 - cy), 0, 28 - h))
    left = int(np.clip(round(14.0 - cx), 0, 28 - w))
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[top : top + h, left : left + w] = small
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
