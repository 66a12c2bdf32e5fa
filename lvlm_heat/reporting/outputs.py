"""A pair's files, and files written atomically.

Each pair has a folder with ``saliency.npy`` (the map on the mask's cells), ``overlay.png``, ``curves.png``, a
subfolder of the same files for each further explainer of ``--method``, and, written last and atomically,
``result.json``: a folder with a complete ``result.json`` is a finished pair.
:func:`write_pair_outputs` writes them from an :class:`~lvlm_heat.record.ExplanationRecord`, and
:func:`read_record` reads one back. Every file another process or a later run reads (``result.json``,
the summary, ``run.json``, the report) goes through :func:`write_atomic`: it is either absent or complete.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lvlm_heat.geometry import grid_to_image
from lvlm_heat.record import EXPLAINED, NOT_GROUNDED, ExplanationRecord

RESULT = "result.json"


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None``: JSON that strict parsers accept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) so that ``path`` is either absent or complete, never half-written, and on disk.

    The file gets the permissions of any file the user creates (``0666`` less the umask), not the ``0600`` of a
    temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o666 & ~_umask())
    os.replace(handle.name, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """:func:`write_atomic` of strict JSON (NaN and infinities written as ``null``)."""
    write_atomic(path, json.dumps(strict_json(data), indent=2, allow_nan=False))


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _save(figure, path: Path) -> None:
    """A figure as PNG, its bounds fitted to what it draws (a long title or a colour bar's label is never cut)."""
    figure.savefig(path, dpi=110, bbox_inches="tight")


def write_pair_outputs(folder: Path, record: ExplanationRecord) -> None:
    """``saliency.npy``, ``overlay.png``, ``curves.png`` (when explained), with per-word maps
    ``saliency_<k>_<word>.npy``, ``overlay_<k>_<word>.png`` and ``words.png``, and, last, ``result.json``.

    These are the first explainer's; every other explainer of ``--method`` writes the same files into a subfolder
    named after it. The figures are drawn over ``record.image``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if record.saliency is not None:
        _write_maps(folder, record, overlay=not record.images)  # several images: _write_images draws overlay.png
    if record.images and record.saliency is not None:
        _write_images(folder, record)
    for method in record.methods[1:]:
        _write_maps(folder / method.folder, record.for_method(method.method))
    write_json_atomic(folder / RESULT, record.to_dict())


def _write_maps(folder: Path, record: ExplanationRecord, overlay: bool = True) -> None:
    """One explainer's files: its map, overlay (unless ``overlay`` is false), curves and per-word maps."""
    from lvlm_heat.reporting.figures import curves_figure, overlay_figure, word_figure, words_figure

    folder.mkdir(parents=True, exist_ok=True)
    image = record.image
    np.save(folder / "saliency.npy", _stored(record.saliency_grid, record.saliency))
    if overlay:
        _save(overlay_figure(image, record), folder / "overlay.png")
    _save(curves_figure(record.deletion, record.insertion, record.unstable), folder / "curves.png")
    if record.words:
        for word in record.words:
            np.save(folder / f"saliency_{word.file_stem}.npy", _stored(word.grid, word.saliency))
            _save(word_figure(image, record, word), folder / f"overlay_{word.file_stem}.png")
        _save(words_figure(image, record), folder / "words.png")


def _write_images(folder: Path, record: ExplanationRecord) -> None:
    """A question about several images (or a clip): ``overlay.png`` shows every image on one scale; each image's
    part is ``saliency_image<k>.npy`` and ``overlay_image<k>.png``; a clip also gets ``frames.gif``."""
    from lvlm_heat.reporting.figures import clip_frames, image_overlay_figure, images_figure

    _save(images_figure(record), folder / "overlay.png")
    for part in record.images:
        np.save(folder / f"saliency_{part.file_stem}.npy", _stored(part.grid, part.saliency))
        _save(image_overlay_figure(record, part), folder / f"overlay_{part.file_stem}.png")
    if record.video:
        first, *rest = clip_frames(record)
        first.save(folder / "frames.gif", save_all=True, append_images=rest, duration=500, loop=0)


def _stored(grid: np.ndarray | None, saliency: np.ndarray) -> np.ndarray:
    """What a ``.npy`` file holds: the map on the mask's cells (a few KB whatever the image), or the map itself
    when it has no grid."""
    return np.asarray(grid if grid is not None else saliency, dtype=np.float32)


def load_saliency(path: Path, image_size: tuple[int, int] | None) -> np.ndarray | None:
    """A ``saliency*.npy`` file as the ``(H, W)`` map over the image (its cells upsampled bilinearly, exactly as the
    run computed it); ``None`` when the file is missing or unreadable."""
    try:
        stored = np.load(path)
    except (OSError, ValueError):
        return None
    return stored if image_size is None else grid_to_image(stored, image_size)


def read_record(folder: Path, maps: bool = True) -> ExplanationRecord | None:
    """The record in ``folder/result.json`` (``None`` when it is missing or unreadable), with its maps from the
    ``.npy`` files beside it when ``maps`` (:func:`load_saliency`; a missing map file leaves that map ``None``)."""
    try:
        data = json.loads((Path(folder) / RESULT).read_text())
        record = ExplanationRecord.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    record.folder = record.folder or Path(folder).name
    if maps and record.status == EXPLAINED:
        record.saliency = load_saliency(Path(folder) / "saliency.npy", record.image_size)
        for word in record.words or []:
            word.saliency = load_saliency(Path(folder) / f"saliency_{word.file_stem}.npy", record.image_size)
        for part in record.images:
            part.saliency = load_saliency(Path(folder) / f"saliency_{part.file_stem}.npy", part.size)
        if record.methods:
            record.methods[0].saliency = record.saliency
        for method in record.methods[1:]:
            place = Path(folder) / method.folder
            method.saliency = load_saliency(place / "saliency.npy", record.image_size)
            for word in method.words or []:
                word.saliency = load_saliency(place / f"saliency_{word.file_stem}.npy", record.image_size)
    return record


def read_finished(folder: Path, maps: bool = True) -> ExplanationRecord | None:
    """The pair's record if it holds a finished explanation (not a failure): what a resumed run keeps."""
    record = read_record(folder, maps)
    return record if record is not None and record.status in (EXPLAINED, NOT_GROUNDED) else None
