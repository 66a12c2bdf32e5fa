"""Opening a pair's image as people see it, with a one-line error for a missing or unreadable one.

``convert("RGB")`` alone keeps a photo in its sensor orientation, clips a 16-bit image to white, turns a
float image black and shows whatever colour lies under transparent pixels. :func:`open_image` does what
an image viewer does, in this order, and says what it changed:

1. EXIF orientation (tags 2-8) is applied first, so the image the model sees, the saliency map, the
   overlay and box coordinates are all in the orientation every viewer shows.
2. Greyscale of more than 8 bits is scaled to 0-255, never clipped: 16-bit modes (``I;16``, ``I;16B``,
   ...) by the type's range, ``v * 255 / 65535``. Mode ``I`` (32-bit integers) has no range of its own:
   values within 0-255 are kept, values within 0-65535 are scaled as 16-bit (Pillow opens some 16-bit
   TIFF and PNG files as ``I``, and a viewer shows a dark 16-bit image dark), other values are
   stretched from their minimum to their maximum.
3. Float (``F``) images: values within 0-1 are scaled by 255, non-negative values above 1 by their
   maximum, others stretched from minimum to maximum; NaN and infinities become 0.
4. Transparency (``RGBA``, ``LA``, ``PA``, a palette or colour with a transparent entry) is composited
   on :data:`BACKGROUND`, white, as most viewers and web pages show it.
5. CMYK uses Pillow's profile-free conversion ``(255 - C)(255 - K) / 255``; an embedded colour profile
   is not applied (the note says so).

Changes that keep every colour as it is (palette or greyscale to RGB, a fully opaque alpha channel) are
not noted.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from lvlm_heat.errors import LvlmHeatError

BACKGROUND = (255, 255, 255)
"""The colour transparent pixels are composited on: white."""

_SAME_COLOURS = ("1", "L", "P", "RGBX", "YCbCr")
"""Modes whose conversion to RGB shows the same colours (when they have no transparent entry)."""
_ALPHA = ("RGBA", "LA", "PA", "RGBa")
_READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
"""What Pillow raises for a file that is not an image, truncated, corrupt or too large to be one."""


def _grey(values: np.ndarray, low: float, high: float) -> Image.Image:
    """An RGB image of greyscale ``values`` mapped linearly from ``[low, high]`` to ``[0, 255]``."""
    span = high - low if high > low else 1.0
    scaled = np.clip(np.rint((values.astype(np.float64) - low) * (255.0 / span)), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")


def _deep_grey(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """16-bit, 32-bit integer and float greyscale, scaled to 8 bits (see the module's docstring)."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        return _grey(values, 0, 65535), ["16-bit greyscale scaled to 8 bits"]
    notes = []
    if image.mode == "F" and not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        notes.append("non-finite values set to 0")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "I" and low >= 0 and high <= 255:
        return _grey(values, 0, 255), notes
    if image.mode == "I" and low >= 0 and high <= 65535:
        return _grey(values, 0, 65535), [*notes, "32-bit greyscale with 16-bit values scaled to 8 bits"]
    if image.mode == "F" and low >= 0 and high <= 1:
        return _grey(values, 0, 1), [*notes, "float greyscale scaled from [0, 1] to 8 bits"]
    if image.mode == "F" and low >= 0:
        return _grey(values, 0, high), [*notes, f"float greyscale scaled from [0, {high:g}] to 8 bits"]
    return _grey(values, low, high), [*notes, f"{image.mode} greyscale stretched from [{low:g}, {high:g}] to 8 bits"]


def _composited(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """The image over :data:`BACKGROUND`, noted only where some pixel is transparent."""
    rgba = image.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] == 255:
        return rgba.convert("RGB"), []
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB"), ["transparency composited on white"]


def _to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """The image in RGB as a viewer shows it, and what was changed (see the module's docstring)."""
    mode, transparent = image.mode, "transparency" in image.info
    if mode == "RGB" and not transparent:
        return image, []
    if mode.startswith("I") or mode == "F":
        return _deep_grey(image)
    if mode in _ALPHA or transparent:
        return _composited(image)
    if mode in _SAME_COLOURS:
        return image.convert("RGB"), []
    if mode == "CMYK":
        profile = " (its embedded colour profile not applied)" if image.info.get("icc_profile") else ""
        return image.convert("RGB"), [f"CMYK converted to RGB{profile}"]
    try:
        return image.convert("RGB"), [f"{mode} converted to RGB"]
    except ValueError as err:
        raise LvlmHeatError(f"cannot convert an image of mode {mode} to RGB") from err


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(ExifTags.Base.Orientation)
    except _READ_ERRORS:  # a corrupt EXIF block: Pillow ignores it too
        return None


def open_image(source: Path | str | bytes | None) -> tuple[Image.Image, list[str]]:
    """Open an image (path or encoded bytes) as RGB, as a viewer shows it, and say what was changed.

    Args:
        source: A path, or the encoded image (benchmarks that embed their images).

    Returns:
        The RGB image, and one short note per change (the module's docstring lists them), e.g.
        ``["EXIF orientation 6 applied", "16-bit greyscale scaled to 8 bits"]``; empty when the image
        was shown as it is stored. A multi-frame image (GIF, TIFF) gives its first frame.

    Raises:
        LvlmHeatError: One line, for a missing file, a folder, or a file that is not a readable image.
    """
    if source is None:
        raise LvlmHeatError("no image given")
    if isinstance(source, bytes):
        handle, name = io.BytesIO(source), "embedded image"
    else:
        path = Path(source)
        if path.is_dir():
            raise LvlmHeatError(f"image not found: {path} is a folder, not a file")
        if not path.is_file():
            raise LvlmHeatError(f"image not found: {path}")
        handle, name = path, str(path)
    try:
        with Image.open(handle) as image:
            image.load()
            notes = [f"first of {image.n_frames} frames used"] if getattr(image, "n_frames", 1) > 1 else []
            orientation = _orientation(image)
            if orientation in range(2, 9):
                notes.append(f"EXIF orientation {orientation} applied")
                upright = ImageOps.exif_transpose(image)
            else:
                upright = image.copy()  # the pixels outlive the file, which closes here
    except _READ_ERRORS as err:
        reason = "not an image file PIL can open" if isinstance(err, UnidentifiedImageError) else str(err)
        raise LvlmHeatError(f"cannot read image {name}: {reason}".replace("\n", " ")) from err
    rgb, changes = _to_rgb(upright)
    return rgb, notes + changes


def load_image(source: Path | str | bytes | None) -> Image.Image:
    """Open an image (path or encoded bytes) as RGB, as a viewer shows it: :func:`open_image` without its notes."""
    return open_image(source)[0]


def image_digest(source: Path | str | bytes | Image.Image) -> str:
    """SHA-256 of an image: of its file's bytes (a path), of the encoded bytes, or of an in-memory image's
    pixels, mode and size. Two pairs whose images digest alike show the same picture.

    Raises:
        LvlmHeatError: A path that cannot be read.
    """
    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"{source.mode} {source.size} ".encode())
        digest.update(source.tobytes())
    elif isinstance(source, bytes):
        digest.update(source)
    else:
        try:
            with open(source, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as err:
            raise LvlmHeatError(f"cannot read image {source}: {err.strerror}") from err
    return digest.hexdigest()
