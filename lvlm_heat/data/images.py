"""Opening a pair's image, with a one-line error for a missing or unreadable one."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lvlm_heat.errors import LvlmHeatError


def load_image(source: Path | str | bytes) -> Image.Image:
    """Open an image (path or encoded bytes) as RGB, with a one-line error for a missing or bad one."""
    if isinstance(source, bytes):
        handle = io.BytesIO(source)
        name = "embedded image"
    else:
        path = Path(source)
        if not path.is_file():
            raise LvlmHeatError(f"image not found: {path}")
        handle, name = path, str(path)
    try:
        with Image.open(handle) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise LvlmHeatError(f"cannot read image {name}: not an image file PIL can open ({err})") from err
