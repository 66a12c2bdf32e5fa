"""Reading a clip as frames: a folder of images, an animated GIF or WebP, or a video file through PyAV.

A clip is explained as ``N`` frames sampled uniformly over it (``--video.frames``), the first and the
last included. Pillow, which the project already needs, reads folders of frames and animated images;
any other file (MP4, WebM, AVI, ...) is decoded by PyAV where it is installed (``pip install av``), and
otherwise the error says so in one line.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageSequence

from lvlm_heat.data.images import _READ_ERRORS, open_image
from lvlm_heat.errors import LvlmHeatError

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
"""Files of a folder of frames that are frames, taken in name order."""
ANIMATED = (".gif", ".webp", ".apng", ".png")
"""Files Pillow reads as animations (any other suffix goes to PyAV)."""


def uniform_indices(total: int, frames: int) -> list[int]:
    """``frames`` indices spread evenly over ``total`` frames, first and last included (all of them when the clip
    has no more).

    Example:
        >>> uniform_indices(10, 4)
        [0, 3, 6, 9]
        >>> uniform_indices(3, 8)
        [0, 1, 2]
    """
    if total <= frames:
        return list(range(total))
    return [round(k * (total - 1) / (frames - 1)) for k in range(frames)] if frames > 1 else [0]


def read_video(path: Path | str, frames: int = 8) -> tuple[list[Image.Image], list[str]]:
    """``frames`` RGB frames sampled uniformly from a clip, and one note on what was read.

    Args:
        path: A folder of frame images (name order), an animated GIF / WebP / PNG, or a video file (PyAV).
        frames: How many frames to sample.

    Raises:
        LvlmHeatError: One line, for a missing clip, one with no frames, or a video file without PyAV.
    """
    if frames < 1:
        raise LvlmHeatError(f"video.frames must be at least 1, got {frames}")
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise LvlmHeatError(f"no frames in {path}: a folder of frames holds {'/'.join(FRAME_SUFFIXES)} files")
        chosen = [files[k] for k in uniform_indices(len(files), frames)]
        return [open_image(f)[0] for f in chosen], [f"{len(chosen)} of {len(files)} frames of the folder"]
    if not path.is_file():
        raise LvlmHeatError(f"video not found: {path}")
    if path.suffix.lower() in ANIMATED:
        try:
            with Image.open(path) as clip:
                every = [frame.convert("RGB") for frame in ImageSequence.Iterator(clip)]
        except _READ_ERRORS as err:
            raise LvlmHeatError(f"cannot read video {path}: {err}".replace("\n", " ")) from err
    else:
        chosen, total = _decoded(path, frames)
        return chosen, [f"{len(chosen)} of {total} frames of the clip"]
    if not every:
        raise LvlmHeatError(f"cannot read video {path}: it has no frames")
    chosen = [every[k] for k in uniform_indices(len(every), frames)]
    return chosen, [f"{len(chosen)} of {len(every)} frames of the clip"]


def _decoded(path: Path, frames: int) -> tuple[list[Image.Image], int]:
    """``frames`` frames sampled uniformly from a video file, decoded by PyAV (only those are kept in memory), and
    how many the clip has."""
    try:
        import av
    except ImportError:
        raise LvlmHeatError(f"reading {path.name} needs PyAV: pip install av (or give a folder of frames or a GIF)") \
            from None
    try:
        with av.open(str(path)) as container:
            total = sum(1 for _ in container.decode(video=0))
        if total == 0:
            raise LvlmHeatError(f"cannot read video {path}: it has no frames")
        wanted = set(uniform_indices(total, frames))
        with av.open(str(path)) as container:
            chosen = [Image.fromarray(frame.to_ndarray(format="rgb24"))
                      for k, frame in enumerate(container.decode(video=0)) if k in wanted]
    except (av.error.FFmpegError, ValueError, IndexError) as err:
        raise LvlmHeatError(f"cannot read video {path}: {err}".replace("\n", " ")) from err
    return chosen, total
